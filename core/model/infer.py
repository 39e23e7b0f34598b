"""Whole-image inference API for the pipeline (issue 4; tiling comes with issue 5).

    from core.model.infer import load_default_model, predict
    model = load_default_model()            # CheckpointError if missing/corrupt/mismatched
    out = predict(model, pair.camera48, pair.anchor, pair.raw12.cfa, pair.wb_gains,
                  unclipped=pair.unclipped)
    out.camera48                             # (3, H48, W48) float32 Camera48, >= 0

Inputs are converted to working space (Camera48 * wb_gains), the anchor is demosaiced
(:func:`core.demosaic.demosaic`) and upsampled 2x, the network runs once over the frame
and the result is divided by the white-balance gains again. A RAW-consistency refinement
(:func:`anchor_refine`, on by default) then fits what low-frequency mismatch with the
anchor remains: the gain-field estimator of baseline B applied to the model's output with
a tight smoothing (1 Bayer cell), so the output agrees with the RAW12 anchor at least as
well as baseline B does while keeping the model's halo-free gain and detail.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.baselines import baseline_gain_field
from core.cfa import CfaPattern
from core.demosaic import demosaic
from core.errors import ShapeError
from core.inference.tiling import Tile, TilePlan, plan_tiles, run_tiled
from core.model.checkpoint import load_checkpoint
from core.model.net import GainGrid, Linear48Net, ModelConfig, upsample_guidance
from core.progress import CancelToken, ProgressCallback, no_progress

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHECKPOINT",
    "LoadedModel",
    "ModelOutput",
    "anchor_refine",
    "load_default_model",
    "load_model",
    "predict",
    "prepare_inputs",
]

#: The shipped default model.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "resources" / "models" / "default.pt"
#: Anchor values at or above this fraction of the clip carry no gain information.
CLIP_FRACTION = 0.97
#: Smoothing of the RAW-consistency refinement, in Bayer cells (4x4 48MP pixels).
REFINE_SIGMA_CELLS = 1.0


@dataclass(frozen=True)
class LoadedModel:
    """A verified model ready for :func:`predict`.

    Attributes:
        net: the network (eval mode).
        config: its architecture.
        hash: SHA-256 content hash of the checkpoint (hex), for provenance.
        path: checkpoint file.
        meta: checkpoint metadata (run name, training step, ...).
    """

    net: Linear48Net
    config: ModelConfig
    hash: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelOutput:
    """Result of :func:`predict`.

    Attributes:
        camera48: float32 (3, H48, W48) Camera48 estimate, finite, >= 0.
        gain_lowres: float32 (h, w) total gain (global ratio x local gain) averaged over
            cells of ``cell_px48`` 48MP pixels; ``camera48 ~ input * upsampled gain``
            (the residual aside).
        global_gain: the global exposure ratio g0 (linear).
        cell_px48: the gain cell size in 48MP pixels.
        stats: residual and gain figures (``residual_rms_rel``, ``residual_max_abs``,
            ``log2_gain_min``, ``log2_gain_max``, ``log2_gain_range``; with the refinement
            ``refine_log2_min`` / ``refine_log2_max``, its gain relative to the model).
            ``gain_lowres`` is the network's gain alone (before the refinement).
        seconds: wall time of the prediction (demosaic included).
    """

    camera48: np.ndarray
    gain_lowres: np.ndarray
    global_gain: float
    cell_px48: int
    stats: dict[str, float]
    seconds: float


def load_model(path: str | Path) -> LoadedModel:
    """Load and verify a checkpoint. Raises CheckpointError (one line) on any problem."""
    ck = load_checkpoint(path)
    return LoadedModel(ck.net, ck.config, ck.hash, ck.path, ck.meta)


def load_default_model() -> LoadedModel:
    """The shipped default (``resources/models/default.pt``); raises CheckpointError."""
    return load_model(DEFAULT_CHECKPOINT)


def prepare_inputs(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    wb_gains: np.ndarray,
    *,
    unclipped: np.ndarray | None = None,
    demosaic_method: str = "bilinear",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Network inputs in working space: (pro, guide, conf), each (1, C, H48, W48).

    Shapes: camera48 (3, H48, W48); anchor and unclipped (H48/2, W48/2); wb_gains (3,).
    ``unclipped`` defaults to ``anchor < 0.97``. The confidence is the unclipped mask
    demosaiced like the anchor (minimum over channels) and upsampled.
    """
    if camera48.ndim != 3 or camera48.shape[0] != 3:
        raise ShapeError(f"camera48 must be (3, H48, W48), got {camera48.shape}")
    h48, w48 = camera48.shape[1:]
    if anchor.shape != (h48 // 2, w48 // 2) or h48 % 2 or w48 % 2:
        raise ShapeError(f"anchor {anchor.shape} is not half of camera48 {camera48.shape[1:]}")
    wb = np.asarray(wb_gains, dtype=np.float32).reshape(3, 1, 1)
    if not np.all(np.isfinite(wb)) or np.any(wb <= 0):
        raise ShapeError(f"wb_gains must be 3 positive finite numbers, got {wb.ravel()}")
    mask = (anchor < CLIP_FRACTION) if unclipped is None else unclipped
    guide12 = demosaic(anchor, cfa, demosaic_method) * wb
    conf12 = demosaic(mask.astype(np.float32), cfa, "bilinear").min(axis=0, keepdims=True)
    guide = upsample_guidance(torch.from_numpy(guide12)[None])
    conf = upsample_guidance(torch.from_numpy(np.ascontiguousarray(conf12))[None])
    pro = torch.from_numpy(np.ascontiguousarray(camera48, dtype=np.float32) * wb)[None]
    return pro, guide, conf


def predict(
    model: LoadedModel | Linear48Net,
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    wb_gains: np.ndarray,
    *,
    unclipped: np.ndarray | None = None,
    demosaic_method: str = "bilinear",
    refine: bool = True,
) -> ModelOutput:
    """Run the model on a whole frame.

    Args:
        model: from :func:`load_default_model` / :func:`load_model` (or a bare network).
        camera48: (3, H48, W48) ProRAW48 in Camera48 (CapturePair.camera48).
        anchor: (H48/2, W48/2) shading-corrected Mosaic12 (CapturePair.anchor).
        cfa: RAW12 pattern (CapturePair.raw12.cfa).
        wb_gains: (3,) white-balance gains, green = 1 (CapturePair.wb_gains).
        unclipped: (H12, W12) bool (CapturePair.unclipped); default anchor < 0.97.
        demosaic_method: guidance demosaic (core.demosaic.METHODS).
        refine: apply :func:`anchor_refine` to the network output.

    Returns: :class:`ModelOutput`; the image is finite and >= 0 whatever the input.
    Memory: about 0.25 KiB per 48MP pixel (~0.8 GB at 2016x1512; ~12 GB for a whole 48MP
        frame: use tiling there).
    """
    t0 = time.perf_counter()
    net = model.net if isinstance(model, LoadedModel) else model
    pro, guide, conf = prepare_inputs(
        camera48, anchor, cfa, wb_gains, unclipped=unclipped, demosaic_method=demosaic_method
    )
    wb = torch.from_numpy(np.asarray(wb_gains, dtype=np.float32).reshape(1, 3, 1, 1))
    net.eval()
    with torch.inference_mode():
        grid = net.gain_grid(pro, guide, conf)
        res = net.render(pro, guide, conf, grid)
        out = torch.nan_to_num(res.output / wb, nan=0.0, posinf=0.0)[0]
        log2_global = float(grid.log2_global.flatten()[0])
        log2_total = res.log_gain[0, 0] / float(np.log(2.0)) + log2_global
        rel = res.residual.abs() / (res.output.abs().mean() + 1e-12)
        stats = {
            "residual_rms_rel": float(torch.sqrt((rel * rel).mean())),
            "residual_max_abs": float(res.residual.abs().max()),
        }
    image = out.numpy().astype(np.float32, copy=False)
    return _finish(
        image,
        log2_total,
        log2_global,
        net.config.pool_px,
        stats,
        (anchor, cfa, unclipped) if refine else None,
        t0,
    )


def _finish(
    image: np.ndarray,
    log2_total: torch.Tensor,
    log2_global: float,
    pool_px: int,
    stats: dict[str, float],
    refine_with: tuple[np.ndarray, CfaPattern, np.ndarray | None] | None,
    t0: float,
) -> ModelOutput:
    """Shared tail of :func:`predict` and :func:`predict_tiled`: gain summary, refinement.

    ``log2_total`` (H48, W48) is the network's total log2 gain (global + local).
    """
    gain_low = torch.exp2(
        torch.nn.functional.avg_pool2d(log2_total[None, None], pool_px, ceil_mode=True)
    )[0, 0]
    stats = {
        **stats,
        "log2_gain_min": float(log2_total.min()),
        "log2_gain_max": float(log2_total.max()),
        "log2_gain_range": float((log2_total - log2_global).abs().max()),
    }
    if refine_with is not None:
        anchor, cfa, unclipped = refine_with
        image, refine_stats = anchor_refine(image, anchor, cfa, unclipped=unclipped)
        stats.update(refine_stats)
    return ModelOutput(
        image,
        gain_low.numpy().astype(np.float32),
        float(2.0**log2_global),
        pool_px,
        stats,
        time.perf_counter() - t0,
    )


#: Frames above this many pixels run tile by tile (whole-image inference of a 48MP frame
#: needs ~12 GB); the gain head still sees the whole frame at low resolution.
WHOLE_IMAGE_MAX_PIXELS = 4_000_000


def _render_tiles(
    net: Linear48Net,
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    grid: GainGrid,
    wb: torch.Tensor,
    plan: TilePlan,
    progress: ProgressCallback,
    cancel: CancelToken | None,
) -> np.ndarray:
    """Detail head + composition per tile; returns (4, H, W): RGB Camera48, natural-log gain."""
    pro, guide, conf = inputs

    def tile_fn(tile: Tile) -> np.ndarray:
        win = (slice(None), slice(None), slice(tile.y0, tile.y1), slice(tile.x0, tile.x1))
        with torch.inference_mode():
            res = net.render(pro[win], guide[win], conf[win], grid, origin=(tile.y0, tile.x0))
            rgb = torch.nan_to_num(res.output / wb, nan=0.0, posinf=0.0)[0]
            return torch.cat([rgb, res.log_gain[0]], 0).numpy()

    return run_tiled(tile_fn, plan, 4, progress=progress, cancel=cancel)


def predict_tiled(
    model: LoadedModel | Linear48Net,
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    wb_gains: np.ndarray,
    *,
    unclipped: np.ndarray | None = None,
    demosaic_method: str = "bilinear",
    refine: bool = True,
    tile_px: int = 768,
    overlap_px: int = 48,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ModelOutput:
    """:func:`predict` with the detail head run tile by tile (DESIGN §6).

    The gain head runs once over the whole frame at low resolution; each tile (from
    :func:`core.inference.tiling.plan_tiles`, CFA-aligned, raised-cosine blended) slices
    that grid at its own origin and runs the detail head on its pixels only, so peak
    memory is bounded by the tile, not by the network's full-resolution activations.
    Equal to :func:`predict` within float rounding wherever the detail head's reach
    (5 px) fits in the blend margin (12 px).
    """
    t0 = time.perf_counter()
    net = model.net if isinstance(model, LoadedModel) else model
    h48, w48 = camera48.shape[1:]
    plan = plan_tiles(
        h48,
        w48,
        tile_px=min(tile_px, max(h48, w48)),
        overlap_px=overlap_px,
        enforce_design_bounds=False,
    )
    pro, guide, conf = prepare_inputs(
        camera48, anchor, cfa, wb_gains, unclipped=unclipped, demosaic_method=demosaic_method
    )
    wb = torch.from_numpy(np.asarray(wb_gains, dtype=np.float32).reshape(1, 3, 1, 1))
    net.eval()
    with torch.inference_mode():
        grid = net.gain_grid(pro, guide, conf)
    log2_global = float(grid.log2_global.flatten()[0])
    blended = _render_tiles(net, (pro, guide, conf), grid, wb, plan, progress, cancel)
    del pro, guide, conf  # 48MP inputs: free them before the refinement
    image = np.ascontiguousarray(blended[:3])
    log2_total = torch.from_numpy(blended[3]) / float(np.log(2.0)) + log2_global
    del blended
    return _finish(
        image,
        log2_total,
        log2_global,
        net.config.pool_px,
        {"tiles": float(len(plan))},
        (anchor, cfa, unclipped) if refine else None,
        t0,
    )


def anchor_refine(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    unclipped: np.ndarray | None = None,
    sigma_cells: float = REFINE_SIGMA_CELLS,
) -> tuple[np.ndarray, dict[str, float]]:
    """RAW-consistency refinement of a model output (Camera48 in, Camera48 out).

    Baseline B's gain field (per-Bayer-cell least-squares gain anchor / F(camera48),
    normalised convolution with ``sigma_cells``, clipped and dark cells filled from their
    neighbours, |log2| <= 4) applied to ``camera48``. Returns (image, stats).
    Shapes: camera48 (3, H48, W48); anchor, unclipped (H48/2, W48/2).
    """
    res = baseline_gain_field(camera48, anchor, cfa, sigma_cells=sigma_cells, unclipped=unclipped)
    log2_gain = np.log2(np.maximum(res.gain_lowres, 1e-12))
    stats = {
        "refine_log2_min": float(log2_gain.min(initial=0.0)),
        "refine_log2_max": float(log2_gain.max(initial=0.0)),
    }
    return res.camera48, stats
