"""The ProRAW48 -> RAW12-grid warp: parametric model, residual flow, one fused grid.

Convention (DESIGN §4, issue 3), all in 48MP pixels:
- Input layout: images are channel-first ``(C, H, W)`` (or ``(H, W)``), NumPy or torch.
- Grid: the OUTPUT is the RAW12-aligned 48MP grid (the 12MP pixel ``(x12, y12)`` has its
  centre at ``2 x12 + 0.5`` there); the SOURCE is ProRAW48 / Camera48 as read.
- Points are ``(x, y)`` (x = column), pixel centres at integers; backward warping: for
  every output pixel ``q`` we compute where to sample the source, ``W(q)``.
- Parametric part::

      Wp(q) = c + |c| * (zoom * u * (1 + k1 r^2 + k2 r^4 + k3 r^6) + T(u)) + t,
      u = (q - c) / |c|,  r = |u|,
      T(u) = (2 p1 ux uy + p2 (r^2 + 2 ux^2),  p1 (r^2 + 2 uy^2) + 2 p2 ux uy),

  with ``c`` the principal point (default the frame centre ``((W-1)/2, (H-1)/2)``) and
  ``|c|`` the half diagonal ``norm(((W-1)/2, (H-1)/2))`` of the output frame (also with
  an explicit principal point). It is evaluated as ``q + (zoom R - 1)(q - c) + |c| T + t``
  so the identity is exactly ``q`` and a translation exactly ``q + t``.
  ``zoom = 1`` means ProRAW48 is exactly twice the RAW12 grid. This is the same formula
  as the simulator's ``core.simulate.isp.warp_image``; to undo a simulated warp
  ``W_sim`` registration finds ``W ~= W_sim^-1`` (a simulated translation ``t`` is
  recovered as about ``-t``).
- Residual flow: an optional low-resolution field ``flow`` (2, h_lo, w_lo) of (dx, dy) in
  48MP pixels, defined on the OUTPUT grid with ``align_corners=True`` node placement (node
  ``(i, j)`` sits at output pixel ``(j (W-1)/(w_lo-1), i (H-1)/(h_lo-1))``) and
  interpolated bilinearly. It is applied BEFORE the parametric part:
  ``W(q) = Wp(q + f(q))``, which is exactly "warp with Wp, then warp the result with the
  residual flow" (up to the interpolation of the intermediate image).
- Sampling: one ``grid_sample`` per image, bilinear, ``align_corners=True``,
  ``padding_mode="border"`` (outside the source, edge pixels are replicated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from core.errors import ConfigError, ShapeError
from core.geometry.grids import pixel_grid, pixel_to_normalized, sampling_grid

__all__ = [
    "DEFAULT_BAND_PIXELS",
    "WarpParams",
    "flow_at",
    "fused_grid",
    "half_diagonal",
    "parametric_grid",
    "source_coords",
    "warp",
    "warp_image",
]

ImageT = TypeVar("ImageT", np.ndarray, Tensor)

DEFAULT_BAND_PIXELS = 1 << 22
"""Output pixels per band in :func:`warp` (about 4 Mpx: a 32 MiB grid per band)."""


@dataclass(frozen=True)
class WarpParams:
    """Parametric warp, all lengths in 48MP pixels (see the module Convention).

    Attributes:
        translation_px: ``t = (tx, ty)``; output pixel ``q`` samples the source near
            ``q + t``.
        zoom: scale about the principal point (1.0 = ProRAW48 exactly twice RAW12).
        radial: Brown-Conrady ``(k1, k2, k3)`` in half-diagonal-normalized radius.
        tangential: Brown-Conrady ``(p1, p2)``.
        principal_point_px: ``(cx, cy)``; ``None`` = frame centre ``((W-1)/2, (H-1)/2)``.
    """

    translation_px: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    radial: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tangential: tuple[float, float] = (0.0, 0.0)
    principal_point_px: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        fields = {
            "translation_px": (self.translation_px, 2),
            "radial": (self.radial, 3),
            "tangential": (self.tangential, 2),
        }
        if self.principal_point_px is not None:
            fields["principal_point_px"] = (self.principal_point_px, 2)
        for name, (value, n) in fields.items():
            if len(value) != n or not all(math.isfinite(float(v)) for v in value):
                raise ConfigError(f"{name} must be {n} finite numbers, got {value!r}")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if not (math.isfinite(self.zoom) and self.zoom > 0):
            raise ConfigError(f"zoom must be a finite number > 0, got {self.zoom!r}")
        object.__setattr__(self, "zoom", float(self.zoom))

    @property
    def shape_is_identity(self) -> bool:
        """True when zoom, radial and tangential terms are all neutral (translation only)."""
        return self.zoom == 1.0 and not any(self.radial) and not any(self.tangential)

    @property
    def is_identity(self) -> bool:
        """True when ``W(q) == q`` exactly."""
        return self.shape_is_identity and not any(self.translation_px)

    def principal_point(self, h: int, w: int) -> tuple[float, float]:
        """``(cx, cy)`` in pixels of an ``h x w`` output frame."""
        if self.principal_point_px is not None:
            return self.principal_point_px
        return ((w - 1) / 2.0, (h - 1) / 2.0)


def half_diagonal(h: int, w: int) -> float:
    """``|c| = norm(((W-1)/2, (H-1)/2))`` in pixels (1.0 for a 1x1 frame)."""
    return float(math.hypot((w - 1) / 2.0, (h - 1) / 2.0)) or 1.0


def _pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    ab, bb = torch.broadcast_tensors(a, b)
    return ab, bb


def source_coords(
    params: WarpParams, x: Tensor, y: Tensor, *, frame_h: int, frame_w: int
) -> tuple[Tensor, Tensor]:
    """Parametric backward map ``Wp``: output pixel ``(x, y)`` -> source pixel.

    Convention: see the module docstring; ``frame_h, frame_w`` is the OUTPUT frame that
    defines the default principal point and ``|c|``. ``x``, ``y`` are pixel coordinates
    (any broadcastable shapes; pass float64 for precision). Returns ``(sx, sy)`` in
    source pixels, broadcast together.
    """
    tx, ty = params.translation_px
    if params.shape_is_identity:
        sx, sy = x + tx, y + ty
        return _pair(sx, sy)
    cx, cy = params.principal_point(frame_h, frame_w)
    norm = half_diagonal(frame_h, frame_w)
    k1, k2, k3 = params.radial
    p1, p2 = params.tangential
    dx, dy = x - cx, y - cy
    ux, uy = dx / norm, dy / norm
    r2 = ux * ux + uy * uy
    scale = params.zoom * (1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))) - 1.0
    tan_x = 2.0 * p1 * ux * uy + p2 * (r2 + 2.0 * ux * ux)
    tan_y = p1 * (r2 + 2.0 * uy * uy) + 2.0 * p2 * ux * uy
    sx = x + scale * dx + norm * tan_x + tx
    sy = y + scale * dy + norm * tan_y + ty
    return _pair(sx, sy)


def _check_flow(flow: np.ndarray | Tensor) -> Tensor:
    f = torch.as_tensor(flow, dtype=torch.float32)
    if f.ndim != 3 or f.shape[0] != 2 or f.shape[1] < 2 or f.shape[2] < 2:
        raise ShapeError(f"residual flow must be (2, h_lo >= 2, w_lo >= 2), got {tuple(f.shape)}")
    if not bool(torch.isfinite(f).all()):
        raise ShapeError("residual flow has non-finite values")
    return f


def flow_at(
    flow: np.ndarray | Tensor, x: Tensor, y: Tensor, *, frame_h: int, frame_w: int
) -> tuple[Tensor, Tensor]:
    """Bilinearly interpolated residual flow at output pixels ``(x, y)``.

    Convention: ``flow`` (2, h_lo, w_lo), (dx, dy) in 48MP px; node ``(i, j)`` sits at
    output pixel ``(j (W-1)/(w_lo-1), i (H-1)/(h_lo-1))`` (``align_corners=True`` over the
    ``frame_h x frame_w`` output frame). Outside the frame the edge nodes are held.
    Returns float64 ``(fx, fy)`` broadcast to the shape of ``x`` and ``y`` together.
    """
    f = _check_flow(flow)
    xb, yb = torch.broadcast_tensors(x, y)
    xn = pixel_to_normalized(xb.to(torch.float64), frame_w)
    yn = pixel_to_normalized(yb.to(torch.float64), frame_h)
    grid = torch.stack((xn, yn), dim=-1).to(torch.float32).reshape(1, -1, 1, 2)
    out = nnf.grid_sample(
        f.unsqueeze(0), grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    fx = out[0, 0, :, 0].reshape(xb.shape).to(torch.float64)
    fy = out[0, 1, :, 0].reshape(xb.shape).to(torch.float64)
    return fx, fy


def parametric_grid(
    params: WarpParams,
    h: int,
    w: int,
    *,
    src_h: int,
    src_w: int,
    row0: int = 0,
    frame_h: int | None = None,
) -> Tensor:
    """Sampling grid of the parametric warp for output rows ``row0 .. row0 + h - 1``.

    Convention: see the module docstring. ``h x w`` is the requested block of the output
    frame, whose full height is ``frame_h`` (default ``h``: the whole frame) and width
    ``w``; ``src_h x src_w`` is the source image the grid will sample.
    Shapes: returns float32 (1, h, w, 2), (x, y), normalized ``align_corners=True``.
    """
    fh = h if frame_h is None else frame_h
    x, y = pixel_grid(h, w, row0=row0)
    sx, sy = source_coords(params, x, y, frame_h=fh, frame_w=w)
    return sampling_grid(sx, sy, src_h=src_h, src_w=src_w)


def fused_grid(
    params: WarpParams,
    flow: np.ndarray | Tensor | None,
    h: int,
    w: int,
    *,
    src_h: int,
    src_w: int,
    row0: int = 0,
    frame_h: int | None = None,
) -> Tensor:
    """One grid for the residual flow and the parametric warp: ``W(q) = Wp(q + f(q))``.

    Same arguments and shapes as :func:`parametric_grid`, plus ``flow`` (2, h_lo, w_lo)
    in 48MP px on the output grid (``None`` = no residual flow).
    """
    if flow is None:
        return parametric_grid(params, h, w, src_h=src_h, src_w=src_w, row0=row0, frame_h=frame_h)
    fh = h if frame_h is None else frame_h
    x, y = pixel_grid(h, w, row0=row0)
    fx, fy = flow_at(flow, x, y, frame_h=fh, frame_w=w)
    sx, sy = source_coords(params, x + fx, y + fy, frame_h=fh, frame_w=w)
    return sampling_grid(sx, sy, src_h=src_h, src_w=src_w)


def _as_nchw(img: np.ndarray | Tensor) -> tuple[Tensor, bool, bool]:
    """(C, H, W) or (H, W) -> float32 (1, C, H, W) sharing memory where possible."""
    is_numpy = isinstance(img, np.ndarray)
    if isinstance(img, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    else:
        t = img.to(torch.float32)
    if t.ndim not in (2, 3):
        raise ShapeError(f"warp needs an image (C, H, W) or (H, W), got shape {tuple(t.shape)}")
    two_d = t.ndim == 2
    return (t[None, None] if two_d else t[None]), is_numpy, two_d


def warp_image(img: ImageT, grid: Tensor) -> ImageT:
    """Sample ``img`` at ``grid``: exactly one ``grid_sample``.

    Convention: bilinear, ``align_corners=True``, ``padding_mode="border"``; ``grid`` is
    (1, H_out, W_out, 2) with (x, y) normalized over ``img``'s size (see
    ``core.geometry.grids``). An identity grid reproduces ``img`` up to the float32
    rounding of normalized coordinates (see the grids module); use :func:`warp` for
    exact identities.
    Shapes: img (C, H, W) or (H, W), NumPy or tensor -> (C, H_out, W_out) or
    (H_out, W_out) float32 of the same kind.
    """
    src, is_numpy, two_d = _as_nchw(img)
    if grid.ndim != 4 or grid.shape[0] != 1 or grid.shape[-1] != 2:
        raise ShapeError(f"grid must be (1, H, W, 2), got {tuple(grid.shape)}")
    out = nnf.grid_sample(
        src, grid.to(torch.float32), mode="bilinear", padding_mode="border", align_corners=True
    )[0]
    res = out[0] if two_d else out
    return res.numpy() if is_numpy else res  # type: ignore[return-value]


def _integer_shift(img: ImageT, tx: int, ty: int) -> ImageT:
    """Exact ``out[..., y, x] = img[..., clamp(y + ty), clamp(x + tx)]`` (border padding)."""
    h, w = img.shape[-2:]
    if isinstance(img, np.ndarray):
        ix = np.clip(np.arange(w) + tx, 0, w - 1)
        iy = np.clip(np.arange(h) + ty, 0, h - 1)
        return np.asarray(img, dtype=np.float32)[..., iy[:, None], ix[None, :]]
    tix = torch.clamp(torch.arange(w) + tx, 0, w - 1)
    tiy = torch.clamp(torch.arange(h) + ty, 0, h - 1)
    return img.to(torch.float32)[..., tiy[:, None], tix[None, :]]


def warp(
    img: ImageT,
    params: WarpParams,
    flow: np.ndarray | Tensor | None = None,
    *,
    band_pixels: int = DEFAULT_BAND_PIXELS,
) -> ImageT:
    """Registered image ``out(q) = img(W(q))`` with the fused grid, in horizontal bands.

    Convention: see the module docstring; the output frame has ``img``'s size.
    Identity parameters (and no flow) return a float32 copy, bit-exact; a pure integer
    translation shifts pixels exactly (border replication, as ``grid_sample`` would).
    Otherwise each band of about ``band_pixels`` output pixels is one ``grid_sample`` of
    the whole source with that band's rows of the fused grid, so the result equals the
    whole-frame warp bit for bit and memory stays bounded by the band.
    Shapes: (C, H, W) or (H, W), NumPy or tensor -> same shape, float32, same kind.
    """
    if img.ndim not in (2, 3):
        raise ShapeError(f"warp needs an image (C, H, W) or (H, W), got shape {tuple(img.shape)}")
    tx, ty = params.translation_px
    integer_t = float(tx).is_integer() and float(ty).is_integer()
    if flow is None and params.shape_is_identity and integer_t:
        return _integer_shift(img, int(tx), int(ty))
    src, is_numpy, two_d = _as_nchw(img)
    _, c, h, w = src.shape
    out = torch.empty((c, h, w), dtype=torch.float32)
    rows = max(1, band_pixels // max(1, w))
    with torch.no_grad():
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            grid = fused_grid(params, flow, r1 - r0, w, src_h=h, src_w=w, row0=r0, frame_h=h)
            out[:, r0:r1] = nnf.grid_sample(
                src, grid, mode="bilinear", padding_mode="border", align_corners=True
            )[0]
    res = out[0] if two_d else out
    return res.numpy() if is_numpy else res  # type: ignore[return-value]
