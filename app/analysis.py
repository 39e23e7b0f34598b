"""Arrays the inspection panes show, computed from ``core`` (Qt-free, runs in a worker).

Everything here calls ``core``; nothing is recomputed differently for the GUI:

- output: the method's Camera48 (``BaselineResult.camera48``, from ``choose_method`` on
  open or from ``convert``);
- reference: ProRAW48 (``CapturePair.camera48``) after the same global gain as the output
  and, when the file has a ProfileGainTableMap and the user wants it, rendered with that
  PGTM (``core.io.pgtm.pgtm_gain`` on ProRAW48's own values with its BaselineExposure);
- gain map: ``log2(core.baselines.upsample_gain(gain_lowres))``;
- difference: ``log2(Y_out / Y_ref)`` with ``core.metrics.luminance`` (NaN below the floor);
- halo map / indicator: ``core.metrics.halo_map`` / ``halo_indicator`` (output vs reference);
- histograms: ``core.metrics.cfa_error_histograms`` with the pair's clip mask;
- registration: ``core.geometry.registration.register`` + ``overlays.registration_overlays``
  when that package exists, otherwise an explicit "not available";
- diagnostics (:func:`diagnose`): ``core.diagnostics.optimize_corrections`` /
  ``generate_preview`` on the output as a DNG reader renders it (:func:`diagnostic_scene`)
  and ``wb_stability_map`` of the output against the RAW12 anchor.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.baselines import BaselineResult, upsample_gain
from core.cfa import PLANE_NAMES, CfaPattern
from core.color import stored_to_srgb_matrix
from core.diagnostics import (
    CorrectionAdvice,
    SceneInfo,
    WbStabilityReport,
    advice_fields,
    format_diagnostics,
    generate_preview,
    optimize_corrections,
    wb_stability_map,
)
from core.diagnostics.features import area_downsample
from core.diagnostics.stability import DEFAULT_GRID, LOCAL_CAST_EV
from core.forward import forward_np
from core.io.captures import CapturePair
from core.io.pgtm import pgtm_gain
from core.jsonutil import to_jsonable
from core.metrics import (
    DEFAULT_FLOOR,
    AnchorMetrics,
    cfa_error_histograms,
    halo_indicator,
    halo_map,
    luminance,
)
from core.pipeline import ConvertOptions, MethodDecision, choose_method, register_pair
from core.progress import CancelToken, Progress, ProgressCallback, no_progress

log = logging.getLogger(__name__)

Roi = tuple[int, int, int, int]
#: Display histogram bins; statistics use ``HIST_BINS * HIST_FINE`` bins over the same range.
HIST_BINS = 128
HIST_FINE = 16
#: Longer side (px) of the diagnostics before/after previews.
DIAGNOSTIC_PREVIEW_PX = 512
#: Diagnostic estimators the GUI offers (``core.diagnostics`` methods; auto = learned with
#: the classical fallback).
DIAGNOSTIC_METHODS: tuple[str, ...] = ("auto", "learned", "classical")


@dataclass(frozen=True)
class RegistrationView:
    """What the registration pane shows.

    Attributes:
        available: False when ``core.geometry`` is not installed or registration failed.
        message: one line: the gate verdict, or why nothing is shown.
        overlays: 12MP overlay arrays keyed ``"<mode>/<stage>"`` (mode: checkerboard, blend,
            difference, edges; stage: before, after), as ``core`` returned them.
        gate_passed: the alignment gate's verdict (None when not available).
        figures: the gate's measured figures.
        thresholds: the gate's thresholds.
        details: every figure and threshold and the gate's reasons, one per line (tooltip).
    """

    available: bool
    message: str
    overlays: dict[str, np.ndarray] = field(default_factory=dict)
    gate_passed: bool | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    details: str = ""


@dataclass(frozen=True)
class Analysis:
    """Pane arrays for one pair and one method output (all 48MP grid unless noted).

    Attributes:
        method: method that produced ``output``.
        output: (3, H48, W48) Camera48 output of the method.
        reference: (3, H48, W48) ProRAW48 after the same global gain (+ own PGTM if used).
        reference_label: how ``reference`` was rendered.
        proraw: (3, H48, W48) ProRAW48 mapped to Camera48, no gain (``pair.camera48``).
        global_gain: the method's scalar gain.
        gain_log2: (H48, W48) log2 gain field applied to ProRAW48.
        diff_ev: (H48, W48) log2(Y_out / Y_ref), NaN where either is below the floor.
        halo: (H48, W48) signed halo band (EV), NaN where not valid.
        halo_indicator_ev: RMS halo near strong edges (EV), NaN without strong edges.
        to_srgb: (3, 3) camera -> linear sRGB (white balance folded in) for display.
        anchor_metrics: anchor metrics of ``output``.
        decision: method decision (None when the output did not come from the pipeline).
        registration: registration pane content.
    """

    method: str
    output: np.ndarray
    reference: np.ndarray
    reference_label: str
    proraw: np.ndarray
    global_gain: float
    gain_log2: np.ndarray
    diff_ev: np.ndarray
    halo: np.ndarray
    halo_indicator_ev: float
    to_srgb: np.ndarray
    anchor_metrics: AnchorMetrics
    decision: MethodDecision | None
    registration: RegistrationView


@dataclass(frozen=True)
class PlaneHistogram:
    """One CFA plane's error histogram and its statistics.

    Attributes:
        counts: (HIST_BINS,) int64 pixel counts.
        edges: (HIST_BINS + 1,) bin edges (Mosaic12 units or EV).
        n: pixels counted.
        mean, std, p01, p50, p99: statistics from the fine histogram (bin centres; the
            quantisation is ``(edges[-1] - edges[0]) / (HIST_BINS * HIST_FINE)``).
    """

    counts: np.ndarray
    edges: np.ndarray
    n: int
    mean: float
    std: float
    p01: float
    p50: float
    p99: float


def reference_render(
    pair: CapturePair, global_gain: float, *, use_pgtm: bool
) -> tuple[np.ndarray, str]:
    """ProRAW48 in Camera48 after ``global_gain`` and, if asked and present, its own PGTM.

    Returns ((3, H48, W48) float32, label).
    """
    gain = np.float32(global_gain)
    pgtm = pair.proraw48.pgtm
    if use_pgtm and pgtm is not None:
        g = pgtm_gain(
            pair.proraw48.image,
            pgtm,
            baseline_exposure_ev=pair.proraw48.color.baseline_exposure_ev,
        ).astype(np.float32)
        g *= gain
        return pair.camera48 * g[None], "ProRAW48 with its own PGTM, same global gain"
    label = "ProRAW48, same global gain" + (" (PGTM off)" if pgtm is not None else " (no PGTM)")
    return pair.camera48 * gain, label


def difference_ev(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """log2(Y_out / Y_ref) per pixel (H, W) float32; NaN where either is below the floor."""
    yo, yr = luminance(output), luminance(reference)
    ok = (yo > DEFAULT_FLOOR) & (yr > DEFAULT_FLOOR) & np.isfinite(yo) & np.isfinite(yr)
    out = np.full(yo.shape, np.nan, np.float32)
    np.log2(np.divide(yo, yr, out=np.ones_like(yo), where=ok), out=out, where=ok)
    return out


def _flatten(prefix: str, value: Any, out: dict[str, np.ndarray]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}/{k}" if prefix else str(k), v, out)
    elif isinstance(value, np.ndarray):
        out[prefix] = value


def overlay_for(overlays: dict[str, np.ndarray], mode: str, stage: str) -> np.ndarray | None:
    """Find the overlay for (mode, stage) whatever the key layout core used.

    Keys may be ``"checkerboard/after"``, ``"after/checkerboard"``, ``"checkerboard_after"``
    or a bare ``"checkerboard"`` (taken as after registration).
    """
    for key, arr in overlays.items():
        k = key.lower()
        if mode in k and stage in k:
            return arr
    if stage == "after":
        for key, arr in overlays.items():
            k = key.lower()
            if mode in k and "before" not in k:
                return arr
    return None


def _as_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return dict(obj)
    if hasattr(obj, "__dataclass_fields__"):
        return {k: getattr(obj, k) for k in obj.__dataclass_fields__}
    return {"value": obj}


def registration_view(pair: CapturePair, result: Any = None) -> RegistrationView:
    """Core's registration overlays (running registration unless ``result`` is given).

    ``pair`` is the *unregistered* pair: the overlays show before and after.
    """
    try:
        reg_mod = importlib.import_module("core.geometry.registration")
        ovl_mod = importlib.import_module("core.geometry.overlays")
    except ImportError as err:
        return RegistrationView(False, f"registration not available\n({err.name or err} missing)")
    cfa = pair.raw12.cfa
    try:
        if result is None:
            result = reg_mod.register(pair.camera48, pair.anchor, cfa, unclipped=pair.unclipped)
        raw = ovl_mod.registration_overlays(pair.camera48, pair.anchor, cfa, result)
    except Exception as err:  # optional pane under development: never hide the other panes
        log.exception("registration failed")
        return RegistrationView(False, f"registration failed:\n{err}")
    overlays: dict[str, np.ndarray] = {}
    _flatten("", raw, overlays)
    gate = getattr(result, "gate", None)
    passed = getattr(gate, "passed", None)
    figures = _as_dict(getattr(gate, "figures", None))
    thresholds = _as_dict(getattr(gate, "thresholds", None))
    reasons = [str(r) for r in getattr(gate, "reasons", None) or ()]
    verdict = "passed" if passed else "FAILED" if passed is not None else "no verdict"
    return RegistrationView(
        True,
        gate_summary(verdict, figures, thresholds, reasons),
        overlays,
        None if passed is None else bool(passed),
        figures,
        thresholds,
        "\n".join(
            [f"alignment gate {verdict}", *reasons]
            + [f"{k} = {_num(v)}" for k, v in figures.items()]
            + [f"threshold {k} = {_num(v)}" for k, v in thresholds.items()]
        ),
    )


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def gate_summary(
    verdict: str, figures: dict[str, Any], thresholds: dict[str, Any], reasons: list[str]
) -> str:
    """One short line for the registration pane: the verdict, the residual misalignment
    against its limit and, when the gate failed, its first reason."""
    line = f"gate {verdict}"
    res, limit = figures.get("residual_rms_px"), thresholds.get("max_residual_rms_px")
    if isinstance(res, int | float) and np.isfinite(res):
        line += f" · {res:.2f} px RMS"
        if isinstance(limit, int | float):
            line += f" (≤ {limit:.2f})" if res <= limit else f" (> {limit:.2f})"
    if reasons:
        line += f" · {reasons[0]}"
    return line


def analyse(
    pair: CapturePair,
    baseline: BaselineResult,
    anchor_metrics: AnchorMetrics,
    decision: MethodDecision | None,
    *,
    use_pgtm: bool = True,
    with_registration: bool = True,
    unregistered: CapturePair | None = None,
    registration_result: Any = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> Analysis:
    """All pane arrays for ``baseline`` (a method output) of ``pair``.

    ``unregistered`` / ``registration_result``: when the caller already registered the
    pair (as ``preview`` does, like ``convert``), the overlay pane reuses that result.
    """
    token = cancel or CancelToken()
    h48, w48 = pair.camera48.shape[1:]
    progress(Progress("analyse", 0, 4, "reference render"))
    reference, label = reference_render(pair, baseline.global_gain, use_pgtm=use_pgtm)
    token.raise_if_cancelled()
    progress(Progress("analyse", 1, 4, "gain map and difference"))
    gain_log2 = np.log2(upsample_gain(baseline.gain_lowres, h48, w48)).astype(np.float32)
    diff = difference_ev(baseline.camera48, reference)
    token.raise_if_cancelled()
    progress(Progress("analyse", 2, 4, "halo map"))
    halo = halo_map(baseline.camera48, reference)
    indicator = halo_indicator(baseline.camera48, reference)
    token.raise_if_cancelled()
    progress(Progress("analyse", 3, 4, "registration"))
    reg = (
        registration_view(unregistered or pair, registration_result)
        if with_registration
        else RegistrationView(False, "registration not run")
    )
    progress(Progress("analyse", 4, 4, "ready"))
    return Analysis(
        method=baseline.method,
        output=baseline.camera48,
        reference=reference,
        reference_label=label,
        proraw=pair.camera48,
        global_gain=float(baseline.global_gain),
        gain_log2=gain_log2,
        diff_ev=diff,
        halo=halo,
        halo_indicator_ev=float(indicator),
        to_srgb=stored_to_srgb_matrix(pair.raw12.color).astype(np.float32),
        anchor_metrics=anchor_metrics,
        decision=decision,
        registration=reg,
    )


def preview(
    pair: CapturePair,
    method: str = "auto",
    *,
    use_pgtm: bool = True,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> Analysis:
    """The pipeline's registration and method choice, as ``convert`` runs them (nothing is
    written; a failed alignment gate does not stop the preview: it converts with the global
    baseline and the registration pane shows why), then the pane arrays."""
    options = ConvertOptions(method=method, allow_misaligned=True)  # type: ignore[arg-type]
    registered, outcome = register_pair(pair, options, progress=progress, cancel=cancel)
    baseline, metrics, decision = choose_method(
        registered,
        options,
        progress=progress,
        cancel=cancel,
        misaligned=outcome.status == "failed-overridden",
    )
    return analyse(
        registered,
        baseline,
        metrics,
        decision,
        use_pgtm=use_pgtm,
        unregistered=pair,
        registration_result=outcome.result,
        progress=progress,
        cancel=cancel,
    )


def with_reference(analysis: Analysis, pair: CapturePair, *, use_pgtm: bool) -> Analysis:
    """The same output against ProRAW48 rendered with or without its PGTM."""
    reference, label = reference_render(pair, analysis.global_gain, use_pgtm=use_pgtm)
    return replace(
        analysis,
        reference=reference,
        reference_label=label,
        diff_ev=difference_ev(analysis.output, reference),
        halo=halo_map(analysis.output, reference),
        halo_indicator_ev=float(halo_indicator(analysis.output, reference)),
    )


def _stats_from_fine(counts: np.ndarray, edges: np.ndarray) -> tuple[float, ...]:
    n = int(counts.sum())
    if n == 0:
        nan = float("nan")
        return (nan, nan, nan, nan, nan)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w = counts.astype(np.float64)
    mean = float(np.dot(w, centres) / n)
    std = float(np.sqrt(max(np.dot(w, (centres - mean) ** 2) / n, 0.0)))
    cdf = np.cumsum(w) / n
    pct = [
        float(centres[min(int(np.searchsorted(cdf, q)), centres.size - 1)])
        for q in (0.01, 0.5, 0.99)
    ]
    return (mean, std, *pct)


def histograms(
    pair: CapturePair,
    output: np.ndarray,
    *,
    scale: str = "linear",
    roi: Roi | None = None,
) -> dict[str, PlaneHistogram]:
    """Per-CFA histograms of F(output) vs RAW12 (``core.metrics.cfa_error_histograms``).

    Pixels as the pipeline's anchor metrics use them: the raw-mosaic clip mask
    (``pair.unclipped``), no extra threshold on the shading-corrected anchor.
    ``roi`` = (y0, y1, x0, x1) on the 12MP grid, half-open.
    """
    fine = cfa_error_histograms(
        output,
        pair.anchor,
        pair.raw12.cfa,
        bins=HIST_BINS * HIST_FINE,
        scale=scale,  # type: ignore[arg-type]
        mask=pair.unclipped,
        roi=roi,
        clip=float("inf"),
    )
    out: dict[str, PlaneHistogram] = {}
    for name in PLANE_NAMES:
        counts, edges = fine[name]
        coarse = counts.reshape(HIST_BINS, HIST_FINE).sum(axis=1)
        mean, std, p01, p50, p99 = _stats_from_fine(counts, edges)
        out[name] = PlaneHistogram(
            coarse, edges[::HIST_FINE].copy(), int(counts.sum()), mean, std, p01, p50, p99
        )
    return out


def clamp_roi(roi: Roi, h12: int, w12: int) -> Roi | None:
    """Clip a RAW12 ROI to the frame; None when nothing is left."""
    y0, y1, x0, x1 = roi
    y0, y1 = max(0, min(h12, y0)), max(0, min(h12, y1))
    x0, x1 = max(0, min(w12, x0)), max(0, min(w12, x1))
    return (y0, y1, x0, x1) if y1 > y0 and x1 > x0 else None


def roi_slices(roi: Roi | None) -> tuple[slice, slice]:
    """48MP (rows, cols) slices of a RAW12 ROI (whole frame for None)."""
    if roi is None:
        return slice(None), slice(None)
    y0, y1, x0, x1 = roi
    return slice(2 * y0, 2 * y1), slice(2 * x0, 2 * x1)


def _finite_stats(values: np.ndarray) -> tuple[float, float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return (float("nan"),) * 3
    return float(v.mean()), float(v.std()), float(np.sqrt(np.mean(v.astype(np.float64) ** 2)))


def pane_stats(analysis: Analysis, roi: Roi | None) -> dict[str, str]:
    """One line of figures per scalar pane, over the ROI (or the whole frame)."""
    rows, cols = roi_slices(roi)
    g = analysis.gain_log2[rows, cols]
    d_mean, d_std, _ = _finite_stats(analysis.diff_ev[rows, cols])
    _, _, h_rms = _finite_stats(analysis.halo[rows, cols])
    return {
        "gain": f"log2 gain {float(g.min()):+.2f}…{float(g.max()):+.2f} EV, "
        f"global {np.log2(analysis.global_gain):+.2f} EV",
        "diff": f"mean {d_mean:+.3f} EV, σ {d_std:.3f} EV",
        "halo": f"RMS {h_rms:.4f} EV (indicator {analysis.halo_indicator_ev:.4f} EV)",
    }


@dataclass(frozen=True)
class PixelReadout:
    """Values under the cursor (linear Camera48 / Mosaic12 units, EV = log2 of those)."""

    x48: int
    y48: int
    x12: int
    y12: int
    plane: str
    output_rgb: tuple[float, float, float]
    reference_rgb: tuple[float, float, float]
    output_ev: float
    gain_log2: float
    diff_ev: float
    halo_ev: float
    raw12: float
    f_output: float

    def text(self) -> str:
        """One status-bar line."""
        o = ", ".join(f"{v:.4f}" for v in self.output_rgb)
        r = ", ".join(f"{v:.4f}" for v in self.reference_rgb)
        return (
            f"48MP ({self.x48}, {self.y48})  12MP ({self.x12}, {self.y12}) {self.plane}  │  "
            f"out RGB {o} ({self.output_ev:+.2f} EV)  ProRAW {r}  │  RAW12 {self.raw12:.4f}  "
            f"F(out) {self.f_output:.4f}  │  gain {self.gain_log2:+.2f} EV  "
            f"diff {self.diff_ev:+.3f} EV  halo {self.halo_ev:+.3f} EV"
        )


def readout(analysis: Analysis, pair: CapturePair, x48: int, y48: int) -> PixelReadout | None:
    """Values at a 48MP pixel, or None outside the frame."""
    h48, w48 = analysis.output.shape[1:]
    if not (0 <= x48 < w48 and 0 <= y48 < h48):
        return None
    x12, y12 = x48 // 2, y48 // 2
    cfa: CfaPattern = pair.raw12.cfa
    offsets = {v: k for k, v in cfa.plane_offsets().items()}
    plane = offsets[(y12 % 2, x12 % 2)]
    cell = analysis.output[:, 2 * y12 : 2 * y12 + 2, 2 * x12 : 2 * x12 + 2]
    f_out = float(forward_np(np.ascontiguousarray(cell), cfa.shifted(y12 % 2, x12 % 2))[0, 0])
    out_rgb = tuple(float(v) for v in analysis.output[:, y48, x48])
    lum = float(luminance(analysis.output[:, y48 : y48 + 1, x48 : x48 + 1])[0, 0])
    return PixelReadout(
        x48,
        y48,
        x12,
        y12,
        plane,
        out_rgb,  # type: ignore[arg-type]
        tuple(float(v) for v in analysis.reference[:, y48, x48]),  # type: ignore[arg-type]
        float(np.log2(lum)) if lum > 0 else float("-inf"),
        float(analysis.gain_log2[y48, x48]),
        float(analysis.diff_ev[y48, x48]),
        float(analysis.halo[y48, x48]),
        float(pair.anchor[y12, x12]),
        f_out,
    )


# -- diagnostics (issue 7) -----------------------------------------------------------------


def diagnostic_scene(pair: CapturePair, name: str = "") -> SceneInfo:
    """How a DNG reader renders this pair's Camera48: RAW12's white-balance gains and
    BaselineExposure (the output DNG copies both; its headroom cancels) and RAW12's colour
    tags (for the kelvin figures) — what ``main.py diagnose OUT.dng`` reads from the file."""
    return SceneInfo(
        wb_gains=(float(pair.wb_gains[0]), float(pair.wb_gains[1]), float(pair.wb_gains[2])),
        exposure_ev=float(pair.raw12.color.baseline_exposure_ev),
        color=pair.raw12.color,
        name=name,
    )


@dataclass(frozen=True)
class DiagnosticsView:
    """Exposure / white-balance / saturation diagnostics of one output, from ``core``.

    Attributes:
        advice: ``optimize_corrections(output, diagnostic_scene(pair), method=...)``.
        stability: ``wb_stability_map(output, pair.anchor, cfa, unclipped=pair.unclipped)``
            (grid :data:`core.diagnostics.stability.DEFAULT_GRID`, fewer cells only on a
            frame with fewer Bayer cells than that; local-cast threshold ``LOCAL_CAST_EV``).
        before: (3, h, w) float32 the output area-averaged and brought to working space on
            the rendering scale exactly as ``generate_preview`` does, uncorrected; None when
            no previews were asked for.
        preview: (3, h, w) float32 ``generate_preview(output, advice)``; None likewise.
        working_to_srgb: (3, 3) working space (white balanced) -> linear sRGB, for display.
        lines: core's wording (``format_diagnostics``) keyed ``exposure``, ``white balance``,
            ``saturation``, ``vs RAW12`` and ``note`` (notes joined).
    """

    advice: CorrectionAdvice
    stability: WbStabilityReport
    before: np.ndarray | None
    preview: np.ndarray | None
    working_to_srgb: np.ndarray
    lines: dict[str, str]

    @property
    def worst_cast_ev(self) -> float:
        """Largest |deviation| of a stability-map cell from the global colour (EV)."""
        return float(self.stability.stability.max_abs_dev_ev)


def diagnostic_lines(advice: CorrectionAdvice, stability: WbStabilityReport) -> dict[str, str]:
    """``format_diagnostics``'s lines (the CLI's wording) keyed by their label:
    ``exposure``, ``white balance``, ``saturation``, ``vs RAW12`` and ``note`` (joined)."""
    d = to_jsonable(
        {
            "file": "output",
            "kind": "Linear48 output",
            "size": [0, 0],
            **advice_fields(advice),
            "notes": list(advice.notes),
            "wb_stability": stability.to_dict(),
        }
    )
    out: dict[str, str] = {}
    for line in format_diagnostics(d).splitlines()[1:]:
        label, _, text = line.strip().partition(":")
        text = text.strip()
        out[label] = f"{out[label]} · {text}" if label in out else text
    return out


def diagnose(
    pair: CapturePair,
    camera48: np.ndarray,
    *,
    method: str = "auto",
    preview_side_px: int | None = DIAGNOSTIC_PREVIEW_PX,
    name: str = "",
    cancel: CancelToken | None = None,
) -> DiagnosticsView:
    """Diagnostics of ``camera48`` (an output of ``pair``), as ``core.diagnostics`` gives them.

    ``preview_side_px`` None skips the before/after previews (the QA table needs only the
    figures). The estimators look at a 32 px area-averaged thumbnail and the stability map
    at Bayer cells block-averaged to ~256 values a side, so this is quick at any size.

    Shapes: camera48 (3, H48, W48) Camera48 (not white balanced, Mosaic12 scale).
    Raises: ConfigError for an unknown method; DiagnosticCheckpointError when ``learned``
        is asked for and the model cannot be loaded; CancelledError between stages.
    """
    token = cancel or CancelToken()
    scene = diagnostic_scene(pair, name)
    advice = optimize_corrections(camera48, scene, method=method)  # type: ignore[arg-type]
    token.raise_if_cancelled()
    h48, w48 = camera48.shape[1:]
    # a tiny test pair has fewer Bayer cells than the map has cells: fewer cells then
    grid = (max(1, min(DEFAULT_GRID[0], h48 // 4)), max(1, min(DEFAULT_GRID[1], w48 // 4)))
    stability = wb_stability_map(
        camera48,
        pair.anchor,
        pair.raw12.cfa,
        grid=grid,
        threshold_ev=LOCAL_CAST_EV,
        unclipped=pair.unclipped,
    )
    token.raise_if_cancelled()
    before = preview = None
    if preview_side_px is not None:
        scale = np.asarray(advice.input_gains, np.float32) * np.float32(
            2.0**advice.input_exposure_ev
        )
        before = area_downsample(camera48, preview_side_px) * scale[:, None, None]
        preview = generate_preview(camera48, advice, max_side_px=preview_side_px)
    gains = np.asarray(advice.input_gains, np.float64)
    working_to_srgb = stored_to_srgb_matrix(pair.raw12.color) @ np.diag(1.0 / gains)
    return DiagnosticsView(
        advice=advice,
        stability=stability,
        before=before,
        preview=preview,
        working_to_srgb=working_to_srgb.astype(np.float32),
        lines=diagnostic_lines(advice, stability),
    )


def advice_text(advice: CorrectionAdvice) -> dict[str, tuple[str, str]]:
    """Per diagnostic (``exposure``, ``white balance``, ``saturation``): a short verdict and
    the advised correction in plain words (display only; the numbers are core's)."""
    e, w, s = advice.exposure, advice.white_balance, advice.saturation
    p = e.probabilities.get(e.label, float("nan"))
    exposure = {
        "under": ("under-exposed", f"brighten the mid-tones (γ {e.correction_gamma:.2f})"),
        "over": ("over-exposed", f"darken the mid-tones (γ {e.correction_gamma:.2f})"),
    }.get(e.label, ("well exposed", f"no change needed (γ {e.correction_gamma:.2f})"))
    exposure = (f"{exposure[0]} (p {p:.2f})", exposure[1])
    g = w.gains
    gains = f"R ×{g[0]:.3f}, B ×{g[2]:.3f}"
    if w.label == "neutral":
        wb = ("neutral", f"no change needed ({gains})")
    else:
        kelvin = ""
        if w.as_shot_cct_k is not None and w.corrected_cct_k is not None:
            kelvin = f"; white point {w.as_shot_cct_k:.0f} K → {w.corrected_cct_k:.0f} K"
        wb = (f"{w.cast or 'slight'} cast", f"apply {gains}{kelvin}")
    if not s.identifiable:
        sat = ("not judged", f"nearly achromatic (chroma {s.chroma:.3f})")
    else:
        ps = s.probabilities.get(s.label, float("nan"))
        head = {"under": "washed out", "over": "over-saturated"}.get(s.label, "plausible")
        act = "no change needed" if s.label == "well" else "scale chroma"
        sat = (f"{head} (p {ps:.2f})", f"{act} (×{s.correction_factor:.2f})")
    return {"exposure": exposure, "white balance": wb, "saturation": sat}
