"""Per-CFA error histograms (R, Gr, Gb, B of F(output) − RAW12) bound to the state.

Recomputed in the worker pool whenever the pair, the result, the scale or the region
changes; stale results (an older request) are dropped. Counts are shown as
log10(1 + count) so empty bins stay at zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.analysis import PlaneHistogram, histograms
from app.state import AppState, ViewSettings
from app.workers import Workers, describe_error

PLANE_COLOURS = {"R": (230, 80, 80), "Gr": (90, 200, 90), "Gb": (40, 150, 110), "B": (80, 130, 240)}
SCALES = (("linear", "linear (Mosaic12)"), ("ev", "EV (log2 ratio)"))
#: Rows of the statistics table (one column per CFA plane).
STAT_ROWS = ("n", "mean", "σ", "p1", "p50", "p99")


class HistogramPanel(QWidget):
    """Four histograms + a statistics table, whole frame or the selected region."""

    updated = Signal()

    def __init__(self, state: AppState, workers: Workers) -> None:
        super().__init__()
        self.state, self.workers = state, workers
        self.data: dict[str, PlaneHistogram] = {}
        self.data_key: tuple[Any, ...] | None = None
        self._request = 0
        self._blocking = False
        self.scale = QComboBox()
        for key, text in SCALES:
            self.scale.addItem(text, key)
        self.scale.currentIndexChanged.connect(self._scale_edited)
        self.region = QLabel("whole frame")
        self.whole = QPushButton("Whole frame")
        self.whole.clicked.connect(lambda: self.state.set_view(roi=None))
        top = QHBoxLayout()
        top.addWidget(QLabel("<b>F(output) − RAW12 per CFA plane</b>"))
        top.addStretch(1)
        top.addWidget(self.scale)
        top2 = QHBoxLayout()
        top2.addWidget(self.region, 1)
        top2.addWidget(self.whole)
        grid = QGridLayout()
        grid.setSpacing(2)
        self.plots: dict[str, pg.PlotWidget] = {}
        self.curves: dict[str, pg.PlotDataItem] = {}
        for i, name in enumerate(PLANE_COLOURS):
            plot = pg.PlotWidget()
            plot.setMinimumHeight(110)
            plot.setMenuEnabled(False)
            plot.setTitle(name, color=PLANE_COLOURS[name], size="9pt")
            plot.setLabel("left", "log₁₀(1+n)")
            plot.showGrid(x=True, y=True, alpha=0.2)
            plot.getPlotItem().getAxis("bottom").setStyle(tickTextOffset=2)
            colour = PLANE_COLOURS[name]
            curve = plot.plot(
                [0.0, 1.0],
                [0.0],
                stepMode="center",
                fillLevel=0,
                brush=(*colour, 110),
                pen=pg.mkPen(colour, width=1),
            )
            zero = pg.InfiniteLine(
                0.0, angle=90, pen=pg.mkPen((200, 200, 200, 120), style=Qt.PenStyle.DotLine)
            )
            plot.addItem(zero)
            self.plots[name], self.curves[name] = plot, curve
            grid.addWidget(plot, i // 2, i % 2)
        # one column per plane, one row per statistic: four columns fit a narrow panel
        self.table = QTableWidget(len(STAT_ROWS), len(PLANE_COLOURS))
        for c, (name, colour) in enumerate(PLANE_COLOURS.items()):
            head = QTableWidgetItem(name)
            head.setForeground(QBrush(QColor(*colour)))
            self.table.setHorizontalHeaderItem(c, head)
        self.table.setVerticalHeaderLabels(list(STAT_ROWS))
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        # columns share the panel's width (no horizontal scrolling for six short numbers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setMinimumSectionSize(36)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setStyleSheet("font-size: 11px;")
        self.table.setMaximumHeight(24 + 22 * len(STAT_ROWS))
        self.table.verticalHeader().setDefaultSectionSize(22)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(top2)
        layout.addLayout(grid, 1)
        layout.addWidget(self.table)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #a8abb0; font-size: 11px;")
        layout.addWidget(self.note)
        state.loaded_changed.connect(lambda *_: self.recompute())
        state.view_changed.connect(self._on_view)
        self._sync(state.view)

    def _on_view(self, view: ViewSettings) -> None:
        self._sync(view)
        if self.data_key is None or self.data_key[1:] != (view.hist_scale, view.roi):
            self.recompute()

    def _sync(self, view: ViewSettings) -> None:
        self._blocking = True
        try:
            self.scale.setCurrentIndex(max(0, self.scale.findData(view.hist_scale)))
        finally:
            self._blocking = False
        roi = view.roi
        if roi is None:
            self.region.setText("whole frame")
        else:
            n = (roi[1] - roi[0]) * (roi[3] - roi[2])
            self.region.setText(f"region 12MP y {roi[0]}–{roi[1]}, x {roi[2]}–{roi[3]} ({n} px)")
        self.whole.setEnabled(roi is not None)

    def _scale_edited(self) -> None:
        if not self._blocking:
            self.state.set_view(hist_scale=self.scale.currentData())

    def recompute(self) -> None:
        """Ask the pool for new histograms (drops answers to older requests)."""
        lp = self.state.loaded
        self._request += 1
        req = self._request
        if lp is None:
            self.data, self.data_key = {}, None
            self._draw()
            return
        pair, output = lp.pair, lp.analysis.output
        scale, roi = self.state.view.hist_scale, self.state.view.roi
        key = (id(output), scale, roi)

        def task(_progress: Callable[..., None], _cancel: object) -> dict[str, PlaneHistogram]:
            return histograms(pair, output, scale=scale, roi=roi)

        def done(data: dict[str, PlaneHistogram]) -> None:
            if req == self._request:
                self.data, self.data_key = data, key
                self.note.setText(
                    f"{'Mosaic12 units' if scale == 'linear' else 'EV'}; clipped RAW12 pixels "
                    "excluded; statistics from a 2048-bin histogram."
                )
                self._draw()
                self.updated.emit()

        def failed(err: BaseException) -> None:
            if req == self._request:
                self.note.setText(describe_error(err))

        self.workers.submit("histograms", task, on_done=done, on_error=failed)

    def _draw(self) -> None:
        for c, name in enumerate(PLANE_COLOURS):
            h = self.data.get(name)
            if h is None:
                self.curves[name].setData([0.0, 1.0], [0.0], stepMode="center")
                for r in range(len(STAT_ROWS)):
                    self.table.setItem(r, c, QTableWidgetItem(""))
                continue
            y = np.log10(1.0 + h.counts.astype(np.float64))
            self.curves[name].setData(h.edges, y, stepMode="center", fillLevel=0)
            self.plots[name].setXRange(float(h.edges[0]), float(h.edges[-1]), padding=0)
            vals = [f"{h.n}", *(_fmt(v) for v in (h.mean, h.std, h.p01, h.p50, h.p99))]
            for r, text in enumerate(vals):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)


def _fmt(v: float) -> str:
    return "—" if not math.isfinite(v) else f"{v:+.1e}"
