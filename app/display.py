"""Display shaping for previews (viewing only; ``core`` never applies display gamma).

- :func:`render_rgb`: Camera48 (RAW12 camera space, Mosaic12 scale) -> 8-bit sRGB:
  white balance + camera->linear sRGB through ``core.color.stored_to_srgb_matrix``, a
  display exposure, an optional highlight roll-off, the sRGB transfer curve.
- :func:`render_scalar`: a scalar map (log2 gain, EV difference, halo band) through a
  colormap LUT between two levels, NaN shown in a neutral grey.
- :class:`Pyramid`: 2x2 mean-binned levels of a (C, H, W) or (H, W) array so a 48MP
  image is shown from a level close to screen resolution and only the visible crop is
  shaped (bounded work and memory per repaint).

All functions are Qt-free and take/return NumPy arrays; 8-bit outputs are (h, w, 3) uint8
in row-major order (``imageAxisOrder='row-major'``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Grey shown where a scalar map has no value (NaN).
NAN_RGB = (64, 64, 64)
#: Pyramid levels stop once both sides are at most this many pixels.
PYRAMID_MIN_SIDE = 512


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """sRGB transfer curve of values clipped to [0, 1] (float32 in, float32 out)."""
    x = np.clip(linear, 0.0, 1.0, dtype=np.float32)
    low = x * np.float32(12.92)
    high = np.float32(1.055) * np.power(x, np.float32(1 / 2.4), dtype=np.float32) - np.float32(
        0.055
    )
    return np.where(x <= 0.0031308, low, high).astype(np.float32)


def rolloff(linear: np.ndarray, white: float = 4.0) -> np.ndarray:
    """Extended-Reinhard shoulder: 0 -> 0, slope 1 at 0, ``white`` -> 1 (per channel)."""
    w2 = np.float32(white * white)
    return (linear * (1 + linear / w2) / (1 + linear)).astype(np.float32)


def render_rgb(
    camera: np.ndarray,
    to_srgb: np.ndarray,
    *,
    exposure_ev: float = 0.0,
    soft_highlights: bool = True,
) -> np.ndarray:
    """Camera-space linear RGB -> 8-bit sRGB for display.

    Shapes: camera (3, h, w) float; to_srgb (3, 3) (camera -> linear sRGB with white
        balance folded in, ``core.color.stored_to_srgb_matrix``) -> (h, w, 3) uint8.
    Units: camera on the Mosaic12 scale; ``exposure_ev`` scales it by 2**ev first.
    """
    m = (np.asarray(to_srgb, np.float64) * 2.0**exposure_ev).astype(np.float32)
    cam = np.nan_to_num(np.asarray(camera, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lin = np.einsum("ij,jhw->hwi", m, cam, optimize=True)
    np.maximum(lin, 0.0, out=lin)
    if soft_highlights:
        lin = rolloff(lin)
    return np.round(srgb_encode(lin) * 255.0).astype(np.uint8)


def render_gray(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """A scalar image in [lo, hi] -> (h, w, 3) uint8 grey (NaN -> :data:`NAN_RGB`)."""
    span = hi - lo if hi > lo else 1.0
    v = np.clip((np.asarray(values, np.float32) - lo) / span, 0.0, 1.0)
    out = np.repeat(np.round(np.nan_to_num(v, nan=0.0) * 255).astype(np.uint8)[..., None], 3, -1)
    out[np.isnan(values)] = NAN_RGB
    return out


def render_scalar(values: np.ndarray, lo: float, hi: float, lut: np.ndarray) -> np.ndarray:
    """A scalar map through a colormap.

    Shapes: values (h, w); lut (N, 3) or (N, 4) uint8 -> (h, w, 3) uint8.
    Values below ``lo``/above ``hi`` take the end colours; NaN -> :data:`NAN_RGB`.
    """
    table = np.asarray(lut, np.uint8)[:, :3]
    n = table.shape[0]
    span = hi - lo if hi > lo else 1.0
    v = np.asarray(values, np.float32)
    nan = ~np.isfinite(v)
    idx = np.clip((np.where(nan, lo, v) - lo) / span * (n - 1) + 0.5, 0, n - 1).astype(np.intp)
    out = table[idx]
    if nan.any():
        out[nan] = NAN_RGB
    return out


def symmetric_levels(values: np.ndarray, percentile: float = 99.5, floor: float = 1e-3) -> float:
    """Half-width of a colour range symmetric about 0 that covers ``percentile`` of |values|."""
    v = np.abs(np.asarray(values, np.float32))
    v = v[np.isfinite(v)]
    if v.size == 0:
        return floor
    if v.size > 1_000_000:
        v = v[:: v.size // 1_000_000 + 1]
    return max(float(np.percentile(v, percentile)), floor)


def _bin2(a: np.ndarray) -> np.ndarray:
    """2x2 mean of the last two axes (odd trailing row/column dropped), NaN-aware."""
    h, w = a.shape[-2] // 2 * 2, a.shape[-1] // 2 * 2
    v = a[..., :h, :w]
    parts = (v[..., 0::2, 0::2], v[..., 1::2, 0::2], v[..., 0::2, 1::2], v[..., 1::2, 1::2])
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        stack = np.stack(parts)
        ok = np.isfinite(stack)
        n = ok.sum(axis=0)
        total = np.where(ok, stack, 0).sum(axis=0)
        out = np.full(n.shape, np.nan, np.float32)
        np.divide(total, n, out=out, where=n > 0)
        return out
    return ((parts[0] + parts[1] + parts[2] + parts[3]) * np.float32(0.25)).astype(np.float32)


@dataclass(frozen=True)
class Crop:
    """A crop of one pyramid level and where it sits in full-resolution pixels.

    Attributes:
        level: pyramid level (0 = full resolution; level k is binned 2**k).
        data: (C, h, w) or (h, w) crop of that level (a view, not a copy).
        rect: (x, y, width, height) the crop covers in full-resolution pixels.
    """

    level: int
    data: np.ndarray
    rect: tuple[float, float, float, float]


class Pyramid:
    """Mean-binned levels of a (C, H, W) or (H, W) float image, level 0 by reference.

    Extra memory is one third of level 0 at most (and nothing for images whose sides are
    at most :data:`PYRAMID_MIN_SIDE`).
    """

    def __init__(self, image: np.ndarray, *, min_side: int = PYRAMID_MIN_SIDE) -> None:
        self.levels: list[np.ndarray] = [image]
        while max(self.levels[-1].shape[-2:]) > min_side and min(self.levels[-1].shape[-2:]) >= 4:
            self.levels.append(_bin2(self.levels[-1]))
        self.height, self.width = (int(v) for v in image.shape[-2:])

    def crop(
        self,
        view: tuple[float, float, float, float] | None,
        screen_px: tuple[int, int],
        *,
        margin: float = 0.25,
    ) -> Crop:
        """The level and crop to draw a view.

        Args:
            view: visible (x0, y0, x1, y1) in full-resolution pixels, or None for all.
            screen_px: (width, height) of the view on screen in device pixels.
            margin: extra fraction of the view kept on each side (panning stays smooth).
        """
        if view is None:
            x0, y0, x1, y1 = 0.0, 0.0, float(self.width), float(self.height)
        else:
            x0, y0, x1, y1 = view
        sw, sh = max(1, screen_px[0]), max(1, screen_px[1])
        px_per_screen = max((x1 - x0) / sw, (y1 - y0) / sh, 1e-9)
        level = min(len(self.levels) - 1, max(0, math.floor(math.log2(max(px_per_screen, 1)))))
        data = self.levels[level]
        f = 2**level
        h, w = data.shape[-2:]
        mx, my = (x1 - x0) * margin, (y1 - y0) * margin
        cx0 = max(0, math.floor((x0 - mx) / f))
        cy0 = max(0, math.floor((y0 - my) / f))
        cx1 = min(w, math.ceil((x1 + mx) / f))
        cy1 = min(h, math.ceil((y1 + my) / f))
        if cx1 <= cx0 or cy1 <= cy0:
            cx0, cy0, cx1, cy1 = 0, 0, w, h
        sub = data[..., cy0:cy1, cx0:cx1]
        # level k pixel i covers full-res [i*f, (i+1)*f) (an odd trailing pixel is dropped)
        return Crop(level, sub, (cx0 * f, cy0 * f, (cx1 - cx0) * f, (cy1 - cy0) * f))
