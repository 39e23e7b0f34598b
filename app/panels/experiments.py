"""Experiments tab: the training runs registry (read-only) and the selected run's curves.

The table lists the registry's runs (its JSON columns — config, metrics — are shown for
the selected run beside the plots instead of as one long cell). Selecting a run draws its
scalars (``app.experiments.read_curves``): one plot per tag group (``loss/*``,
``model/*``...), one line per tag against the optimizer step, smoothed as TensorBoard does
(the raw values stay visible, faint). Loss plots can use a log axis. A run without a
scalars file says so in place of the plots.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.experiments import (
    RunCurves,
    RunsTable,
    find_registry,
    json_object,
    read_curves,
    read_runs,
    smooth,
)

#: Line colours of the curves in one plot (distinct on the dark background).
CURVE_COLOURS = (
    (79, 143, 216),
    (255, 180, 84),
    (123, 216, 143),
    (255, 107, 107),
    (190, 140, 255),
    (90, 210, 220),
    (240, 220, 100),
    (255, 140, 200),
    (170, 173, 178),
)
#: Column holding the run name (the registry's primary key).
NAME_COLUMN = "name"
#: Tag groups drawn on a log axis when "log y" is on (other groups, e.g. the model's
#: gain scale, stay linear).
LOG_GROUPS = ("loss",)
#: Default smoothing weight (TensorBoard's slider; batch losses are noisy).
DEFAULT_SMOOTHING = 0.8


class ExperimentsPanel(QWidget):
    """Lists runs from the SQLite registry that training writes and plots their curves.

    Args:
        registry: the registry to open; None looks in the usual places
            (``app.experiments.DEFAULT_REGISTRY_PATHS``).
    """

    def __init__(self, registry: Path | None = None) -> None:
        super().__init__()
        self.runs: RunsTable = RunsTable(None)
        self.run_curves: RunCurves | None = None
        self.plots: dict[str, pg.PlotItem] = {}
        self.lines: dict[str, pg.PlotDataItem] = {}
        self.raw_lines: dict[str, pg.PlotDataItem] = {}
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
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setSortingEnabled(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.empty = QLabel("")
        self.empty.setStyleSheet("color: #a8abb0; font-size: 14px; padding: 24px;")
        self.empty.setWordWrap(True)
        # selected run: details (left) and curves (right)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        mono.setPointSize(9)
        self.details.setFont(mono)
        self.curves_title = QLabel("")
        self.log_y = QCheckBox("log y (losses)")
        self.log_y.setChecked(True)
        self.log_y.setToolTip("logarithmic axis for the loss plots (values ≤ 0 are not drawn)")
        self.log_y.toggled.connect(lambda *_: self._draw_curves())
        self.smoothing = QDoubleSpinBox()
        self.smoothing.setRange(0.0, 0.99)
        self.smoothing.setSingleStep(0.05)
        self.smoothing.setDecimals(2)
        self.smoothing.setValue(DEFAULT_SMOOTHING)
        self.smoothing.setToolTip(
            "exponential moving average weight, as TensorBoard's slider (0 = raw values)"
        )
        self.smoothing.valueChanged.connect(lambda *_: self._draw_curves())
        self.curves_note = QLabel("")
        self.curves_note.setWordWrap(True)
        self.curves_note.setStyleSheet("color: #a8abb0; font-size: 13px; padding: 16px;")
        self.curves_note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.glw = pg.GraphicsLayoutWidget()
        head = QHBoxLayout()
        head.addWidget(self.curves_title, 1)
        head.addWidget(QLabel("smoothing"))
        head.addWidget(self.smoothing)
        head.addSpacing(8)
        head.addWidget(self.log_y)
        curves_box = QWidget()
        cl = QVBoxLayout(curves_box)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addLayout(head)
        cl.addWidget(self.curves_note)
        cl.addWidget(self.glw, 1)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.details)
        bottom.addWidget(curves_box)
        bottom.setStretchFactor(0, 1)
        bottom.setStretchFactor(1, 3)
        bottom.setSizes([380, 1140])
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(bottom)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 3)
        split.setSizes([130, 670])
        self.body = split
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.empty)
        layout.addWidget(split, 1)
        found = registry if registry is not None else find_registry()
        if found is not None:
            self.path.setText(str(found))
        self.reload()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Runs registry", "", "SQLite (*.sqlite *.db)")
        if path:
            self.path.setText(path)
            self.reload()

    def reload(self) -> None:
        """Read the registry again (the newest run is selected)."""
        text = self.path.text().strip()
        self.show_runs(read_runs(Path(text) if text else None))

    # -- runs table -----------------------------------------------------------------------
    def _table_columns(self, runs: RunsTable) -> list[str]:
        """Columns shown in the table: every column but the JSON-object ones."""
        json_cols = {
            c for c in runs.columns if any(json_object(r.get(c)) is not None for r in runs.rows)
        }
        return [c for c in runs.columns if c not in json_cols]

    def show_runs(self, runs: RunsTable) -> None:
        """Fill the table (or show why it is empty) and select the newest run."""
        self.runs = runs
        cols = self._table_columns(runs)
        self.table.blockSignals(True)
        try:
            self.table.setSortingEnabled(False)
            self.table.clearContents()
            self.table.setColumnCount(len(cols))
            self.table.setHorizontalHeaderLabels(cols)
            self.table.setRowCount(len(runs.rows))
            for r, run in enumerate(runs.rows):
                for c, col in enumerate(cols):
                    v = run[col]
                    item = QTableWidgetItem("" if v is None else str(v))
                    item.setData(Qt.ItemDataRole.UserRole, r)
                    self.table.setItem(r, c, item)
            self.table.setSortingEnabled(True)
            hdr = self.table.horizontalHeader()
            hdr.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
            hdr.setStretchLastSection(True)
        finally:
            self.table.blockSignals(False)
        self.empty.setText(runs.note)
        self.empty.setVisible(bool(runs.note))
        self.body.setVisible(bool(runs.rows))
        if runs.rows:
            self.select_run(_newest(runs.rows))
        else:
            self._show_run(None)

    def select_run(self, index: int) -> None:
        """Select ``runs.rows[index]`` in the table (its curves follow)."""
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == index:
                self.table.selectRow(r)
                return

    def _selection_changed(self) -> None:
        items = self.table.selectedItems()
        if not items:
            return
        index = items[0].data(Qt.ItemDataRole.UserRole)
        self._show_run(self.runs.rows[int(index)])

    # -- selected run -------------------------------------------------------------------
    def _show_run(self, run: dict[str, Any] | None) -> None:
        if run is None:
            self.details.setPlainText("")
            self.run_curves = None
            self._draw_curves()
            return
        self.details.setPlainText(_details_text(run))
        name = str(run.get(NAME_COLUMN, ""))
        self.run_curves = read_curves(self.runs.path, name)
        self._draw_curves()

    def _draw_curves(self) -> None:
        """One plot per tag group of the selected run, or the note saying why none."""
        self.glw.clear()
        self.plots, self.lines, self.raw_lines = {}, {}, {}
        rc = self.run_curves
        if rc is None:
            self.curves_title.setText("")
            self.curves_note.setText("")
            self.curves_note.setVisible(False)
            self.glw.setVisible(False)
            return
        self.curves_title.setText(f"<b>Curves — {rc.run}</b>")
        self.curves_note.setText(rc.note)
        self.curves_note.setVisible(bool(rc.note))
        self.glw.setVisible(bool(rc.curves))
        weight = float(self.smoothing.value())
        for col, (group, curves) in enumerate(rc.groups().items()):
            log_y = self.log_y.isChecked() and group in LOG_GROUPS
            plot = self.glw.addPlot(row=0, col=col)
            plot.setMenuEnabled(False)
            plot.setTitle(group + (" (log)" if log_y else ""), size="10pt")
            plot.setLabel("bottom", "step")
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.setLogMode(x=False, y=log_y)
            legend = plot.addLegend(offset=(-8, 8), labelTextSize="8pt")
            legend.setBrush(pg.mkBrush(23, 24, 26, 200))
            for i, c in enumerate(curves):
                colour = CURVE_COLOURS[i % len(CURVE_COLOURS)]
                steps = c.steps.astype(np.float64)
                raw = c.values
                if log_y:  # log10 of values <= 0 is undefined: leave a gap there
                    raw = np.where(raw > 0, raw, math.nan)
                if weight > 0:
                    self.raw_lines[c.tag] = plot.plot(
                        steps, raw, pen=pg.mkPen((*colour, 55), width=1), connect="finite"
                    )
                self.lines[c.tag] = plot.plot(
                    steps,
                    smooth(raw, weight),
                    pen=pg.mkPen(colour, width=1.5),
                    name=c.name,
                    connect="finite",
                )
            self.plots[group] = plot
            # the loss plot holds most lines: it gets the width
            self.glw.ci.layout.setColumnStretchFactor(col, 2 if group in LOG_GROUPS else 1)


def _newest(rows: tuple[dict[str, Any], ...]) -> int:
    """Index of the most recently updated run (the last row without dates)."""
    keyed = [(str(r.get("updated") or r.get("created") or ""), i) for i, r in enumerate(rows)]
    return max(keyed)[1]


def _details_text(run: dict[str, Any]) -> str:
    """The selected run as text: plain fields, then its JSON columns key by key."""
    lines: list[str] = []
    nested: list[tuple[str, dict[str, Any]]] = []
    for key, value in run.items():
        obj = json_object(value)
        if obj is not None:
            nested.append((key, obj))
        else:
            lines.append(f"{key}: {'' if value is None else value}")
    for key, obj in nested:
        lines += ["", f"{key}:"]
        lines += [f"  {k} = {_fmt(v)}" for k, v in obj.items()] or ["  (none)"]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)
