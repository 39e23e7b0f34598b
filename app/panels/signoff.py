"""INT8 sign-off tab: per-scene verdicts for one model hash + quantization config.

FP16-vs-INT8 comparison needs the model's INT8 emulation (Core ML export, issue 5) wired
into this tab; until it is, the comparison area says so and every scene's metrics stay
empty — the record still captures who decided what, for which exact hash and config,
which is what the export gate checks (:func:`core.signoff.gate_accepts`).
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.qa import qa_scenes
from app.state import AppState
from core.errors import Linear48Error
from core.signoff import (
    SceneVerdict,
    default_quantization,
    find_records,
    gate_accepts,
    make_record,
    write_record,
)

#: What a record signs by default: the canonical w8a8 config the export gate checks.
DEFAULT_QUANT = default_quantization("w8a8")
UNAVAILABLE = (
    "FP16 vs INT8 (emulated) comparison: not shown in the GUI yet (issue 5's INT8 "
    "emulation is not wired into this tab). Verdicts can be recorded; per-scene metrics "
    "stay empty rather than invented."
)


class SignoffPanel(QWidget):
    """Reviewer form, the required scenes with verdict + note, and the records folder."""

    def __init__(self, state: AppState, records_folder: Path) -> None:
        super().__init__()
        self.state = state
        self.scenes = list(qa_scenes())
        self.reviewer = QLineEdit()
        self.reviewer.setPlaceholderText("your name")
        self.model_hash = QLineEdit()
        self.model_hash.setPlaceholderText("sha256:… of the checkpoint")
        self.quant = QPlainTextEdit(json.dumps(DEFAULT_QUANT, indent=1))
        self.quant.setMaximumHeight(80)
        self.folder = QLineEdit(str(records_folder))
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse)
        frow = QHBoxLayout()
        frow.addWidget(self.folder, 1)
        frow.addWidget(browse)
        self.notes = QLineEdit()
        self.notes.setPlaceholderText("overall notes")
        form = QFormLayout()
        form.addRow("Reviewer", self.reviewer)
        form.addRow("Model hash", self.model_hash)
        form.addRow("Quantization config (JSON)", self.quant)
        form.addRow("Records folder", frow)
        form.addRow("Notes", self.notes)
        compare = QLabel(UNAVAILABLE)
        compare.setWordWrap(True)
        compare.setFrameShape(QFrame.Shape.StyledPanel)
        compare.setStyleSheet("color: #c9ccd1; padding: 10px; background: #2a2420;")
        self.table = QTableWidget(len(self.scenes), 4)
        self.table.setHorizontalHeaderLabels(["scene", "verdict", "FP16 vs INT8 metrics", "note"])
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.verdicts: dict[str, QComboBox] = {}
        for r, scene in enumerate(self.scenes):
            item = QTableWidgetItem(scene)
            item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(r, 0, item)
            combo = QComboBox()
            for v in ("", "approved", "rejected"):
                combo.addItem(v or "— undecided", v)
            combo.currentIndexChanged.connect(lambda *_: self._update())
            self.verdicts[scene] = combo
            self.table.setCellWidget(r, 1, combo)
            m = QTableWidgetItem("— (no INT8 output)")
            m.setFlags(m.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.table.setItem(r, 2, m)
            self.table.setItem(r, 3, QTableWidgetItem(""))
        hdr = self.table.horizontalHeader()
        hdr.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hdr.setStretchLastSection(True)
        self.sign_button = QPushButton("Write sign-off record")
        self.sign_button.clicked.connect(self.sign)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.records = QListWidget()
        self.last_path: Path | None = None
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addLayout(form)
        ll.addWidget(compare)
        ll.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addWidget(self.sign_button)
        row.addWidget(self.status, 1)
        ll.addLayout(row)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addWidget(QLabel("<b>Records in folder</b> (gate check for the hash + config above)"))
        rl.addWidget(self.records, 1)
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addWidget(split)
        for w in (self.reviewer, self.model_hash, self.folder):
            w.textChanged.connect(lambda *_: self._update())
        self.quant.textChanged.connect(self._update)
        self._update()

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Sign-off records folder", self.folder.text())
        if path:
            self.folder.setText(path)

    def quantization(self) -> dict[str, object] | None:
        """The quantization config, or None while the JSON is not an object."""
        try:
            obj = json.loads(self.quant.toPlainText())
        except ValueError:
            return None
        return obj if isinstance(obj, dict) and obj else None

    def set_verdict(self, scene: str, verdict: str, note: str = "") -> None:
        """Set one scene's verdict and note (what a reviewer does by hand)."""
        combo = self.verdicts[scene]
        combo.setCurrentIndex(combo.findData(verdict))
        item = self.table.item(self.scenes.index(scene), 3)
        if item is None:
            item = QTableWidgetItem()
            self.table.setItem(self.scenes.index(scene), 3, item)
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
        item = self.table.item(row, 3)
        return "" if item is None else item.text()

    def sign(self) -> Path | None:
        """Write the record; returns its path (None when something is missing)."""
        quant = self.quantization()
        if self._missing() or quant is None:
            return None
        verdicts = [
            SceneVerdict(s, self.verdicts[s].currentData(), {}, self._note(i))
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
        self.status.setText(f"wrote {path.name} — export gate would {'ACCEPT' if ok else 'REFUSE'}")
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
