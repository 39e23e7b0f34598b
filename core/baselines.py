"""The two non-learned de-LTM baselines (DESIGN §5 fallbacks A and B).

Both take Camera48 (ProRAW48 mapped into RAW12's camera space) and the RAW12 anchor, and
return a Camera48 estimate of the scene with ProRAW's tone mapping removed:

- **A, global**: one robust scalar gain from F(camera48) vs the anchor; no spatial
  variation. Removes exposure differences (BaselineExposure, LUT scale) and nothing else.
- **B, gain field**: a smooth gain map from the anchor mismatch anchor / F(camera48),
  estimated per 2x2 Bayer cell (all four CFA colours together, so the field is colour
  neutral), smoothed by normalised convolution in the log domain (clipped and dark pixels
  carry no weight and are filled from their neighbours), upsampled bilinearly to 48MP and
  applied to all channels.

Grids: the anchor is on the 12MP grid; a 12MP Bayer cell (2x2 mosaic pixels) covers 4x4
48MP pixels. Low-resolution fields are cell-centred, so upsampling uses
``align_corners=False`` (half-pixel centres: 48MP x = s * x_low + (s - 1) / 2).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from scipy import ndimage

from core.cfa import CfaPattern
from core.errors import ShapeError
from core.forward import forward_np

log = logging.getLogger(__name__)

BaselineName = Literal["global", "gain-field"]

#: Anchor values at or above this fraction of the clip carry no information.
CLIP_FRACTION = 0.97
#: Anchor values below this (Mosaic12 units) are dominated by noise.
DARK_FLOOR = 1e-4
#: Hard bound on any gain, |log2 g| <= 4 (DESIGN §5: |log g| <= ln 16).
MAX_LOG2_GAIN = 4.0


@dataclass(frozen=True)
class BaselineResult:
    """Output of a baseline.

    Attributes:
        method: ``"global"`` or ``"gain-field"``.
        camera48: float32 (3, H48, W48) estimate, >= 0.
        gain_lowres: float32 (h, w) gain field on a coarse cell-centred grid (a 1x1 array
            for the global baseline); multiply Camera48 input by its upsampled version.
        global_gain: the scalar part of the gain (median of the field for B).
        cell_px48: size of one low-res gain cell in 48MP pixels.
        stats: small figures for the report (valid fraction, gain percentiles...).
    """

    method: str
    camera48: np.ndarray
    gain_lowres: np.ndarray
    global_gain: float
    cell_px48: int
    stats: dict[str, float] = field(default_factory=dict)


def _valid_mask(
    anchor: np.ndarray, predicted: np.ndarray, unclipped: np.ndarray | None
) -> np.ndarray:
    """Anchor pixels that carry information: unclipped, finite, with a non-dark prediction.

    Selection looks at the (low-noise) prediction only: thresholding the noisy anchor
    itself would keep its positive noise and drop its negative noise in the shadows,
    biasing every gain there upwards.
    """
    not_clipped = anchor < CLIP_FRACTION if unclipped is None else unclipped
    return (
        not_clipped
        & np.isfinite(anchor)
        & (predicted > DARK_FLOOR)
        & (predicted < 64.0)
        & np.isfinite(predicted)
    )


def _check(camera48: np.ndarray, anchor: np.ndarray) -> None:
    if camera48.ndim != 3 or camera48.shape[0] != 3:
        raise ShapeError(f"camera48 must be (3, H, W), got {camera48.shape}")
    h, w = camera48.shape[1:]
    if anchor.shape != (h // 2, w // 2) or h % 2 or w % 2:
        raise ShapeError(f"anchor {anchor.shape} is not half of camera48 {camera48.shape[1:]}")


def global_gain(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    percentile: float = 50.0,
    unclipped: np.ndarray | None = None,
) -> tuple[float, dict[str, float]]:
    """Robust scalar gain g with anchor ≈ g * F(camera48).

    The ``percentile`` of log2(anchor / F(camera48)) over valid pixels (unclipped, above the
    dark floor). ``unclipped`` (H12, W12) bool marks anchor pixels below the sensor clip
    (needed once shading has scaled the anchor; default: anchor < 0.97).
    Returns (gain, stats).
    """
    _check(camera48, anchor)
    predicted = forward_np(camera48, cfa)
    valid = _valid_mask(anchor, predicted, unclipped)
    if valid.any():
        # Log ratios need a positive anchor: use the brighter three quarters of the
        # prediction, where the anchor's noise cannot push it through zero.
        valid &= (predicted >= np.percentile(predicted[valid], 25)) & (anchor > 0)
    n_valid = int(valid.sum())
    if n_valid < 16:
        log.warning("global gain: only %d valid pixels; using gain 1", n_valid)
        return 1.0, {"valid_fraction": n_valid / anchor.size}
    log_ratio = np.log2(anchor[valid] / predicted[valid])
    g_log2 = float(
        np.clip(np.percentile(log_ratio, percentile), -MAX_LOG2_GAIN * 4, MAX_LOG2_GAIN * 4)
    )
    return 2.0**g_log2, {
        "valid_fraction": n_valid / anchor.size,
        "log2_gain": g_log2,
        "log2_ratio_iqr": float(np.subtract(*np.percentile(log_ratio, [75, 25]))),
    }


def baseline_global(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    unclipped: np.ndarray | None = None,
) -> BaselineResult:
    """Baseline A: Camera48 times one robust scalar gain (see :func:`global_gain`).

    Shapes: camera48 (3, H48, W48), anchor (H48/2, W48/2) -> camera48 (3, H48, W48).
    """
    gain, stats = global_gain(camera48, anchor, cfa, unclipped=unclipped)
    out = np.maximum(np.nan_to_num(camera48, nan=0.0, posinf=0.0), 0.0) * np.float32(gain)
    return BaselineResult(
        "global",
        out.astype(np.float32, copy=False),
        np.full((1, 1), gain, np.float32),
        gain,
        max(camera48.shape[1:]),
        stats,
    )


def gain_field(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    sigma_cells: float = 1.0,
    cell12: int = 2,
    unclipped: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Low-res log-domain gain field with anchor ≈ g * F(camera48).

    Args:
        camera48: (3, H48, W48) Camera48.
        anchor: (H12, W12) shading-corrected Mosaic12.
        cfa: RAW12 pattern.
        sigma_cells: Gaussian smoothing of the log-ratio in cells.
        cell12: cell size on the 12MP grid (even, keeps CFA phase); 2 = one Bayer cell.
        unclipped: (H12, W12) bool, anchor pixels below the sensor clip (default:
            anchor < 0.97).

    Returns:
        (gain (H12/cell12, W12/cell12) float32, stats). One cell = 2 * cell12 48MP pixels.
    """
    _check(camera48, anchor)
    if cell12 % 2 or cell12 < 2:
        raise ShapeError(f"cell12 must be an even number >= 2, got {cell12}")
    h12, w12 = anchor.shape
    hc, wc = h12 // cell12, w12 // cell12
    predicted = forward_np(camera48, cfa)
    valid = _valid_mask(anchor, predicted, unclipped)
    a = np.where(valid, anchor, 0.0)[: hc * cell12, : wc * cell12]
    p = np.where(valid, predicted, 0.0)[: hc * cell12, : wc * cell12]
    shape4 = (hc, cell12, wc, cell12)
    # Locally weighted least squares: g(x) = G*(a p) / G*(p^2), the gain minimising the
    # squared anchor error (what anchor PSNR measures) under a Gaussian window G of
    # sigma_cells cells. Sums per cell hold all four CFA colours, so g is colour-neutral;
    # noisy anchors average out in the numerator instead of being thresholded (no bias).
    ap = (a * p).reshape(shape4).sum(axis=(1, 3)).astype(np.float64)
    pp = (p * p).reshape(shape4).sum(axis=(1, 3)).astype(np.float64)
    ok = pp > 0
    total_pp = float(pp.sum())
    global_gain_ls = float(ap.sum()) / total_pp if total_pp > 0 else 1.0
    global_log2 = float(np.log2(global_gain_ls)) if global_gain_ls > 0 else 0.0
    eps = 1e-12
    num = ndimage.gaussian_filter(ap, sigma_cells, mode="nearest")
    den = ndimage.gaussian_filter(pp, sigma_cells, mode="nearest")
    wide = max(sigma_cells * 8, 1.0)
    num_w = ndimage.gaussian_filter(ap, wide, mode="nearest")
    den_w = ndimage.gaussian_filter(pp, wide, mode="nearest")
    g_wide = np.where((num_w > 0) & (den_w > eps), num_w / np.maximum(den_w, eps), 2.0**global_log2)
    g_local = np.where((num > 0) & (den > eps), num / np.maximum(den, eps), g_wide)
    # Confidence 1 wherever the local data energy is at least a quarter of the typical one;
    # towards 0 (no data: clipped or black areas) the wide estimate takes over.
    typical = float(np.median(pp[ok])) if ok.any() else 1.0
    conf = np.clip(den / max(0.25 * typical, eps), 0.0, 1.0)
    field_log2 = conf * np.log2(g_local) + (1 - conf) * np.log2(g_wide)
    field_log2 = np.clip(field_log2, global_log2 - MAX_LOG2_GAIN, global_log2 + MAX_LOG2_GAIN)
    gain = np.exp2(field_log2).astype(np.float32)
    stats = {
        "valid_fraction": float(ok.mean()),
        "global_log2_gain": global_log2,
        "log2_gain_p01": float(np.percentile(field_log2, 1)),
        "log2_gain_p99": float(np.percentile(field_log2, 99)),
    }
    return gain, stats


def upsample_gain(gain_lowres: np.ndarray, h48: int, w48: int) -> np.ndarray:
    """Bilinear, cell-centred upsampling of a low-res gain to (H48, W48) float32.

    Convention: the low-res cell (i, j) covers 48MP pixels [s*i, s*i + s) with
    s = H48 / h_low, so its centre is at s*i + (s - 1)/2 — ``align_corners=False``.
    Interpolated in log2 so the field stays positive and smooth.
    """
    h, w = gain_lowres.shape
    if h == 1 and w == 1:
        return np.full((h48, w48), float(gain_lowres[0, 0]), np.float32)
    src = torch.from_numpy(np.log2(np.maximum(gain_lowres, 1e-12)).astype(np.float32))[None, None]
    up = torch.nn.functional.interpolate(src, size=(h48, w48), mode="bilinear", align_corners=False)
    return torch.exp2(up)[0, 0].numpy()


def apply_gain(camera48: np.ndarray, gain48: np.ndarray) -> np.ndarray:
    """``max(0, camera48 * gain48)`` per channel, NaN/inf in the input mapped to 0."""
    out = np.empty_like(camera48, dtype=np.float32)
    for c in range(camera48.shape[0]):
        np.multiply(np.nan_to_num(camera48[c], nan=0.0, posinf=0.0, neginf=0.0), gain48, out=out[c])
    np.maximum(out, 0.0, out=out)
    return out


def baseline_gain_field(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    sigma_cells: float = 1.0,
    cell12: int = 2,
    unclipped: np.ndarray | None = None,
) -> BaselineResult:
    """Baseline B: Camera48 times a smooth gain field fitted to the anchor.

    Shapes: camera48 (3, H48, W48), anchor (H48/2, W48/2) -> camera48 (3, H48, W48).
    """
    gain, stats = gain_field(
        camera48, anchor, cfa, sigma_cells=sigma_cells, cell12=cell12, unclipped=unclipped
    )
    h48, w48 = camera48.shape[1:]
    hc, wc = gain.shape
    # The field covers whole cells; pad the last row/column when sizes are not multiples.
    full_h, full_w = hc * cell12 * 2, wc * cell12 * 2
    g48 = upsample_gain(gain, full_h, full_w)
    if (full_h, full_w) != (h48, w48):
        g48 = np.pad(g48, ((0, h48 - full_h), (0, w48 - full_w)), mode="edge")
    out = apply_gain(camera48, g48)
    return BaselineResult(
        "gain-field", out, gain, 2.0 ** stats["global_log2_gain"], cell12 * 2, stats
    )


BASELINES = {
    "global": baseline_global,
    "gain-field": baseline_gain_field,
}


def log2_gain_range(result: BaselineResult, *, percentile: float = 99.9) -> float:
    """Spatial gain swing: the ``percentile`` of |log2 gain - log2 global gain| over cells.

    A percentile, not the maximum, so a handful of cells in black or clipped areas do not
    decide; :func:`clamped_fraction` reports those. 0 for the global baseline.
    """
    g = np.log2(np.maximum(result.gain_lowres, 1e-12)) - math.log2(max(result.global_gain, 1e-12))
    return float(np.percentile(np.abs(g), percentile)) if g.size else 0.0


def clamped_fraction(result: BaselineResult) -> float:
    """Fraction of gain cells sitting at the hard ±MAX_LOG2_GAIN clamp around the global."""
    g = np.log2(np.maximum(result.gain_lowres, 1e-12)) - math.log2(max(result.global_gain, 1e-12))
    return float(np.mean(np.abs(g) >= MAX_LOG2_GAIN - 1e-3)) if g.size > 1 else 0.0
