"""Appending rendered HTML to a QTextDocument so that it reads as if the whole HTML had been set.

QTextCursor.insertHtml merges the first block it inserts into the block at the cursor, which takes
that block's format: a heading after a list became list text, a quote joined the list item before
it, a paragraph ran into the one before. append_html inserts the blocks after the last one instead,
each with its own format, so a document built piece by piece equals one set from all the HTML.
"""

from __future__ import annotations

from collections.abc import Callable

from app.gui.qt import QTextCursor, QTextDocument, QTextDocumentFragment


def replace_from(document: QTextDocument, position: int | None, html: str) -> None:
    """Replace what follows `position` (the end of a block) with the blocks of `html`;
    None: the whole document."""
    if position is None:
        document.setHtml(html)
        return
    replace_parts(document, position, [html])


def replace_parts(document: QTextDocument, position: int, parts: list[str]) -> int:
    """Replace what follows `position` (the end of a block) with the blocks of each HTML part in turn,
    as one edit; returns the position where the last part begins.

    One edit block: a document shown in a view is laid out again after each change, and that layout
    walks the document (it costs more as the document grows): once for all the parts, not once for
    each removal and fragment. Qt builds the frame structure (tables) only when the edit block ends,
    so the fixes that look at tables run after it, the last part's first (positions before it hold).
    """
    fixes: list[list[Callable[[], None]]] = []
    last_part = QTextCursor(document)
    edit = QTextCursor(document)
    edit.beginEditBlock()
    try:
        for i, html in enumerate(parts):
            if i == len(parts) - 1:
                last_part.setPosition(position)
                last_part.setKeepPositionOnInsert(True)
            fixes.append(_replace(document, position, html))
            position = end_position(document)
    finally:
        edit.endEditBlock()
    for part in reversed(fixes):
        for fix in part:
            fix()
    return last_part.position()


def _replace(document: QTextDocument, position: int, html: str) -> list[Callable[[], None]]:
    """replace_from's edits (inside an edit block); returns the fixes to make after it, in order."""
    cursor = QTextCursor(document)
    cursor.setPosition(position)
    fixes: list[Callable[[], None]] = []
    # Qt gives an empty block (a rule, an empty list item) the format of the block merged into it,
    # both when what follows is removed and when a fragment is inserted: keep it open meanwhile.
    held = cursor.block().length() == 1
    if held:
        cursor.insertText(" ")
        position += 1
    remove_from(document, position)
    if html:
        fixes.append(_append_html(document, html))
    if held:
        cursor.setPosition(position - 1)
        cursor.setKeepPositionOnInsert(True)
        fixes.append(cursor.deleteChar)
    return fixes


def _append_html(document: QTextDocument, html: str) -> Callable[[], None]:
    """Add the blocks of `html` after the document's last block (which has content); returns the
    fix to make once the frame structure is built."""
    source = QTextDocument()
    source.setHtml(html)
    start = QTextCursor(source)
    if start.currentTable() is None:
        # An empty first block, the one that merges; the real first block keeps its format.
        start.insertBlock(start.blockFormat(), start.blockCharFormat())
    # (HTML that starts with a table already begins with an empty block before it.)
    end = QTextCursor(document)
    end.movePosition(QTextCursor.MoveOperation.End)
    last = end.block()
    end.insertFragment(QTextDocumentFragment(source))

    def drop_table_gap() -> None:
        # A table inserted this way gets an empty paragraph before it that setHtml does not make.
        gap = last.next()
        if (gap.isValid() and gap.length() == 1 and gap.next().isValid()
                and QTextCursor(gap).currentTable() is None and QTextCursor(gap.next()).currentTable() is not None):
            QTextCursor(gap).deletePreviousChar()

    return drop_table_gap


def remove_from(document: QTextDocument, position: int) -> None:
    """Remove everything from `position` to the end of the document."""
    cursor = QTextCursor(document)
    cursor.setPosition(position)
    cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
    cursor.removeSelectedText()


def end_position(document: QTextDocument) -> int:
    return document.characterCount() - 1
