"""Whole-image inference API for the pipeline (issue 4; tiling comes with issue 5).

    from core.model.infer import load_default_model, predict
    model = load_default_model()            # CheckpointError if missing/corrupt/mismatched
    out = predict(model, pair.camera48, pair.anchor, pair.raw12.cfa, pair.wb_gains,
                  unclipped=pair.unclipped)
    out.camera48                             # (3, H48, W48) float32 Camera48, >= 0

Inputs are converted to working space (Camera48 * wb_gains), the anchor is demosaiced
(:func:`core.demosaic.demosaic`) and upsampled 2x, the network runs once over the frame
and the result is divided by the white-balance gains again. The network's gain then loses
its variation between 8 and 64 px at each luminance (shadow mottle, see
:func:`core.edge_refine.smooth_model_gain`) and a RAW-consistency refinement
(:func:`anchor_refine`, both on by default) fits what mismatch with the anchor remains as
an edge-aware gain (:mod:`core.edge_refine`: a bilateral grid sliced by each pixel's own
luminance), so the output agrees with the RAW12 anchor better than baseline B does
without blurring a correction across luminance edges.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.cfa import CfaPattern
from core.demosaic import demosaic
from core.edge_refine import edge_aware_refine, smooth_model_gain
from core.errors import ShapeError
from core.inference.tiling import Tile, plan_tiles, run_tiled
from core.model.checkpoint import load_checkpoint
from core.model.net import GainGrid, Linear48Net, ModelConfig, upsample_guidance
from core.progress import CancelToken, Progress, ProgressCallback, no_progress

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHECKPOINT",
    "LoadedModel",
    "ModelOutput",
    "anchor_refine",
    "load_default_model",
    "load_model",
    "predict",
    "predict_tiled",
    "prepare_inputs",
    "streaming_gain_grid",
]

#: The shipped default model.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "resources" / "models" / "default.pt"
#: Anchor values at or above this fraction of the clip carry no gain information.
CLIP_FRACTION = 0.97
#: Fit-and-apply rounds of the RAW-consistency refinement (:func:`anchor_refine`); the
#: second round fits what the first left (held-out set: LTM residual 0.037 -> 0.030 EV).
REFINE_ITERATIONS = 2


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
            ``smooth_log2_min`` / ``smooth_log2_max``, the mid-scale smoothing of the
            network's gain, and ``refine_log2_min`` / ``refine_log2_max``, the RAW
            refinement's gain relative to that). ``gain_lowres`` is the network's gain
            alone (before both).
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
    inputs = _WindowInputs(camera48, anchor, cfa, wb_gains, unclipped, demosaic_method)
    h48, w48 = inputs.shape
    return inputs.window(0, h48, 0, w48)


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
    gain_low, gain_stats = _gain_summary(log2_total, log2_global, net.config.pool_px)
    del log2_total
    return _finish(
        image,
        gain_low,
        log2_global,
        net.config.pool_px,
        {**stats, **gain_stats},
        (camera48, anchor, cfa, unclipped) if refine else None,
        t0,
    )


def _gain_summary(
    log2_total: torch.Tensor, log2_global: float, pool_px: int
) -> tuple[np.ndarray, dict[str, float]]:
    """The gain field pooled to ``pool_px`` cells (linear gain) and its log2 extremes.

    ``log2_total`` (H48, W48) is the network's total log2 gain (global + local); no
    frame-sized temporary is made (the range comes from the extremes).
    """
    gain_low = torch.exp2(
        torch.nn.functional.avg_pool2d(log2_total[None, None], pool_px, ceil_mode=True)
    )[0, 0]
    lo, hi = float(log2_total.min()), float(log2_total.max())
    stats = {
        "log2_gain_min": lo,
        "log2_gain_max": hi,
        "log2_gain_range": max(abs(hi - log2_global), abs(lo - log2_global)),
    }
    return gain_low.numpy().astype(np.float32), stats


def _finish(
    image: np.ndarray,
    gain_low: np.ndarray,
    log2_global: float,
    pool_px: int,
    stats: dict[str, float],
    refine_with: tuple[np.ndarray, np.ndarray, CfaPattern, np.ndarray | None] | None,
    t0: float,
) -> ModelOutput:
    """Shared tail of :func:`predict` and :func:`predict_tiled`: the refinement.

    ``gain_low``: from :func:`_gain_summary`.
    """
    if refine_with is not None:
        source, anchor, cfa, unclipped = refine_with
        # ``image`` is this call's own array (a network output): refine it in place.
        image, refine_stats = anchor_refine(
            image, anchor, cfa, unclipped=unclipped, inplace=True, source=source
        )
        stats.update(refine_stats)
    return ModelOutput(
        image,
        gain_low,
        float(2.0**log2_global),
        pool_px,
        stats,
        time.perf_counter() - t0,
    )


#: Frames above this many pixels run tile by tile (whole-image inference of a 48MP frame
#: needs ~12 GB); the gain head still sees the whole frame at low resolution.
WHOLE_IMAGE_MAX_PIXELS = 4_000_000


class _WindowInputs:
    """Network inputs for any window of the frame, built on demand (DESIGN §6 streaming).

    Holds the frame's Camera48 (a reference, not a copy), the 12MP guidance and confidence
    (3 + 1 planes at 12MP: a quarter of one 48MP plane each) and the white-balance gains;
    :meth:`window` returns (pro, guide, conf) for a box exactly as :func:`prepare_inputs`
    would have cropped them from whole-frame tensors, so no 48MP tensor is ever built.
    """

    def __init__(
        self,
        camera48: np.ndarray,
        anchor: np.ndarray,
        cfa: CfaPattern,
        wb_gains: np.ndarray,
        unclipped: np.ndarray | None,
        demosaic_method: str,
    ) -> None:
        if camera48.ndim != 3 or camera48.shape[0] != 3:
            raise ShapeError(f"camera48 must be (3, H48, W48), got {camera48.shape}")
        h48, w48 = camera48.shape[1:]
        if anchor.shape != (h48 // 2, w48 // 2) or h48 % 2 or w48 % 2:
            raise ShapeError(f"anchor {anchor.shape} is not half of camera48 {camera48.shape[1:]}")
        wb = np.asarray(wb_gains, dtype=np.float32).reshape(3, 1, 1)
        if not np.all(np.isfinite(wb)) or np.any(wb <= 0):
            raise ShapeError(f"wb_gains must be 3 positive finite numbers, got {wb.ravel()}")
        mask = (anchor < CLIP_FRACTION) if unclipped is None else unclipped
        self.camera48 = camera48
        self.wb = wb
        self.guide12 = torch.from_numpy(demosaic(anchor, cfa, demosaic_method) * wb)[None]
        conf12 = demosaic(mask.astype(np.float32), cfa, "bilinear").min(axis=0, keepdims=True)
        self.conf12 = torch.from_numpy(np.ascontiguousarray(conf12))[None]
        self.shape = (h48, w48)

    def _upsampled(self, src: torch.Tensor, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """:func:`upsample_guidance` of ``src`` cropped to the 48MP box [y0, y1) x [x0, x1).

        Bilinear 2x with half-pixel centres reads 12MP rows floor(y/2) - 1 .. floor(y/2) + 1,
        so a one-pixel 12MP margin (clamped at the frame edge, where the whole-frame
        interpolation clamps too) makes the crop exact.
        """
        h12, w12 = src.shape[-2:]
        a0, a1 = max(0, y0 // 2 - 1), min(h12, (y1 + 1) // 2 + 1)
        b0, b1 = max(0, x0 // 2 - 1), min(w12, (x1 + 1) // 2 + 1)
        up = upsample_guidance(src[..., a0:a1, b0:b1])
        return up[..., y0 - 2 * a0 : y1 - 2 * a0, x0 - 2 * b0 : x1 - 2 * b0]

    def window(
        self, y0: int, y1: int, x0: int, x1: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pro, guide, conf) for the box, shapes (1, 3|3|1, y1 - y0, x1 - x0)."""
        pro, conf = self.detail_window(y0, y1, x0, x1)
        return pro, self._upsampled(self.guide12, y0, y1, x0, x1), conf

    def detail_window(
        self, y0: int, y1: int, x0: int, x1: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(pro, conf) for the box: all the per-tile render reads (it ignores the guide)."""
        pro = torch.from_numpy(self.camera48[:, y0:y1, x0:x1] * self.wb)[None]
        return pro, self._upsampled(self.conf12, y0, y1, x0, x1)


#: Rows per band of the streaming gain-grid passes (a multiple of every pool_px used).
GRID_BAND_ROWS = 256


def streaming_gain_grid(
    net: Linear48Net, inputs: _WindowInputs, *, cancel: CancelToken | None = None
) -> GainGrid:
    """:meth:`Linear48Net.gain_grid` of the whole frame, computed band by band.

    Pass 1 sums the exposure statistics over row bands; pass 2 splats each band onto its
    rows of the low-resolution grid; the gain head's UNet then runs once on the grid.
    Peak memory is one band's features (~``GRID_BAND_ROWS`` x W x 30 floats), not the
    frame's; the result equals the whole-frame computation up to float summation order.
    """
    token = cancel or CancelToken()
    h, w = inputs.shape
    p = net.config.pool_px
    band = max(p, GRID_BAND_ROWS // p * p)
    bands = [(y, min(h, y + band)) for y in range(0, h, band)]
    with torch.inference_mode():
        sums = torch.zeros(1, 4, dtype=torch.float64)
        for y0, y1 in bands:
            token.raise_if_cancelled()
            pro, guide, conf = inputs.window(y0, y1, 0, w)
            sums += net.exposure_sums(guide, pro, conf).double()
        exposure, log2_global = Linear48Net.exposure_from_sums(sums.float())
        rows = []
        for y0, y1 in bands:
            token.raise_if_cancelled()
            rows.append(net.splat(*inputs.window(y0, y1, 0, w), exposure, log2_global))
        return GainGrid(net.grid_head(torch.cat(rows, dim=2)), log2_global, exposure)


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
    tile_px: int = 1024,
    overlap_px: int = 48,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ModelOutput:
    """:func:`predict` with bounded memory: streamed gain grid, detail head per tile.

    The gain head sees the whole frame at low resolution (:func:`streaming_gain_grid`,
    band by band); each tile (from :func:`core.inference.tiling.plan_tiles`, CFA-aligned,
    raised-cosine blended) builds its own inputs from Camera48 and the 12MP guidance,
    slices the grid at its origin and runs the detail head on its pixels only. No 48MP
    input tensor exists; memory is the output (4 planes), one tile's activations and the
    frame's Camera48. Equal to :func:`predict` within float rounding wherever the detail
    head's reach (5 px) fits in the blend margin (12 px).
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
    inputs = _WindowInputs(camera48, anchor, cfa, wb_gains, unclipped, demosaic_method)
    wb = torch.from_numpy(inputs.wb[None])
    net.eval()
    progress(Progress("model", 0, 1, "gain grid"))
    grid = streaming_gain_grid(net, inputs, cancel=cancel)
    log2_global = float(grid.log2_global.flatten()[0])

    def tile_fn(tile: Tile) -> np.ndarray:
        with torch.inference_mode():
            pro, conf = inputs.detail_window(tile.y0, tile.y1, tile.x0, tile.x1)
            res = net.render(pro, None, conf, grid, origin=(tile.y0, tile.x0))
            rgb = torch.nan_to_num(res.output / wb, nan=0.0, posinf=0.0)[0]
            return torch.cat([rgb, res.log_gain[0]], 0).numpy()

    # The image and the log-gain plane are separate frames so the latter (195 MB at 48MP)
    # is freed once summarised, before the refinement.
    image = np.empty((3, h48, w48), np.float32)
    log_gain = np.empty((h48, w48), np.float32)
    run_tiled(tile_fn, plan, 4, out=(image, log_gain), progress=progress, cancel=cancel)
    log_gain *= np.float32(1.0 / np.log(2.0))
    log_gain += np.float32(log2_global)  # in place: log2 total gain
    gain_low, gain_stats = _gain_summary(
        torch.from_numpy(log_gain), log2_global, net.config.pool_px
    )
    del log_gain
    return _finish(
        image,
        gain_low,
        log2_global,
        net.config.pool_px,
        {"tiles": float(len(plan)), **gain_stats},
        (camera48, anchor, cfa, unclipped) if refine else None,
        t0,
    )


def anchor_refine(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    unclipped: np.ndarray | None = None,
    iterations: int = REFINE_ITERATIONS,
    inplace: bool = False,
    source: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """RAW-consistency refinement of a model output (Camera48 in, Camera48 out).

    When ``source`` (the ProRAW48 Camera48 the network was applied to) is given, the
    network's gain first loses its variation between 8 and 64 px at each luminance
    (:func:`core.edge_refine.smooth_model_gain`: shadow mottle the anchor cannot
    correct). Then :func:`core.edge_refine.edge_aware_refine`: a gain on a bilateral grid
    (position x log luminance) fitted by noise-weighted least squares to
    ``anchor ~ g * F(camera48)`` and sliced per 48MP pixel by its own luminance, so the
    correction can step at luminance edges instead of blurring across them (a smooth
    correction made halos there), ``iterations`` times; into ``camera48`` itself when
    ``inplace`` (no second 48MP image). Returns (image, stats).
    Shapes: camera48, source (3, H48, W48); anchor, unclipped (H48/2, W48/2).
    """
    stats: dict[str, float] = {}
    if source is not None:
        camera48, stats = smooth_model_gain(camera48, source, inplace=inplace)
        inplace = True  # camera48 is now this call's own array
    out, refine_stats = edge_aware_refine(
        camera48, anchor, cfa, unclipped=unclipped, iterations=iterations, inplace=inplace
    )
    return out, {**stats, **refine_stats}
