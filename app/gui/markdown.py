"""Markdown to the HTML subset QTextDocument renders, incrementally while an answer streams.

markdown-it-py parses (CommonMark + tables), Pygments colours code blocks with inline styles (Qt's
rich text has no stylesheet classes). A streamed answer is cut where markdown-it's own parse says a
top-level block is closed (MarkdownStream): those blocks are final and rendered once, only the open
last block is rendered again each frame, so a long answer costs the same per frame as a short one,
and every frame shows the same blocks as rendering the whole text so far at once.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

# Line breaks as markdown-it counts them (its normalize step turns each into "\n").
_LINE_BREAK = re.compile(r"\r\n?|\n")
References = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Theme:
    """The colours of code blocks and tables, for a light or a dark window."""

    pygments_style: str
    code_bg: str
    border: str
    header_bg: str


LIGHT = Theme("friendly", "#f6f8fa", "#d0d7de", "#eaeef2")
DARK = Theme("monokai", "#272822", "#444c56", "#2d333b")


class MarkdownRenderer:
    """Renders markdown; code blocks go into the `code` list of the env they are rendered with."""

    def __init__(self, dark: bool = False) -> None:
        self.set_dark(dark)
        self._md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
        self._md.enable("table").enable("strikethrough")

        # markdown-it binds render rules to its own renderer: hand it plain functions.
        def fence(_renderer, tokens, idx, _options, env):  # type: ignore[no-untyped-def]
            return self._fence(tokens[idx], env.setdefault("code", []))

        def table(_renderer, tokens, idx, _options, _env):  # type: ignore[no-untyped-def]
            return self._table_tag(tokens[idx])

        def quote(_renderer, tokens, idx, _options, _env):  # type: ignore[no-untyped-def]
            return self._quote_tag(tokens[idx])

        for rule, render in (("fence", fence), ("code_block", fence), ("table_open", table), ("th_open", table),
                             ("td_open", table), ("blockquote_open", quote), ("blockquote_close", quote)):
            self._md.add_render_rule(rule, render)

    def set_dark(self, dark: bool) -> None:
        self.theme = DARK if dark else LIGHT
        self._formatter = HtmlFormatter(noclasses=True, nowrap=True, style=self.theme.pygments_style)

    def warm_up(self) -> None:
        """Pay the first-use costs (rule compilation, lexer imports: ~60 ms) before an answer streams."""
        sample = "**b** `c`\n\n| a |\n|---|\n| 1 |\n\n" + "".join(
            f"```{lang}\nx\n```\n\n" for lang in ("python", "bash", "json", "javascript", "cpp"))
        self.render(sample)

    def render(self, text: str, code: list[str] | None = None, references: References | None = None) -> str:
        """The HTML of a whole markdown text; its code blocks are appended to `code` (Copy links
        count on from its length)."""
        env: dict[str, Any] = {"code": [] if code is None else code, "references": dict(references or {})}
        return self.html(self.parse(text, env), env)

    def parse(self, text: str, env: dict[str, Any]) -> list[Token]:
        """markdown-it's tokens; the link reference definitions it finds are added to env["references"]."""
        return self._md.parse(text, env)

    def html(self, tokens: Sequence[Token], env: dict[str, Any]) -> str:
        # The newline after the last block would become a space at the end of the document in Qt.
        return str(self._md.renderer.render(tokens, self._md.options, env)).rstrip("\n")

    def final_end(self, text: str, start: int, references: References) -> int:
        """Where the final blocks of a growing text end, from `start` (a block boundary) on.

        Only complete lines count (a partial last line can still change what the line before it
        is: `|-` under `| a |` makes a table of a paragraph), and of the top-level blocks that
        markdown-it finds in them all but the last are closed for good: later lines cannot reopen
        them. The answer is where the last one starts, or `start` when there is only one.
        """
        end = text.rfind("\n", start) + 1
        if end <= start:
            return start
        part = text[start:end]
        tokens = self.parse(part, {"references": dict(references)})
        starts = [t.map[0] for t in tokens if t.level == 0 and t.nesting >= 0 and t.map is not None]
        if len(starts) < 2:
            return start
        return start + _line_offset(part, starts[-1])

    def _fence(self, token: Token, code: list[str]) -> str:
        lang = (token.info or "").strip().split(" ")[0]
        index = len(code)
        code.append(token.content)
        body = highlight(token.content, _lexer(lang), self._formatter)
        label = html.escape(lang or "code")
        # pre-wrap: a long line wraps inside the block instead of running past the right edge,
        # where a QTextBrowser cannot scroll one block on its own. Copy copies the original lines.
        return (f'<table width="100%" cellpadding="6" style="background:{self.theme.code_bg}; margin:4px 0">'
                f'<tr><td><span style="color:#888">{label}</span>&nbsp;&nbsp;<a href="copy:{index}">Copy</a>'
                f'</td></tr><tr><td><pre style="margin:0; white-space:pre-wrap">{body}</pre></td></tr></table>')

    def _table_tag(self, token: Token) -> str:
        """Tables with borders, padding and a shaded header row (Qt reads HTML attributes)."""
        theme = self.theme
        if token.type == "table_open":
            return (f'<table border="1" cellspacing="0" cellpadding="6" style="border-collapse:collapse; '
                    f'border-color:{theme.border}; border-style:solid; margin:6px 0">\n')
        align = str(token.attrs.get("style", "")).removeprefix("text-align:")
        attrs = f' align="{align}"' if align in ("left", "right", "center") else ""
        if token.type == "th_open":
            attrs += f' bgcolor="{theme.header_bg}"'
        return f"<{token.tag}{attrs}>"


    def _quote_tag(self, token: Token) -> str:
        """A quote with a bar on its left (Qt draws no block borders: a bar cell of a table): indented
        alone, it read as part of the list item before it."""
        if token.type == "blockquote_close":
            return "</td></tr></table>\n"
        return (f'<table width="100%" cellspacing="0" cellpadding="0" style="margin:6px 0"><tr>'
                f'<td width="4" bgcolor="{self.theme.border}"></td><td style="padding-left:10px">')


def _line_offset(text: str, line: int) -> int:
    """The character offset where `line` (counted from 0, as markdown-it's token maps do) begins."""
    if line == 0:
        return 0
    for number, match in enumerate(_LINE_BREAK.finditer(text), start=1):
        if number == line:
            return match.end()
    return len(text)


@lru_cache(maxsize=64)
def _lexer(lang: str) -> Lexer:
    try:
        return get_lexer_by_name(lang) if lang else TextLexer()
    except ClassNotFound:
        return TextLexer()


@dataclass(frozen=True)
class Frame:
    """What changed in one frame of a streamed answer."""

    rebuild: bool  # the final part must be replaced: final_html is all of it, not only the new blocks
    final_html: str  # blocks that became final (all final blocks when rebuild)
    tail_html: str  # the open last block, rendered again every frame


def _definitions(references: References) -> dict[str, tuple[object, object]]:
    return {label: (ref.get("href"), ref.get("title")) for label, ref in references.items()}


class MarkdownStream:
    """One answer's markdown as it grows, and the code of its blocks (for its Copy links).

    Each `advance` returns the blocks that became final since the last call, rendered once, and the
    open tail, rendered again. A link reference definition applies to links before it too: when one
    appears, the final part is rendered again with it (rare; everything else is incremental).
    """

    def __init__(self, renderer: MarkdownRenderer) -> None:
        self._renderer = renderer
        self.code: list[str] = []  # by the index in each block's copy: link
        self._final_len = 0  # characters of the text whose blocks are final
        self._final_code = 0  # code blocks among them
        self._defined: References = {}  # the definitions in the final text
        self._rendered_with: dict[str, tuple[object, object]] = {}  # those the final HTML used

    @property
    def final_length(self) -> int:
        return self._final_len

    @property
    def final_code(self) -> int:
        """How many of the code blocks are in the final part."""
        return self._final_code

    def advance(self, text: str) -> Frame:
        r = self._renderer
        start = self._final_len
        cut = r.final_end(text, start, self._defined)
        chunk_tokens: list[Token] = []
        if cut > start:
            env: dict[str, Any] = {"references": dict(self._defined)}
            chunk_tokens = r.parse(text[start:cut], env)
            self._defined = env["references"]
        tail_env: dict[str, Any] = {"references": dict(self._defined)}
        tail_tokens = r.parse(text[cut:], tail_env)
        references: References = tail_env["references"]  # all of them, as a parse of the whole text finds
        if chunk_tokens and len(references) > len(self._defined):  # the tail defines some: they apply here too
            chunk_tokens = r.parse(text[start:cut], {"references": dict(references)})
        self._final_len = cut
        del self.code[self._final_code:]  # the last frame's tail
        rebuild = _definitions(references) != self._rendered_with
        final_html = ""
        if rebuild:
            self._rendered_with = _definitions(references)
            del self.code[:]
            final_html = r.render(text[:cut], self.code, references)
        elif chunk_tokens:
            final_html = r.html(chunk_tokens, {"code": self.code, "references": references})
        self._final_code = len(self.code)
        tail_html = r.html(tail_tokens, {"code": self.code, "references": references})
        return Frame(rebuild, final_html, tail_html)
