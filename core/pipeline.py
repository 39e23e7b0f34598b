"""The conversion pipeline shared by the CLI and the GUI.

``convert`` = load pair -> registration (with its alignment gate) -> de-LTM method with
safety checks and fallback -> anchor metrics -> linear DNG (atomic) + JSON report (atomic).

Registration policy (docs/registration.md): a passed gate -> ProRAW48 is warped onto the
RAW12 grid; a gate that fails only because the scene has too little structure to measure
misalignment (smooth skies, walls) -> the pair is used unregistered, with a warning in the
report (misalignment matters least where nothing is textured); any other failure (measured
misalignment, different scenes) -> the conversion stops with AlignmentGateError, unless
``allow_misaligned`` is set, in which case only the global baseline runs and the report
records the override. The fallback hierarchy (DESIGN §5)
is model -> gain-field -> global; the learned model arrives with issue 4, so today
``auto`` starts at gain-field. A fallback is not an exception: the method actually used
and the reason are recorded in the report and in the DNG's provenance.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core import __version__
from core.baselines import BASELINES, BaselineResult, clamped_fraction, log2_gain_range
from core.errors import AlignmentGateError, ConfigError, OutputError, ShapeError
from core.geometry.registration import (
    RegistrationError,
    RegistrationResult,
    apply_registration,
    register,
)
from core.io.atomic import atomic_write_text
from core.io.captures import CapturePair
from core.io.dng_writer import DngWriteInfo, DngWriteOptions, write_linear_dng
from core.io.pair import load_pair, release_proraw_pixels
from core.jsonutil import to_jsonable
from core.metrics import AnchorMetrics, anchor_halo_indicator, anchor_metrics
from core.model.checkpoint import CheckpointError
from core.progress import CancelToken, Progress, ProgressCallback, no_progress

log = logging.getLogger(__name__)

Method = Literal["auto", "model", "gain-field", "global"]
METHODS: tuple[str, ...] = ("auto", "model", "gain-field", "global")
#: Order in which methods are tried for each request (first that passes its checks wins).
FALLBACK_CHAIN: dict[str, tuple[str, ...]] = {
    "auto": ("model", "gain-field", "global"),
    "model": ("model", "gain-field", "global"),
    "gain-field": ("gain-field", "global"),
    "global": ("global",),
}


@dataclass(frozen=True)
class SafetyThresholds:
    """Thresholds of the per-capture safety checks (DESIGN §5).

    Attributes:
        max_abs_log2_gain: largest spatial gain swing (99.9th percentile of |log2 gain|
            relative to the global gain) a method may apply.
        max_clamped_fraction: largest fraction of gain cells allowed at the hard ±4 EV
            clamp (a method pinned at its bound is not trusted).
        min_psnr_gain_db: the method's anchor PSNR may be at most this much *below* the
            global baseline's (negative = must be at least as good).
        max_halo_ratio, halo_slack_ev: the model's halo indicator against the anchor
            (:func:`core.metrics.anchor_halo_indicator`) may be at most
            ``ratio * B + slack`` where B is the gain-field baseline's.
    """

    max_abs_log2_gain: float = 3.9
    max_clamped_fraction: float = 0.01
    min_psnr_gain_db: float = -0.25
    max_halo_ratio: float = 1.5
    halo_slack_ev: float = 0.01


@dataclass(frozen=True)
class ConvertOptions:
    """Options of one conversion.

    Attributes:
        method: requested method; the pipeline may fall back (recorded).
        register: run registration (off only for pairs known to be aligned).
        allow_misaligned: convert even when the alignment gate fails (global baseline
            only; recorded in the report).
        sample_format: ``uint16`` (default, widest reader support) or ``float32`` (HDR).
        layout: ``ljpeg-tiles`` (default) or ``strips`` (uint16 only).
        overwrite: replace an existing output.
        report_path: JSON report path (default: output path with ``.json``).
        model_path: checkpoint for the ``model`` method (default: the shipped one).
        demosaic: demosaic of the RAW12 guidance the model reads (``core.demosaic.METHODS``:
            bilinear, malvar, dht, aahd, learned); the default is what the shipped model
            was trained with. The baselines do not demosaic.
        model_max_pixels: largest frame the model runs on (larger ones skip it with a
            recorded reason). Inference streams (gain grid band by band, detail head per
            tile), so the default covers 48MP frames and the 48MP crop modes.
        thresholds: safety-check thresholds.
    """

    method: Method = "auto"
    register: bool = True
    allow_misaligned: bool = False
    sample_format: Literal["uint16", "float32"] = "uint16"
    layout: Literal["ljpeg-tiles", "strips"] = "ljpeg-tiles"
    overwrite: bool = True
    report_path: Path | None = None
    model_path: Path | None = None
    demosaic: str = "bilinear"
    model_max_pixels: int = 64_000_000
    thresholds: SafetyThresholds = field(default_factory=SafetyThresholds)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method: {self.method!r} is not one of {', '.join(METHODS)}")
        if self.sample_format not in ("uint16", "float32"):
            raise ConfigError(f"sample_format: {self.sample_format!r} is not uint16 or float32")
        from core.demosaic import METHODS as DEMOSAIC_METHODS

        if self.demosaic not in DEMOSAIC_METHODS:
            raise ConfigError(
                f"demosaic: {self.demosaic!r} is not one of {', '.join(DEMOSAIC_METHODS)}"
            )
        if self.layout not in ("ljpeg-tiles", "strips"):
            raise ConfigError(f"layout: {self.layout!r} is not ljpeg-tiles or strips")


@dataclass(frozen=True)
class SafetyCheck:
    """One check: name, measured value, threshold, verdict."""

    name: str
    passed: bool
    value: float
    threshold: float
    detail: str = ""


@dataclass(frozen=True)
class MethodDecision:
    """Which method ran and why (``model_hash`` when the learned model was used)."""

    requested: str
    used: str
    reason: str
    checks: dict[str, list[SafetyCheck]]
    model_hash: str | None = None


@dataclass(frozen=True)
class RegistrationOutcome:
    """What registration did for one conversion.

    Attributes:
        status: ``registered`` | ``unmeasured`` (too little structure; used unregistered) |
            ``failed-overridden`` (gate failed, ``allow_misaligned``) | ``skipped``.
        result: the registration result (None when skipped).
        note: plain-language summary for the report and the CLI.
    """

    status: str
    result: RegistrationResult | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the report."""
        out: dict[str, Any] = {"status": self.status, "note": self.note}
        if self.result is not None:
            out.update(self.result.to_json())
        return out


def register_pair(
    pair: CapturePair,
    options: ConvertOptions,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> tuple[CapturePair, RegistrationOutcome]:
    """Register ProRAW48 onto the RAW12 grid and apply the policy in the module docstring.

    Returns the pair with ``camera48`` warped (or unchanged) and what happened.
    Raises:
        AlignmentGateError: the gate failed for a reason other than missing structure and
            ``options.allow_misaligned`` is not set.
    """
    if not options.register:
        return pair, RegistrationOutcome("skipped", None, "registration switched off")
    try:
        result = register(
            pair.camera48,
            pair.anchor,
            pair.raw12.cfa,
            unclipped=pair.unclipped,
            progress=progress,
            cancel=cancel,
        )
    except RegistrationError as err:
        return pair, RegistrationOutcome("unmeasured", None, f"registration not possible: {err}")
    gate = result.gate
    if gate.passed:
        registered = replace(pair, camera48=apply_registration(pair.camera48, result))
        note = f"registered; residual {result.residual_rms_px:.3f} px RMS"
        return registered, RegistrationOutcome("registered", result, note)
    residual = float(gate.figures.get("residual_rms_px", float("nan")))
    if len(gate.reasons) == 1 and not np.isfinite(residual):  # nothing else failed
        note = "too little structure to measure misalignment; converted unregistered"
        log.warning("%s", note)
        return pair, RegistrationOutcome("unmeasured", result, note)
    if not options.allow_misaligned:
        raise AlignmentGateError(gate.reasons, pair.proraw48.path)
    note = "alignment gate failed (" + "; ".join(gate.reasons) + "); overridden by the user"
    log.warning("%s", note)
    return pair, RegistrationOutcome("failed-overridden", result, note)


@dataclass(frozen=True)
class ConversionResult:
    """Everything a caller (CLI, GUI, tests) needs after a conversion.

    Attributes:
        output_path: the DNG written.
        report_path: the JSON report written.
        decision: method requested/used and the safety checks.
        anchor: anchor metrics of the written output.
        write_info: what the DNG writer did.
        baseline: the method's result (camera48 output and its gain field).
        report: the JSON report as a dict.
        registration: what registration did.
    """

    output_path: Path
    report_path: Path
    decision: MethodDecision
    anchor: AnchorMetrics
    write_info: DngWriteInfo
    baseline: BaselineResult
    report: dict[str, Any]
    registration: RegistrationOutcome | None = None


def pair_anchor_metrics(camera48: np.ndarray, pair: CapturePair) -> AnchorMetrics:
    """Anchor metrics with clipping decided on the raw mosaic (before shading scaled it).

    The shading-corrected anchor exceeds 1.0 in the corners without being clipped, so the
    clip test uses ``pair.unclipped`` instead of a threshold on the anchor.
    """
    return anchor_metrics(
        camera48, pair.anchor, pair.raw12.cfa, mask=pair.unclipped, clip=float("inf")
    )


def safety_checks(
    result: BaselineResult,
    metrics: AnchorMetrics,
    reference_psnr_db: float | None,
    thresholds: SafetyThresholds,
) -> list[SafetyCheck]:
    """Checks a method's output must pass to be used (finite, gain range, anchor)."""
    finite = bool(np.isfinite(result.camera48).all())
    checks = [
        SafetyCheck("finite", finite, 1.0 if finite else 0.0, 1.0, "no NaN/inf in the output")
    ]
    swing = log2_gain_range(result)
    checks.append(
        SafetyCheck(
            "gain_range",
            swing <= thresholds.max_abs_log2_gain,
            swing,
            thresholds.max_abs_log2_gain,
            "99.9th percentile of |log2 gain| relative to the global gain",
        )
    )
    clamped = clamped_fraction(result)
    checks.append(
        SafetyCheck(
            "gain_clamped",
            clamped <= thresholds.max_clamped_fraction,
            clamped,
            thresholds.max_clamped_fraction,
            "fraction of gain cells at the ±4 EV clamp",
        )
    )
    psnr = float(metrics.psnr_db)
    if reference_psnr_db is not None and np.isfinite(reference_psnr_db):
        delta = psnr - reference_psnr_db
        checks.append(
            SafetyCheck(
                "anchor_consistency",
                bool(delta >= thresholds.min_psnr_gain_db),
                delta,
                thresholds.min_psnr_gain_db,
                "anchor PSNR gain over the global baseline, dB",
            )
        )
    return checks


def _run_model(
    pair: CapturePair,
    options: ConvertOptions,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> tuple[BaselineResult, str]:
    """The learned two-head model as a method result, and its checkpoint hash.

    Frames above ``WHOLE_IMAGE_MAX_PIXELS`` run tile by tile, reporting each tile
    (stage ``"tiles"``) and checking ``cancel`` between tiles.

    Raises:
        CheckpointError: the checkpoint is missing, corrupt or mismatched (the caller
            records it and falls back).
        CancelledError: cancelled between tiles.
    """
    from core.model.infer import (
        WHOLE_IMAGE_MAX_PIXELS,
        load_default_model,
        load_model,
        predict,
        predict_tiled,
    )

    model = load_model(options.model_path) if options.model_path else load_default_model()
    args = (model, pair.camera48, pair.anchor, pair.raw12.cfa, pair.wb_gains)
    if pair.camera48[0].size <= WHOLE_IMAGE_MAX_PIXELS:
        out = predict(*args, unclipped=pair.unclipped, demosaic_method=options.demosaic)
    else:
        out = predict_tiled(
            *args,
            unclipped=pair.unclipped,
            demosaic_method=options.demosaic,
            progress=progress,
            cancel=cancel,
        )
    result = BaselineResult(
        "model", out.camera48, out.gain_lowres, out.global_gain, out.cell_px48, dict(out.stats)
    )
    return result, model.hash


def choose_method(
    pair: CapturePair,
    options: ConvertOptions,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    misaligned: bool = False,
) -> tuple[BaselineResult, AnchorMetrics, MethodDecision]:
    """Run the fallback chain for ``options.method`` and return the first method that passes.

    The global baseline always runs (it is the reference for the anchor-consistency check
    and the last resort); it has no checks to fail except finiteness. The model is also
    checked for halos against the anchor, relative to the gain-field baseline's.
    """
    token = cancel or CancelToken()
    chain = ("global",) if misaligned else FALLBACK_CHAIN[options.method]
    cfa = pair.raw12.cfa
    th = options.thresholds
    progress(Progress("method", 0, len(chain) + 1, "global baseline"))
    mask = pair.unclipped

    def baseline(name: str) -> BaselineResult:
        return BASELINES[name](pair.camera48, pair.anchor, cfa, unclipped=mask)

    # Baseline images are 48MP: none is kept longer than needed. The global one is re-made
    # (cheaply) if it is chosen; the gain field only lends its halo figure to the model.
    global_metrics = pair_anchor_metrics(baseline("global").camera48, pair)
    token.raise_if_cancelled()
    halo_reference: list[float] = []  # the gain field's halo figure, made once on demand

    def gain_field_halo() -> float:
        # Measured before the model runs so that two 48MP outputs are never alive at once.
        if not halo_reference:
            ref_image = baseline("gain-field").camera48
            halo_reference.append(anchor_halo_indicator(ref_image, pair.anchor, cfa, mask=mask))
        return halo_reference[0]

    all_checks: dict[str, list[SafetyCheck]] = {}
    reasons: list[str] = []

    for i, name in enumerate(chain):
        if name == "global":
            global_result = baseline("global")
            all_checks[name] = safety_checks(global_result, global_metrics, None, th)
            reason = "requested" if not reasons else "; ".join(reasons)
            if misaligned:
                reason = "alignment gate failed and was overridden: global baseline only"
            decision = MethodDecision(options.method, name, reason, all_checks)
            return global_result, global_metrics, decision
        progress(Progress("method", i + 1, len(chain) + 1, name))
        model_hash = None
        if name == "model" and pair.camera48[0].size > options.model_max_pixels:
            reasons.append(
                f"model skipped: {pair.camera48[0].size / 1e6:.1f} MP frame exceeds the "
                f"{options.model_max_pixels / 1e6:.0f} MP memory budget of its whole-frame "
                "gain head"
            )
            log.warning("%s", reasons[-1])
            continue
        if name == "model":
            gain_field_halo()
            try:
                result, model_hash = _run_model(pair, options, progress=progress, cancel=token)
            except (CheckpointError, ShapeError) as err:
                reasons.append(f"model unavailable ({err})")
                log.warning("%s", reasons[-1])
                continue
        else:
            result = baseline(name)
        metrics = pair_anchor_metrics(result.camera48, pair)
        token.raise_if_cancelled()
        checks = safety_checks(result, metrics, global_metrics.psnr_db, th)
        if name == "model":
            halo = anchor_halo_indicator(result.camera48, pair.anchor, cfa, mask=mask)
            ref = gain_field_halo()
            limit = th.max_halo_ratio * (ref if np.isfinite(ref) else 0.0) + th.halo_slack_ev
            ok = not np.isfinite(halo) or halo <= limit
            checks.append(
                SafetyCheck(
                    "halo", bool(ok), halo, limit, "halo indicator against the RAW12 anchor, EV"
                )
            )
        all_checks[name] = checks
        failed = [c for c in checks if not c.passed]
        if not failed:
            reason = (
                "requested"
                if options.method == name
                else f"{options.method}: first method in the chain that passed its checks"
            )
            if reasons:
                reason += " (" + "; ".join(reasons) + ")"
            decision = MethodDecision(options.method, name, reason, all_checks, model_hash)
            return result, metrics, decision
        reasons.append(
            f"{name} failed "
            + ", ".join(f"{c.name} ({c.value:.3g} vs {c.threshold:.3g})" for c in failed)
        )
        log.warning("%s", reasons[-1])
    raise AssertionError("fallback chain ended without the global baseline")  # unreachable


def pair_summary(pair: CapturePair) -> dict[str, Any]:
    """Facts about the pair for the report and ``inspect``."""
    r, p = pair.raw12, pair.proraw48
    return {
        "raw12": {
            "path": r.path,
            "size": [r.shape[1], r.shape[0]],
            "cfa": r.cfa.name,
            "black": r.black,
            "white": r.white,
            "make": r.identity.make,
            "model": r.identity.model,
            "orientation": r.identity.orientation,
            "as_shot_neutral": r.color.as_shot_neutral,
            "baseline_exposure": r.color.baseline_exposure,
            "opcode_lists": sorted(r.opcode_lists),
        },
        "proraw48": {
            "path": p.path,
            "size": [p.shape[1], p.shape[0]],
            "bits_per_sample": p.bits_per_sample,
            "compression": p.compression,
            "linearization_table": p.linearization_table is not None,
            "pgtm": None
            if p.pgtm is None
            else {
                "points": [p.pgtm.points_v, p.pgtm.points_h, p.pgtm.points_n],
                "gain_min": float(p.pgtm.table.min()),
                "gain_max": float(p.pgtm.table.max()),
            },
            "as_shot_neutral": p.color.as_shot_neutral,
            "analog_balance": p.color.analog_balance,
            "baseline_exposure": p.color.baseline_exposure,
        },
        "wb_gains": pair.wb_gains,
        "color_transform": pair.color_transform,
        "shading_applied": list(pair.shading_applied),
        "notes": list(pair.notes),
    }


def convert(
    raw12_path: str | Path,
    proraw48_path: str | Path,
    output_path: str | Path,
    options: ConvertOptions | None = None,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ConversionResult:
    """Convert a capture pair to a 48MP linear DNG plus a JSON report.

    Raises:
        InputFileError subclasses for bad inputs, OutputError when the output cannot be
        written, CancelledError when cancelled (no output file is left behind).
    """
    opts = options or ConvertOptions()
    token = cancel or CancelToken()
    out = Path(output_path)
    report_path = opts.report_path or out.with_suffix(".json")
    if out.exists() and not opts.overwrite:
        raise OutputError(f"{out} already exists; pass --force to overwrite it")
    if not out.parent.is_dir():
        raise OutputError(f"output folder {out.parent} does not exist")
    timings: dict[str, float] = {}

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        value = fn()
        timings[stage] = round(time.perf_counter() - t0, 3)
        return value

    pair: CapturePair = timed(
        "read_s", lambda: load_pair(raw12_path, proraw48_path, progress=progress, cancel=token)
    )
    # The conversion only reads camera48 from here on: dropping the decoded ProRAW48
    # before registration keeps it out of the warp's peak (source + warped frame).
    pair = release_proraw_pixels(pair)
    pair, registration = timed(
        "register_s", lambda: register_pair(pair, opts, progress=progress, cancel=token)
    )
    misaligned = registration.status == "failed-overridden"
    result, metrics, decision = timed(
        "method_s",
        lambda: choose_method(pair, opts, progress=progress, cancel=token, misaligned=misaligned),
    )
    provenance = {
        "software": f"Linear48 {__version__}",
        "method": decision.used,
        "method_requested": decision.requested,
        "fallback_reason": decision.reason,
        "guide_demosaic": opts.demosaic if decision.used == "model" else None,
        "model_hash": decision.model_hash,
        "anchor_psnr_db": round(float(metrics.psnr_db), 3),
        "registration": registration.status,
        "raw12": pair.raw12.path.name,
        "proraw48": pair.proraw48.path.name,
    }
    color = pair.raw12.color
    info: DngWriteInfo = timed(
        "write_s",
        lambda: write_linear_dng(
            out,
            result.camera48,
            color=color,
            identity=pair.raw12.identity,
            options=DngWriteOptions(
                sample_format=opts.sample_format, layout=opts.layout, overwrite=opts.overwrite
            ),
            provenance=provenance,
            progress=progress,
            cancel=token,
        ),
    )
    report = to_jsonable(
        {
            "software": {"name": "Linear48", "version": __version__},
            "pair": pair_summary(pair),
            "registration": registration.to_dict(),
            "method": {
                "requested": decision.requested,
                "used": decision.used,
                "reason": decision.reason,
                "checks": {k: [asdict(c) for c in v] for k, v in decision.checks.items()},
                "baseline_stats": result.stats,
            },
            "anchor_metrics": metrics.to_dict(),
            "output": {
                "path": out,
                "sample_format": info.sample_format,
                "layout": info.layout,
                "tile_size": info.tile_size,
                "headroom_ev": info.headroom_ev,
                "baseline_exposure": info.baseline_exposure,
                "bytes": info.bytes_written,
                "notes": list(info.notes),
            },
            "provenance": provenance,
            "timings_s": timings,
        }
    )
    try:
        atomic_write_text(report_path, json.dumps(report, indent=2) + "\n")
    except OutputError:
        out.unlink(missing_ok=True)
        raise
    progress(Progress("done", 1, 1, f"wrote {out.name}"))
    return ConversionResult(out, report_path, decision, metrics, info, result, report, registration)
