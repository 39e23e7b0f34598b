"""Experiments tab: the training runs registry (read-only), or an empty state."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.experiments import RunsTable, find_registry, read_runs


class ExperimentsPanel(QWidget):
    """Lists runs from the SQLite registry that training (issue 4) writes."""

    def __init__(self) -> None:
        super().__init__()
        self.path = QLineEdit()
        self.path.setPlaceholderText("out/training/registry.sqlite")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        reload = QPushButton("Reload")
        reload.clicked.connect(self.reload)
        row = QHBoxLayout()
        row.addWidget(QLabel("Registry"))
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        row.addWidget(reload)
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.empty = QLabel("")
        self.empty.setStyleSheet("color: #a8abb0; font-size: 14px; padding: 24px;")
        self.empty.setWordWrap(True)
        curves = QLabel(
            "Loss curves: not shown yet — they come from the TensorBoard event files that "
            "training writes (issue 4)."
        )
        curves.setStyleSheet("color: #8a8d91;")
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.empty)
        layout.addWidget(self.table, 1)
        layout.addWidget(curves)
        found = find_registry()
        if found is not None:
            self.path.setText(str(found))
        self.reload()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Runs registry", "", "SQLite (*.sqlite *.db)")
        if path:
            self.path.setText(path)
            self.reload()

    def reload(self) -> None:
        """Read the registry again."""
        text = self.path.text().strip()
        self.show_runs(read_runs(Path(text) if text else None))

    def show_runs(self, runs: RunsTable) -> None:
        """Fill the table (or show why it is empty)."""
        self.table.setSortingEnabled(False)
        self.table.setColumnCount(len(runs.columns))
        self.table.setHorizontalHeaderLabels(list(runs.columns))
        self.table.setRowCount(len(runs.rows))
        for r, row in enumerate(runs.rows):
            for c, col in enumerate(runs.columns):
                v = row[col]
                self.table.setItem(r, c, QTableWidgetItem("" if v is None else str(v)))
        self.table.setSortingEnabled(True)
        self.empty.setText(runs.note)
        self.empty.setVisible(bool(runs.note))
        self.table.setVisible(bool(runs.rows))
