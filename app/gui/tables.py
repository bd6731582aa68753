"""The read-only, one-row-at-a-time table the wizard and the model library both show."""

from __future__ import annotations

from collections.abc import Sequence

from app.gui.qt import QAbstractItemView, QHeaderView, QTableWidget, QWidget


def row_table(columns: Sequence[str], stretch_column: int, parent: QWidget | None = None) -> QTableWidget:
    table = QTableWidget(0, len(columns), parent)
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setSectionResizeMode(stretch_column, QHeaderView.ResizeMode.Stretch)
    return table
