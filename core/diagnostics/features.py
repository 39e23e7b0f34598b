"""What both diagnostic methods look at: an area-averaged thumbnail and its statistics.

Convention: images are linear RGB (3, H, W) in working space on the rendering scale
(1.0 = rendering white; see :mod:`core.diagnostics.types`). Global properties (exposure,
white balance, saturation) survive heavy downsampling, so every estimator works on a
``THUMB_PX`` x ``THUMB_PX`` area average of the whole frame (aspect ratio not kept).

The learned and the classical method share these functions (batched torch, (N, ...)), so
they see exactly the same numbers; :data:`FEATURE_VERSION` is stored in every diagnostic
checkpoint and a checkpoint made for other features is refused.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from core.errors import ShapeError

__all__ = [
    "FEATURE_VERSION",
    "INPUT_CHANNELS",
    "LOG_FLOOR_EV",
    "N_STATS",
    "QUANTILES",
    "STAT_NAMES",
    "THUMB_PX",
    "analysis_thumbnail",
    "area_downsample",
    "chroma",
    "global_stats",
    "luminance_t",
    "net_input",
]

#: Bump when the thumbnail, the network input or the statistics change.
FEATURE_VERSION = 1
#: Side of the analysis thumbnail in pixels (global properties survive; a 32 px input
#: keeps the network's training within minutes on a 2-core CPU).
THUMB_PX = 32
#: Values below 2**LOG_FLOOR_EV of white are treated as that floor in log features.
LOG_FLOOR_EV = -14.0
#: Quantiles of log2 luminance in the statistics vector.
QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
#: Channels of :func:`net_input`.
INPUT_CHANNELS = 6
_LUMA = (0.25, 0.5, 0.25)
_DARK = 2.0**-12
_ROW_BAND = 256

#: Names of the entries of :func:`global_stats`, in order (units in the name's comment).
STAT_NAMES: tuple[str, ...] = (
    *(f"log2_lum_q{q:g}" for q in QUANTILES),  # EV / 8
    "log2_lum_mean",  # EV / 8
    "log2_lum_std",  # EV / 4
    "clipped_fraction",  # any channel >= 1.0
    "dark_fraction",  # luminance < 2**-10
    "grayworld_log2_r",  # log2(mean G / mean R), x 2
    "grayworld_log2_b",
    "whitepatch_log2_r",  # same over the brightest 5 % unclipped pixels, x 2
    "whitepatch_log2_b",
    "shadesofgray_log2_r",  # Minkowski p = 4 means, x 2
    "shadesofgray_log2_b",
    "grayedge_log2_r",  # mean |gradient| per channel, x 2
    "grayedge_log2_b",
    "chroma_grayworld",  # luminance-weighted chroma after gray-world balance
    "chroma_grayworld_p90",  # 90th percentile of per-pixel chroma after gray world
    "chroma_raw",  # luminance-weighted chroma as given
)
N_STATS = len(STAT_NAMES)


def _block_mean(x: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of a (3, H, W) array, non-finite -> 0, negatives -> 0.

    Rows and columns beyond the last whole block are dropped (fewer than f). Works in row
    bands so a 48MP frame needs only small temporaries; a band is copied only when it holds
    non-finite or negative values. Returns float32 (3, H//f, W//f).
    """
    h, w = x.shape[1] // f, x.shape[2] // f
    out = np.empty((3, h, w), np.float32)
    band = max(1, _ROW_BAND // f)
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        blk = np.asarray(x[:, r0 * f : r1 * f, : w * f], dtype=np.float32)
        if not np.isfinite(blk).all() or blk.min() < 0:
            blk = np.nan_to_num(blk, nan=0.0, posinf=0.0, neginf=0.0)
            np.maximum(blk, 0.0, out=blk)
        rows = blk.reshape(3, r1 - r0, f, w * f).sum(axis=2, dtype=np.float32)
        out[:, r0:r1] = rows.reshape(3, r1 - r0, w, f).sum(axis=3) / np.float32(f * f)
    return out


def area_downsample(image: np.ndarray, max_side_px: int | None) -> np.ndarray:
    """Block average by the smallest integer factor that brings the longer side to at most
    ``max_side_px`` (None: factor 1). Non-finite values -> 0, negatives -> 0; always a new
    array. Up to factor - 1 rows/columns at the bottom/right edge are dropped.

    Shapes: (3, H, W) -> float32 (3, H // f, W // f).
    """
    x = np.asarray(image)
    f = 1 if max_side_px is None else max(1, -(-max(x.shape[1], x.shape[2]) // max_side_px))
    f = min(f, x.shape[1], x.shape[2])
    return _block_mean(x, f)


def analysis_thumbnail(image: np.ndarray, size: int = THUMB_PX) -> np.ndarray:
    """Area-averaged ``size`` x ``size`` thumbnail of a whole frame.

    Non-finite values count as 0 and negatives are clamped to 0 before averaging.

    Shapes: image (3, H, W), any H, W >= 1 -> float32 (3, size, size).
    Units: unchanged (linear).
    Raises: ShapeError when the image is not (3, H, W) or is empty.
    """
    x = np.asarray(image)
    if x.ndim != 3 or x.shape[0] != 3 or x.shape[1] < 1 or x.shape[2] < 1:
        raise ShapeError(f"diagnostics need a (3, H, W) RGB image, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ShapeError(f"diagnostics need a real-valued image, got {x.dtype}")
    f = max(1, min(x.shape[1], x.shape[2]) // (4 * size))
    small = _block_mean(x, f)
    t = torch.from_numpy(small)[None]
    return nnf.adaptive_avg_pool2d(t, (size, size))[0].numpy()


def luminance_t(x: Tensor) -> Tensor:
    """``0.25 R + 0.5 G + 0.25 B`` (the project's fixed luminance). (N, 3, H, W) -> (N, H, W)."""
    return x[:, 0] * _LUMA[0] + x[:, 1] * _LUMA[1] + x[:, 2] * _LUMA[2]


def _channel_norm(d: Tensor) -> Tensor:
    """Euclidean norm over the channel axis, (N, 3, H, W) -> (N, H, W)."""
    return (d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2]).sqrt()


def chroma(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Luminance-weighted relative chroma ``sum |x - Y| / sum Y`` per image.

    ``|x - Y|`` is the Euclidean norm over the three channels. Scaling the chroma of every
    pixel by k (the saturation step) scales this by exactly k.

    Shapes: x (N, 3, H, W); mask (N, H, W) bool (pixels to use) -> (N,).
    Units: dimensionless (0 for a grey image).
    """
    y = luminance_t(x)
    d = _channel_norm(x - y[:, None])
    if mask is not None:
        y = y * mask
        d = d * mask
    return d.sum(dim=(1, 2)) / y.sum(dim=(1, 2)).clamp_min(1e-12)


def _log2_ratio(num: Tensor, den: Tensor) -> Tensor:
    return torch.log2(num.clamp_min(1e-12) / den.clamp_min(1e-12))


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Per image, per channel mean of x (N, 3, P) over mask (N, P); all pixels if empty."""
    m = mask.to(x.dtype)
    n = m.sum(dim=1, keepdim=True)
    full = x.mean(dim=2)
    sel = (x * m[:, None]).sum(dim=2) / n.clamp_min(1.0)
    return torch.where(n > 0, sel, full)


def _sorted_quantile(sorted_x: Tensor, q: float) -> Tensor:
    """Quantile ``q`` of each row of an ascending-sorted (N, P) tensor (linear interp.)."""
    pos = q * (sorted_x.shape[1] - 1)
    lo = int(pos)
    hi = min(lo + 1, sorted_x.shape[1] - 1)
    w = pos - lo
    return sorted_x[:, lo] * (1.0 - w) + sorted_x[:, hi] * w


def global_stats(thumbs: Tensor) -> Tensor:
    """The statistics vector :data:`STAT_NAMES` of each thumbnail (scaled to about +-1).

    Shapes: thumbs (N, 3, H, W) float32, >= 0 -> (N, N_STATS) float32.
    Units: see :data:`STAT_NAMES` (log2 statistics are divided by 8, log2 gain estimates
    multiplied by 2, fractions and chroma as is).
    """
    x = thumbs.float().clamp_min(0.0)
    n = x.shape[0]
    flat = x.reshape(n, 3, -1)
    y = luminance_t(x).reshape(n, -1)
    ly = torch.log2(y.clamp_min(2.0**LOG_FLOOR_EV))
    ly_sorted = torch.sort(ly, dim=1).values
    q = torch.stack([_sorted_quantile(ly_sorted, v) for v in QUANTILES], dim=1)  # (N, Q)
    clipped = (flat >= 1.0).any(dim=1)
    usable = ~clipped & (y > _DARK)
    gw = _masked_mean(flat, usable)
    y_usable = torch.sort(torch.where(usable, y, torch.full_like(y, -1.0)), dim=1).values
    wp = _masked_mean(flat, usable & (y >= _sorted_quantile(y_usable, 0.95)[:, None]))
    sog = _masked_mean(flat.pow(4), usable).pow(0.25)
    gx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(2, 3))
    gy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(2, 3))
    ge = gx + gy
    balanced = x * (gw[:, 1:2] / gw.clamp_min(1e-12))[:, :, None, None]
    m2 = usable.reshape(n, *x.shape[2:])
    yb = luminance_t(balanced)
    pix = _channel_norm(balanced - yb[:, None]) / yb.clamp_min(_DARK)
    pix = torch.where(m2, pix, torch.zeros_like(pix)).reshape(n, -1)
    cols = [
        q / 8.0,
        ly.mean(dim=1, keepdim=True) / 8.0,
        ly.std(dim=1, keepdim=True) / 4.0,
        clipped.float().mean(dim=1, keepdim=True),
        (y < 2.0**-10).float().mean(dim=1, keepdim=True),
    ]
    for est in (gw, wp, sog, ge):
        cols.append(2.0 * _log2_ratio(est[:, 1:2], est[:, 0:1]))
        cols.append(2.0 * _log2_ratio(est[:, 1:2], est[:, 2:3]))
    cols += [
        chroma(balanced, m2)[:, None],
        _sorted_quantile(torch.sort(pix, dim=1).values, 0.9)[:, None],
        chroma(x, m2)[:, None],
    ]
    return torch.cat(cols, dim=1).float()


def net_input(thumbs: Tensor) -> Tensor:
    """The learned model's image input.

    Channels: log2 of R, G, B (floor 2**-14) mapped by ``(v + 4) / 4`` and clamped to
    [-3, 2]; log2 R/G and B/G clamped to +-4 and halved; linear luminance clamped to [0, 2].

    Shapes: thumbs (N, 3, H, W) -> (N, 6, H, W) float32.
    """
    x = thumbs.float().clamp_min(0.0)
    lg = torch.log2(x.clamp_min(2.0**LOG_FLOOR_EV))
    logs = ((lg + 4.0) / 4.0).clamp(-3.0, 2.0)
    chrom = torch.stack([lg[:, 0] - lg[:, 1], lg[:, 2] - lg[:, 1]], dim=1).clamp(-4.0, 4.0) / 2
    lin = luminance_t(x).clamp(0.0, 2.0)[:, None]
    return torch.cat([logs, chrom, lin], dim=1)
