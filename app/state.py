"""Application state, free of Qt: the pair list, the current pair, the last conversion,
view settings, the busy task and QA rows, each with a change signal.

Every mutation happens on the GUI thread (workers hand their results back through Qt
queued signals before they reach the state), so the signals need no locking. Panels
connect to the signals, write user edits back through the setters, and block the echo
while updating themselves. The state holds references to the big arrays of the current
pair only: replacing the pair drops the previous one, so memory does not grow when the
user switches pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from app.analysis import Analysis
    from app.pairing import PairEntry
    from app.qa import QaRow
    from core.io.captures import CapturePair
    from core.pipeline import ConversionResult

log = logging.getLogger(__name__)

HistogramScale = Literal["linear", "ev"]
OverlayMode = Literal["checkerboard", "blend", "difference", "edges"]
OverlayStage = Literal["before", "after"]
OVERLAY_MODES: tuple[str, ...] = ("checkerboard", "blend", "difference", "edges")
OVERLAY_STAGES: tuple[str, ...] = ("before", "after")
#: RAW12 region of interest: (y0, y1, x0, x1), half-open, on the 12MP grid.
Roi = tuple[int, int, int, int]


class Signal:
    """A minimal Qt-free signal: ``connect(fn)``, ``disconnect(fn)``, ``emit(*args)``.

    Slots run synchronously in connection order. A slot raising is logged and does not
    stop the others (a broken panel must not break the state).
    """

    def __init__(self) -> None:
        self._slots: list[Callable[..., Any]] = []

    def connect(self, slot: Callable[..., Any]) -> None:
        """Call ``slot`` on every emit (connecting twice is a no-op)."""
        if slot not in self._slots:
            self._slots.append(slot)

    def disconnect(self, slot: Callable[..., Any]) -> None:
        """Stop calling ``slot``; unknown slots are ignored."""
        if slot in self._slots:
            self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        """Call every connected slot with ``args``."""
        for slot in list(self._slots):
            try:
                slot(*args)
            except Exception:  # a slot's bug is logged, the state stays consistent
                log.exception("slot %r failed", slot)


@dataclass(frozen=True)
class ViewSettings:
    """How the panes show the current pair (no effect on any computation but the ROI's).

    Attributes:
        roi: RAW12 region (y0, y1, x0, x1) or None for the whole frame.
        hist_scale: per-CFA histograms of ``F(output) - RAW12`` (linear) or
            ``log2(F(output) / RAW12)`` (ev).
        overlay_mode: registration overlay shown.
        overlay_stage: before or after registration.
        exposure_ev: display exposure on top of the global render (viewing only).
        soft_highlights: roll off highlights instead of clipping them (viewing only).
        show_pgtm: render ProRAW48 with its own PGTM when the file has one.
        diagnostics_method: estimator of the diagnostics panel (``auto``, ``learned`` or
            ``classical``; ``core.diagnostics.optimize_corrections``'s ``method``).
    """

    roi: Roi | None = None
    hist_scale: HistogramScale = "linear"
    overlay_mode: OverlayMode = "checkerboard"
    overlay_stage: OverlayStage = "after"
    exposure_ev: float = 0.0
    soft_highlights: bool = True
    show_pgtm: bool = True
    diagnostics_method: str = "auto"


@dataclass(frozen=True)
class ConvertSettings:
    """Options of the next conversion (mapped onto ``core.pipeline.ConvertOptions``).

    Attributes:
        demosaic: demosaic of the model's RAW12 guidance (``ConvertOptions.demosaic``);
            None keeps ``ConvertOptions``' default.
    """

    method: str = "auto"
    sample_format: str = "uint16"
    layout: str = "ljpeg-tiles"
    output_path: Path | None = None
    demosaic: str | None = None


@dataclass(frozen=True)
class BusyTask:
    """The long task running now.

    Attributes:
        name: what runs (``"load"``, ``"convert"``, ``"qa"``).
        stage: current stage (from core's Progress).
        fraction: 0..1 progress within the stage.
        message: human text.
        cancellable: whether Cancel applies.
    """

    name: str
    stage: str = ""
    fraction: float = 0.0
    message: str = ""
    cancellable: bool = True


@dataclass
class LoadedPair:
    """The pair on screen: its files, ``core``'s pair and the arrays shown in the panes."""

    entry: PairEntry
    pair: CapturePair
    analysis: Analysis


@dataclass(frozen=True)
class Message:
    """A message for the user: ``level`` is ``info``, ``warning`` or ``error``."""

    level: Literal["info", "warning", "error"]
    text: str


@dataclass
class AppState:
    """Everything the window shows, with one change signal per part."""

    pairs: list[PairEntry] = field(default_factory=list)
    current: int | None = None
    loaded: LoadedPair | None = None
    result: ConversionResult | None = None
    view: ViewSettings = field(default_factory=ViewSettings)
    convert: ConvertSettings = field(default_factory=ConvertSettings)
    busy: BusyTask | None = None
    qa_rows: list[QaRow] = field(default_factory=list)
    pair_metrics: dict[int, dict[str, Any]] = field(default_factory=dict)
    last_message: Message | None = None

    pairs_changed: Signal = field(default_factory=Signal, repr=False)
    current_changed: Signal = field(default_factory=Signal, repr=False)
    loaded_changed: Signal = field(default_factory=Signal, repr=False)
    result_changed: Signal = field(default_factory=Signal, repr=False)
    view_changed: Signal = field(default_factory=Signal, repr=False)
    convert_changed: Signal = field(default_factory=Signal, repr=False)
    busy_changed: Signal = field(default_factory=Signal, repr=False)
    qa_changed: Signal = field(default_factory=Signal, repr=False)
    message: Signal = field(default_factory=Signal, repr=False)
    any_changed: Signal = field(default_factory=Signal, repr=False)

    # -- pairs ------------------------------------------------------------------------
    def set_pairs(self, pairs: list[PairEntry]) -> None:
        """Replace the pair list (clears the selection, the loaded pair and its metrics)."""
        self.pairs = list(pairs)
        self.pair_metrics = {}
        self.pairs_changed.emit(self.pairs)
        self.select(None)

    def add_pairs(self, pairs: list[PairEntry]) -> None:
        """Append pairs not already listed (same two files)."""
        known = {(p.raw12, p.proraw48) for p in self.pairs}
        new = [p for p in pairs if (p.raw12, p.proraw48) not in known]
        if new:
            self.pairs.extend(new)
            self.pairs_changed.emit(self.pairs)
            self.any_changed.emit()

    def replace_pair(self, index: int, entry: PairEntry) -> None:
        """Manual override of one pairing; unloads it if it was on screen."""
        if not 0 <= index < len(self.pairs):
            raise IndexError(f"pair {index} does not exist ({len(self.pairs)} listed)")
        self.pairs[index] = entry
        self.pair_metrics.pop(index, None)
        self.pairs_changed.emit(self.pairs)
        if self.current == index:
            self.set_loaded(None)
            self.current_changed.emit(self.current)
        self.any_changed.emit()

    def select(self, index: int | None) -> None:
        """Make pair ``index`` current (the window then loads it in the background)."""
        if index is not None and not 0 <= index < len(self.pairs):
            raise IndexError(f"pair {index} does not exist ({len(self.pairs)} listed)")
        if index == self.current and (index is None or self.loaded is not None):
            return
        self.current = index
        self.set_loaded(None)
        self.current_changed.emit(index)
        self.any_changed.emit()

    @property
    def current_entry(self) -> PairEntry | None:
        """The selected pair's files, if any."""
        return None if self.current is None else self.pairs[self.current]

    def set_loaded(self, loaded: LoadedPair | None) -> None:
        """Show a loaded pair (or nothing); drops the previous pair, result and ROI."""
        self.loaded = loaded
        self.result = None
        if self.view.roi is not None:
            self.view = replace(self.view, roi=None)
            self.view_changed.emit(self.view)
        self.loaded_changed.emit(loaded)
        self.any_changed.emit()

    def set_pair_metrics(self, index: int, metrics: dict[str, Any]) -> None:
        """Key metrics (status, method, PSNR...) shown in the pair browser."""
        self.pair_metrics[index] = dict(metrics)
        self.pairs_changed.emit(self.pairs)

    # -- conversion -------------------------------------------------------------------
    def set_result(self, result: ConversionResult | None, analysis: Analysis | None) -> None:
        """The last conversion and the pane arrays recomputed from its output."""
        self.result = result
        if analysis is not None and self.loaded is not None:
            self.loaded.analysis = analysis
            self.loaded_changed.emit(self.loaded)
        self.result_changed.emit(result)
        self.any_changed.emit()

    def set_convert(self, **changes: Any) -> None:
        """Edit the next conversion's options (field names of :class:`ConvertSettings`)."""
        new = replace(self.convert, **changes)
        if new != self.convert:
            self.convert = new
            self.convert_changed.emit(new)

    # -- view -------------------------------------------------------------------------
    def set_view(self, **changes: Any) -> None:
        """Edit view settings (field names of :class:`ViewSettings`); emits on change only."""
        new = replace(self.view, **changes)
        if new.roi is not None:
            y0, y1, x0, x1 = new.roi
            if not (y0 < y1 and x0 < x1):
                new = replace(new, roi=None)
        if new != self.view:
            self.view = new
            self.view_changed.emit(new)
            self.any_changed.emit()

    # -- busy / messages --------------------------------------------------------------
    def set_busy(self, task: BusyTask | None) -> None:
        """Start, update or end (None) the long task shown in the progress bar."""
        self.busy = task
        self.busy_changed.emit(task)
        self.any_changed.emit()

    def notify(self, level: Literal["info", "warning", "error"], text: str) -> None:
        """Show ``text`` to the user (banner/status bar)."""
        self.last_message = Message(level, text)
        self.message.emit(self.last_message)

    # -- QA ---------------------------------------------------------------------------
    def set_qa_rows(self, rows: list[QaRow]) -> None:
        """Replace the QA review table."""
        self.qa_rows = list(rows)
        self.qa_changed.emit(self.qa_rows)
        self.any_changed.emit()
