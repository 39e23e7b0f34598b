"""The main window: pair browser + convert (left), linked panes + histograms or
diagnostics (Inspect), QA review, INT8 sign-off and Experiments tabs. It wires state,
panels and workers; the pipeline work itself is ``core``'s, run through
:mod:`app.workers`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QElapsedTimer, QEventLoop, Qt
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app import analysis as an
from app.actions import ACTIONS, build_actions, refresh_actions
from app.pairing import PairEntry, find_pairs, manual_pair
from app.panels.convert import ConvertPanel
from app.panels.diagnostics import DiagnosticsPanel
from app.panels.experiments import ExperimentsPanel
from app.panels.histograms import HistogramPanel
from app.panels.image_views import PaneGrid
from app.panels.pair_browser import PairBrowser
from app.panels.qa import QaPanel
from app.panels.signoff import SignoffPanel
from app.state import (
    OVERLAY_MODES,
    OVERLAY_STAGES,
    AppState,
    BusyTask,
    LoadedPair,
    Message,
    ViewSettings,
)
from app.workers import TaskHandle, Workers, describe_error
from core.io.pair import load_pair
from core.pipeline import ConversionResult, ConvertOptions, convert
from core.progress import CancelToken, Progress, ProgressCallback

log = logging.getLogger(__name__)

BANNER_STYLES = {
    "error": "background:#5c1f1f; color:#ffd9d9;",
    "warning": "background:#5a4616; color:#ffeec2;",
    "info": "background:#1f3a5c; color:#d9ecff;",
}


def default_output(entry: PairEntry) -> Path:
    """``<RAW12 folder>/<pair stem>_linear48.dng`` (never one of the inputs)."""
    stem = entry.raw12.stem
    for token in ("_raw12", "-raw12", "raw12"):
        stem = stem.replace(token, "")
    return entry.raw12.parent / f"{stem or 'pair'}_linear48.dng".lstrip("_")


class Banner(QFrame):
    """A dismissible message strip at the top of the window (never a modal dialog)."""

    def __init__(self) -> None:
        super().__init__()
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.level = ""
        self.hide()

    def show_message(self, message: Message) -> None:
        """Show ``message`` in its level's colours."""
        self.level = message.level
        self.setStyleSheet(BANNER_STYLES[message.level])
        self.label.setText(message.text)
        self.show()


class ViewControls(QWidget):
    """Display settings of the Inspect panes, bound to ``state.view``."""

    def __init__(self, state: AppState, actions: dict[str, Any]) -> None:
        super().__init__()
        self.state = state
        self._blocking = False
        self.mode = QComboBox()
        for m in OVERLAY_MODES:
            self.mode.addItem(m, m)
        self.stage = QComboBox()
        for s in OVERLAY_STAGES:
            self.stage.addItem(f"{s} registration", s)
        self.exposure = QDoubleSpinBox()
        self.exposure.setRange(-8.0, 8.0)
        self.exposure.setSingleStep(0.5)
        self.exposure.setSuffix(" EV")
        self.exposure.setToolTip("display exposure (viewing only)")
        self.soft = QCheckBox("soft highlights")
        self.pgtm = QCheckBox("ProRAW48 with its PGTM")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(QLabel("Overlay"))
        layout.addWidget(self.mode)
        layout.addWidget(self.stage)
        layout.addSpacing(12)
        layout.addWidget(QLabel("Display"))
        layout.addWidget(self.exposure)
        layout.addWidget(self.soft)
        layout.addWidget(self.pgtm)
        layout.addStretch(1)
        for key in ("set_roi", "clear_roi", "fit_view", "zoom_100"):
            b = QToolButton()
            b.setDefaultAction(actions[key])
            layout.addWidget(b)
        self.mode.currentIndexChanged.connect(self._edited)
        self.stage.currentIndexChanged.connect(self._edited)
        self.exposure.valueChanged.connect(self._edited)
        self.soft.toggled.connect(self._edited)
        self.pgtm.toggled.connect(self._edited)
        state.view_changed.connect(self._sync)
        self._sync(state.view)

    def _edited(self) -> None:
        if self._blocking:
            return
        self.state.set_view(
            overlay_mode=self.mode.currentData(),
            overlay_stage=self.stage.currentData(),
            exposure_ev=float(self.exposure.value()),
            soft_highlights=self.soft.isChecked(),
            show_pgtm=self.pgtm.isChecked(),
        )

    def _sync(self, v: ViewSettings) -> None:
        self._blocking = True
        try:
            self.mode.setCurrentIndex(max(0, self.mode.findData(v.overlay_mode)))
            self.stage.setCurrentIndex(max(0, self.stage.findData(v.overlay_stage)))
            self.exposure.setValue(v.exposure_ev)
            self.soft.setChecked(v.soft_highlights)
            self.pgtm.setChecked(v.show_pgtm)
        finally:
            self._blocking = False


class MainWindow(QMainWindow):
    """Linear48's main window."""

    def __init__(
        self,
        state: AppState | None = None,
        *,
        demo_folder: Path | None = None,
        qa_folder: Path | None = None,
        records_folder: Path | None = None,
        demo_size: str = "1008x756",
    ) -> None:
        super().__init__()
        self.state = state or AppState()
        self.workers = Workers(parent=self)
        self.demo_folder = demo_folder or _writable(Path("out/demo"))
        self.demo_size = demo_size
        self.load_task: TaskHandle | None = None
        self.busy_task: TaskHandle | None = None
        self._load_generation = 0
        self.setWindowTitle("Linear48 — RAW12 + ProRAW48 → scene-linear 48MP")
        self.action_table = build_actions(self)
        self._menus()
        # inspect tab
        self.panes = PaneGrid(self.state)
        self.histograms = HistogramPanel(self.state, self.workers)
        self.diagnostics = DiagnosticsPanel(self.state, self.workers)
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(self.histograms, "Histograms")
        self.side_tabs.addTab(self.diagnostics, "Diagnostics")
        self.controls = ViewControls(self.state, self.action_table)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.panes)
        split.addWidget(self.side_tabs)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        split.setSizes([1150, 470])
        inspect = QWidget()
        il = QVBoxLayout(inspect)
        il.setContentsMargins(0, 0, 0, 0)
        il.setSpacing(2)
        il.addWidget(self.controls)
        il.addWidget(split, 1)
        self.qa = QaPanel(self.state, self.workers, qa_folder or _writable(Path("out/qa")))
        self.qa.open_entry.connect(self.open_entry)
        self.signoff = SignoffPanel(self.state, records_folder or Path("signoff"), self.workers)
        self.experiments = ExperimentsPanel()
        self.tabs = QTabWidget()
        self.tabs.addTab(inspect, "Inspect")
        self.tabs.addTab(self.qa, "QA review")
        self.tabs.addTab(self.signoff, "INT8 sign-off")
        self.tabs.addTab(self.experiments, "Experiments")
        self.banner = Banner()
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(2, 2, 2, 2)
        cl.setSpacing(2)
        cl.addWidget(self.banner)
        cl.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        # left dock
        self.browser = PairBrowser(self.state, self.action_table)
        self.convert_panel = ConvertPanel(self.state, self.action_table)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.browser)
        left.addWidget(self.convert_panel)
        left.setSizes([300, 400])
        dock = QDockWidget("Pairs", self)
        dock.setObjectName("pairs")
        dock.setWidget(left)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        dock.setMinimumWidth(360)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        # status bar
        self.readout = QLabel("")
        self.readout.setStyleSheet("font-family: monospace; font-size: 11px;")
        self.statusBar().addWidget(self.readout, 1)
        # state wiring
        s = self.state
        s.current_changed.connect(self._load_current)
        s.message.connect(self._message)
        s.any_changed.connect(self._refresh_actions)
        s.view_changed.connect(self._view_changed)
        self.panes.hovered.connect(self._hovered)
        self._last_pgtm = s.view.show_pgtm
        self._refresh_actions()

    def _menus(self) -> None:
        bar = self.menuBar()
        menus: dict[str, Any] = {}
        for spec in ACTIONS:
            menu = menus.get(spec.menu) or bar.addMenu(spec.menu)
            menus[spec.menu] = menu
            menu.addAction(self.action_table[spec.key])
        for key in ("open_files", "open_folder", "convert", "cancel"):
            self.action_table[key].setShortcutContext(Qt.ShortcutContext.WindowShortcut)

    def _refresh_actions(self) -> None:
        refresh_actions(self.action_table, self.state)

    # -- messages / readout ---------------------------------------------------------------
    def _message(self, message: Message) -> None:
        self.statusBar().showMessage(message.text, 8000)
        if message.level == "info":
            if self.banner.level == "info":
                self.banner.hide()
        else:
            self.banner.show_message(message)

    def _hovered(self, x: float, y: float) -> None:
        lp = self.state.loaded
        if lp is None:
            return
        r = an.readout(lp.analysis, lp.pair, int(x), int(y))
        self.readout.setText("" if r is None else r.text())

    # -- opening --------------------------------------------------------------------------
    def open_paths(self, paths: Sequence[Path]) -> None:
        """Find pairs among files/folders (in the background) and list them."""

        def task(_p: ProgressCallback, _c: CancelToken) -> tuple[list[PairEntry], list[str]]:
            return find_pairs(paths)

        def done(res: tuple[list[PairEntry], list[str]]) -> None:
            pairs, problems = res
            before = len(self.state.pairs)
            self.state.add_pairs(pairs)
            if problems:
                self.state.notify("warning", " · ".join(problems))
            if not pairs and not problems:
                self.state.notify("warning", "no DNG pairs found there")
            if pairs:
                known = [(p.raw12, p.proraw48) for p in self.state.pairs]
                self.state.select(
                    known.index((pairs[0].raw12, pairs[0].proraw48))
                    if before == len(self.state.pairs)
                    else before
                )

        self.workers.submit("scan", task, on_done=done, on_error=self._task_error)

    def open_pair(self, raw12: Path, proraw48: Path) -> None:
        """Open two given files as a pair."""
        self.open_entry(
            PairEntry(
                Path(raw12).parent.name or Path(raw12).stem, Path(raw12), Path(proraw48), "given"
            )
        )

    def open_entry(self, entry: PairEntry) -> None:
        """List (if new) and select a pair; switches to the Inspect tab."""
        known = [(p.raw12, p.proraw48) for p in self.state.pairs]
        if (entry.raw12, entry.proraw48) not in known:
            self.state.add_pairs([entry])
            known.append((entry.raw12, entry.proraw48))
        self.tabs.setCurrentIndex(0)
        self.state.select(known.index((entry.raw12, entry.proraw48)))

    def open_demo(self) -> None:
        """Write (or re-use) the simulator's demo pair and open it."""
        folder, size = self.demo_folder, self.demo_size

        def task(_p: ProgressCallback, _c: CancelToken) -> PairEntry:
            from core.simulate.pair import write_demo_pair

            paths = write_demo_pair(folder, size=size)
            return PairEntry("demo (simulated backlit)", paths.raw12, paths.proraw48, "given")

        self.state.notify("info", f"preparing the demo pair in {folder}…")
        self.workers.submit("demo", task, on_done=self.open_entry, on_error=self._task_error)

    def _task_error(self, err: BaseException) -> None:
        self.state.notify("error", describe_error(err))

    def _load_current(self, index: int | None) -> None:
        if self.load_task is not None:
            self.load_task.cancel()
        self._load_generation += 1
        gen = self._load_generation
        entry = self.state.current_entry
        if entry is None or index is None:
            return
        use_pgtm = self.state.view.show_pgtm
        method = self.state.convert.method
        self.state.set_pair_metrics(index, {"status": "loading…"})

        def task(progress: ProgressCallback, cancel: CancelToken) -> LoadedPair:
            pair = load_pair(entry.raw12, entry.proraw48, progress=progress, cancel=cancel)
            a = an.preview(pair, method, use_pgtm=use_pgtm, progress=progress, cancel=cancel)
            return LoadedPair(entry, pair, a)

        def progress(ev: Progress) -> None:
            if gen == self._load_generation and (
                self.state.busy is None or self.state.busy.name == "load"
            ):
                self.state.set_busy(BusyTask("load", ev.stage, ev.fraction, ev.message))

        def done(lp: LoadedPair) -> None:
            self._end_busy("load")
            if gen != self._load_generation:
                return
            self.state.set_loaded(lp)
            self.state.set_pair_metrics(index, _metrics_of(lp, "preview"))
            self.state.notify("info", f"opened {entry.name}")
            for note in lp.pair.notes:
                log.info("%s: %s", entry.name, note)

        def failed(err: BaseException) -> None:
            self._end_busy("load")
            if gen != self._load_generation:
                return
            text = describe_error(err)
            self.state.set_pair_metrics(index, {"status": "error", "error": text})
            if "Cancelled" not in text:
                self.state.notify("error", f"{entry.name}: {text}")

        self.load_task = self.workers.submit(
            "load", task, on_done=done, on_error=failed, on_progress=progress
        )

    def _end_busy(self, name: str) -> None:
        if self.state.busy is not None and self.state.busy.name == name:
            self.state.set_busy(None)

    def _view_changed(self, view: ViewSettings) -> None:
        if view.show_pgtm == self._last_pgtm:
            return
        self._last_pgtm = view.show_pgtm
        lp = self.state.loaded
        if lp is None:
            return
        current = lp

        def task(_p: ProgressCallback, _c: CancelToken) -> an.Analysis:
            return an.with_reference(current.analysis, current.pair, use_pgtm=view.show_pgtm)

        def done(a: an.Analysis) -> None:
            if self.state.loaded is current:
                self.state.set_result(self.state.result, a)

        self.workers.submit("reference", task, on_done=done, on_error=self._task_error)

    # -- convert --------------------------------------------------------------------------
    def start_convert(self, output: Path | None = None) -> TaskHandle | None:
        """Convert the current pair with ``state.convert`` in the background."""
        entry, index = self.state.current_entry, self.state.current
        if entry is None or index is None or self.state.busy is not None:
            return None
        cs = self.state.convert
        out = Path(output or cs.output_path or default_output(entry))
        options = ConvertOptions(
            method=cs.method,  # type: ignore[arg-type]
            sample_format=cs.sample_format,  # type: ignore[arg-type]
            layout=cs.layout if cs.sample_format == "uint16" else "ljpeg-tiles",  # type: ignore[arg-type]
            demosaic=cs.demosaic or ConvertOptions().demosaic,
        )
        loaded = (
            self.state.loaded if self.state.loaded and self.state.loaded.entry == entry else None
        )
        use_pgtm = self.state.view.show_pgtm
        self.state.set_busy(BusyTask("convert", "starting"))

        def task(
            progress: ProgressCallback, cancel: CancelToken
        ) -> tuple[ConversionResult, LoadedPair]:
            result = convert(
                entry.raw12, entry.proraw48, out, options, progress=progress, cancel=cancel
            )
            pair = loaded.pair if loaded is not None else load_pair(entry.raw12, entry.proraw48)
            a = an.analyse(pair, result.baseline, result.anchor, result.decision, use_pgtm=use_pgtm)
            return result, LoadedPair(entry, pair, a)

        def progress(ev: Progress) -> None:
            if self.state.busy is not None and self.state.busy.name == "convert":
                self.state.set_busy(BusyTask("convert", ev.stage, ev.fraction, ev.message))

        def done(res: tuple[ConversionResult, LoadedPair]) -> None:
            self._end_busy("convert")
            self.busy_task = None
            result, lp = res
            if self.state.current_entry == entry:
                if self.state.loaded is None or self.state.loaded.entry != entry:
                    self.state.set_loaded(lp)
                self.state.set_result(result, lp.analysis)
            self.state.set_pair_metrics(index, _metrics_of(lp, "converted"))
            self.state.notify("info", f"wrote {result.output_path} ({result.decision.used})")

        def failed(err: BaseException) -> None:
            self._end_busy("convert")
            self.busy_task = None
            text = describe_error(err)
            self.state.notify("warning" if "Cancelled" in text else "error", f"Convert: {text}")

        self.busy_task = self.workers.submit(
            "convert", task, on_done=done, on_error=failed, on_progress=progress
        )
        return self.busy_task

    # -- actions (ACTIONS table handlers) -------------------------------------------------
    def act_open_files(self) -> None:
        """Pick DNG files (RAW12 and ProRAW48) to pair."""
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open RAW12 and ProRAW48", "", "DNG (*.dng *.DNG)"
        )
        if files:
            self.open_paths([Path(f) for f in files])

    def act_open_folder(self) -> None:
        """Pick a folder and pair the DNGs inside."""
        folder = QFileDialog.getExistingDirectory(self, "Folder of captures")
        if folder:
            self.open_paths([Path(folder)])

    def act_open_demo(self) -> None:
        """Open the simulated demo pair."""
        self.open_demo()

    def act_repair(self) -> None:
        """Manual override: choose the ProRAW48 for the selected pair's RAW12."""
        entry, index = self.state.current_entry, self.state.current
        if entry is None or index is None:
            return
        path, _ = QFileDialog.getOpenFileName(
            self, f"ProRAW48 for {entry.raw12.name}", str(entry.raw12.parent), "DNG (*.dng *.DNG)"
        )
        if path:
            self.state.replace_pair(index, manual_pair(entry.raw12, Path(path)))
            self.state.select(None)
            self.state.select(index)

    def act_convert(self) -> None:
        """Convert the current pair."""
        self.start_convert()

    def act_cancel(self) -> None:
        """Cancel the running task."""
        busy = self.state.busy
        if busy is None:
            return
        handle = {"convert": self.busy_task, "load": self.load_task, "qa": self.qa.task}.get(
            busy.name
        )
        if handle is not None:
            handle.cancel()

    def act_set_roi(self) -> None:
        """Add an editable region to the output pane."""
        self.tabs.setCurrentIndex(0)
        self.panes.start_roi()

    def act_clear_roi(self) -> None:
        """Back to whole-frame figures."""
        self.panes.clear_roi()

    def act_fit_view(self) -> None:
        """Fit the frame."""
        self.panes.fit()

    def act_zoom_100(self) -> None:
        """1:1 zoom."""
        self.panes.zoom_100()

    def show_diagnostics(self) -> None:
        """Inspect tab with the diagnostics panel beside the panes (computed once shown)."""
        self.tabs.setCurrentIndex(0)
        self.side_tabs.setCurrentWidget(self.diagnostics)

    def act_screenshot(self) -> None:
        """Save the window as a PNG."""
        path, _ = QFileDialog.getSaveFileName(
            self, "Save screenshot", "linear48.png", "PNG (*.png)"
        )
        if path:
            self.grab().save(path)

    def act_quit(self) -> None:
        """Close the window."""
        self.close()

    # -- helpers for scripted use (screenshots, tests) ------------------------------------
    def wait_until(self, predicate: Callable[[], bool], timeout_ms: int = 120_000) -> bool:
        """Process events until ``predicate()`` or the timeout; returns the predicate."""
        timer = QElapsedTimer()
        timer.start()
        app = QApplication.instance()
        while not predicate():
            if timer.elapsed() > timeout_ms:
                return False
            if app is not None:
                app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        return True

    def ready(self) -> bool:
        """A pair is on screen and no background work is pending."""
        return (
            self.state.loaded is not None
            and self.workers.active == 0
            and bool(self.histograms.data)
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        """Cancel background work before closing."""
        self.workers.shutdown()
        super().closeEvent(event)


def _metrics_of(lp: LoadedPair, status: str) -> dict[str, Any]:
    a = lp.analysis
    return {
        "status": status,
        "method": a.method,
        "psnr_db": float(a.anchor_metrics.psnr_db),
        "halo_ev": a.halo_indicator_ev,
    }


def _writable(folder: Path) -> Path:
    """``folder`` if it can be created/written, else a temporary folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write_test"
        probe.write_bytes(b"")
        probe.unlink()
        return folder
    except OSError:
        return Path(tempfile.mkdtemp(prefix=f"linear48_{folder.name}_"))
