"""Training losses (issue 4). All take working-space tensors (Camera48 * wb) unless noted.

- :func:`anchor_loss`: Charbonnier on F(L) vs the RAW12 mosaic, unclipped pixels only;
  self-supervised (no ground truth), so it also works on real pairs.
- :func:`detail_loss`: L1 between gradients after a global-only render (log2 luminance:
  one fixed tone curve, no local operator) of L and of ProRAW48.
- :func:`tv_loss` / :func:`range_loss`: smoothness (TV) and range of the log-gain grid.
- :func:`truth_loss`: Huber in the log domain against simulated truth (+ its gradients).
- :func:`histogram_loss`: sorted-value matching of log2 luminance against truth.

No KL-divergence terms. Errors are normalised per sample so exposure does not matter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import Tensor

from core.cfa import CfaPattern
from core.forward import forward_torch
from core.model.net import luminance_t

#: Anchor values below this (Mosaic12 units) are noise-dominated and left out.
DARK_FLOOR = 2e-3


def charbonnier(x: Tensor, eps: float = 1e-3) -> Tensor:
    """Elementwise sqrt(x^2 + eps^2) - eps."""
    return torch.sqrt(x * x + eps * eps) - eps


def _sample_mean(x: Tensor) -> Tensor:
    return x.mean(dim=(1, 2, 3), keepdim=True)


def anchor_loss(
    output: Tensor,
    anchor: Tensor,
    unclipped: Tensor,
    wb: Tensor,
    cfa: CfaPattern,
    pool: int = 1,
) -> Tensor:
    """Charbonnier of (F(L / wb) - anchor) / mean(anchor) over valid 12MP pixels.

    ``pool`` > 1 compares per-CFA-plane means over pool x pool blocks of Bayer cells
    (2 * pool 12MP pixels) instead of single pixels; H/2 and W/2 must divide by 2 * pool.

    Shapes: output (N, 3, H, W) working space; anchor, unclipped (N, 1, H/2, W/2); wb
    (N, 3, 1, 1). Valid: unclipped and anchor above :data:`DARK_FLOOR`.
    """
    pred = forward_torch(output / wb, cfa)
    valid = (unclipped & (anchor > DARK_FLOOR)).float()
    scale = (_sample_mean(anchor * valid) / (_sample_mean(valid) + 1e-6)).clamp_min(1e-4)
    if pool > 1:
        # Per CFA plane (pixel_unshuffle keeps each plane apart), pool x pool blocks: the
        # anchor's noise at pixel scale is not a target; a block counts if fully valid.
        planes = [nnf.pixel_unshuffle(t, 2) for t in (pred * valid, anchor * valid, valid)]
        p_, a_, v_ = (nnf.avg_pool2d(t, pool) for t in planes)
        full = (v_ > 0.999).float()
        err = charbonnier((p_ - a_) / (v_ + 1e-6) / scale, 1e-2) * full
        return err.sum() / full.sum().clamp_min(1.0)
    err = charbonnier((pred - anchor) / scale, 1e-2) * valid
    return err.sum() / valid.sum().clamp_min(1.0)


def log_lum(x: Tensor, ref: Tensor) -> Tensor:
    """Global render used by the losses: log2 luminance with a floor of 1e-3 of the
    reference's mean luminance (per sample). (N, 3, H, W) -> (N, 1, H, W)."""
    floor = _sample_mean(luminance_t(ref)).clamp_min(1e-8) * 1e-3
    return torch.log2(luminance_t(x).clamp_min(0) + floor)


def _grads(x: Tensor) -> tuple[Tensor, Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def detail_loss(output: Tensor, pro: Tensor) -> Tensor:
    """L1 between the gradients of the globally rendered output and ProRAW48."""
    lo, lp = log_lum(output, pro), log_lum(pro, pro)
    gx_o, gy_o = _grads(lo)
    gx_p, gy_p = _grads(lp)
    return 0.5 * ((gx_o - gx_p).abs().mean() + (gy_o - gy_p).abs().mean())


def tv_loss(log_gain_grid: Tensor) -> Tensor:
    """Mean absolute spatial difference of the (N, bins, h, w) log-gain grid."""
    gx, gy = _grads(log_gain_grid)
    return 0.5 * (gx.abs().mean() + gy.abs().mean())


def range_loss(log_gain_grid: Tensor, soft_limit: float = 2.0) -> Tensor:
    """Penalty on |log g| beyond ``soft_limit`` (natural log), squared."""
    return torch.relu(log_gain_grid.abs() - soft_limit).square().mean()


def truth_loss(output: Tensor, truth: Tensor, delta: float = 0.25) -> Tensor:
    """Huber of log2 luminance errors, of their x and y gradients, of their fine band
    (error minus its 5x5 mean: edge bands, i.e. halos at pixel scale), and (0.1) of the
    log chromaticity errors (simulated truth)."""
    lo, lt = log_lum(output, truth), log_lum(truth, truth)
    value = nnf.huber_loss(lo, lt, delta=delta)
    gx_o, gy_o = _grads(lo)
    gx_t, gy_t = _grads(lt)
    grad = nnf.huber_loss(gx_o, gx_t, delta=delta) + nnf.huber_loss(gy_o, gy_t, delta=delta)
    chroma = nnf.huber_loss(
        torch.log2(output.clamp_min(0) + 1e-6)
        - torch.log2(luminance_t(output).clamp_min(0) + 1e-6),
        torch.log2(truth + 1e-6) - torch.log2(luminance_t(truth) + 1e-6),
        delta=delta,
    )
    err = lo - lt
    band = err - nnf.avg_pool2d(err, 5, stride=1, padding=2, count_include_pad=False)
    halo = nnf.huber_loss(band, torch.zeros_like(band), delta=delta)
    return value + grad + halo + 0.1 * chroma


def histogram_loss(output: Tensor, truth: Tensor) -> Tensor:
    """L1 between sorted log2 luminances (distribution match, per sample)."""
    lo = log_lum(output, truth).flatten(1).sort(dim=1).values
    lt = log_lum(truth, truth).flatten(1).sort(dim=1).values
    return (lo - lt).abs().mean()
