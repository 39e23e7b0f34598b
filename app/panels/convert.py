"""Convert panel: method and options, output path, progress with cancel, last decision."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QAction, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.state import AppState, BusyTask, ConvertSettings
from core.demosaic import METHODS as DEMOSAIC_METHODS
from core.pipeline import METHODS, ConvertOptions

#: How the guidance demosaic methods (``core.demosaic.METHODS``) are shown.
DEMOSAIC_TEXT = {
    "malvar": "Malvar-He-Cutler",
    "dht": "DHT (LibRaw)",
    "aahd": "AAHD (LibRaw)",
    "learned": "learned CNN",
}

FORMATS = (
    ("uint16", "uint16 lossless JPEG (all readers)"),
    ("float32", "float32 HDR (no dcraw, RawTherapee 5.9, LibRaw < 0.21)"),
)
LAYOUTS = (("ljpeg-tiles", "lossless-JPEG tiles"), ("strips", "uncompressed strips"))


class ConvertPanel(QWidget):
    """Edits ``state.convert``; shows ``state.busy`` and the last result's decision."""

    def __init__(self, state: AppState, actions: dict[str, QAction]) -> None:
        super().__init__()
        self.state = state
        self._blocking = False
        self.method = QComboBox()
        for m in METHODS:
            self.method.addItem(m, m)
        self.method.setToolTip("auto = best available method, with safety-check fallbacks")
        self.format = QComboBox()
        for key, text in FORMATS:
            self.format.addItem(text, key)
        self.layout_box = QComboBox()
        for key, text in LAYOUTS:
            self.layout_box.addItem(text, key)
        self.default_demosaic = ConvertOptions().demosaic
        self.demosaic = QComboBox()
        for key in DEMOSAIC_METHODS:
            default = " (default)" if key == self.default_demosaic else ""
            self.demosaic.addItem(f"{DEMOSAIC_TEXT.get(key, key)}{default}", key)
        self.demosaic.setToolTip(
            "demosaic of the RAW12 guidance the model reads (recorded in the DNG's provenance "
            "as guide_demosaic); the default is what the shipped model was trained with. "
            "The baselines do not demosaic."
        )
        self.output = QLineEdit()
        self.output.setPlaceholderText("beside RAW12: <name>_linear48.dng")
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output, 1)
        out_row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Method", self.method)
        form.addRow("Format", self.format)
        form.addRow("Layout", self.layout_box)
        form.addRow("Demosaic (guide)", self.demosaic)
        form.addRow("Output", out_row)
        self.convert_button = QToolButton()
        self.convert_button.setDefaultAction(actions["convert"])
        self.cancel_button = QToolButton()
        self.cancel_button.setDefaultAction(actions["cancel"])
        buttons = QHBoxLayout()
        buttons.addWidget(self.convert_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        self.decision = QLabel("")
        self.decision.setWordWrap(True)
        self.decision.setStyleSheet("color: #c9ccd1;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.decision)
        layout.addStretch(1)
        for w in (self.method, self.format, self.layout_box, self.demosaic):
            w.currentIndexChanged.connect(self._edited)
        self.output.editingFinished.connect(self._edited)
        state.convert_changed.connect(self._sync)
        state.busy_changed.connect(self._busy)
        state.result_changed.connect(lambda *_: self._show_decision())
        state.loaded_changed.connect(lambda *_: self._show_decision())
        self._sync(state.convert)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Output DNG", self.output.text(), "DNG (*.dng)")
        if path:
            self.output.setText(path)
            self._edited()

    def _edited(self) -> None:
        if self._blocking:
            return
        text = self.output.text().strip()
        self.state.set_convert(
            method=self.method.currentData(),
            sample_format=self.format.currentData(),
            layout=self.layout_box.currentData(),
            output_path=Path(text) if text else None,
            demosaic=self.demosaic.currentData(),
        )

    def _sync(self, s: ConvertSettings) -> None:
        self._blocking = True
        try:
            self.method.setCurrentIndex(max(0, self.method.findData(s.method)))
            self.format.setCurrentIndex(max(0, self.format.findData(s.sample_format)))
            self.layout_box.setCurrentIndex(max(0, self.layout_box.findData(s.layout)))
            demosaic = s.demosaic or self.default_demosaic
            self.demosaic.setCurrentIndex(max(0, self.demosaic.findData(demosaic)))
            model = self.layout_box.model()
            strips = model.item(1) if isinstance(model, QStandardItemModel) else None
            if strips is not None:
                strips.setEnabled(s.sample_format == "uint16")
            self.output.setText("" if s.output_path is None else str(s.output_path))
        finally:
            self._blocking = False

    def _busy(self, task: BusyTask | None) -> None:
        if task is None:
            self.progress.setValue(0)
            self.progress.setFormat("idle")
            return
        self.progress.setValue(int(task.fraction * 1000))
        text = f"{task.name}: {task.stage} {task.message}".strip()
        self.progress.setFormat(text.replace("%", "%%") + "  %p%")

    def _show_decision(self) -> None:
        r = self.state.result
        lp = self.state.loaded
        if r is not None:
            d = r.decision
            guide = (r.report.get("provenance") or {}).get("guide_demosaic")
            self.decision.setText(
                f"<b>Wrote</b> {r.output_path.name} ({r.write_info.sample_format}, "
                f"headroom {r.write_info.headroom_ev:.2f} EV)<br>"
                f"<b>Method</b> {d.used} — {d.reason}"
                + (f" (guide demosaic {guide})" if guide else "")
                + "<br>"
                f"<b>Anchor</b> PSNR {r.anchor.psnr_db:.2f} dB, SSIM {r.anchor.ssim:.4f}"
            )
        elif lp is not None and lp.analysis.decision is not None:
            d = lp.analysis.decision
            checks = "; ".join(
                f"{c.name} {'✓' if c.passed else '✗'} {c.value:.3g}"
                for cs in d.checks.values()
                for c in cs
            )
            self.decision.setText(
                f"<b>Preview</b> (nothing written): {d.used} — {d.reason}<br><b>Checks</b> {checks}"
            )
        else:
            self.decision.setText("")
