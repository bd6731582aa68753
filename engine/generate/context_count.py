"""How a conversation fills the context: real tokens through the model's own template, split in three.

The split comes from renders of the same conversation, so its parts add up to the total by
construction (what the engine would send for this request):
- keeping and dropping the reasoning of earlier turns (the template's `truncate_history_thinking`,
  False and True): the difference is the old reasoning, what "Drop old thinking" frees;
- with and without the last turn (the question being typed or sent, and the generation prompt),
  rendered with the reasoning kept, which makes it a prefix of the full render: the difference is
  the current turn. The rest is the history.
A template that does not read `truncate_history_thinking` has no old reasoning to drop: its old
reasoning is 0 and `can_drop_reasoning` False.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.api import ContextCount, GenerationRequest, Message
from engine.errors import InvalidRequest
from engine.generate.chat_format import ChatFormatter, Tokenize

TRUNCATE = "truncate_history_thinking"

#: Tokens of a conversation rendered with old reasoning dropped (True), kept (False) or as the
#: request says (None), with or without the generation prompt.
_Counter = Callable[[Sequence[Message], bool | None, bool], int]


def count_context(formatter: ChatFormatter, request: GenerationRequest, tokenize: Tokenize, n_ctx: int,
                  extra_tokens: int = 0) -> ContextCount:
    """The split for `request` (its messages; a raw prompt is all current turn). `extra_tokens`: what
    the engine adds before the rendered prompt (a BOS token), counted with the history.

    Raises what ChatFormatter.prompt raises (InvalidRequest, ChatTemplateError, ContextOverflow).
    """
    if request.prompt is not None:
        return ContextCount(n_ctx, current_turn=len(tokenize(request.prompt, True)) + extra_tokens)
    can_drop = TRUNCATE in formatter.variables
    asked = request.chat_template_kwargs.get(TRUNCATE, True)  # the template's own default: drop
    messages = request.messages

    def tokens(convo: Sequence[Message], drop: bool | None, whole: bool) -> int:
        kwargs = dict(request.chat_template_kwargs)
        if can_drop and drop is not None:
            kwargs[TRUNCATE] = drop
        prompt = formatter.prompt(convo, tokenize, thinking=request.thinking and formatter.supports_thinking,
                                  tools=request.tools, add_generation_prompt=whole and request.opens_new_turn,
                                  continue_final_message=whole and request.continue_final_message,
                                  template_kwargs=kwargs)
        return len(prompt.tokens)

    kept = tokens(messages, False, True)
    dropped = tokens(messages, True, True) if can_drop else kept
    head = messages[:-1] if messages[-1].role == "user" else messages
    before = _prefix_tokens(tokens, head)
    current = max(kept - before, 0)
    old_reasoning = max(kept - dropped, 0)
    history = dropped - current + extra_tokens
    return ContextCount(n_ctx, history=max(history, 0), old_reasoning=old_reasoning, current_turn=current,
                        reasoning_kept=can_drop and asked is False, can_drop_reasoning=can_drop)


def _prefix_tokens(tokens: _Counter, head: Sequence[Message]) -> int:
    """Tokens of everything before the current turn, rendered with the reasoning kept (so it is a
    prefix of the whole prompt); 0 when nothing comes before it, or the template refuses the head
    alone (the Nemotron template needs at least one message)."""
    if not head:
        return 0
    try:
        return tokens(head, False, False)
    except InvalidRequest:
        return 0
