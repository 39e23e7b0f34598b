"""Linked image panes: ProRAW48, output, gain map, registration overlay, difference, halo.

Each pane is a pyqtgraph ``ViewBox``/``ImageItem`` pair (plus a ``ColorBarItem`` for
scalar maps). All panes live in 48MP pixel coordinates (12MP registration overlays are
drawn at twice their size) and are linked with ``setXLink``/``setYLink``, so zoom and pan
move together. Each pane draws from a :class:`app.display.Pyramid`: only the visible crop
of a level close to screen resolution is shaped, so 48MP frames stay responsive.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPalette, QPen, QResizeEvent
from PySide6.QtWidgets import (
    QGraphicsRectItem,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.analysis import Analysis, overlay_for, pane_stats
from app.display import Pyramid, render_gray, render_rgb, render_scalar, symmetric_levels
from app.state import AppState, ViewSettings

log = logging.getLogger(__name__)

Shaper = Callable[[np.ndarray], np.ndarray]
ROI_PEN = QPen(QColor(255, 200, 40), 0)
COLORBAR_PX = 58
COLORBAR_LABEL_MARGIN_PX = 7
CROSS_PEN = pg.mkPen((255, 255, 255, 150), width=1, style=Qt.PenStyle.DashLine)


INFO_COLOUR = "#a8abb0"


class ElidedLabel(QLabel):
    """A one-line plain-text label that ends in "…" when it does not fit, instead of being
    clipped mid-word; its tooltip holds the full text (or the details given)."""

    def __init__(self, text: str = "", *, bold: bool = False, point_size: float = 0) -> None:
        super().__init__(text)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(10)
        font = self.font()
        font.setBold(bold)
        if point_size > 0:
            font.setPointSizeF(point_size)
        self.setFont(font)
        self.details = ""

    def set_content(self, text: str, details: str = "", colour: str | None = None) -> None:
        """Show ``text`` (tooltip: ``details`` or the full text) in ``colour``."""
        self.setText(text)
        self.details = details
        self.setToolTip(details or text)
        if colour is not None:
            pal = self.palette()
            pal.setColor(QPalette.ColorRole.WindowText, QColor(colour))
            self.setPalette(pal)

    def natural_width(self) -> int:
        """Width of the whole text in pixels."""
        return self.fontMetrics().horizontalAdvance(self.text()) + 2

    def shown_text(self) -> str:
        """The text as painted at the current width (elided when it does not fit)."""
        return self.fontMetrics().elidedText(
            self.text(), Qt.TextElideMode.ElideRight, self.contentsRect().width()
        )

    def paintEvent(self, event: QPaintEvent) -> None:
        """Paint the (elided) text."""
        painter = QPainter(self)
        painter.setPen(self.palette().color(QPalette.ColorRole.WindowText))
        painter.drawText(
            self.contentsRect(),
            int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
            self.shown_text(),
        )


class PaneHeader(QWidget):
    """Title (left) and figures (right of it) on one line: the title keeps its whole width
    while both fit, else at least ~55 %; each elides what does not fit. Neither can widen
    the pane (all panes keep one size, so linked ranges coincide)."""

    GAP_PX = 12

    def __init__(self, title: ElidedLabel, info: ElidedLabel) -> None:
        super().__init__()
        self.title, self.info = title, info
        title.setParent(self)
        info.setParent(self)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(max(title.fontMetrics().height(), info.fontMetrics().height()) + 4)

    def relayout(self) -> None:
        """Place both labels for the current width and texts."""
        avail = max(0, self.width() - 8)
        title_w = min(
            self.title.natural_width(),
            max(int(0.55 * avail), avail - self.GAP_PX - self.info.natural_width()),
        )
        h = self.height()
        self.title.setGeometry(4, 0, title_w, h)
        info_x = 4 + title_w + self.GAP_PX
        self.info.setGeometry(info_x, 0, max(0, avail + 4 - info_x), h)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Re-place the labels."""
        super().resizeEvent(event)
        self.relayout()


def colormap_lut(name: str, n: int = 256) -> tuple[pg.ColorMap, np.ndarray]:
    """A pyqtgraph colormap and its (n, 3) uint8 lookup table."""
    cmap = pg.colormap.get(name)
    lut = cmap.getLookupTable(0.0, 1.0, n, alpha=False)
    return cmap, np.asarray(lut, np.uint8)


class ImagePane(QWidget):
    """One titled image view with optional colorbar, crosshair and ROI outline.

    ``source`` is the full-resolution array the pane shows (the ``core`` array itself);
    ``shaper`` turns a crop of it into (h, w, 3) uint8 for the screen.
    """

    hovered = Signal(float, float)

    def __init__(self, key: str, title: str, colormap: str | None = None) -> None:
        super().__init__()
        self.key = key
        self.title = title
        self.source: np.ndarray | None = None
        self.pixel_scale = 1.0
        self._pyramid: Pyramid | None = None
        self._shaper: Shaper | None = None
        self.last_crop_level = -1
        self.title_label = ElidedLabel(title, bold=True)
        self.info_label = ElidedLabel("", point_size=8.5)
        self.info_label.set_content("", colour=INFO_COLOUR)
        self.header = PaneHeader(self.title_label, self.info_label)
        self.glw = pg.GraphicsLayoutWidget()
        # room above and below for the colorbar's end tick labels (every pane alike)
        self.glw.ci.setContentsMargins(0, COLORBAR_LABEL_MARGIN_PX, 0, COLORBAR_LABEL_MARGIN_PX)
        self.view = self.glw.addViewBox(
            row=0, col=0, lockAspect=True, invertY=True, enableMenu=False
        )
        self.view.setDefaultPadding(0.0)
        self.image = pg.ImageItem()
        self.view.addItem(self.image)
        self.message = pg.TextItem("", color=(170, 173, 178), anchor=(0.5, 0.5))
        self.message.setVisible(False)
        self.view.addItem(self.message, ignoreBounds=True)
        self.colorbar: pg.ColorBarItem | None = None
        self.lut: np.ndarray | None = None
        # every pane reserves the same colorbar column, so all ViewBoxes have one size and
        # linked ranges (setXLink/setYLink) coincide exactly
        if colormap is not None:
            cmap, self.lut = colormap_lut(colormap)
            self.colorbar = pg.ColorBarItem(
                values=(-1.0, 1.0), colorMap=cmap, interactive=False, width=12
            )
            side: pg.GraphicsWidget = self.colorbar
        else:
            side = pg.GraphicsWidget()
        side.setFixedWidth(COLORBAR_PX)
        self.glw.addItem(side, row=0, col=1)
        self.vline = pg.InfiniteLine(angle=90, pen=CROSS_PEN, movable=False)
        self.hline = pg.InfiniteLine(angle=0, pen=CROSS_PEN, movable=False)
        for line in (self.vline, self.hline):
            line.setVisible(False)
            self.view.addItem(line, ignoreBounds=True)
        self.roi_outline = QGraphicsRectItem()
        self.roi_outline.setPen(ROI_PEN)
        self.roi_outline.setVisible(False)
        self.view.addItem(self.roi_outline, ignoreBounds=True)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(15)
        self._timer.timeout.connect(self.redraw)
        self.view.sigRangeChanged.connect(lambda *_: self._timer.start())
        self.view.sigResized.connect(lambda *_: self._timer.start())
        self.glw.scene().sigMouseMoved.connect(self._mouse_moved)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.setSpacing(1)
        layout.addWidget(self.header)
        layout.addWidget(self.glw, 1)

    # -- content ------------------------------------------------------------------------
    def set_source(
        self,
        source: np.ndarray | None,
        shaper: Shaper | None,
        *,
        pixel_scale: float = 1.0,
        levels: tuple[float, float] | None = None,
    ) -> None:
        """Show ``source`` through ``shaper`` (None clears the pane)."""
        self.source = source
        self._shaper = shaper
        self.pixel_scale = pixel_scale
        self._pyramid = None if source is None else Pyramid(source)
        if self.colorbar is not None and levels is not None:
            self.colorbar.setLevels(levels)
        self.message.setVisible(False)
        self.image.setVisible(source is not None)
        if source is None:
            self.image.clear()
        self.redraw()

    def set_message(self, text: str) -> None:
        """Show a centred message instead of an image (empty state)."""
        self.set_source(None, None)
        self.message.setText(text)
        rect = self.view.viewRect()
        self.message.setPos(rect.center())
        self.message.setVisible(bool(text))

    def set_title(self, text: str) -> None:
        """The pane's title (bold, elided when the pane is narrow)."""
        self.title_label.set_content(text)
        self.header.relayout()

    def set_info(self, text: str, details: str = "", colour: str = INFO_COLOUR) -> None:
        """Figures shown beside the title (``details``: the full figures on hover)."""
        self.info_label.set_content(text, details, colour)
        self.header.relayout()

    def redraw(self) -> None:
        """Shape the visible crop of the right pyramid level."""
        if self._pyramid is None or self._shaper is None:
            if self.message.isVisible():
                self.message.setPos(self.view.viewRect().center())
            return
        rect = self.view.viewRect()
        s = self.pixel_scale
        view = (rect.left() / s, rect.top() / s, rect.right() / s, rect.bottom() / s)
        dpr = self.devicePixelRatioF() or 1.0
        screen = (int(self.view.width() * dpr), int(self.view.height() * dpr))
        crop_view: tuple[float, float, float, float] | None = view
        if screen[0] < 8 or screen[1] < 8:  # not laid out yet: a coarse whole frame
            crop_view, screen = None, (2048, 2048)
        crop = self._pyramid.crop(crop_view, screen)
        self.last_crop_level = crop.level
        rgb = self._shaper(crop.data)
        self.image.setImage(rgb, autoLevels=False, levels=(0, 255))
        x, y, w, h = crop.rect
        self.image.setRect(QRectF(x * s, y * s, w * s, h * s))

    def colormap_lut(self) -> np.ndarray:
        """The (256, 3) uint8 lookup table of a colormap pane.

        Raises:
            ValueError: the pane was built without a colormap.
        """
        if self.lut is None:
            raise ValueError(f"pane {self.key!r} has no colormap")
        return self.lut

    # -- overlays -----------------------------------------------------------------------
    def _mouse_moved(self, pos: QPointF) -> None:
        if self.view.sceneBoundingRect().contains(pos):
            p = self.view.mapSceneToView(pos)
            self.hovered.emit(p.x(), p.y())

    def set_crosshair(self, x: float | None, y: float | None) -> None:
        """Move (or hide, with None) the crosshair."""
        visible = x is not None and y is not None
        self.vline.setVisible(visible)
        self.hline.setVisible(visible)
        if visible:
            self.vline.setPos(x)
            self.hline.setPos(y)

    def set_roi_outline(self, rect48: QRectF | None) -> None:
        """Outline the region (48MP coordinates) or hide it."""
        self.roi_outline.setVisible(rect48 is not None)
        if rect48 is not None:
            self.roi_outline.setRect(rect48)


def _overlay_shaper(
    arr: np.ndarray, mode: str
) -> tuple[np.ndarray, Shaper, tuple[float, float] | None]:
    """Source layout and shaper for a registration overlay of unknown layout."""
    a = np.asarray(arr)
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    if a.ndim == 3 and a.shape[-1] in (3, 4) and a.shape[0] not in (3, 4):
        a = np.moveaxis(a[..., :3], -1, 0)
    a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        if mode == "difference":
            lim = symmetric_levels(a)
            _, lut = colormap_lut("CET-D1A")
            return a, (lambda c: render_scalar(c, -lim, lim, lut)), (-lim, lim)
        finite = a[np.isfinite(a)]
        hi = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        return a, (lambda c: render_gray(c, 0.0, hi if hi > 0 else 1.0)), None
    finite = a[np.isfinite(a)]
    hi = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    hi = hi if hi > 0 else 1.0
    return (
        a,
        (
            lambda c: np.round(
                np.clip(np.moveaxis(np.nan_to_num(c), 0, -1) / hi, 0, 1) * 255
            ).astype(np.uint8)
        ),
        None,
    )


class PaneGrid(QWidget):
    """The six linked panes, bound to the state's loaded pair, view settings and ROI.

    Two columns, three rows (ProRAW48 | output, gain map | registration, difference |
    halo): 4:3 frames in a landscape window get about twice the screen area they would in
    three columns, and the gain map sits under the ProRAW48 it applies to.
    """

    hovered = Signal(float, float)
    COLUMNS = 2

    PANES: tuple[tuple[str, str, str | None], ...] = (
        ("proraw", "ProRAW48", None),
        ("output", "Output (linear, LTM removed)", None),
        ("gain", "Gain map (log2)", "CET-D1A"),
        ("registration", "Registration overlay", None),
        ("diff", "Difference output / ProRAW48 (EV)", "CET-D1A"),
        ("halo", "Halo indicator map (EV)", "CET-D1A"),
    )

    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state
        self.panes: dict[str, ImagePane] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(3)
        for i, (key, title, cmap) in enumerate(self.PANES):
            pane = ImagePane(key, title, cmap)
            self.panes[key] = pane
            grid.addWidget(pane, i // self.COLUMNS, i % self.COLUMNS)
            pane.hovered.connect(self._hovered)
        for i in range(self.COLUMNS):
            grid.setColumnStretch(i, 1)
        for i in range(math.ceil(len(self.PANES) / self.COLUMNS)):
            grid.setRowStretch(i, 1)
        master = self.panes["output"].view
        for pane in self.panes.values():
            if pane.view is not master:
                pane.view.setXLink(master)
                pane.view.setYLink(master)
        self.roi_item: pg.RectROI | None = None
        self._updating_roi = False
        self._size48: tuple[int, int] | None = None
        self._view: ViewSettings = state.view
        state.loaded_changed.connect(self._on_loaded)
        state.view_changed.connect(self._on_view)
        self._empty()

    @property
    def master(self) -> pg.ViewBox:
        """The ViewBox every other pane is linked to."""
        return self.panes["output"].view

    def _empty(self) -> None:
        for pane in self.panes.values():
            pane.set_message("open a pair (File ▸ Open…) or the demo pair")
            pane.set_info("")

    # -- state -> panes -----------------------------------------------------------------
    def _on_loaded(self, loaded: object) -> None:
        self._remove_roi_item()
        lp = self.state.loaded
        if lp is None:
            self._size48 = None
            self._empty()
            return
        a = lp.analysis
        h48, w48 = a.output.shape[1:]
        first = self._size48 != (h48, w48)
        self._size48 = (h48, w48)
        self._show(a, self.state.view)
        if first:
            self.fit()
            QTimer.singleShot(0, self.fit)  # again once the layout has its final size

    def _on_view(self, view: ViewSettings) -> None:
        old, self._view = self._view, view
        lp = self.state.loaded
        if lp is None:
            return
        shaping = (view.exposure_ev, view.soft_highlights, view.overlay_mode, view.overlay_stage)
        if shaping != (old.exposure_ev, old.soft_highlights, old.overlay_mode, old.overlay_stage):
            self._show(lp.analysis, view)
        self._show_roi(view)

    def _show(self, a: Analysis, view: ViewSettings) -> None:
        m, ev, soft = a.to_srgb, view.exposure_ev, view.soft_highlights
        rgb: Shaper = lambda c: render_rgb(c, m, exposure_ev=ev, soft_highlights=soft)  # noqa: E731
        self.panes["proraw"].set_source(a.reference, rgb)
        self.panes["proraw"].set_title(a.reference_label)
        self.panes["output"].set_source(a.output, rgb)
        self.panes["output"].set_title(f"Output — {a.method}")
        g0 = float(np.log2(a.global_gain))
        glim = max(float(np.nanmax(np.abs(a.gain_log2 - g0))), 0.05)
        lut = self.panes["gain"].colormap_lut()
        self.panes["gain"].set_source(
            a.gain_log2,
            lambda c: render_scalar(c, g0 - glim, g0 + glim, lut),
            levels=(g0 - glim, g0 + glim),
        )
        dlim = symmetric_levels(a.diff_ev, floor=0.05)
        dlut = self.panes["diff"].colormap_lut()
        self.panes["diff"].set_source(
            a.diff_ev, lambda c: render_scalar(c, -dlim, dlim, dlut), levels=(-dlim, dlim)
        )
        hlim = symmetric_levels(a.halo, floor=0.01)
        hlut = self.panes["halo"].colormap_lut()
        self.panes["halo"].set_source(
            a.halo, lambda c: render_scalar(c, -hlim, hlim, hlut), levels=(-hlim, hlim)
        )
        self._show_registration(a, view)
        self._show_roi(view)

    def _show_registration(self, a: Analysis, view: ViewSettings) -> None:
        pane = self.panes["registration"]
        reg = a.registration
        if not reg.available:
            pane.set_message(reg.message)
            pane.set_info("")
            return
        arr = overlay_for(reg.overlays, view.overlay_mode, view.overlay_stage)
        if arr is None:
            pane.set_message(f"no {view.overlay_mode} overlay {view.overlay_stage} registration")
        else:
            src, shaper, levels = _overlay_shaper(arr, view.overlay_mode)
            h48 = a.output.shape[1]
            pane.set_source(src, shaper, pixel_scale=h48 / src.shape[-2], levels=levels)
        colour = "#7bd88f" if reg.gate_passed else "#ff6b6b"
        pane.set_title(f"Registration — {view.overlay_mode}, {view.overlay_stage}")
        pane.set_info(reg.message, reg.details, colour)

    def _show_roi(self, view: ViewSettings) -> None:
        lp = self.state.loaded
        roi = view.roi
        rect = (
            None
            if roi is None
            else QRectF(2 * roi[2], 2 * roi[0], 2 * (roi[3] - roi[2]), 2 * (roi[1] - roi[0]))
        )
        for key, pane in self.panes.items():
            pane.set_roi_outline(None if key == "output" and self.roi_item is not None else rect)
        if lp is not None:
            stats = pane_stats(lp.analysis, roi)
            for key in ("gain", "diff", "halo"):
                self.panes[key].set_info(stats[key])
            where = "region" if roi is not None else "frame"
            m = lp.analysis.anchor_metrics
            self.panes["output"].set_info(
                f"anchor PSNR {m.psnr_db:.2f} dB · SSIM {m.ssim:.4f}",
                f"anchor PSNR {m.psnr_db:.2f} dB, SSIM {m.ssim:.4f} (F(output) vs RAW12 over "
                f"the whole frame; {where} figures in the histogram panel)",
            )
            self.panes["proraw"].set_info(
                f"global gain {math.log2(lp.analysis.global_gain):+.2f} EV"
            )
        if self.roi_item is not None and rect is not None and not self._updating_roi:
            self._updating_roi = True
            self.roi_item.setPos((rect.x(), rect.y()), finish=False)
            self.roi_item.setSize((rect.width(), rect.height()), finish=False)
            self._updating_roi = False

    # -- ROI ----------------------------------------------------------------------------
    def start_roi(self) -> None:
        """Put an editable region in the output pane (centre of the current view)."""
        if self._size48 is None:
            return
        if self.roi_item is None:
            r = self.master.viewRect()
            w, h = r.width() / 3, r.height() / 3
            self.roi_item = pg.RectROI(
                (r.center().x() - w / 2, r.center().y() - h / 2),
                (w, h),
                pen=pg.mkPen((255, 200, 40), width=2),
            )
            self.master.addItem(self.roi_item)
            self.roi_item.sigRegionChangeFinished.connect(self._roi_edited)
        self._roi_edited()

    def _remove_roi_item(self) -> None:
        if self.roi_item is not None:
            self.master.removeItem(self.roi_item)
            self.roi_item = None

    def _roi_edited(self, *_: object) -> None:
        if self._updating_roi or self.roi_item is None or self._size48 is None:
            return
        pos, size = self.roi_item.pos(), self.roi_item.size()
        h12, w12 = self._size48[0] // 2, self._size48[1] // 2
        x0 = max(0, math.floor(pos.x() / 2))
        y0 = max(0, math.floor(pos.y() / 2))
        x1 = min(w12, math.ceil((pos.x() + size.x()) / 2))
        y1 = min(h12, math.ceil((pos.y() + size.y()) / 2))
        self._updating_roi = True
        try:
            self.state.set_view(roi=(y0, y1, x0, x1) if y1 > y0 and x1 > x0 else None)
        finally:
            self._updating_roi = False

    def clear_roi(self) -> None:
        """Back to the whole frame."""
        self._remove_roi_item()
        self.state.set_view(roi=None)

    # -- navigation ---------------------------------------------------------------------
    def fit(self) -> None:
        """Show the whole frame in every pane."""
        if self._size48 is not None:
            h, w = self._size48
            self.master.setRange(QRectF(0, 0, w, h), padding=0.0)

    def zoom_100(self) -> None:
        """One image pixel per device pixel around the current centre."""
        c = self.master.viewRect().center()
        dpr = self.devicePixelRatioF() or 1.0
        w, h = self.master.width() / dpr, self.master.height() / dpr
        self.master.setRange(QRectF(c.x() - w / 2, c.y() - h / 2, w, h), padding=0.0)

    def _hovered(self, x: float, y: float) -> None:
        for pane in self.panes.values():
            pane.set_crosshair(x, y)
        self.hovered.emit(x, y)
