"""INT8 sign-off tab: FP16 vs INT8 (emulated) per QA scene, verdicts, the signed record.

A record approves one exact model hash with one exact quantization config (the JSON in
the form; by default the canonical w8a8 config the export gate checks), scene by scene
(:mod:`core.signoff`). For the scene selected in the verdict table, a worker thread
(:mod:`app.workers`; the window never waits) loads the checkpoint — its content hash
fills an empty "Model hash" — and runs ``core.model.parity.compare_scene``: the QA scene
(simulated at :data:`QA_RAW12`, seed :data:`QA_SEED`, read back through real DNG files)
through core's emulation of the device plan at FP16 and at the config's precision (w8a8
calibrates its activation scales first, once per model and config, exactly as the export
does). Progress shows under the views; Cancel stops at the next tile; a failure is a
one-line message there. The tab then shows:

- the FP16 and the INT8 outputs side by side, through one global render (the scene's
  camera -> sRGB matrix and the view exposure, :func:`app.display.render_rgb`), linked
  for zoom and pan;
- the signed difference INT8 - FP16 (per pixel the channel where it is largest, linear
  units) on a diverging colormap;
- the worst tiles (by max |difference| of each tile's own pre-blend output) outlined on
  all three views, worst in red, and listed with max |diff|, RMS and PSNR; clicking one
  zooms to it;
- each scene's figures in the verdict table. When the record is written, they become the
  scene's ``SceneVerdict.metrics`` (``core.model.parity.comparison_figures``: the keys
  ``parity --json`` gives) — only for the model hash and config that were compared; a
  scene not compared keeps empty metrics rather than invented ones.

Results are cached per (model hash, quantization hash, scene): switching scenes back
shows them at once. "Compare all scenes" queues every scene not compared yet.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer
from PySide6.QtGui import QBrush, QCloseEvent, QColor, QPen, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGraphicsRectItem,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.display import render_rgb, render_scalar, symmetric_levels
from app.panels.image_views import ImagePane
from app.qa import qa_scenes
from app.state import AppState
from app.workers import TaskHandle, Workers, describe_error
from core.color import stored_to_srgb_matrix
from core.errors import CancelledError, ConfigError, Linear48Error
from core.model.infer import DEFAULT_CHECKPOINT, LoadedModel, load_model
from core.model.parity import SceneComparison, TileDiff, compare_scene
from core.model.quant import QuantSpec
from core.progress import CancelToken, Progress, ProgressCallback
from core.signoff import (
    SceneVerdict,
    default_quantization,
    find_records,
    gate_accepts,
    make_record,
    normalize_model_hash,
    write_record,
)

log = logging.getLogger(__name__)

#: What a record signs by default: the canonical w8a8 config the export gate checks.
DEFAULT_QUANT = default_quantization("w8a8")
#: The QA scenes as the QA tab simulates them (``app.qa.run_simulated``'s defaults):
#: RAW12 (width, height) and seed; the frame compared is twice that.
QA_RAW12 = (256, 192)
QA_SEED = 0
#: Tile plan of the comparison (``parity``'s defaults; the w8a8 calibration's plan).
COMPARE_TILE_PX, COMPARE_OVERLAP_PX = 256, 48
#: Worst tiles listed under the views, and outlined on them.
WORST_LISTED, WORST_OUTLINED = 5, 3
#: Outline pens: the worst tile, then the next ones (cosmetic: constant on screen).
WORST_PEN = QPen(QColor(255, 70, 70), 2.5)
NEXT_PEN = QPen(QColor(255, 190, 60), 1.5, Qt.PenStyle.DashLine)
for _pen in (WORST_PEN, NEXT_PEN):
    _pen.setCosmetic(True)
#: Verdict table columns.
SCENE_COL, VERDICT_COL, FIGURES_COL, NOTE_COL = 0, 1, 2, 3
MUTED, WARN, ERROR = "#a8abb0", "#ffb454", "#ff6b6b"

#: (model hash, quantization hash, scene) -> the comparison shown for it.
ResultKey = tuple[str, str, str]


def figures_text(result: SceneComparison) -> str:
    """A scene's figures for the verdict table: frame PSNR · frame max |diff| · worst tile
    (index, PSNR) — the column header says so."""
    c = result.comparison
    w = c.worst
    return f"{_db(c.psnr_db)} · {c.max_abs:.1e} · #{w.index} {_db(w.psnr_db).replace(' dB', '')}"


def _db(v: float) -> str:
    return f"{v:.1f} dB" if math.isfinite(v) else "∞ (identical)"


def _label(mode: str) -> str:
    """``W8A8`` / ``INT8`` for the config's mode."""
    return mode.upper()


class SignoffPanel(QWidget):
    """Reviewer form, the comparison of the selected scene, verdicts and the records.

    Args:
        state: the app state (notifications).
        records_folder: where records are written and looked for.
        workers: the thread pool to run comparisons on (default: the panel's own).
        checkpoint: the model compared (default: the shipped one).
        raw12_size, seed: the simulated QA scenes (RAW12 (width, height)).
        tile_px, overlap_px: the tile plan of the comparison.
    """

    def __init__(
        self,
        state: AppState,
        records_folder: Path,
        workers: Workers | None = None,
        *,
        checkpoint: Path = DEFAULT_CHECKPOINT,
        raw12_size: tuple[int, int] = QA_RAW12,
        seed: int = QA_SEED,
        tile_px: int = COMPARE_TILE_PX,
        overlap_px: int = COMPARE_OVERLAP_PX,
    ) -> None:
        super().__init__()
        self.state = state
        self.own_workers = workers is None
        self.workers = Workers(max_threads=1, parent=self) if workers is None else workers
        self.raw12_size, self.seed = raw12_size, seed
        self.tile_px, self.overlap_px = tile_px, overlap_px
        self.scenes = list(qa_scenes())
        self.task: TaskHandle | None = None
        self.task_key: tuple[str, str, str] | None = None  # (checkpoint, quant hash, scene)
        self.queue: list[str] = []
        self.models: dict[str, LoadedModel] = {}  # checkpoint path -> loaded model
        self.results: dict[ResultKey, SceneComparison] = {}
        self.failed: dict[tuple[str, str, str], str] = {}
        self.shown: SceneComparison | None = None
        self.to_srgb = np.eye(3, dtype=np.float32)
        self.diff_limit = 0.0
        self.tile_outlines: dict[str, list[QGraphicsRectItem]] = {}
        self._rank_labels: dict[str, list[pg.TextItem]] = {}
        self.last_path: Path | None = None
        self._forced = False  # compute the selected scene even while the tab is hidden
        self._window_filter: QObject | None = None
        self._kick = QTimer(self)
        self._kick.setSingleShot(True)
        self._kick.setInterval(250)
        self._kick.timeout.connect(self._inputs_changed)
        self._build_form(records_folder)
        self._build_table()
        self._build_compare()
        self._layout()
        for w in (self.reviewer, self.model_hash, self.folder):
            w.textChanged.connect(lambda *_: self._update())
        self.model_hash.textChanged.connect(lambda *_: self._show_header())
        self.quant.textChanged.connect(self._update)
        self.quant.textChanged.connect(lambda: self._kick.start())
        self.checkpoint.textChanged.connect(lambda *_: self._kick.start())
        state.view_changed.connect(lambda *_: self._show_result(self.shown))
        self.table.setCurrentCell(0, SCENE_COL)
        self._update()
        self._inputs_changed()

    # ------------------------------------------------------------------------- building
    def _build_form(self, records_folder: Path) -> None:
        self.reviewer = QLineEdit()
        self.reviewer.setPlaceholderText("your name")
        self.model_hash = QLineEdit()
        self.model_hash.setPlaceholderText("sha256:… (filled from the checkpoint compared)")
        self.checkpoint = QLineEdit(str(DEFAULT_CHECKPOINT))
        self.quant = QPlainTextEdit(json.dumps(DEFAULT_QUANT, indent=1))
        self.quant.setMaximumHeight(70)
        self.folder = QLineEdit(str(records_folder))
        self.notes = QLineEdit()
        self.notes.setPlaceholderText("overall notes")
        self.form = QFormLayout()
        self.form.addRow("Reviewer", self.reviewer)
        self.form.addRow("Model hash", self.model_hash)
        self.form.addRow("Checkpoint", self._with_browse(self.checkpoint, self._browse_model))
        self.form.addRow("Quantization (JSON)", self.quant)
        self.form.addRow("Records folder", self._with_browse(self.folder, self._browse))
        self.form.addRow("Notes", self.notes)

    @staticmethod
    def _with_browse(edit: QLineEdit, slot: Callable[[], None]) -> QHBoxLayout:
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(slot)
        row = QHBoxLayout()
        row.addWidget(edit, 1)
        row.addWidget(browse)
        return row

    def _build_table(self) -> None:
        self.table = QTableWidget(len(self.scenes), 4)
        self.table.setHorizontalHeaderLabels(["scene", "verdict", "FP16 vs INT8", "note"])
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verdicts: dict[str, QComboBox] = {}
        for r, scene in enumerate(self.scenes):
            item = QTableWidgetItem(scene)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(r, SCENE_COL, item)
            combo = QComboBox()
            for v in ("", "approved", "rejected"):
                combo.addItem(v or "— undecided", v)
            combo.currentIndexChanged.connect(lambda *_: self._update())
            self.verdicts[scene] = combo
            self.table.setCellWidget(r, VERDICT_COL, combo)
            m = QTableWidgetItem("")
            m.setFlags(m.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(r, FIGURES_COL, m)
            self.table.setItem(r, NOTE_COL, QTableWidgetItem(""))
        hdr = self.table.horizontalHeader()
        hdr.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hdr.setStretchLastSection(True)
        self.table.currentCellChanged.connect(lambda *_: self._scene_changed())
        self.sign_button = QPushButton("Write sign-off record")
        self.sign_button.clicked.connect(self.sign)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.records = QListWidget()

    def _build_compare(self) -> None:
        self.title = QLabel("")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.model_line = QLabel("")
        self.model_line.setTextFormat(Qt.TextFormat.RichText)
        self.model_line.setWordWrap(True)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Compute the selected scene (again, after an error)")
        self.compare_button.clicked.connect(self.compare_selected)
        self.all_button = QPushButton("Compare all scenes")
        self.all_button.clicked.connect(self.compare_all)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.views: dict[str, ImagePane] = {
            "reference": ImagePane("reference", "FP16 (emulated)"),
            "candidate": ImagePane("candidate", "INT8 (emulated)"),
            "difference": ImagePane("difference", "INT8 − FP16", "CET-D1A"),
        }
        master = self.views["reference"].view
        for pane in self.views.values():
            if pane.view is not master:
                pane.view.setXLink(master)
                pane.view.setYLink(master)
            pane.set_message("select a scene")
        self.worst = QTableWidget(0, 6)
        self.worst.setHorizontalHeaderLabels(["rank", "tile", "x, y", "max |Δ|", "RMS", "PSNR dB"])
        self.worst.verticalHeader().setVisible(False)
        self.worst.verticalHeader().setDefaultSectionSize(22)
        self.worst.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.worst.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        whdr = self.worst.horizontalHeader()
        whdr.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        whdr.setStretchLastSection(True)
        self.worst.cellClicked.connect(lambda row, _col: self.zoom_to_tile(row))

    def _layout(self) -> None:
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(4, 4, 4, 4)
        ll.addLayout(self.form)
        ll.addWidget(self.table, 3)
        row = QHBoxLayout()
        row.addWidget(self.sign_button)
        row.addWidget(self.status, 1)
        ll.addLayout(row)
        ll.addWidget(QLabel("<b>Records in folder</b> (gate check for the hash + config above)"))
        ll.addWidget(self.records, 1)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(4, 4, 4, 4)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        for b in (self.compare_button, self.all_button, self.cancel_button):
            head.addWidget(b)
        rl.addLayout(head)
        rl.addWidget(self.model_line)
        rl.addWidget(self.progress)
        rl.addWidget(self.message)
        grid = QGridLayout()
        grid.setSpacing(3)
        grid.addWidget(self.views["reference"], 0, 0)
        grid.addWidget(self.views["candidate"], 0, 1)
        grid.addWidget(self.views["difference"], 1, 0)
        worst_box = QWidget()
        wl = QVBoxLayout(worst_box)
        wl.setContentsMargins(6, 2, 2, 2)
        self.worst_title = QLabel("<b>Worst tiles</b>")
        wl.addWidget(self.worst_title)
        wl.addWidget(self.worst, 1)
        hint = QLabel(
            "Per tile: its own output before blending (what the device's detail model "
            "returns), INT8 − FP16 over 3 channels; linear units, 1.0 = RAW12 clip; PSNR "
            "peak 1.0. Red: worst tile, dashed: next. Click a row to zoom there."
        )
        hint.setWordWrap(True)
        hint.setStyleSheet(f"color: {MUTED};")
        wl.addWidget(hint)
        grid.addWidget(worst_box, 1, 1)
        for i in range(2):
            grid.setColumnStretch(i, 1)
            grid.setRowStretch(i, 1)
        rl.addLayout(grid, 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 5)
        split.setSizes([540, 900])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # --------------------------------------------------------------------------- form
    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Sign-off records folder", self.folder.text())
        if path:
            self.folder.setText(path)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Checkpoint to compare", self.checkpoint.text(), "Checkpoints (*.pt)"
        )
        if path:
            self.checkpoint.setText(path)

    def quantization(self) -> dict[str, object] | None:
        """The quantization config, or None while the JSON is not an object."""
        try:
            obj = json.loads(self.quant.toPlainText())
        except ValueError:
            return None
        return obj if isinstance(obj, dict) and obj else None

    def quant_spec(self) -> QuantSpec | None:
        """The validated config (None while it is not a supported one)."""
        config = self.quantization()
        if config is None:
            return None
        try:
            return QuantSpec.from_config(dict(config))
        except ConfigError:
            return None

    def set_verdict(self, scene: str, verdict: str, note: str = "") -> None:
        """Set one scene's verdict and note (what a reviewer does by hand)."""
        combo = self.verdicts[scene]
        combo.setCurrentIndex(combo.findData(verdict))
        item = self.table.item(self.scenes.index(scene), NOTE_COL)
        if item is None:
            item = QTableWidgetItem()
            self.table.setItem(self.scenes.index(scene), NOTE_COL, item)
        item.setText(note)

    def _missing(self) -> list[str]:
        out = []
        if not self.reviewer.text().strip():
            out.append("reviewer")
        if not self.model_hash.text().strip():
            out.append("model hash")
        if self.quantization() is None:
            out.append("quantization config (a JSON object)")
        undecided = [s for s, c in self.verdicts.items() if not c.currentData()]
        if undecided:
            out.append(f"verdicts for {len(undecided)} scene(s)")
        return out

    def _update(self) -> None:
        missing = self._missing()
        self.sign_button.setEnabled(not missing)
        if missing:
            self.status.setText("needs: " + ", ".join(missing))
        self._list_records()

    def _note(self, row: int) -> str:
        """The reviewer's note of table row ``row`` (empty when the cell has no item)."""
        item = self.table.item(row, NOTE_COL)
        return "" if item is None else item.text()

    def record_metrics(self, scene: str) -> dict[str, float]:
        """The figures a record written now carries for ``scene``: those compared for the
        model hash in the form and the config (empty when not compared)."""
        result = self.result_for(scene)
        if result is None:
            return {}
        if normalize_model_hash(self.model_hash.text()) != normalize_model_hash(result.model_hash):
            return {}
        return result.figures

    def sign(self) -> Path | None:
        """Write the record; returns its path (None when something is missing)."""
        quant = self.quantization()
        if self._missing() or quant is None:
            return None
        verdicts = [
            SceneVerdict(s, self.verdicts[s].currentData(), self.record_metrics(s), self._note(i))
            for i, s in enumerate(self.scenes)
        ]
        try:
            record = make_record(
                self.reviewer.text(),
                self.model_hash.text(),
                quant,
                verdicts,
                notes=self.notes.text(),
            )
            path = write_record(record, Path(self.folder.text()))
        except (ValueError, OSError, Linear48Error) as err:
            self.state.notify("error", f"sign-off not written: {err}")
            return None
        self.last_path = path
        ok, _ = gate_accepts(record, record.model_hash, quant, self.scenes)
        with_figures = sum(1 for v in verdicts if v.metrics)
        self.status.setText(
            f"wrote {path.name} — export gate would {'ACCEPT' if ok else 'REFUSE'}; "
            f"figures for {with_figures} of {len(verdicts)} scenes"
        )
        self.state.notify("info", f"sign-off record written: {path}")
        self._list_records()
        return path

    def _list_records(self) -> None:
        self.records.clear()
        quant = self.quantization() or {}
        for path, rec in find_records(Path(self.folder.text())):
            if isinstance(rec, str):
                self.records.addItem(f"✗ {path.name}: {rec}")
                continue
            ok, why = gate_accepts(rec, self.model_hash.text().strip(), quant, self.scenes)
            mark = "✓ accepted" if ok else "✗ " + (why[0] if why else "")
            self.records.addItem(f"{path.name} — {rec.reviewer}, {rec.date} — {mark}")
        if self.records.count() == 0:
            empty = QListWidgetItem(f"no sign-off records in {self.folder.text()} yet")
            empty.setFlags(Qt.ItemFlag.NoItemFlags)
            self.records.addItem(empty)

    # ---------------------------------------------------------------------- comparison
    def current_scene(self) -> str:
        """The scene selected in the verdict table."""
        return self.scenes[max(0, self.table.currentRow())]

    def select_scene(self, scene: str) -> None:
        """Select ``scene`` in the verdict table (shows or computes its comparison)."""
        self.table.setCurrentCell(self.scenes.index(scene), SCENE_COL)

    def _checkpoint_key(self) -> str:
        return str(Path(self.checkpoint.text().strip()).expanduser())

    def result_for(self, scene: str) -> SceneComparison | None:
        """The cached comparison of ``scene`` for the checkpoint and config in the form."""
        spec = self.quant_spec()
        model = self.models.get(self._checkpoint_key())
        if spec is None or model is None:
            return None
        return self.results.get((model.hash, spec.hash, scene))

    def idle(self) -> bool:
        """No comparison running or queued."""
        return self.task is None and not self.queue and not self._kick.isActive()

    def compare_selected(self) -> None:
        """Compare the selected scene now (also while the tab is hidden; retries a failure)."""
        self._forced = True
        spec = self.quant_spec()
        if spec is not None:
            self.failed.pop((self._checkpoint_key(), spec.hash, self.current_scene()), None)
        self._pump()

    def compare_all(self) -> None:
        """Queue every scene that has no comparison yet (selected one first)."""
        current = self.current_scene()
        order = [current] + [s for s in self.scenes if s != current]
        self.queue = [s for s in order if self.result_for(s) is None]
        spec = self.quant_spec()
        if spec is not None:
            for s in self.queue:
                self.failed.pop((self._checkpoint_key(), spec.hash, s), None)
        self._pump()

    def cancel(self) -> None:
        """Stop the running comparison at its next tile and drop the queue."""
        self.queue.clear()
        self._forced = False
        if self.task is not None:
            self.task.cancel()

    def _scene_changed(self) -> None:
        self._show_current()
        self._pump()

    def _inputs_changed(self) -> None:
        """Checkpoint or config edited: show what is cached for them, compute the rest."""
        spec = self.quant_spec()
        mode = _label(spec.mode) if spec else "INT8"
        self.views["candidate"].set_title(f"{mode} (emulated)")
        self.views["difference"].set_title(f"{mode} − FP16")
        self.table.setHorizontalHeaderItem(
            FIGURES_COL, QTableWidgetItem(f"FP16 vs {mode}:\nPSNR · max |Δ| · worst tile")
        )
        self._fill_figures()
        self._show_current()
        self._pump()

    def _fill_figures(self) -> None:
        for r, scene in enumerate(self.scenes):
            result = self.result_for(scene)
            item = self.table.item(r, FIGURES_COL)
            if item is None:
                continue
            if result is None:
                item.setText("— not compared yet")
                item.setForeground(QBrush(QColor(MUTED)))
                item.setToolTip("")
            else:
                item.setText(figures_text(result))
                item.setForeground(QBrush(QColor("#e3e3e3")))
                item.setToolTip(
                    "\n".join(f"{k}: {v:.4g}" for k, v in sorted(result.figures.items()))
                )

    def _show_current(self) -> None:
        scene = self.current_scene()
        result = self.result_for(scene)
        if result is not None:
            self._show_result(result)
            self._set_message("")
            return
        self._show_result(None)
        spec = self.quant_spec()
        if spec is None:
            config = self.quantization()
            why = "not a JSON object"
            if config is not None:
                try:
                    QuantSpec.from_config(dict(config))
                except ConfigError as err:
                    why = str(err)
            self._set_message(f"Cannot compare: quantization config {why}.", ERROR)
            return
        failure = self.failed.get((self._checkpoint_key(), spec.hash, scene))
        if failure:
            self._set_message(f"{scene}: {failure}", ERROR)
        elif self.task is None and not self.isVisible() and not self._forced:
            self._set_message(f"{scene}: compared when this tab is shown.", MUTED)

    def _set_message(self, text: str, colour: str = MUTED) -> None:
        self.message.setText(text)
        self.message.setStyleSheet(f"color: {colour};")
        self.message.setVisible(bool(text))

    def _next_scene(self) -> str | None:
        """The next scene to compute for the form's inputs (None: nothing to do)."""
        spec = self.quant_spec()
        if spec is None:
            return None
        path = self._checkpoint_key()
        wanted = [self.current_scene()] if (self.isVisible() or self._forced) else []
        for scene in wanted + self.queue:
            if self.result_for(scene) is None and (path, spec.hash, scene) not in self.failed:
                return scene
        return None

    def _pump(self) -> None:
        """Start the next comparison when none is running."""
        if self.task is not None:
            return
        scene = self._next_scene()
        spec = self.quant_spec()
        if scene is None or spec is None:
            self.queue.clear()
            self._forced = False
            self._show_progress(None)
            self._show_current()  # clears the last progress line
            return
        self._start(scene, spec)

    def _start(self, scene: str, spec: QuantSpec) -> None:
        path = self._checkpoint_key()
        model = self.models.get(path)
        config = dict(spec.config)
        size, seed = self.raw12_size, self.seed
        tile_px, overlap_px = self.tile_px, self.overlap_px

        def task(progress: ProgressCallback, cancel: CancelToken) -> Any:
            loaded = model
            if loaded is None:
                progress(Progress("model", 0, 1, f"loading {Path(path).name}"))
                loaded = load_model(path)
            result = compare_scene(
                loaded,
                config,
                scene,
                raw12_size=size,
                seed=seed,
                tile_px=tile_px,
                overlap_px=overlap_px,
                progress=progress,
                cancel=cancel,
            )
            return loaded, result

        key = (path, spec.hash, scene)
        self.task_key = key
        self.task = self.workers.submit(
            f"signoff {scene}",
            task,
            on_done=lambda out: self._done(key, out),
            on_error=lambda err: self._failed(key, err),
            on_progress=lambda event: self._on_progress(scene, spec.mode, event),
        )
        self._show_progress(Progress("start", 0, 1, f"{scene}: starting"))

    def _done(self, key: tuple[str, str, str], out: tuple[LoadedModel, SceneComparison]) -> None:
        path, _, scene = key
        loaded, result = out
        self.task = self.task_key = None
        self.models[path] = loaded
        self.results[(result.model_hash, result.quantization_hash, scene)] = result
        if scene in self.queue:
            self.queue.remove(scene)
        if not self.model_hash.text().strip() and path == self._checkpoint_key():
            self.model_hash.setText(f"sha256:{loaded.hash}")
        self._fill_figures()
        if scene == self.current_scene():
            self._forced = False
            self._show_current()
        self._pump()

    def _failed(self, key: tuple[str, str, str], err: BaseException) -> None:
        self.task = self.task_key = None
        self.queue.clear()
        self._forced = False
        text = describe_error(err)
        if not isinstance(err, CancelledError):
            self.failed[key] = text
            log.warning("sign-off comparison of %s failed: %s", key[2], text)
        self._show_progress(None)
        self._show_current()
        if isinstance(err, CancelledError):
            self._set_message(f"{key[2]}: comparison cancelled.", WARN)

    def _on_progress(self, scene: str, mode: str, event: Progress) -> None:
        self._show_progress(event, scene, mode)

    def _show_progress(self, event: Progress | None, scene: str = "", mode: str = "") -> None:
        busy = event is not None
        self.progress.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        if event is None:
            return
        self.progress.setRange(0, max(1, event.total))
        self.progress.setValue(event.done)
        if event.stage == "calibrate":
            what = (
                f"calibrating {_label(mode)} activation scales (once per model and config), "
                f"{event.done}/{event.total} scenes — {event.message}"
            )
        elif event.stage in ("fp16", mode):
            what = f"{_label(event.stage)} emulation, tile {event.done}/{event.total}"
        else:
            what = event.message
        queued = f" (then {len(self.queue) - 1} more)" if len(self.queue) > 1 else ""
        self._set_message(f"{scene or 'comparison'}: {what}{queued}", MUTED)

    # ------------------------------------------------------------------------- display
    def _show_header(self) -> None:
        result = self.shown
        if result is None:
            self.title.setText(f"<b>{self.current_scene()}</b>")
            self.model_line.setText("")
            return
        self.title.setText(
            f"<b>{result.scene}</b> — FP16 vs {_label(result.candidate)} (emulated), RAW12 "
            f"{result.raw12_size[0]}×{result.raw12_size[1]} seed {result.seed}, tiles "
            f"{result.tile_px} px / overlap {result.overlap_px}"
        )
        typed = normalize_model_hash(self.model_hash.text())
        line = f"model sha256:{result.model_hash[:16]}… · config {result.quantization_hash[:12]}…"
        if typed and typed != normalize_model_hash(result.model_hash):
            line += (
                " — <span style='color:#ffb454'>the Model hash above is not this checkpoint's:"
                " its figures are not written into the record</span>"
            )
        self.model_line.setText(line)

    def _show_result(self, result: SceneComparison | None) -> None:
        """Fill the three views and the worst-tile list (None: empty them)."""
        previous = self.shown
        self.shown = result
        self._show_header()
        for pane in self.views.values():
            self._clear_outlines(pane)
        if result is None:
            for pane in self.views.values():
                pane.set_message(f"{self.current_scene()}: not compared yet")
                pane.set_info("")
            self.worst.setRowCount(0)
            return
        view = self.state.view
        m = (
            stored_to_srgb_matrix(result.color).astype(np.float32)
            if result.color is not None
            else np.eye(3, dtype=np.float32)
        )
        self.to_srgb = m
        ev, soft = view.exposure_ev, view.soft_highlights

        def rgb(c: np.ndarray) -> np.ndarray:
            return render_rgb(c, m, exposure_ev=ev, soft_highlights=soft)

        c = result.comparison
        self.views["reference"].set_source(result.reference_camera48, rgb)
        h, w = result.reference_camera48.shape[1:]
        self.views["reference"].set_info(f"the reference · {w}×{h} px")
        self.views["candidate"].set_source(result.candidate_camera48, rgb)
        self.views["candidate"].set_info(f"PSNR {_db(c.psnr_db)} vs FP16")
        lim = symmetric_levels(result.difference, percentile=99.9, floor=1e-5)
        self.diff_limit = lim
        lut = self.views["difference"].colormap_lut()
        self.views["difference"].set_source(
            result.difference, lambda d: render_scalar(d, -lim, lim, lut), levels=(-lim, lim)
        )
        self.views["difference"].set_info(
            f"max |Δ| {c.max_abs:.1e} · colour ±{lim:.1e}",
            f"{_label(result.candidate)} − FP16 per pixel, the channel where it is largest "
            f"(linear, 1.0 = RAW12 clip): max |Δ| {c.max_abs:.3e}, RMS {c.rms:.3e}, PSNR "
            f"{_db(c.psnr_db)}; colours span ±{lim:.2e} (99.9th percentile of |Δ|)",
        )
        self._show_worst(result)
        if previous is None or previous.reference_camera48.shape != result.reference_camera48.shape:
            self.fit()
            QTimer.singleShot(0, self.fit)  # again once the layout has its final size

    def _clear_outlines(self, pane: ImagePane) -> None:
        for item in self.tile_outlines.pop(pane.key, []):
            pane.view.removeItem(item)
        for label in self._rank_labels.pop(pane.key, []):
            pane.view.removeItem(label)

    def worst_tiles(self) -> list[TileDiff]:
        """The tiles listed under the views, worst first."""
        return [] if self.shown is None else self.shown.comparison.worst_tiles(WORST_LISTED)

    def _show_worst(self, result: SceneComparison) -> None:
        tiles = result.comparison.worst_tiles(WORST_LISTED)
        self.worst_title.setText(
            f"<b>Worst tiles</b> of {len(result.comparison.tiles)} (by max |Δ|, "
            f"{_label(result.candidate)} − FP16)"
        )
        self.worst.setRowCount(len(tiles))
        for r, t in enumerate(tiles):
            cells = [
                str(r + 1),
                f"#{t.index}",
                f"{t.x0}, {t.y0}",
                f"{t.max_abs:.3e}",
                f"{t.rms:.2e}",
                _db(t.psnr_db).replace(" dB", ""),
            ]
            tip = f"tile #{t.index}: origin x {t.x0}, y {t.y0}, {t.w}×{t.h} px (48MP)"
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if r == 0:
                    item.setForeground(QBrush(WORST_PEN.color()))
                self.worst.setItem(r, col, item)
        for pane in self.views.values():
            items: list[QGraphicsRectItem] = []
            labels = []
            for r, t in reversed(list(enumerate(tiles[:WORST_OUTLINED]))):
                rect = QGraphicsRectItem(QRectF(t.x0, t.y0, t.w, t.h))
                rect.setPen(WORST_PEN if r == 0 else NEXT_PEN)
                rect.setZValue(10 - r)
                pane.view.addItem(rect, ignoreBounds=True)
                items.insert(0, rect)
                label = pg.TextItem(str(r + 1), color=WORST_PEN.color() if r == 0 else "#ffbe3c")
                label.setPos(t.x0 + 2, t.y0 + 1)
                label.setZValue(11)
                pane.view.addItem(label, ignoreBounds=True)
                labels.append(label)
            self.tile_outlines[pane.key] = items
            self._rank_labels[pane.key] = labels

    def fit(self) -> None:
        """Show the whole frame in the linked views."""
        if self.shown is None:
            return
        h, w = self.shown.reference_camera48.shape[1:]
        self.views["reference"].view.setRange(QRectF(0, 0, w, h), padding=0.0)

    def zoom_to_tile(self, row: int) -> None:
        """Zoom the linked views to the tile in row ``row`` of the worst-tile list."""
        tiles = self.worst_tiles()
        if not 0 <= row < len(tiles):
            return
        t = tiles[row]
        pad = max(t.w, t.h) * 0.1
        self.views["reference"].view.setRange(
            QRectF(t.x0 - pad, t.y0 - pad, t.w + 2 * pad, t.h + 2 * pad), padding=0.0
        )

    # ---------------------------------------------------------------------- lifecycle
    def showEvent(self, event: QShowEvent) -> None:
        """Compute the selected scene once the tab is on screen; watch the window close."""
        super().showEvent(event)
        top = self.window()
        if self._window_filter is not top:
            top.installEventFilter(self)
            self._window_filter = top
        self._show_current()
        self._pump()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The window closing stops the comparisons (nothing is written by them)."""
        if watched is self._window_filter and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop the comparisons when the panel itself is closed (a top-level panel)."""
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Cancel the running comparison and drop the queue (the pool too if it is ours)."""
        self.cancel()
        if self.own_workers:
            self.workers.shutdown()
