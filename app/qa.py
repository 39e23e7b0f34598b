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

from app.pairing import PairEntry
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
    """

    min_anchor_psnr_db: float = 38.0
    max_halo_ev: float = 0.05
    max_ltm_residual_ev: float = 0.15
    min_truth_psnr_db: float = 30.0
    allow_fallback: bool = True


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


def failures(row: QaRow, t: QaThresholds) -> list[str]:
    """Why ``row`` fails ``t`` (empty list = pass)."""
    if row.error:
        return [row.error]
    m = row.metrics
    out: list[str] = []

    def judge(key: str, ok: Callable[[float], bool], text: str) -> None:
        v = m.get(key, math.nan)
        if math.isfinite(v) and not ok(v):
            out.append(text.format(v))

    judge("anchor_psnr_db", lambda v: v >= t.min_anchor_psnr_db, "anchor PSNR {:.2f} dB")
    judge("halo_ev", lambda v: v <= t.max_halo_ev, "halo {:.4f} EV")
    judge("ltm_residual_ev", lambda v: v <= t.max_ltm_residual_ev, "LTM residual {:.4f} EV")
    judge("truth_psnr_db", lambda v: v >= t.min_truth_psnr_db, "truth PSNR {:.2f} dB")
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
    return METRIC_COLUMNS[key][1].format(value) if math.isfinite(value) else ""


#: Index of the first :data:`METRIC_COLUMNS` column in :func:`table_rows`.
FIRST_METRIC_COLUMN = 4
#: Index of the alignment gate column in :func:`table_rows`.
ALIGNMENT_COLUMN = 3


def table_rows(rows: list[QaRow], t: QaThresholds) -> tuple[list[str], list[list[str]]]:
    """(header, rows of text) as the table and the exports show them."""
    header = [
        "scene",
        "verdict",
        "method",
        "align gate",
        *(h for h, _ in METRIC_COLUMNS.values()),
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
            ]
        )
        + ". Empty cells: not measurable (no ground truth; no residual when the scene has "
        "too little structure to register).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in b) + " |" for b in body]
    return "\n".join(lines) + "\n"


def thresholds_dict(t: QaThresholds) -> dict[str, Any]:
    """Thresholds as a plain dict (for records and reports)."""
    return {k: getattr(t, k) for k in t.__dataclass_fields__}
