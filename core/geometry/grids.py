"""Pixel <-> normalized coordinates and the 12MP <-> 48MP pixel-centre relation.

Convention (DESIGN §4):
- Pixel centres sit at integer coordinates; points are ``(x, y)`` with x = column,
  y = row.
- Normalized coordinates are those of ``torch.nn.functional.grid_sample`` with
  ``align_corners=True``: ``x_n = 2 x / (W - 1) - 1``, so the centre of the first column
  is -1 and the centre of the last column is +1. This module holds the ONE conversion;
  every other module calls :func:`pixel_to_normalized` / :func:`normalized_to_pixel`.
- A 12MP pixel ``(x12, y12)`` covers 48MP pixels ``2 x12 .. 2 x12 + 1``, so its centre
  sits at ``x48 = 2 x12 + 0.5`` on the 48MP grid (:func:`x12_to_x48`).
- Sampling grids are ``(N, H, W, 2)`` with the last axis ordered ``(x, y)``.

Precision: a float32 normalized coordinate maps back to pixels with an error of up to
about ``W * 3e-8`` px (2.5e-4 px at 8064 px), so ``grid_sample`` with an identity grid
reproduces its input only to that precision; code that needs exact identities
(``core.geometry.warp.warp``) short-cuts identity and integer shifts instead.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from core.errors import ShapeError

__all__ = [
    "normalized_to_pixel",
    "pixel_grid",
    "pixel_to_normalized",
    "sampling_grid",
    "x12_to_x48",
    "x48_to_x12",
]

ArrayT = TypeVar("ArrayT", np.ndarray, Tensor, float)


def _check_size(size: int) -> None:
    if size < 2:
        raise ShapeError(
            f"an axis of {size} px has no align_corners=True normalization (need >= 2 px)"
        )


def pixel_to_normalized(coord_px: ArrayT, size: int) -> ArrayT:
    """Pixel coordinate -> ``grid_sample`` coordinate, ``align_corners=True``.

    ``x_n = 2 x / (size - 1) - 1``: pixel 0 -> -1, pixel ``size - 1`` -> +1.
    Works on floats, NumPy arrays and tensors (computed in their dtype; pass float64 for
    full precision and cast once at the end).
    Raises: ShapeError if ``size < 2``.
    """
    _check_size(size)
    return coord_px * (2.0 / (size - 1)) - 1.0


def normalized_to_pixel(coord_n: ArrayT, size: int) -> ArrayT:
    """Inverse of :func:`pixel_to_normalized`: ``x = (x_n + 1) (size - 1) / 2``."""
    _check_size(size)
    return (coord_n + 1.0) * ((size - 1) / 2.0)


def x12_to_x48(coord12: ArrayT) -> ArrayT:
    """12MP pixel coordinate -> 48MP pixel coordinate of the same point: ``2 x12 + 0.5``.

    Same formula for x and y. The centre of 12MP pixel 0 is 48MP coordinate 0.5, midway
    between the two 48MP pixels it covers.
    """
    return coord12 * 2.0 + 0.5


def x48_to_x12(coord48: ArrayT) -> ArrayT:
    """48MP pixel coordinate -> 12MP pixel coordinate: ``(x48 - 0.5) / 2``."""
    return (coord48 - 0.5) * 0.5


def pixel_grid(
    h: int, w: int, *, row0: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates of rows ``row0 .. row0 + h - 1`` of a ``w``-wide frame.

    Returns ``(x, y)`` tensors broadcastable to (h, w): x (1, w), y (h, 1), in pixels.
    """
    if h <= 0 or w <= 0:
        raise ShapeError(f"pixel grid of {w}x{h}: both sides must be positive")
    x = torch.arange(w, dtype=dtype).reshape(1, w)
    y = torch.arange(row0, row0 + h, dtype=dtype).reshape(h, 1)
    return x, y


def sampling_grid(x_px: Tensor, y_px: Tensor, *, src_h: int, src_w: int) -> Tensor:
    """Source pixel coordinates -> a float32 ``grid_sample`` grid ``(1, H, W, 2)``.

    Convention: ``x_px``/``y_px`` are positions in the SOURCE image (pixels, centres at
    integers), broadcastable to one (H, W) shape; the grid's last axis is ``(x, y)``,
    normalized for ``align_corners=True`` over the source size ``(src_h, src_w)``.
    """
    xn = pixel_to_normalized(x_px.to(torch.float64), src_w)
    yn = pixel_to_normalized(y_px.to(torch.float64), src_h)
    xn, yn = torch.broadcast_tensors(xn, yn)
    return torch.stack((xn, yn), dim=-1).to(torch.float32).unsqueeze(0)
