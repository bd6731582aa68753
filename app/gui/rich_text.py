"""Appending rendered HTML to a QTextDocument so that it reads as if the whole HTML had been set.

QTextCursor.insertHtml merges the first block it inserts into the block at the cursor, which takes
that block's format: a heading after a list became list text, a quote joined the list item before
it, a paragraph ran into the one before. append_html inserts the blocks after the last one instead,
each with its own format, so a document built piece by piece equals one set from all the HTML.
"""

from __future__ import annotations

from app.gui.qt import QTextCursor, QTextDocument, QTextDocumentFragment


def replace_from(document: QTextDocument, position: int | None, html: str) -> None:
    """Replace what follows `position` (the end of a block) with the blocks of `html`;
    None: the whole document."""
    if position is None:
        document.setHtml(html)
        return
    cursor = QTextCursor(document)
    cursor.setPosition(position)
    # Qt gives an empty block (a rule, an empty list item) the format of the block merged into it,
    # both when what follows is removed and when a fragment is inserted: keep it open meanwhile.
    held = cursor.block().length() == 1
    if held:
        cursor.insertText(" ")
        position += 1
    remove_from(document, position)
    if html:
        _append_html(document, html)
    if held:
        cursor.setPosition(position - 1)
        cursor.deleteChar()


def _append_html(document: QTextDocument, html: str) -> None:
    """Add the blocks of `html` after the document's last block (which has content)."""
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
    gap = last.next()
    # A table inserted this way gets an empty paragraph before it that setHtml does not make.
    if (gap.isValid() and gap.length() == 1 and gap.next().isValid() and QTextCursor(gap).currentTable() is None
            and QTextCursor(gap.next()).currentTable() is not None):
        QTextCursor(gap).deletePreviousChar()


def remove_from(document: QTextDocument, position: int) -> None:
    """Remove everything from `position` to the end of the document."""
    cursor = QTextCursor(document)
    cursor.setPosition(position)
    cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
    cursor.removeSelectedText()


def end_position(document: QTextDocument) -> int:
    return document.characterCount() - 1
