"""Precision parity: a candidate precision's output against a reference, frame and tiles.

Two runs of the device plan (:func:`core.model.emulate.run_emulated`, or
``ios_bridge.executor.ReferenceExecutor``'s results, which carry the same fields) are
compared frame-wide on the blended Camera48 and tile by tile on each tile's own pre-blend
output — what the device's detail model produces — so the worst tile is named with its
origin, not averaged away (:func:`compare_runs`). Figures are in linear units (1.0 = the
RAW12 clip); PSNR uses peak 1.0.

:func:`compare_scene` is what the GUI's INT8 sign-off shows for one QA scene: the FP16
and the quantized (``int8`` or ``w8a8``, the signed config's mode) emulated outputs, their
signed difference (:func:`signed_difference`) and the :class:`Comparison`; its
:func:`comparison_figures` are the per-scene metrics a sign-off record carries (the same
keys as ``ios_bridge.parity.ParityReport.signoff_metrics``).

    result = compare_scene(load_default_model(), default_quantization("w8a8"), "backlit")
    result.comparison.worst       # TileDiff of the tile with the largest max |difference|
    comparison_figures(result.comparison)  # {"psnr_db_vs_fp16": 56.8, ...}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from core.io.captures import ColorMetadata
from core.metrics import psnr
from core.model.emulate import calibrate_w8a8, load_scene, run_emulated
from core.model.quant import (
    ModelSource,
    QuantSpec,
    activation_scales_hash,
    make_runners,
    resolve_model,
)
from core.progress import CancelToken, Progress, ProgressCallback, no_progress

__all__ = [
    "Comparison",
    "SceneComparison",
    "TileDiff",
    "compare_runs",
    "compare_scene",
    "comparison_figures",
    "diff_stats",
    "json_float",
    "signed_difference",
]


@dataclass(frozen=True)
class TileDiff:
    """Differences on one tile (linear units; PSNR with peak 1.0 = the RAW12 clip).

    Attributes:
        index: tile index in the plan (row-major).
        y0, x0: origin in 48MP pixels.
        h, w: size in pixels.
        max_abs, rms: of candidate - reference over the tile's 3 channels.
        psnr_db: ``inf`` when identical.
    """

    index: int
    y0: int
    x0: int
    h: int
    w: int
    max_abs: float
    rms: float
    psnr_db: float


@dataclass(frozen=True)
class Comparison:
    """One scene, one candidate precision against one reference precision.

    Attributes:
        scene, candidate, reference: what was compared.
        max_abs, rms, psnr_db: over the blended frame (Camera48).
        grid_max_abs: largest difference of the gain model's log gains (natural log).
        tiles: every tile's :class:`TileDiff`, in plan order.
    """

    scene: str
    candidate: str
    reference: str
    max_abs: float
    rms: float
    psnr_db: float
    grid_max_abs: float
    tiles: tuple[TileDiff, ...]

    @property
    def worst(self) -> TileDiff:
        """The tile with the largest max |difference| (ties: lowest PSNR)."""
        return max(self.tiles, key=lambda t: (t.max_abs, -t.psnr_db))

    def worst_tiles(self, n: int) -> list[TileDiff]:
        """The ``n`` worst tiles, worst first (order of :attr:`worst`)."""
        return sorted(self.tiles, key=lambda t: (-t.max_abs, t.psnr_db))[:n]

    @property
    def label(self) -> str:
        """``int8 vs fp16``."""
        return f"{self.candidate} vs {self.reference}"


class TiledOutputs(Protocol):
    """What :func:`compare_runs` reads from a run (``TiledRun`` or ``ExecutorResult``)."""

    camera48: np.ndarray
    grid: np.ndarray
    tiles: dict[int, np.ndarray]
    origins: dict[int, tuple[int, int]]


def diff_stats(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(max |a - b|, RMS of a - b, PSNR dB with peak 1.0) over all elements (float64)."""
    d = a.astype(np.float64) - b
    return float(np.abs(d).max()), float(math.sqrt(float(np.mean(d * d)))), psnr(a, b)


def compare_runs(
    scene: str, candidate: str, reference: str, a: TiledOutputs, b: TiledOutputs
) -> Comparison:
    """Compare run ``a`` (precision ``candidate``) with run ``b`` (``reference``) of one
    frame and tile plan; both runs must have kept their tiles (``keep_tiles``)."""
    max_abs, rms, p = diff_stats(a.camera48, b.camera48)
    tiles = []
    for index in sorted(a.tiles):
        ta, tb = a.tiles[index], b.tiles[index]
        t_max, t_rms, t_psnr = diff_stats(ta, tb)
        y0, x0 = a.origins[index]
        tiles.append(TileDiff(index, y0, x0, ta.shape[1], ta.shape[2], t_max, t_rms, t_psnr))
    grid = float(np.abs(a.grid - b.grid).max())
    return Comparison(scene, candidate, reference, max_abs, rms, p, grid, tuple(tiles))


def json_float(v: float) -> float | str:
    """``v``, or its string (``"inf"``, ``"nan"``) when not finite (JSON has neither)."""
    return v if math.isfinite(v) else str(v)


def comparison_figures(c: Comparison) -> dict[str, float]:
    """The finite figures of a comparison as a sign-off record stores them, keyed
    ``<figure>_vs_<reference>``: ``max_abs``, ``rms``, ``psnr_db``, ``worst_tile_max_abs``,
    ``worst_tile_psnr_db`` (an identical pair's infinite PSNR is left out)."""
    values = {
        "max_abs": c.max_abs,
        "rms": c.rms,
        "psnr_db": c.psnr_db,
        "worst_tile_max_abs": c.worst.max_abs,
        "worst_tile_psnr_db": c.worst.psnr_db,
    }
    suffix = f"_vs_{c.reference}"
    return {k + suffix: float(v) for k, v in values.items() if math.isfinite(v)}


def signed_difference(candidate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per pixel, ``candidate - reference`` of the channel where it is largest in size.

    Shapes: (3, H, W) x2 -> (H, W) float32, signed, linear units. Its largest magnitude
    is the comparison's ``max_abs`` (same 3 channels), so a diverging map of it shows
    where each tile's max |difference| sits and which way it goes.
    """
    d = np.asarray(candidate, np.float32) - np.asarray(reference, np.float32)
    idx = np.abs(d).argmax(axis=0)[None]
    return np.take_along_axis(d, idx, axis=0)[0]


@dataclass(frozen=True)
class SceneComparison:
    """One QA scene through the reference and the quantized emulation (:func:`compare_scene`).

    Attributes:
        scene: QA scene name.
        model_hash: the checkpoint's content hash (hex).
        quantization_hash: sha256 of the quantization config (``core.signoff``).
        reference, candidate: precisions (``fp16``; the config's ``int8`` or ``w8a8``).
        raw12_size, seed: the simulated pair (RAW12 (width, height); frame twice that).
        tile_px, overlap_px: the tile plan.
        reference_camera48, candidate_camera48: float32 (3, H48, W48) blended outputs.
        difference: float32 (H48, W48), :func:`signed_difference` of the two.
        comparison: frame and per-tile figures, candidate vs reference.
        color: the scene's RAW12 colour tags (previews).
        activation_scales_hash: of the w8a8 calibration used (None for int8).
    """

    scene: str
    model_hash: str
    quantization_hash: str
    reference: str
    candidate: str
    raw12_size: tuple[int, int]
    seed: int
    tile_px: int
    overlap_px: int
    reference_camera48: np.ndarray
    candidate_camera48: np.ndarray
    difference: np.ndarray
    comparison: Comparison
    color: ColorMetadata | None = None
    activation_scales_hash: str | None = None

    @property
    def figures(self) -> dict[str, float]:
        """:func:`comparison_figures` of :attr:`comparison` (a record's scene metrics)."""
        return comparison_figures(self.comparison)


def compare_scene(
    model: ModelSource,
    quantization: dict[str, Any],
    scene: str,
    *,
    reference: str = "fp16",
    raw12_size: tuple[int, int] = (256, 192),
    seed: int = 0,
    tile_px: int = 256,
    overlap_px: int = 48,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> SceneComparison:
    """Emulate ``scene`` at ``reference`` precision and at the config's quantized precision
    and compare them (see the module docstring).

    A w8a8 config is calibrated first (``calibrate_w8a8``, cached per model and config).
    Progress stages: ``calibrate`` (per calibration scene), ``scene``, then ``reference``
    and the candidate's precision (per tile).

    Raises: ConfigError (bad config, unknown scene), CheckpointError, CancelledError.
    """
    net, model_hash = resolve_model(model)
    spec = QuantSpec.from_config(quantization)
    token = cancel or CancelToken()
    scales = None
    if spec.mode == "w8a8":
        scales = calibrate_w8a8(net, spec, model_hash=model_hash, progress=progress, cancel=token)
    token.raise_if_cancelled()
    progress(Progress("scene", 0, 1, f"simulating {scene}"))
    inputs = load_scene(scene, raw12_size, seed)
    progress(Progress("scene", 1, 1, f"{scene} loaded"))
    runs = {}
    for precision in (reference, spec.mode):
        runners = make_runners(net, precision, scales if precision == "w8a8" else None)

        def relay(event: Progress, precision: str = precision) -> None:
            progress(Progress(precision, event.done, event.total, f"{scene} {precision}"))

        runs[precision] = run_emulated(
            runners,
            inputs,
            tile_px=tile_px,
            overlap_px=overlap_px,
            keep_tiles=True,
            progress=relay,
            cancel=token,
        )
    ref, cand = runs[reference], runs[spec.mode]
    return SceneComparison(
        scene=scene,
        model_hash=model_hash,
        quantization_hash=spec.hash,
        reference=reference,
        candidate=spec.mode,
        raw12_size=(int(raw12_size[0]), int(raw12_size[1])),
        seed=seed,
        tile_px=tile_px,
        overlap_px=overlap_px,
        reference_camera48=ref.camera48,
        candidate_camera48=cand.camera48,
        difference=signed_difference(cand.camera48, ref.camera48),
        comparison=compare_runs(scene, spec.mode, reference, cand, ref),
        color=inputs.color,
        activation_scales_hash=None if scales is None else activation_scales_hash(scales),
    )
