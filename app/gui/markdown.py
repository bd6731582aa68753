"""Markdown to the HTML subset QTextDocument renders, incrementally while an answer streams.

markdown-it-py parses (CommonMark + tables), Pygments colours code blocks with inline styles (Qt's
rich text has no stylesheet classes). A streamed answer is split at its last paragraph break
outside a code fence: everything before is final and rendered once, only the tail is re-rendered
each frame, so a long answer costs the same per frame as a short one.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound


@dataclass
class CodeBlocks:
    """The code of each rendered block, by index, for the copy buttons."""

    texts: list[str] = field(default_factory=list)


class MarkdownRenderer:
    def __init__(self, dark: bool = False) -> None:
        self.set_dark(dark)
        self._md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
        self._md.enable("table").enable("strikethrough")
        # markdown-it binds render rules to its own renderer: hand it a plain function.
        def fence(_renderer, tokens, idx, _options, _env):  # type: ignore[no-untyped-def]
            return self._fence(tokens[idx])

        self._md.add_render_rule("fence", fence)
        self._md.add_render_rule("code_block", fence)
        self.code = CodeBlocks()

    def set_dark(self, dark: bool) -> None:
        self._formatter = HtmlFormatter(noclasses=True, nowrap=True, style="monokai" if dark else "friendly")
        self._code_bg = "#272822" if dark else "#f6f8fa"

    def warm_up(self) -> None:
        """Pay the first-use costs (rule compilation, lexer imports: ~60 ms) before an answer streams."""
        sample = "**b** `c`\n\n| a |\n|---|\n| 1 |\n\n" + "".join(
            f"```{lang}\nx\n```\n\n" for lang in ("python", "bash", "json", "javascript", "cpp"))
        self.render(sample)
        del self.code.texts[:]

    def render(self, text: str) -> str:
        return str(self._md.render(text))

    def _fence(self, token: Token) -> str:
        lang = (token.info or "").strip().split(" ")[0]
        lexer = _lexer(lang)
        index = len(self.code.texts)
        self.code.texts.append(token.content)
        body = highlight(token.content, lexer, self._formatter)
        label = html.escape(lang or "code")
        return (f'<table width="100%" cellpadding="6" style="background:{self._code_bg}; margin:4px 0">'
                f'<tr><td><span style="color:#888">{label}</span>&nbsp;&nbsp;<a href="copy:{index}">Copy</a>'
                f'</td></tr><tr><td><pre style="margin:0">{body}</pre></td></tr></table>')


@lru_cache(maxsize=64)
def _lexer(lang: str) -> Lexer:
    try:
        return get_lexer_by_name(lang) if lang else TextLexer()
    except ClassNotFound:
        return TextLexer()


def stable_split(text: str, start: int = 0) -> int:
    """Where the final part of a streamed markdown text ends: the last blank line outside a fence.

    `start` is an earlier result: the scan resumes there (outside any fence), so each frame reads
    only the new text.
    """
    in_fence = False
    boundary = start
    offset = start
    for line in text[start:].splitlines(keepends=True):
        stripped = line.lstrip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            in_fence = not in_fence
        offset += len(line)
        if not in_fence and not stripped.strip() and line.endswith("\n") and offset < len(text):
            boundary = offset
    return boundary
