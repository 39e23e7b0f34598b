"""The sensor forward operator F: Camera48 -> RAW12 mosaic (DESIGN §3), and its adjoint.

Definition (one definition, two backends)::

    F(L)[i, j] = g(i, j) * mean_{dy, dx in {0, 1}} L[c(i, j), 2i + dy, 2j + dx],
    c(i, j) = P[i % 2][j % 2]

where ``P`` is RAW12's 2x2 Bayer pattern and ``g`` an optional gain: per channel
(``g(i, j) = gains[c(i, j)]``) or per 12MP pixel (``g(i, j) = gains[i, j]``). Equivalently,
F samples the 48MP quad-Bayer mosaic ``Q[y][x] = P[y // 2][x // 2]`` from Camera48
(:func:`remosaic_quad`) and bins it 2x2 (:func:`bin2x2`).

Arithmetic is fixed so that the backends agree bit for bit: the four samples are summed in
reading order ``((L00 + L01) + L10) + L11`` in the input dtype, then multiplied by
``0.25 * gain`` (a power-of-two scaling, so ``(s * 0.25) * g == s * (0.25 * g)`` exactly).

Convention: numpy arrays are channel-first, torch tensors NCHW; 12MP pixel (i, j) covers
48MP rows 2i..2i+1 and columns 2j..2j+1.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from core.cfa import CfaPattern
from core.errors import ShapeError

__all__ = [
    "ForwardOperator",
    "adjoint_np",
    "adjoint_torch",
    "bin2x2",
    "cfa_planes",
    "forward_np",
    "forward_torch",
    "remosaic_quad",
]

_PHASES: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (1, 0), (1, 1))
_GainKind = Literal["none", "channel", "pixel"]
_BAND_ROWS = 64  # output rows per cache band in forward_np; must be even


# --------------------------------------------------------------------------- validation


def _check_even_hw(h48: int, w48: int, what: str) -> None:
    if h48 <= 0 or w48 <= 0 or h48 % 2 or w48 % 2:
        raise ShapeError(
            f"{what} is {w48}x{h48} (WxH); both sides must be even and non-zero, because "
            "each RAW12 pixel bins a 2x2 block of 48MP pixels"
        )


def _as_float_np(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float32)


def _check_camera48_np(camera48: np.ndarray) -> np.ndarray:
    cam = _as_float_np(camera48)
    if cam.ndim != 3 or cam.shape[0] != 3:
        raise ShapeError(f"Camera48 must have shape (3, H48, W48), got {cam.shape}")
    _check_even_hw(cam.shape[1], cam.shape[2], "Camera48")
    return cam


def _gains_np(
    gains: np.ndarray | None, h12: int, w12: int, dtype: np.dtype
) -> tuple[_GainKind, np.ndarray | None]:
    if gains is None:
        return "none", None
    g = np.asarray(gains, dtype=dtype)
    if g.shape == (3,):
        return "channel", g
    if g.shape == (h12, w12):
        return "pixel", g
    raise ShapeError(
        f"gains must be per channel (3,) or per 12MP pixel ({h12}, {w12}), got {g.shape}"
    )


# --------------------------------------------------------------------------- numpy


def _mean4_into(
    out: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, scale: float
) -> None:
    """``out = (((a + b) + c) + d) * scale`` in place, in out's dtype (the one summation order)."""
    np.add(a, b, out=out)
    out += c
    out += d
    out *= out.dtype.type(scale)


def forward_np(
    camera48: np.ndarray,
    cfa: CfaPattern,
    gains: np.ndarray | None = None,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Bin Camera48 to the RAW12 mosaic (DESIGN §3), NumPy backend.

    Reads only the channel each output pixel needs, with strided slices per CFA phase and
    in-place adds (no per-pixel Python loop).

    Shapes: camera48 (3, H48, W48) -> (H48/2, W48/2). gains: (3,) per channel or
        (H48/2, W48/2) per 12MP pixel. ``out``, when given, must be (H48/2, W48/2) of the
        result dtype and is returned.
    Units: both on the Mosaic12 scale (1.0 = sensor clip); gains are dimensionless.
    Dtype: floating inputs keep their dtype (float32 normally, float64 for checks); other
        dtypes are computed in float32.
    Raises: ShapeError if camera48 is not (3, H, W), H48 or W48 is odd or zero, or gains or
        out have the wrong shape.
    """
    cam = _check_camera48_np(camera48)
    h12, w12 = cam.shape[1] // 2, cam.shape[2] // 2
    kind, g = _gains_np(gains, h12, w12, cam.dtype)
    if out is None:
        out = np.empty((h12, w12), dtype=cam.dtype)
    elif out.shape != (h12, w12) or out.dtype != cam.dtype:
        raise ShapeError(f"out must be ({h12}, {w12}) {cam.dtype}, got {out.shape} {out.dtype}")
    pattern = cfa.as_array()
    # Bands of _BAND_ROWS output rows (even, so each band starts on CFA phase 0) keep the
    # four in-place passes over a band in cache: ~1.5x faster than whole-frame passes.
    for r0 in range(0, h12, _BAND_ROWS):
        band_out = out[r0 : r0 + _BAND_ROWS]
        band_in = cam[:, 2 * r0 : 2 * (r0 + _BAND_ROWS)]
        for py, px in _PHASES:
            c = int(pattern[py, px])
            src = band_in[c]
            y0, x0 = 2 * py, 2 * px
            scale = 0.25 * float(g[c]) if kind == "channel" and g is not None else 0.25
            _mean4_into(
                band_out[py::2, px::2],
                src[y0::4, x0::4],
                src[y0::4, x0 + 1 :: 4],
                src[y0 + 1 :: 4, x0::4],
                src[y0 + 1 :: 4, x0 + 1 :: 4],
                scale,
            )
    if kind == "pixel" and g is not None:
        out *= g
    return out


def adjoint_np(
    mosaic12: np.ndarray,
    cfa: CfaPattern,
    gains: np.ndarray | None = None,
    out_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """The exact adjoint F* of :func:`forward_np` (scatter back).

    Each 12MP value ``y[i, j]`` is written as ``y[i, j] * g(i, j) / 4`` into the four 48MP
    pixels of its own channel ``c(i, j)``; the other two channels stay zero. So
    ``<F x, y> == <x, F* y>`` up to float rounding.

    Shapes: mosaic12 (H12, W12) -> (3, 2*H12, 2*W12). gains as in :func:`forward_np`.
        ``out_shape``, when given, is (H48, W48) or (3, H48, W48) and must match.
    Units: Mosaic12 scale in, Camera48 scale out (a value spread over four pixels).
    Raises: ShapeError if mosaic12 is not 2-D or empty, or gains/out_shape do not match.
    """
    y = _as_float_np(mosaic12)
    if y.ndim != 2 or y.size == 0:
        raise ShapeError(f"mosaic12 must be a non-empty (H12, W12) array, got {y.shape}")
    h12, w12 = y.shape
    full = (3, 2 * h12, 2 * w12)
    if out_shape is not None and tuple(out_shape) not in (full, full[1:]):
        raise ShapeError(
            f"out_shape {tuple(out_shape)} does not match mosaic12 {y.shape}: need {full}"
        )
    kind, g = _gains_np(gains, h12, w12, y.dtype)
    if kind == "pixel" and g is not None:
        y = y * g
    out = np.zeros(full, dtype=y.dtype)
    pattern = cfa.as_array()
    for py, px in _PHASES:
        c = int(pattern[py, px])
        scale = 0.25 * float(g[c]) if kind == "channel" and g is not None else 0.25
        val = y[py::2, px::2] * y.dtype.type(scale)
        for dy in (0, 1):
            for dx in (0, 1):
                out[c, 2 * py + dy :: 4, 2 * px + dx :: 4] = val
    return out


def remosaic_quad(camera48: np.ndarray, cfa: CfaPattern) -> np.ndarray:
    """Sample the 48MP quad-Bayer mosaic from Camera48: ``Q48[y, x] = L[Q[y%4][x%4], y, x]``.

    ``Q`` is :meth:`CfaPattern.quad` (``Q[y][x] = P[y // 2][x // 2]``, DESIGN §3).
    ``bin2x2(remosaic_quad(L, P)) == forward_np(L, P)`` bit for bit.

    Shapes: camera48 (3, H48, W48) -> (H48, W48).
    Units: unchanged (Camera48 / Mosaic12 scale).
    Raises: ShapeError if camera48 is not (3, H, W) with even, non-zero H and W.
    """
    cam = _check_camera48_np(camera48)
    quad = cfa.quad()
    out = np.empty(cam.shape[1:], dtype=cam.dtype)
    for qy in range(4):
        for qx in range(4):
            out[qy::4, qx::4] = cam[int(quad[qy, qx]), qy::4, qx::4]
    return out


def bin2x2(mosaic48: np.ndarray) -> np.ndarray:
    """2x2 mean of a 48MP mosaic, in F's summation order.

    Shapes: mosaic48 (H48, W48) -> (H48/2, W48/2).
    Units: unchanged.
    Raises: ShapeError if mosaic48 is not 2-D with even, non-zero sides.
    """
    m = _as_float_np(mosaic48)
    if m.ndim != 2:
        raise ShapeError(f"mosaic48 must be (H48, W48), got {m.shape}")
    _check_even_hw(m.shape[0], m.shape[1], "mosaic48")
    out = np.empty((m.shape[0] // 2, m.shape[1] // 2), dtype=m.dtype)
    _mean4_into(out, m[0::2, 0::2], m[0::2, 1::2], m[1::2, 0::2], m[1::2, 1::2], 0.25)
    return out


def cfa_planes(mosaic12: np.ndarray, cfa: CfaPattern) -> dict[str, np.ndarray]:
    """Split a Bayer mosaic into its R, Gr, Gb, B planes (Gr = green on red rows).

    Shapes: mosaic12 (H12, W12) -> {name: (ceil((H12 - dy) / 2), ceil((W12 - dx) / 2))},
        i.e. (H12/2, W12/2) each for even sides. The planes are strided views (no copy).
    Units: unchanged.
    Raises: ShapeError if mosaic12 is not 2-D.
    """
    m = np.asarray(mosaic12)
    if m.ndim != 2:
        raise ShapeError(f"mosaic12 must be (H12, W12), got {m.shape}")
    offsets = cfa.plane_offsets()
    return {name: m[dy::2, dx::2] for name, (dy, dx) in offsets.items()}


# --------------------------------------------------------------------------- torch


def _channel_mask_torch(cfa: CfaPattern, h12: int, w12: int, device: torch.device) -> Tensor:
    """(1, 3, h12, w12) bool: True where channel c is the CFA colour of 12MP pixel (i, j)."""
    cell = torch.as_tensor(cfa.as_array(), device=device)  # (2, 2)
    onehot = cell[None] == torch.arange(3, device=device)[:, None, None]  # (3, 2, 2)
    tiled = onehot.repeat(1, (h12 + 1) // 2, (w12 + 1) // 2)[:, :h12, :w12]
    return tiled[None]


def _gains_torch(
    gains: Tensor | None, n: int, h12: int, w12: int, like: Tensor
) -> tuple[_GainKind, Tensor | None]:
    if gains is None:
        return "none", None
    g = gains.to(dtype=like.dtype, device=like.device)
    if g.shape == (3,):
        return "channel", g.view(1, 3, 1, 1)
    if g.dim() == 2 and g.shape[1] == 3 and g.shape[0] in (1, n):
        return "channel", g.view(g.shape[0], 3, 1, 1)
    if g.dim() == 4 and g.shape[0] in (1, n) and g.shape[1:] == (1, h12, w12):
        return "pixel", g
    raise ShapeError(
        f"gains must be (3,), ({n}, 3) or ({n}, 1, {h12}, {w12}), got {tuple(g.shape)}"
    )


def forward_torch(camera48: Tensor, cfa: CfaPattern, gains: Tensor | None = None) -> Tensor:
    """Bin Camera48 to the RAW12 mosaic (DESIGN §3), torch backend (batched, differentiable).

    Formulated with Core ML friendly ops: ``avg_pool2d`` 2x2, an elementwise per-channel
    gain, a fixed channel-selection mask (``where`` + sum over channels). ``where`` rather
    than a multiply by a 0/1 mask, so a non-finite value in a channel that is not sampled
    does not leak into the mosaic (same result as :func:`forward_np`).

    Shapes: camera48 (N, 3, H48, W48) -> (N, 1, H48/2, W48/2). gains: (3,) or (N, 3) per
        channel, or (N, 1, H48/2, W48/2) per 12MP pixel (N may be 1 to broadcast).
    Units: both on the Mosaic12 scale (1.0 = sensor clip).
    Raises: ShapeError if camera48 is not (N, 3, H, W), H48 or W48 is odd or zero, or gains
        has the wrong shape.
    """
    if camera48.dim() != 4 or camera48.shape[1] != 3:
        raise ShapeError(f"Camera48 must have shape (N, 3, H48, W48), got {tuple(camera48.shape)}")
    n, _, h48, w48 = camera48.shape
    _check_even_hw(h48, w48, "Camera48")
    h12, w12 = h48 // 2, w48 // 2
    kind, g = _gains_torch(gains, n, h12, w12, camera48)
    pooled = nnf.avg_pool2d(camera48, kernel_size=2, stride=2)
    if kind == "channel" and g is not None:
        pooled = pooled * g
    mask = _channel_mask_torch(cfa, h12, w12, camera48.device)
    mosaic = torch.where(mask, pooled, torch.zeros((), dtype=pooled.dtype, device=pooled.device))
    mosaic = mosaic.sum(dim=1, keepdim=True)
    if kind == "pixel" and g is not None:
        mosaic = mosaic * g
    return mosaic


def adjoint_torch(mosaic12: Tensor, cfa: CfaPattern, gains: Tensor | None = None) -> Tensor:
    """The exact adjoint F* of :func:`forward_torch` (scatter back), differentiable.

    Channel-select with the CFA mask, scale by gain / 4, nearest 2x upsample.

    Shapes: mosaic12 (N, 1, H12, W12) -> (N, 3, 2*H12, 2*W12). gains as in
        :func:`forward_torch`.
    Units: Mosaic12 scale in, Camera48 scale out.
    Raises: ShapeError if mosaic12 is not (N, 1, H, W) or gains has the wrong shape.
    """
    if mosaic12.dim() != 4 or mosaic12.shape[1] != 1 or mosaic12.numel() == 0:
        raise ShapeError(f"mosaic12 must have shape (N, 1, H12, W12), got {tuple(mosaic12.shape)}")
    n, _, h12, w12 = mosaic12.shape
    kind, g = _gains_torch(gains, n, h12, w12, mosaic12)
    y = mosaic12 * g if kind == "pixel" and g is not None else mosaic12
    mask = _channel_mask_torch(cfa, h12, w12, mosaic12.device)
    zero = torch.zeros((), dtype=y.dtype, device=y.device)
    spread = torch.where(mask, y, zero)  # (N, 3, H12, W12)
    if kind == "channel" and g is not None:
        spread = spread * g
    spread = spread * 0.25
    return nnf.interpolate(spread, scale_factor=2, mode="nearest")


class ForwardOperator(torch.nn.Module):
    """``nn.Module`` wrapper of :func:`forward_torch` for training and export.

    Shapes: (N, 3, H48, W48) -> (N, 1, H48/2, W48/2).
    """

    def __init__(self, cfa: CfaPattern) -> None:
        super().__init__()
        self.cfa = cfa

    def forward(self, camera48: Tensor, gains: Tensor | None = None) -> Tensor:
        """See :func:`forward_torch`."""
        return forward_torch(camera48, self.cfa, gains)
