"""QA review: metrics, tags and pass/fail flags over a set of scenes (Qt-free).

Sources: the simulator's QA set (:data:`QA_SCENES`, written as real DNG pairs with their
ground truth) or a folder of pairs (:func:`app.pairing.find_pairs`). Each scene runs the
pipeline's registration (``core.pipeline.register_pair``, with its alignment gate) and
method choice (``core.pipeline.choose_method``), nothing written, and is measured with
``core.metrics``; ground-truth metrics exist only for simulated pairs. The gate's verdict
and residual misalignment are columns of the table; a failed gate fails the scene (convert
refuses such a pair unless told ``--allow-misaligned``; QA scores it with the global
baseline, as that option would). Thresholds are applied afterwards, so editing them
re-flags the table without re-running.

Diagnostics (issue 7) are columns too: ``core.diagnostics`` on the scene's output as a DNG
reader would render it (:func:`app.analysis.diagnose`, no previews): the exposure and
saturation verdicts, the advised white-balance correction on its temperature / tint axes,
and the worst cell of the white-balance stability map against RAW12 (a local cast).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.analysis import diagnose
from app.pairing import PairEntry
from core.diagnostics import CorrectionAdvice, WbStabilityReport
from core.diagnostics.stability import LOCAL_CAST_EV
from core.io.pair import load_pair
from core.metrics import halo_indicator, truth_metrics
from core.pipeline import (
    FALLBACK_CHAIN,
    ConvertOptions,
    RegistrationOutcome,
    choose_method,
    register_pair,
)
from core.progress import CancelToken, Progress, ProgressCallback, no_progress

log = logging.getLogger(__name__)

#: The QA set (issue 6): backlit, bright windows, mixed lighting, city lights, foliage and
#: the fine-pattern scenes.
QA_NATURAL = ("backlit", "bright_window", "mixed_lighting", "city_lights", "foliage")


def qa_scenes() -> tuple[str, ...]:
    """Scene names of the QA set (natural ones above + every simulator pattern scene)."""
    from core.simulate.scenes import scene_names

    return (*QA_NATURAL, *scene_names("pattern"))


@dataclass(frozen=True)
class QaThresholds:
    """Pass/fail limits (a metric that is missing — NaN — is not judged).

    Attributes:
        min_anchor_psnr_db: F(output) vs RAW12.
        max_halo_ev: halo indicator of the output against the ground truth (simulated) or
            against ProRAW48 after the same global gain (folders).
        max_ltm_residual_ev: LTM residual against the ground truth.
        min_truth_psnr_db: PSNR against the ground truth after a fitted gain.
        allow_fallback: a fallback to the global baseline passes.
        max_wb_shift_ev: the advised white-balance correction's larger axis
            (|temperature|, |tint|, EV); the default lets the estimators' own spread pass
            (README: gains within ±0.05 for about a third of held-out scenes) and fails a
            clearly visible cast.
        max_local_cast_ev: worst stability-map cell (R/G or B/G against RAW12, EV); the
            default is ``core.diagnostics``' local-cast threshold.
        exposure_fails: an exposure verdict other than "well" fails the scene (off by
            default: the verdict describes the capture's look more than the conversion, and
            the estimators are far from certain on unseen scene types).
        saturation_fails: the same for a judged saturation verdict other than "well".
    """

    min_anchor_psnr_db: float = 38.0
    max_halo_ev: float = 0.05
    max_ltm_residual_ev: float = 0.15
    min_truth_psnr_db: float = 30.0
    allow_fallback: bool = True
    max_wb_shift_ev: float = 0.25
    max_local_cast_ev: float = LOCAL_CAST_EV
    exposure_fails: bool = False
    saturation_fails: bool = False


#: Alignment gate verdict shown for each ``RegistrationOutcome.status`` (core.pipeline).
ALIGNMENT_VERDICTS: dict[str, str] = {
    "registered": "passed",
    "unmeasured": "unmeasured",  # too little structure: converted unregistered
    "failed-overridden": "FAILED",
    "skipped": "skipped",
}

#: Metric columns: key -> (header, format).
METRIC_COLUMNS: dict[str, tuple[str, str]] = {
    "residual_rms_px": ("residual px", "{:.3f}"),
    "anchor_psnr_db": ("anchor PSNR dB", "{:.2f}"),
    "anchor_ssim": ("anchor SSIM", "{:.4f}"),
    "halo_ev": ("halo EV", "{:.4f}"),
    "ltm_residual_ev": ("LTM resid. EV", "{:.4f}"),
    "truth_psnr_db": ("truth PSNR dB", "{:.2f}"),
    "gain_swing_ev": ("gain swing EV", "{:.2f}"),
}

#: Diagnostics columns (after the metric columns): key -> (header, format). The verdicts
#: (``exposure``, ``saturation``) are text; the others are values of ``QaRow.metrics``.
DIAGNOSTIC_COLUMNS: dict[str, tuple[str, str]] = {
    "exposure": ("exposure", "{}"),
    "saturation": ("saturation", "{}"),
    "wb_temperature_ev": ("WB temp EV", "{:+.3f}"),
    "wb_tint_ev": ("WB tint EV", "{:+.3f}"),
    "wb_local_cast_ev": ("local cast EV", "{:.3f}"),
}
#: The text (verdict) columns of :data:`DIAGNOSTIC_COLUMNS`.
VERDICT_KEYS = ("exposure", "saturation")
#: Sort order of a verdict column: the well-judged first, "not judged" last.
VERDICT_ORDER = {"well": 0, "under": 1, "over": 2, "not judged": 3, "": 4}


@dataclass(frozen=True)
class QaRow:
    """One scene of the review table.

    Attributes:
        scene: scene or pair name.
        entry: its files (opened in the views on request).
        method: method actually used; ``reason`` why.
        metrics: values of :data:`METRIC_COLUMNS` (NaN when not measurable);
            ``residual_rms_px`` is the registration's remaining misalignment (RMS, 48MP px).
        tags: short labels (scene kind, LTM operator, pgtm, fallback, clipped...).
        error: readable reason when the scene could not be evaluated.
        alignment: the alignment gate's verdict (:data:`ALIGNMENT_VERDICTS` values).
        alignment_note: what registration did, in a sentence (``RegistrationOutcome.note``).
        alignment_reasons: the gate's reasons when it failed.
        advice: ``core.diagnostics`` on the output (None when not computed); its
            temperature / tint are also ``metrics["wb_temperature_ev"]`` / ``["wb_tint_ev"]``.
        stability: the white-balance stability map against RAW12; its worst cell is
            ``metrics["wb_local_cast_ev"]``.
    """

    scene: str
    entry: PairEntry | None
    method: str = ""
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    error: str = ""
    alignment: str = ""
    alignment_note: str = ""
    alignment_reasons: tuple[str, ...] = ()
    advice: CorrectionAdvice | None = None
    stability: WbStabilityReport | None = None

    def verdict(self, key: str) -> str:
        """The ``exposure`` or ``saturation`` verdict ("" without diagnostics)."""
        if self.advice is None:
            return ""
        if key == "exposure":
            return self.advice.exposure.label
        s = self.advice.saturation
        return s.label if s.identifiable else "not judged"


def checks(row: QaRow, t: QaThresholds) -> dict[str, tuple[bool, str]]:
    """Every judged column of ``row``: key -> (passes, the reason when it does not).

    Keys are :data:`METRIC_COLUMNS` / :data:`DIAGNOSTIC_COLUMNS` keys; a missing (NaN)
    value and a verdict whose check is switched off are not judged (absent).
    """
    m = row.metrics
    out: dict[str, tuple[bool, str]] = {}

    def judge(key: str, ok: Callable[[float], bool], text: str) -> None:
        v = m.get(key, math.nan)
        if math.isfinite(v):
            out[key] = (ok(v), text.format(v))

    judge("anchor_psnr_db", lambda v: v >= t.min_anchor_psnr_db, "anchor PSNR {:.2f} dB")
    judge("halo_ev", lambda v: v <= t.max_halo_ev, "halo {:.4f} EV")
    judge("ltm_residual_ev", lambda v: v <= t.max_ltm_residual_ev, "LTM residual {:.4f} EV")
    judge("truth_psnr_db", lambda v: v >= t.min_truth_psnr_db, "truth PSNR {:.2f} dB")
    temp, tint = m.get("wb_temperature_ev", math.nan), m.get("wb_tint_ev", math.nan)
    if math.isfinite(temp) and math.isfinite(tint):
        ok = max(abs(temp), abs(tint)) <= t.max_wb_shift_ev
        text = f"white balance shift temp {temp:+.3f} / tint {tint:+.3f} EV"
        out["wb_temperature_ev"] = (ok or abs(temp) <= t.max_wb_shift_ev, text)
        out["wb_tint_ev"] = (ok or abs(tint) <= t.max_wb_shift_ev, text)
    where = ""
    if row.stability is not None and row.stability.stability.worst_cell is not None:
        r, c = row.stability.stability.worst_cell
        where = f" at cell ({r}, {c}) {row.stability.stability.worst_ratio}"
    judge("wb_local_cast_ev", lambda v: v <= t.max_local_cast_ev, "local cast {:.3f} EV" + where)
    for key, on in (("exposure", t.exposure_fails), ("saturation", t.saturation_fails)):
        label = row.verdict(key)
        if on and label not in ("", "not judged"):
            out[key] = (label == "well", f"{key} {label}")
    return out


#: Diagnostics filters of the QA table: name -> what a row must show.
DIAGNOSTIC_FILTERS: dict[str, str] = {
    "": "all diagnostics",
    "flagged": "any diagnostic off",
    "exposure": "exposure not well",
    "saturation": "saturation not well",
    "wb": "WB shift over its limit",
    "cast": "local cast over its limit",
}


def diagnostic_flags(row: QaRow, t: QaThresholds) -> set[str]:
    """Which :data:`DIAGNOSTIC_FILTERS` a row matches (verdicts other than "well" count
    whether or not they fail the scene)."""
    judged = checks(row, t)
    flags = {k for k in VERDICT_KEYS if row.verdict(k) in ("under", "over")}
    if any(not judged.get(k, (True, ""))[0] for k in ("wb_temperature_ev", "wb_tint_ev")):
        flags.add("wb")
    if not judged.get("wb_local_cast_ev", (True, ""))[0]:
        flags.add("cast")
    if flags:
        flags.add("flagged")
    return flags


def failures(row: QaRow, t: QaThresholds) -> list[str]:
    """Why ``row`` fails ``t`` (empty list = pass)."""
    if row.error:
        return [row.error]
    out = list(dict.fromkeys(text for ok, text in checks(row, t).values() if not ok))
    if row.alignment == "FAILED":
        why = "; ".join(row.alignment_reasons) or "see the registration report"
        out.append(f"alignment gate failed ({why})")
    if not t.allow_fallback and "fallback" in row.tags:
        out.append(f"fell back to {row.method}")
    return out


def alignment_of(outcome: RegistrationOutcome) -> tuple[str, float, tuple[str, ...]]:
    """(gate verdict, residual RMS in 48MP px or NaN, the gate's reasons) of a registration."""
    verdict = ALIGNMENT_VERDICTS.get(outcome.status, outcome.status)
    result = outcome.result
    if result is None:
        return verdict, math.nan, ()
    residual = float(result.residual_rms_px)
    return verdict, residual if math.isfinite(residual) else math.nan, tuple(result.gate.reasons)


def evaluate_entry(
    entry: PairEntry,
    *,
    truth_path: Path | None = None,
    tags: tuple[str, ...] = (),
    cancel: CancelToken | None = None,
) -> QaRow:
    """Run one pair through registration and the method choice (as convert does, nothing
    written; a failed alignment gate is scored with the global baseline) and measure it."""
    options = ConvertOptions(allow_misaligned=True)
    loaded = load_pair(entry.raw12, entry.proraw48, cancel=cancel)
    pair, outcome = register_pair(loaded, options, cancel=cancel)
    result, anchor, decision = choose_method(
        pair, options, cancel=cancel, misaligned=outcome.status == "failed-overridden"
    )
    out = result.camera48
    alignment, residual_px, gate_reasons = alignment_of(outcome)
    metrics: dict[str, float] = {
        "residual_rms_px": residual_px,
        "anchor_psnr_db": float(anchor.psnr_db),
        "anchor_ssim": float(anchor.ssim),
        "gain_swing_ev": float(np.ptp(np.log2(np.maximum(result.gain_lowres, 1e-12)))),
        "halo_ev": math.nan,
        "ltm_residual_ev": math.nan,
        "truth_psnr_db": math.nan,
    }
    all_tags = list(tags)
    if pair.proraw48.pgtm is not None:
        all_tags.append("pgtm")
    if decision.used != FALLBACK_CHAIN[options.method][0]:  # not the first choice
        all_tags.append("fallback")
    if alignment == "unmeasured":
        all_tags.append("unregistered")
    if anchor.n_clipped > 0.01 * max(1, anchor.n_valid + anchor.n_clipped):
        all_tags.append("clipped")
    diag = diagnose(pair, out, preview_side_px=None, name=entry.name, cancel=cancel)
    metrics["wb_temperature_ev"] = float(diag.advice.white_balance.temperature_ev)
    metrics["wb_tint_ev"] = float(diag.advice.white_balance.tint_ev)
    metrics["wb_local_cast_ev"] = diag.worst_cast_ev
    if diag.advice.method != "learned":
        all_tags.append(f"diag:{diag.advice.method}")
    if truth_path is not None and truth_path.is_file():
        truth = np.load(truth_path)
        tm = truth_metrics(out, truth)
        metrics["halo_ev"] = float(tm.halo_indicator_ev)
        metrics["ltm_residual_ev"] = float(tm.ltm_residual_ev)
        metrics["truth_psnr_db"] = float(tm.psnr_gain_fitted_db)
    else:
        metrics["halo_ev"] = float(
            halo_indicator(out, pair.camera48 * np.float32(result.global_gain))
        )
    return QaRow(
        entry.name,
        entry,
        decision.used,
        decision.reason,
        metrics,
        tuple(dict.fromkeys(all_tags)),
        alignment=alignment,
        alignment_note=outcome.note,
        alignment_reasons=gate_reasons,
        advice=diag.advice,
        stability=diag.stability,
    )


def _safe(fn: Callable[[], QaRow], name: str, entry: PairEntry | None) -> QaRow:
    from core.errors import InputFileError

    try:
        return fn()
    except InputFileError as err:
        return QaRow(name, entry, error=str(err))


def run_simulated(
    folder: Path,
    *,
    scenes: tuple[str, ...] | None = None,
    size: tuple[int, int] = (256, 192),
    seed: int = 0,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> list[QaRow]:
    """Write the QA set as DNG pairs under ``folder/<scene>/`` and evaluate each.

    ``size`` is the RAW12 (width, height); pairs already written with the same config are
    re-used.
    """
    from core.simulate.pair import write_demo_pair
    from core.simulate.scenes import SCENES

    token = cancel or CancelToken()
    names = scenes or qa_scenes()
    rows: list[QaRow] = []
    for i, name in enumerate(names):
        token.raise_if_cancelled()
        progress(Progress("qa", i, len(names), name))
        paths = write_demo_pair(folder / name, scene=name, size=f"{size[0]}x{size[1]}", seed=seed)
        meta = json.loads(paths.meta.read_text())["config"]
        entry = PairEntry(name, paths.raw12, paths.proraw48, "given")
        tags = (SCENES[name].kind, f"ltm:{meta.get('ltm', '?')}")
        rows.append(
            _safe(
                partial(evaluate_entry, entry, truth_path=paths.truth, tags=tags, cancel=token),
                name,
                entry,
            )
        )
    progress(Progress("qa", len(names), len(names), "done"))
    return rows


def run_entries(
    entries: list[PairEntry],
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> list[QaRow]:
    """Evaluate pairs found in a folder (ground truth used when ``truth.npy`` sits beside)."""
    token = cancel or CancelToken()
    rows: list[QaRow] = []
    for i, entry in enumerate(entries):
        token.raise_if_cancelled()
        progress(Progress("qa", i, len(entries), entry.name))
        truth = entry.raw12.parent / "truth.npy"
        rows.append(
            _safe(
                partial(
                    evaluate_entry,
                    entry,
                    truth_path=truth if truth.is_file() else None,
                    tags=("folder",),
                    cancel=token,
                ),
                entry.name,
                entry,
            )
        )
    progress(Progress("qa", len(entries), len(entries), "done"))
    return rows


def _fmt(key: str, value: float) -> str:
    fmt = METRIC_COLUMNS[key][1] if key in METRIC_COLUMNS else DIAGNOSTIC_COLUMNS[key][1]
    return fmt.format(value) if math.isfinite(value) else ""


#: Index of the first :data:`METRIC_COLUMNS` column in :func:`table_rows`.
FIRST_METRIC_COLUMN = 4
#: Index of the first :data:`DIAGNOSTIC_COLUMNS` column in :func:`table_rows`.
FIRST_DIAGNOSTIC_COLUMN = FIRST_METRIC_COLUMN + len(METRIC_COLUMNS)
#: Index of the alignment gate column in :func:`table_rows`.
ALIGNMENT_COLUMN = 3
#: Column keys of :func:`table_rows` (None: not a metric or diagnostic column).
COLUMN_KEYS: tuple[str | None, ...] = (
    None,
    None,
    None,
    None,
    *METRIC_COLUMNS,
    *DIAGNOSTIC_COLUMNS,
    None,
    None,
)


def cell_text(row: QaRow, key: str) -> str:
    """A metric or diagnostic cell as the table and the exports show it."""
    if key in VERDICT_KEYS:
        return row.verdict(key)
    return _fmt(key, row.metrics.get(key, math.nan))


def sort_value(row: QaRow, key: str) -> float:
    """Sort key of a metric or diagnostic cell (missing values sort first)."""
    if key in VERDICT_KEYS:
        return float(VERDICT_ORDER.get(row.verdict(key), len(VERDICT_ORDER)))
    v = row.metrics.get(key, math.nan)
    if key in ("wb_temperature_ev", "wb_tint_ev") and math.isfinite(v):
        return abs(v)  # sorted by the size of the shift
    return v if math.isfinite(v) else -1e30


def table_rows(rows: list[QaRow], t: QaThresholds) -> tuple[list[str], list[list[str]]]:
    """(header, rows of text) as the table and the exports show them."""
    header = [
        "scene",
        "verdict",
        "method",
        "align gate",
        *(h for h, _ in METRIC_COLUMNS.values()),
        *(h for h, _ in DIAGNOSTIC_COLUMNS.values()),
        "tags",
        "why",
    ]
    body: list[list[str]] = []
    for r in rows:
        why = failures(r, t)
        body.append(
            [
                r.scene,
                "error" if r.error else ("FAIL" if why else "pass"),
                r.method,
                r.alignment,
                *(_fmt(k, r.metrics.get(k, math.nan)) for k in METRIC_COLUMNS),
                *(cell_text(r, k) for k in DIAGNOSTIC_COLUMNS),
                " ".join(r.tags),
                "; ".join(why),
            ]
        )
    return header, body


def to_csv(rows: list[QaRow], t: QaThresholds) -> str:
    """The table as CSV text."""
    header, body = table_rows(rows, t)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)
    return buf.getvalue()


def to_markdown(rows: list[QaRow], t: QaThresholds, *, title: str = "Linear48 QA review") -> str:
    """The table as a Markdown report with the thresholds used and a pass count."""
    header, body = table_rows(rows, t)
    n_pass = sum(1 for b in body if b[1] == "pass")
    lines = [
        f"# {title}",
        "",
        f"{n_pass} of {len(body)} scenes pass.",
        "",
        "Thresholds: "
        + ", ".join(
            [
                f"anchor PSNR ≥ {t.min_anchor_psnr_db:g} dB",
                f"halo ≤ {t.max_halo_ev:g} EV",
                f"LTM residual ≤ {t.max_ltm_residual_ev:g} EV",
                f"truth PSNR ≥ {t.min_truth_psnr_db:g} dB",
                "fallback " + ("allowed" if t.allow_fallback else "fails"),
                "a failed alignment gate fails",
                f"white-balance shift ≤ {t.max_wb_shift_ev:g} EV",
                f"local cast ≤ {t.max_local_cast_ev:g} EV",
                "exposure verdict " + ("must be well" if t.exposure_fails else "not judged"),
                "saturation verdict " + ("must be well" if t.saturation_fails else "not judged"),
            ]
        )
        + ". Empty cells: not measurable (no ground truth; no residual when the scene has "
        "too little structure to register).",
        "",
        "Diagnostics (core.diagnostics on each output as a DNG reader renders it): exposure "
        "and saturation verdicts (under / well / over; saturation is not judged on a nearly "
        "achromatic scene), the advised white-balance correction on its temperature and tint "
        "axes (EV; > 0: the output looks blue / magenta), and the worst cell of the "
        "white-balance stability map against RAW12 (|R/G| or |B/G| deviation, EV).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in b) + " |" for b in body]
    return "\n".join(lines) + "\n"


def thresholds_dict(t: QaThresholds) -> dict[str, Any]:
    """Thresholds as a plain dict (for records and reports)."""
    return {k: getattr(t, k) for k in t.__dataclass_fields__}
