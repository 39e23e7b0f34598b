"""QA review tab: run the QA set (or a folder of pairs), judge against thresholds,
sort/filter, open a scene in the views, export CSV and Markdown. Diagnostics columns
(exposure, saturation, white-balance shift, local cast against RAW12) have thresholds and a
filter of their own; each diagnostic cell's tooltip holds core's wording."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.analysis import advice_text, diagnostic_lines
from app.pairing import PairEntry, find_pairs
from app.qa import (
    ALIGNMENT_COLUMN,
    COLUMN_KEYS,
    DIAGNOSTIC_COLUMNS,
    DIAGNOSTIC_FILTERS,
    FIRST_DIAGNOSTIC_COLUMN,
    VERDICT_KEYS,
    QaRow,
    QaThresholds,
    checks,
    diagnostic_flags,
    failures,
    run_entries,
    run_simulated,
    sort_value,
    table_rows,
    to_csv,
    to_markdown,
)
from app.state import AppState, BusyTask
from app.workers import TaskHandle, Workers, describe_error
from core.errors import Linear48Error
from core.io.atomic import atomic_write_text
from core.progress import CancelToken, Progress, ProgressCallback

SIZES = ((128, 96), (256, 192), (512, 384), (1008, 756))
VERDICT_COLOURS = {"pass": "#7bd88f", "FAIL": "#ff6b6b", "error": "#ffb454"}
#: Where the "why" column is shown (right after the verdict) and its widest start (the
#: full text is in each cell's tooltip).
WHY_VISUAL_COLUMN = 2
WHY_COLUMN_MAX_PX = 300
#: Colours of the alignment gate column (``app.qa.ALIGNMENT_VERDICTS`` values).
ALIGNMENT_COLOURS = {"passed": "#7bd88f", "FAILED": "#ff6b6b", "unmeasured": "#ffb454"}
#: Colours of judged cells (a failed threshold) and of verdicts other than "well" that do
#: not fail the scene.
FAIL_COLOUR, NOTE_COLOUR = "#ff6b6b", "#ffb454"
#: Item data role holding a row's :func:`app.qa.diagnostic_flags` (column 0).
FLAGS_ROLE = Qt.ItemDataRole.UserRole + 2
#: Which diagnostic explains each diagnostic column (tooltip).
DIAGNOSTIC_TIPS = {
    "exposure": "exposure",
    "saturation": "saturation",
    "wb_temperature_ev": "white balance",
    "wb_tint_ev": "white balance",
    "wb_local_cast_ev": "vs RAW12",
}


def _diagnostic_tips(row: QaRow) -> dict[str, str]:
    """Tooltip of each diagnostic cell: the advice in words, then core's figures."""
    if row.advice is None or row.stability is None:
        return {}
    lines = diagnostic_lines(row.advice, row.stability)
    words = advice_text(row.advice)
    tips: dict[str, str] = {}
    for key, name in DIAGNOSTIC_TIPS.items():
        head = f"{name}: {words[name][0]} — {words[name][1]}\n" if name in words else ""
        tips[key] = f"{head}{name}: {lines.get(name, '')} ({row.advice.method})"
    return tips


class _Filter(QSortFilterProxyModel):
    """Text filter over every cell plus a verdict filter and a diagnostics filter."""

    def __init__(self) -> None:
        super().__init__()
        self.text = ""
        self.verdict = ""
        self.diagnostic = ""

    def filterAcceptsRow(self, row: int, parent: object) -> bool:
        model = self.sourceModel()
        cols = model.columnCount()
        cells = [str(model.index(row, c).data() or "") for c in range(cols)]
        if self.verdict and cells[1] != self.verdict:
            return False
        if self.diagnostic:
            flags = model.index(row, 0).data(FLAGS_ROLE) or ()
            if self.diagnostic not in flags:
                return False
        return not self.text or any(self.text.lower() in c.lower() for c in cells)


class QaPanel(QWidget):
    """The QA review table bound to ``state.qa_rows``."""

    open_entry = Signal(object)

    def __init__(self, state: AppState, workers: Workers, qa_folder: Path) -> None:
        super().__init__()
        self.state, self.workers, self.qa_folder = state, workers, qa_folder
        self.task: TaskHandle | None = None
        self.run_button = QPushButton("Run simulated QA set")
        self.run_button.clicked.connect(self.run_simulated)
        self.size_box = QComboBox()
        for w, h in SIZES:
            self.size_box.addItem(f"RAW12 {w}×{h}", (w, h))
        self.size_box.setCurrentIndex(1)
        folder_button = QPushButton("Evaluate folder…")
        folder_button.clicked.connect(self._choose_folder)
        self.csv_button = QPushButton("Export CSV…")
        self.csv_button.clicked.connect(lambda: self._export("csv"))
        self.md_button = QPushButton("Export Markdown…")
        self.md_button.clicked.connect(lambda: self._export("md"))
        top = QHBoxLayout()
        for widget in (self.run_button, self.size_box, folder_button):
            top.addWidget(widget)
        top.addStretch(1)
        top.addWidget(self.csv_button)
        top.addWidget(self.md_button)
        t = QaThresholds()
        self.spins: dict[str, QDoubleSpinBox] = {}
        thr = QHBoxLayout()
        thr.addWidget(QLabel("<b>Thresholds</b>"))
        for key, label, lo, hi, step, dec in (
            ("min_anchor_psnr_db", "anchor PSNR ≥", 0, 80, 0.5, 1),
            ("max_halo_ev", "halo ≤", 0, 1, 0.005, 3),
            ("max_ltm_residual_ev", "LTM resid. ≤", 0, 4, 0.01, 2),
            ("min_truth_psnr_db", "truth PSNR ≥", 0, 80, 0.5, 1),
        ):
            spin = QDoubleSpinBox()
            spin.setRange(lo, hi)
            spin.setSingleStep(step)
            spin.setDecimals(dec)
            spin.setValue(getattr(t, key))
            spin.valueChanged.connect(lambda *_: self.refresh())
            self.spins[key] = spin
            thr.addWidget(QLabel(label))
            thr.addWidget(spin)
        self.allow_fallback = QCheckBox("fallback passes")
        self.allow_fallback.setChecked(t.allow_fallback)
        self.allow_fallback.toggled.connect(lambda *_: self.refresh())
        thr.addWidget(self.allow_fallback)
        thr.addStretch(1)
        diag = QHBoxLayout()
        diag.addWidget(QLabel("<b>Diagnostics</b>"))
        for key, label, lo, hi, step, dec in (
            ("max_wb_shift_ev", "WB shift ≤", 0, 4, 0.01, 2),
            ("max_local_cast_ev", "local cast ≤", 0, 4, 0.01, 2),
        ):
            spin = QDoubleSpinBox()
            spin.setRange(lo, hi)
            spin.setSingleStep(step)
            spin.setDecimals(dec)
            spin.setSuffix(" EV")
            spin.setValue(getattr(t, key))
            spin.valueChanged.connect(lambda *_: self.refresh())
            self.spins[key] = spin
            diag.addWidget(QLabel(label))
            diag.addWidget(spin)
        self.verdict_checks: dict[str, QCheckBox] = {}
        for key, label in (
            ("exposure_fails", "exposure must be well"),
            ("saturation_fails", "saturation must be well"),
        ):
            box = QCheckBox(label)
            box.setChecked(getattr(t, key))
            box.setToolTip(
                "off: a verdict other than well is shown in amber but does not fail the scene"
            )
            box.toggled.connect(lambda *_: self.refresh())
            self.verdict_checks[key] = box
            diag.addWidget(box)
        diag.addStretch(1)
        self.filter_text = QLineEdit()
        self.filter_text.setPlaceholderText("filter: scene, tag, verdict, reason…")
        self.filter_verdict = QComboBox()
        for v in ("", "pass", "FAIL", "error"):
            self.filter_verdict.addItem(v or "all verdicts", v)
        self.filter_diagnostic = QComboBox()
        for key, text in DIAGNOSTIC_FILTERS.items():
            self.filter_diagnostic.addItem(text, key)
        self.summary = QLabel("")
        filt = QHBoxLayout()
        filt.addWidget(self.filter_text, 1)
        filt.addWidget(self.filter_verdict)
        filt.addWidget(self.filter_diagnostic)
        filt.addWidget(self.summary)
        self.model = QStandardItemModel()
        self.proxy = _Filter()
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.view = QTableView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(22)
        self.view.doubleClicked.connect(self._open)
        self.filter_text.textChanged.connect(self._filter_edited)
        self.filter_verdict.currentIndexChanged.connect(self._filter_edited)
        self.filter_diagnostic.currentIndexChanged.connect(self._filter_edited)
        hint = QLabel("Double-click a scene to open it in the Inspect views.")
        hint.setStyleSheet("color: #8a8d91;")
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(thr)
        layout.addLayout(diag)
        layout.addLayout(filt)
        layout.addWidget(self.view, 1)
        layout.addWidget(hint)
        state.qa_changed.connect(lambda *_: self.refresh())
        state.busy_changed.connect(lambda *_: self._busy())
        self.refresh()

    def thresholds(self) -> QaThresholds:
        """Thresholds as edited."""
        v = {k: s.value() for k, s in self.spins.items()}
        return QaThresholds(
            min_anchor_psnr_db=v["min_anchor_psnr_db"],
            max_halo_ev=v["max_halo_ev"],
            max_ltm_residual_ev=v["max_ltm_residual_ev"],
            min_truth_psnr_db=v["min_truth_psnr_db"],
            allow_fallback=self.allow_fallback.isChecked(),
            max_wb_shift_ev=v["max_wb_shift_ev"],
            max_local_cast_ev=v["max_local_cast_ev"],
            exposure_fails=self.verdict_checks["exposure_fails"].isChecked(),
            saturation_fails=self.verdict_checks["saturation_fails"].isChecked(),
        )

    def refresh(self) -> None:
        """Rebuild the table from ``state.qa_rows`` and the thresholds."""
        rows = self.state.qa_rows
        t = self.thresholds()
        header, body = table_rows(rows, t)
        self.model.clear()
        # metric and diagnostic headers on two lines, first word above ("anchor" / "PSNR
        # dB"): narrow columns keep more of them on screen; the exports keep one-line headers
        self.model.setHorizontalHeaderLabels(
            [
                h.replace(" ", "\n", 1) if COLUMN_KEYS[c] is not None else h
                for c, h in enumerate(header)
            ]
        )
        for r, (row, cells) in enumerate(zip(rows, body, strict=True)):
            judged = checks(row, t)
            tips = _diagnostic_tips(row)
            items = []
            for c, text in enumerate(cells):
                item = QStandardItem(text)
                sort_key: object = text
                key = COLUMN_KEYS[c]
                if key is not None:
                    sort_key = sort_value(row, key)
                    if key not in VERDICT_KEYS:
                        item.setTextAlignment(
                            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                        )
                    passed, _ = judged.get(key, (True, ""))
                    if not passed:
                        item.setForeground(QBrush(QColor(FAIL_COLOUR)))
                    elif key in VERDICT_KEYS and text in ("under", "over"):
                        item.setForeground(QBrush(QColor(NOTE_COLOUR)))
                    if key in tips:
                        item.setToolTip(tips[key])
                item.setData(sort_key, Qt.ItemDataRole.UserRole)
                item.setData(r, Qt.ItemDataRole.UserRole + 1)
                if c == 0:
                    item.setData(sorted(diagnostic_flags(row, t)), FLAGS_ROLE)
                if c == 1:
                    item.setForeground(QBrush(QColor(VERDICT_COLOURS.get(text, "#e3e3e3"))))
                if c == ALIGNMENT_COLUMN:
                    item.setForeground(QBrush(QColor(ALIGNMENT_COLOURS.get(text, "#a8abb0"))))
                    item.setToolTip("\n".join([row.alignment_note, *row.alignment_reasons]).strip())
                if c == len(cells) - 2:  # tags: often cut by the column width
                    item.setToolTip(text)
                if c == len(cells) - 1:  # why, and why this method
                    method = f"method: {row.method} — {row.reason}" if row.reason else ""
                    item.setToolTip("\n".join(x for x in (text, method) if x))
                items.append(item)
            self.model.appendRow(items)
        hdr = self.view.horizontalHeader()
        hdr.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        hdr.setStretchLastSection(True)
        # "why" is shown right after the verdict (the exports keep it last) and capped, so
        # the reason for a FAIL is on screen however many metric columns there are
        why = len(header) - 1
        if hdr.visualIndex(why) != WHY_VISUAL_COLUMN:
            hdr.moveSection(hdr.visualIndex(why), WHY_VISUAL_COLUMN)
        # the diagnostics (verdict-like, as the alignment gate) are shown right after the
        # gate, before the metrics; the exports keep them after the metrics
        for i in range(len(DIAGNOSTIC_COLUMNS)):
            logical = FIRST_DIAGNOSTIC_COLUMN + i
            target = hdr.visualIndex(ALIGNMENT_COLUMN) + 1 + i
            if hdr.visualIndex(logical) != target:
                hdr.moveSection(hdr.visualIndex(logical), target)
        hdr.setSectionResizeMode(why, QHeaderView.ResizeMode.Interactive)
        self.view.resizeColumnToContents(why)
        hdr.resizeSection(why, min(max(hdr.sectionSize(why), 60), WHY_COLUMN_MAX_PX))
        n_pass = sum(1 for r in rows if not failures(r, t))
        self.summary.setText(f"{n_pass} / {len(rows)} pass" if rows else "no scenes yet")
        has = bool(rows)
        self.csv_button.setEnabled(has)
        self.md_button.setEnabled(has)

    def _filter_edited(self) -> None:
        self.proxy.text = self.filter_text.text()
        self.proxy.verdict = self.filter_verdict.currentData()
        self.proxy.diagnostic = self.filter_diagnostic.currentData()
        self.proxy.invalidate()

    def _busy(self) -> None:
        self.run_button.setEnabled(self.state.busy is None)

    # -- running ------------------------------------------------------------------------
    def run_simulated(self) -> None:
        """Write and evaluate the simulator's QA set in the background."""
        size = self.size_box.currentData()
        folder = self.qa_folder
        self._run(lambda p, c: run_simulated(folder, size=size, progress=p, cancel=c))

    def run_folder(self, folder: Path) -> None:
        """Evaluate every pair found under ``folder``."""

        def task(p: ProgressCallback, c: CancelToken) -> list[QaRow]:
            entries, problems = find_pairs([folder])
            rows = run_entries(entries, progress=p, cancel=c)
            return rows + [QaRow(text.split(":")[0], None, error=text) for text in problems]

        self._run(task)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of capture pairs")
        if path:
            self.run_folder(Path(path))

    def _run(self, fn: Callable[..., list[QaRow]]) -> None:
        if self.state.busy is not None:
            return
        self.state.set_busy(BusyTask("qa", "starting"))

        def progress(ev: Progress) -> None:
            self.state.set_busy(BusyTask("qa", ev.stage, ev.fraction, ev.message))

        def done(rows: list[QaRow]) -> None:
            self.state.set_busy(None)
            self.task = None
            self.state.set_qa_rows(rows)
            self.state.notify("info", f"QA: {len(rows)} scenes evaluated")

        def failed(err: BaseException) -> None:
            self.state.set_busy(None)
            self.task = None
            self.state.notify(
                "warning" if "Cancelled" in describe_error(err) else "error", describe_error(err)
            )

        self.task = self.workers.submit(
            "qa", fn, on_done=done, on_error=failed, on_progress=progress
        )

    # -- open / export ------------------------------------------------------------------
    def _open(self, index: object) -> None:
        src = self.proxy.mapToSource(index)  # type: ignore[arg-type]
        r = self.model.item(src.row(), 0).data(Qt.ItemDataRole.UserRole + 1)
        row = self.state.qa_rows[int(r)]
        if row.entry is not None:
            self.open_entry.emit(row.entry)

    def export(self, path: Path, kind: str) -> Path:
        """Write the table (all rows, current thresholds) as CSV or Markdown."""
        t = self.thresholds()
        text = (
            to_csv(self.state.qa_rows, t) if kind == "csv" else to_markdown(self.state.qa_rows, t)
        )
        atomic_write_text(path, text)
        return path

    def _export(self, kind: str) -> None:
        suffix = "csv" if kind == "csv" else "md"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export QA table", f"qa_review.{suffix}", f"*.{suffix}"
        )
        if path:
            try:
                self.export(Path(path), kind)
                self.state.notify("info", f"exported {path}")
            except (OSError, Linear48Error) as err:
                self.state.notify("error", describe_error(err))


def entry_of(row: QaRow) -> PairEntry | None:
    """The pair to open for a QA row."""
    return row.entry
