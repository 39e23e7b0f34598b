"""Pair browser: the pairs found, how they were matched, their status and key metrics."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.pairing import PairEntry
from app.state import AppState

COLUMNS = ("Pair", "Matched by", "Status", "Method", "PSNR dB", "Halo EV")


class PairBrowser(QWidget):
    """A table of pairs; selecting a row makes it the current pair."""

    def __init__(self, state: AppState, actions: dict[str, QAction]) -> None:
        super().__init__()
        self.state = state
        self._blocking = False
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._selection_edited)
        buttons = QHBoxLayout()
        for key in ("open_files", "open_folder", "open_demo", "repair"):
            b = QToolButton()
            b.setDefaultAction(actions[key])
            buttons.addWidget(b)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.table)
        state.pairs_changed.connect(lambda *_: self.refresh())
        state.current_changed.connect(lambda *_: self._sync_selection())
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the rows from the state."""
        self._blocking = True
        try:
            self.table.setRowCount(len(self.state.pairs))
            for r, entry in enumerate(self.state.pairs):
                m = self.state.pair_metrics.get(r, {})
                for c, text in enumerate(_row(entry, m)):
                    item = QTableWidgetItem(text)
                    if c == 0:
                        item.setToolTip(f"RAW12: {entry.raw12}\nProRAW48: {entry.proraw48}")
                    if c == 2 and text.startswith("error"):
                        item.setForeground(Qt.GlobalColor.red)
                        item.setToolTip(m.get("error", ""))
                    if c >= 4:
                        item.setTextAlignment(
                            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                        )
                    self.table.setItem(r, c, item)
        finally:
            self._blocking = False
        self._sync_selection()

    def _sync_selection(self) -> None:
        self._blocking = True
        try:
            if self.state.current is None:
                self.table.clearSelection()
            else:
                self.table.selectRow(self.state.current)
        finally:
            self._blocking = False

    def _selection_edited(self) -> None:
        if self._blocking:
            return
        rows = {i.row() for i in self.table.selectedIndexes()}
        if len(rows) == 1:
            self.state.select(rows.pop())


def _row(entry: PairEntry, m: dict[str, Any]) -> list[str]:
    psnr = m.get("psnr_db")
    halo = m.get("halo_ev")
    return [
        entry.name,
        entry.matched_by,
        str(m.get("status", "not loaded")),
        str(m.get("method", "")),
        "" if psnr is None else f"{psnr:.2f}",
        "" if halo is None else f"{halo:.4f}",
    ]
