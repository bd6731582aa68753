"""The model card's two-step reasoning-budget protocol, as a client of any OpenAI-compatible server.

NVIDIA's model card for Nemotron-3-Nano gives a sample `ThinkingBudgetClient`; this is our own
client that follows the same protocol step by step, so tests can point it at a server and see
whether the card's method works there unchanged:

1. a chat completion with `max_tokens = reasoning_budget`, whose `message.content` the card takes
   for the reasoning (a server without a reasoning parser returns it there, `</think>` included
   when the model closed it);
2. when `</think>` is missing, `.\\n</think>\\n\\n` is appended; the conversation plus that text as an
   assistant message is rendered with the tokenizer's chat template and `continue_final_message`
   (client side, transformers), and continued through `/v1/completions` with the tokens left.

It keeps what each step sent and got back, so a test can check that the first call's reasoning
reached the second call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai

CUT = ".\n</think>\n\n"


@dataclass(frozen=True)
class BudgetReply:
    first_content: str | None  # what the first call's message.content held
    second_prompt: str  # the prompt the second call sent to /v1/completions
    second_max_tokens: int
    reasoning: str
    content: str
    finish_reason: str
    second_completion_tokens: int


class BudgetProtocolClient:
    def __init__(self, base_url: str, tokenizer: Any, api_key: str = "none") -> None:
        self.tokenizer = tokenizer
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120)

    def chat_completion(self, model: str, messages: list[dict[str, Any]], reasoning_budget: int,
                        max_tokens: int, **kwargs: Any) -> BudgetReply:
        if max_tokens <= reasoning_budget:
            raise ValueError(f"reasoning_budget must be below max_tokens ({reasoning_budget=}, {max_tokens=})")
        first = self.client.chat.completions.create(model=model, messages=messages,  # type: ignore[arg-type]
                                                    max_tokens=reasoning_budget, **kwargs)
        content = first.choices[0].message.content
        if content is None:
            raise RuntimeError("the first call's message.content is null: the card's client fails here")
        reasoning = content if "</think>" in content else content + CUT
        remaining = max_tokens - len(self.tokenizer.encode(reasoning, add_special_tokens=False))
        if remaining <= 0:
            raise ValueError(f"no tokens left for the answer ({remaining=})")
        history = [*messages, {"role": "assistant", "content": reasoning}]
        prompt = self.tokenizer.apply_chat_template(history, tokenize=False, continue_final_message=True)
        second = self.client.completions.create(model=model, prompt=prompt, max_tokens=remaining, **kwargs)
        usage = second.usage
        return BudgetReply(
            first_content=content, second_prompt=prompt, second_max_tokens=remaining,
            reasoning=reasoning.strip().removesuffix("</think>").strip(), content=second.choices[0].text,
            finish_reason=second.choices[0].finish_reason,
            second_completion_tokens=usage.completion_tokens if usage is not None else -1)
