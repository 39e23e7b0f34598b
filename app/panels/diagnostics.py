"""Diagnostics panel (Inspect view): exposure, white balance and saturation of the output on
screen with core's advice, the corrected preview beside the uncorrected render, and the
white-balance stability map against RAW12 with a colorbar.

Everything shown comes from :func:`app.analysis.diagnose` (``core.diagnostics``), computed
in the worker pool whenever the output on screen or the estimator changes, and only while
the panel is visible (a hidden panel marks itself stale and computes when shown). Answers to
older requests are dropped, so the window never waits on it and never shows a stale pair.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QFont, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsRectItem,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.analysis import DIAGNOSTIC_METHODS, DiagnosticsView, advice_text, diagnose
from app.display import render_rgb, render_scalar
from app.panels.image_views import colormap_lut
from app.state import AppState, ViewSettings
from app.workers import TaskHandle, Workers, describe_error
from core.progress import CancelToken

log = logging.getLogger(__name__)

#: Method combo entries: key -> text.
METHOD_TEXT = {
    "auto": "auto (learned, classical fallback)",
    "learned": "learned network",
    "classical": "classical statistics",
}
#: Stability-map ratio shown: combo text -> index into the deviation map's last axis.
RATIOS = (("R/G", 0), ("B/G", 1))
#: Verdict colours: fine, worth a look.
GOOD, NOTE = "#7bd88f", "#ffb454"
FIGURES_STYLE = "color: #a8abb0; font-size: 11px;"
FLAG_PEN = pg.mkPen((255, 200, 40), width=2)
#: The map's colour range is at least this many times the local-cast threshold, so the
#: threshold sits at a fixed place on the colorbar of a stable output.
MAP_RANGE_THRESHOLDS = 2.0


def _cell_text(v: float) -> str:
    """A map cell's value, short enough for a narrow cell: ``+.04``, ``−.12``, ``—``."""
    if not math.isfinite(v):
        return "—"
    text = f"{abs(v):.2f}"
    return ("−" if v < 0 else "+") + (text[1:] if text.startswith("0") else text)


def _label(text: str = "", style: str = "") -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    if style:
        label.setStyleSheet(style)
    return label


class DiagnosticsPanel(QWidget):
    """Core's diagnostics of ``state.loaded``'s output, estimator from
    ``state.view.diagnostics_method``."""

    updated = Signal()

    def __init__(self, state: AppState, workers: Workers) -> None:
        super().__init__()
        self.state, self.workers = state, workers
        self.data: DiagnosticsView | None = None
        self.ratio_index = 0
        #: The deviation map shown (gv, gh), EV: ``data.stability.stability.deviation_map``
        #: at the chosen ratio.
        self.map_values: np.ndarray | None = None
        self.map_levels: tuple[float, float] = (-1.0, 1.0)
        self._request = 0
        self._shown = -1
        self._stale = True
        self._task: TaskHandle | None = None
        self._blocking = False
        self._method = state.view.diagnostics_method
        self._cell_items: list[object] = []
        # -- header: estimator and what ran
        self.method = QComboBox()
        for key in DIAGNOSTIC_METHODS:
            self.method.addItem(METHOD_TEXT.get(key, key), key)
        self.method.setToolTip(
            "estimator: the shipped network (resources/models/diagnostic.pt) or gray-world / "
            "histogram statistics; auto falls back to the statistics when the model cannot run"
        )
        self.method.currentIndexChanged.connect(self._method_edited)
        top = QHBoxLayout()
        title = QLabel("<b>Diagnostics of the output</b>")
        top.addWidget(title)
        top.addStretch(1)
        top.addWidget(self.method)
        self.status = _label("", FIGURES_STYLE)
        # -- the three diagnostics: name, verdict, advice; core's figures below
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(1)
        self.verdicts: dict[str, QLabel] = {}
        self.advice: dict[str, QLabel] = {}
        self.figures: dict[str, QLabel] = {}
        for i, name in enumerate(("exposure", "white balance", "saturation")):
            head = QLabel(f"<b>{name.capitalize()}</b>")
            head.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            self.verdicts[name] = _label()
            self.advice[name] = _label()
            self.figures[name] = _label("", FIGURES_STYLE)
            grid.addWidget(head, 3 * i, 0)
            grid.addWidget(self.verdicts[name], 3 * i, 1)
            grid.addWidget(self.advice[name], 3 * i + 1, 1)
            grid.addWidget(self.figures[name], 3 * i + 2, 1)
        grid.setColumnStretch(1, 1)
        # -- before / after
        self.preview_titles = QHBoxLayout()
        for text, tip in (
            ("Uncorrected", "the output as a DNG reader renders it (white = 1.0, clipped)"),
            ("Corrected preview", "core.diagnostics.generate_preview: the advice applied"),
        ):
            label = _label(f"<b>{text}</b>")
            label.setToolTip(tip)
            self.preview_titles.addWidget(label, 1)
        self.previews = pg.GraphicsLayoutWidget()
        self.previews.setMinimumHeight(150)
        self.previews.ci.setContentsMargins(0, 0, 0, 0)
        self.before_view = self.previews.addViewBox(
            row=0, col=0, lockAspect=True, invertY=True, enableMenu=False
        )
        self.after_view = self.previews.addViewBox(
            row=0, col=1, lockAspect=True, invertY=True, enableMenu=False
        )
        for box in (self.before_view, self.after_view):
            box.setDefaultPadding(0.0)
        self.before_image, self.after_image = pg.ImageItem(), pg.ImageItem()
        self.before_view.addItem(self.before_image)
        self.after_view.addItem(self.after_image)
        # -- stability map
        self.ratio = QComboBox()
        for text, _ in RATIOS:
            self.ratio.addItem(text)
        self.ratio.setToolTip("which colour ratio of the map to show (R/G or B/G)")
        self.ratio.currentIndexChanged.connect(self._ratio_edited)
        map_top = QHBoxLayout()
        map_top.addWidget(_label("<b>White-balance stability vs RAW12</b> (EV per cell)"), 1)
        map_top.addWidget(self.ratio)
        self.map_widget = pg.GraphicsLayoutWidget()
        self.map_widget.setMinimumHeight(200)
        self.map_plot = self.map_widget.addPlot(row=0, col=0, enableMenu=False)
        self.map_plot.invertY(True)
        self.map_plot.setMouseEnabled(False, False)
        self.map_plot.hideButtons()
        self.map_plot.setLabel("bottom", "cell column")
        self.map_plot.setLabel("left", "cell row")
        self.map_image = pg.ImageItem()
        self.map_plot.addItem(self.map_image)
        cmap, self.map_lut = colormap_lut("CET-D1A")
        self.colorbar = pg.ColorBarItem(
            values=(-1.0, 1.0), colorMap=cmap, interactive=False, width=14, label="deviation EV"
        )
        self.map_widget.addItem(self.colorbar, row=0, col=1)
        self.map_verdict = _label("")
        # -- layout
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addLayout(grid)
        layout.addLayout(self.preview_titles)
        layout.addWidget(self.previews, 2)
        layout.addLayout(map_top)
        layout.addWidget(self.map_widget, 3)
        layout.addWidget(self.map_verdict)
        state.loaded_changed.connect(lambda *_: self._output_changed())
        state.view_changed.connect(self._on_view)
        self._sync(state.view)
        self._clear("open a pair to see its diagnostics")

    # -- state ----------------------------------------------------------------------------
    def _sync(self, view: ViewSettings) -> None:
        self._blocking = True
        try:
            self.method.setCurrentIndex(max(0, self.method.findData(view.diagnostics_method)))
        finally:
            self._blocking = False

    def _method_edited(self) -> None:
        if not self._blocking:
            self.state.set_view(diagnostics_method=self.method.currentData())

    def _on_view(self, view: ViewSettings) -> None:
        self._sync(view)
        if view.diagnostics_method != self._method:
            self._method = view.diagnostics_method
            self._output_changed()

    def _output_changed(self) -> None:
        # drop the previous output's arrays at once (memory does not grow while switching)
        self._request += 1
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._clear("computing…" if self.state.loaded is not None else "open a pair")
        self._stale = True
        if self.isVisible():
            self.recompute()

    def showEvent(self, event: QShowEvent) -> None:
        """Compute what changed while the panel was hidden."""
        super().showEvent(event)
        if self._stale:
            self.recompute()

    def ready(self) -> bool:
        """The diagnostics of the output on screen are shown (or failed with a message)."""
        return not self._stale and self._shown == self._request

    # -- computing -------------------------------------------------------------------------
    def recompute(self) -> None:
        """Ask the pool for the diagnostics of the output on screen (older answers dropped)."""
        self._stale = False
        self._request += 1
        req = self._request
        lp = self.state.loaded
        if lp is None:
            self._clear("open a pair to see its diagnostics")
            self._shown = req
            return
        pair, output = lp.pair, lp.analysis.output
        method = self.state.view.diagnostics_method
        name = lp.entry.name
        self.status.setText(f"computing ({METHOD_TEXT.get(method, method)})…")

        def task(_progress: Callable[..., None], cancel: CancelToken) -> DiagnosticsView:
            return diagnose(pair, output, method=method, name=name, cancel=cancel)

        def done(view: DiagnosticsView) -> None:
            if req == self._request:
                self._task = None
                self._shown = req
                self.show_data(view)
                self.updated.emit()

        def failed(err: BaseException) -> None:
            if req == self._request:
                self._task = None
                self._shown = req
                self._clear(f"diagnostics failed: {describe_error(err)}")
                self.updated.emit()

        self._task = self.workers.submit("diagnostics", task, on_done=done, on_error=failed)

    # -- drawing ---------------------------------------------------------------------------
    def _clear(self, message: str) -> None:
        self.data = None
        self.map_values = None
        self.status.setText(message)
        for name in self.verdicts:
            self.verdicts[name].setText("")
            self.advice[name].setText("")
            self.figures[name].setText("")
        for item in (self.before_image, self.after_image, self.map_image):
            item.clear()
        self._remove_cell_items()
        self.map_verdict.setText("")

    def show_data(self, view: DiagnosticsView) -> None:
        """Show ``view`` (what :func:`app.analysis.diagnose` returned)."""
        self.data = view
        a = view.advice
        ran = METHOD_TEXT.get(a.method, a.method).split(" (")[0]
        if a.model_hash:
            ran += f", model {a.model_hash[:12]}"
        if a.fallback_reason:
            ran += f" — {a.method_requested} unavailable: {a.fallback_reason}"
        self.status.setText(f"estimator: {ran}")
        self.status.setToolTip("\n".join(a.notes))
        words = advice_text(a)
        well = {
            "exposure": a.exposure.label == "well",
            "white balance": a.white_balance.label == "neutral",
            "saturation": a.saturation.label == "well" or not a.saturation.identifiable,
        }
        for name, (verdict, action) in words.items():
            colour = GOOD if well[name] else NOTE
            self.verdicts[name].setText(f"<span style='color:{colour}'><b>{verdict}</b></span>")
            self.advice[name].setText(f"Advice: {action}")
            self.figures[name].setText(view.lines.get(name, ""))
        if view.before is not None and view.preview is not None:
            m = view.working_to_srgb
            # the rendering scale as the diagnostics see it: 1.0 = white, clipped there
            self.before_image.setImage(
                render_rgb(view.before, m, soft_highlights=False), autoLevels=False, levels=(0, 255)
            )
            self.after_image.setImage(
                render_rgb(view.preview, m, soft_highlights=False),
                autoLevels=False,
                levels=(0, 255),
            )
            for box in (self.before_view, self.after_view):
                box.enableAutoRange()  # the whole image, however the panel is resized
        self._draw_map()

    def _ratio_edited(self, index: int) -> None:
        self.ratio_index = RATIOS[index][1] if 0 <= index < len(RATIOS) else 0
        self._draw_map()

    def _remove_cell_items(self) -> None:
        for item in self._cell_items:
            self.map_plot.removeItem(item)
        self._cell_items = []

    def _draw_map(self) -> None:
        self._remove_cell_items()
        if self.data is None:
            return
        rep = self.data.stability
        dev = rep.stability.deviation_map
        values = np.asarray(dev[..., self.ratio_index], np.float32)
        self.map_values = values
        # one colour range for both ratios, so switching between them compares like with like
        finite = np.abs(dev[np.isfinite(dev)])
        worst = float(finite.max()) if finite.size else 0.0
        lim = max(MAP_RANGE_THRESHOLDS * rep.threshold_ev, worst)
        self.map_levels = (-lim, lim)
        gv, gh = values.shape
        rgb = render_scalar(values, -lim, lim, self.map_lut)
        self.map_image.setImage(rgb, autoLevels=False, levels=(0, 255))
        # dark text on light cells, light text on dark ones
        light = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) > 140
        self.map_image.setRect(QRectF(0, 0, gh, gv))
        self.colorbar.setLevels((-lim, lim))
        ratio = RATIOS[self.ratio_index][0]
        flagged = {(r, c) for r, c, k, _ in rep.flagged if k == ratio}
        for r in range(gv):
            for c in range(gh):
                v = float(values[r, c])
                bad = (r, c) in flagged
                text = pg.TextItem(
                    _cell_text(v),
                    color=(20, 20, 20) if light[r, c] else (245, 245, 245),
                    anchor=(0.5, 0.5),
                )
                font = QFont()
                font.setPointSizeF(7.5)
                font.setBold(bad)
                text.setFont(font)
                text.setPos(c + 0.5, r + 0.5)
                self.map_plot.addItem(text)
                self._cell_items.append(text)
                if bad:
                    box = QGraphicsRectItem(QRectF(c + 0.04, r + 0.04, 0.92, 0.92))
                    box.setPen(FLAG_PEN)
                    self.map_plot.addItem(box)
                    self._cell_items.append(box)
        self.map_plot.setRange(QRectF(0, 0, gh, gv), padding=0.0)
        for axis, n in (("bottom", gh), ("left", gv)):
            self.map_plot.getAxis(axis).setTicks([[(i + 0.5, str(i)) for i in range(n)]])
        st = rep.stability
        where = ""
        if st.worst_cell is not None:
            r, c = st.worst_cell
            where = f"{st.max_abs_dev_ev:.3f} EV ({st.worst_ratio}, row {r}, column {c})"
        if rep.stable:
            self.map_verdict.setText(
                f"<span style='color:{GOOD}'><b>stable</b></span>: no cell beyond "
                f"{rep.threshold_ev:.2f} EV; largest {where or 'n/a'}"
            )
        else:
            self.map_verdict.setText(
                f"<span style='color:{NOTE}'><b>local cast</b></span>: {len(rep.flagged)} "
                f"cell ratio(s) beyond {rep.threshold_ev:.2f} EV (outlined); worst {where}"
            )
        self.map_verdict.setToolTip(self.data.lines.get("vs RAW12", ""))
