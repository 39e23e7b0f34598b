"""Sensor-side and ProRAW-side pixel processing for the capture-pair simulator.

Pure NumPy/SciPy, vectorised, memory bounded by row chunks where a 48MP frame would need
several full-size temporaries. Nothing here writes files.

Value convention (DESIGN §2): images are float32 linear values on the sensor scale,
1.0 = sensor clip (full well); (C, H, W) channel-first, or (H, W) for one plane.

Contents:
- ``resize_bilinear`` / ``downsample_area``: the resampling helpers the scene builders and
  the tone mapping operators share (compute smooth things at low resolution, upsample).
- ``poisson_gaussian_noise``: shot + read noise of a sensor.
- ``denoise``, ``sharpen``: stand-ins for Apple's fusion/denoise/sharpening baked into
  ProRAW pixels.
- ``warp_image``: the parametric backward warp (zoom, translation, Brown-Conrady radial and
  tangential distortion) that simulates ProRAW48's misregistration against RAW12.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from scipy import ndimage

from core.errors import ConfigError, ShapeError

logger = logging.getLogger(__name__)

_CHUNK_ROWS = 256  # rows per block in chunked full-resolution passes


LUMA_WEIGHTS: tuple[float, float, float] = (0.25, 0.5, 0.25)
"""Weights of the simulator's luminance in camera-native RGB (green-heavy, like a camera's
own Y); an approximation used for statistics and tone mapping, not a colorimetric Y."""


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Camera-native luminance ``0.25 R + 0.5 G + 0.25 B``.

    Shapes: (3, H, W) -> (H, W) float32. Units: same scale as ``rgb``.
    Raises: ShapeError if the first axis is not 3 channels.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ShapeError(f"luminance needs (3, H, W), got shape {rgb.shape}")
    wr, wg, wb = (np.float32(v) for v in LUMA_WEIGHTS)
    out = rgb[0] * wr
    out += rgb[1] * wg
    out += rgb[2] * wb
    return out.astype(np.float32, copy=False)


def _axis_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights of a 1-D bilinear resize with the half-pixel convention.

    Output sample ``o`` sits at source coordinate ``(o + 0.5) * n_in / n_out - 0.5``,
    clamped to ``[0, n_in - 1]`` (edge replication). Returns ``(i0, i1, f)`` with the value
    ``a[i0] * (1 - f) + a[i1] * f``; ``f`` is float32 (n_out,).
    """
    s = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    s = np.clip(s, 0.0, n_in - 1)
    i0 = np.minimum(np.floor(s).astype(np.intp), max(n_in - 2, 0))
    i1 = np.minimum(i0 + 1, n_in - 1)
    f = (s - i0).astype(np.float32)
    return i0, i1, f


def resize_bilinear(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of the last two axes (half-pixel convention, edges replicated).

    Convention: pixel centres at integer coordinates; output pixel ``o`` maps to source
    coordinate ``(o + 0.5) * n_in / n_out - 0.5`` in each axis (``align_corners=False`` in
    torch terms). Meant for upsampling smooth low-resolution fields; downsampling by large
    factors aliases, use ``downsample_area`` for that.

    Shapes: (..., h_in, w_in) -> (..., h, w), float32. Works in row chunks, so the
    temporaries stay a few MB whatever the output size.
    Raises: ShapeError if ``img`` has fewer than two axes or a size is not positive.
    """
    if img.ndim < 2 or h <= 0 or w <= 0 or min(img.shape[-2:]) <= 0:
        raise ShapeError(f"cannot resize an array of shape {img.shape} to {h}x{w}")
    src = np.asarray(img, dtype=np.float32)
    h_in, w_in = src.shape[-2:]
    iy0, iy1, fy = _axis_taps(h_in, h)
    ix0, ix1, fx = _axis_taps(w_in, w)
    # Columns first, on the (small) input height.
    cols = src[..., ix0] * (1.0 - fx) + src[..., ix1] * fx  # (..., h_in, w)
    out = np.empty((*src.shape[:-2], h, w), dtype=np.float32)
    step = 64
    tmp = np.empty((*src.shape[:-2], step, w), dtype=np.float32)
    for r0 in range(0, h, step):
        r1 = min(h, r0 + step)
        t = tmp[..., : r1 - r0, :]
        a = cols[..., iy0[r0:r1], :]
        np.subtract(cols[..., iy1[r0:r1], :], a, out=t)
        t *= fy[r0:r1, None]
        np.add(a, t, out=out[..., r0:r1, :])
    return out


def downsample_area(img: np.ndarray, factor: int) -> np.ndarray:
    """Block-mean downsampling of the last two axes by an integer factor.

    Blocks are ``factor x factor`` pixels starting at the top-left; the last block in each
    axis may be smaller (its mean is over the pixels it has).

    Shapes: (..., H, W) -> (..., ceil(H / factor), ceil(W / factor)), float32.
    Raises: ConfigError if ``factor < 1``; ShapeError for fewer than two axes.
    """
    if factor < 1:
        raise ConfigError(f"factor must be >= 1, got {factor}")
    if img.ndim < 2:
        raise ShapeError(f"need an array with at least 2 axes, got shape {img.shape}")
    src = np.asarray(img, dtype=np.float32)
    if factor == 1:
        return src.copy()
    h, w = src.shape[-2:]
    ry = np.arange(0, h, factor)
    rx = np.arange(0, w, factor)
    sums = np.add.reduceat(np.add.reduceat(src, rx, axis=-1), ry, axis=-2)
    ny = np.diff(np.append(ry, h)).astype(np.float32)
    nx = np.diff(np.append(rx, w)).astype(np.float32)
    return (sums / (ny[:, None] * nx[None, :])).astype(np.float32)


def poisson_gaussian_noise(
    signal: np.ndarray,
    *,
    full_well_e: float,
    read_noise_e: float,
    rng: np.random.Generator,
    gaussian_above_e: float = 1000.0,
) -> np.ndarray:
    """Add sensor shot noise and read noise.

    ``out = Poisson(signal * full_well_e) / full_well_e + N(0, read_noise_e) / full_well_e``.
    Negative signal counts as 0 electrons. Where the expected count exceeds
    ``gaussian_above_e`` the Poisson draw is replaced by its Gaussian approximation
    N(lambda, lambda) (indistinguishable there, and much faster). The result is not clipped:
    values above 1.0 (full well) and slightly negative values (read noise around black) are
    left for the caller's sensor model to clip or keep.

    Shapes: any, float32 out with the shape of ``signal``.
    Units: ``signal`` and the result on the sensor scale (1.0 = full well);
    ``full_well_e`` and ``read_noise_e`` in electrons (read noise as a standard deviation).
    Variance of the result: ``signal / full_well_e + (read_noise_e / full_well_e) ** 2``.
    Deterministic for a given ``rng`` state.
    Raises: ConfigError if ``full_well_e <= 0`` or ``read_noise_e < 0``.
    """
    if not full_well_e > 0:
        raise ConfigError(f"full_well_e must be > 0, got {full_well_e}")
    if not read_noise_e >= 0:
        raise ConfigError(f"read_noise_e must be >= 0, got {read_noise_e}")
    lam = np.maximum(np.asarray(signal, dtype=np.float32), 0.0) * np.float32(full_well_e)
    small = lam < gaussian_above_e
    counts = lam + np.sqrt(lam) * rng.standard_normal(lam.shape, dtype=np.float32)
    if small.any():
        counts[small] = rng.poisson(lam[small].astype(np.float64)).astype(np.float32)
    if read_noise_e > 0:
        counts += np.float32(read_noise_e) * rng.standard_normal(lam.shape, dtype=np.float32)
    counts *= np.float32(1.0 / full_well_e)
    return counts


def _box(img: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window of the last two axes, reflected edges; float32."""
    size = [1] * (img.ndim - 2) + [2 * radius + 1, 2 * radius + 1]
    return ndimage.uniform_filter(img, size=size, mode="reflect")


def denoise(rgb: np.ndarray, strength: float) -> np.ndarray:
    """Edge-preserving smoothing: a guided filter in a variance-stabilised domain.

    Each channel is filtered with the guided filter (He et al.), guided by the channel mean,
    in the square-root domain where shot noise has roughly constant variance:
    ``x = sqrt(rgb)``, radius ``1 + round(2 * strength)`` px, regulariser
    ``eps = (0.03 * strength) ** 2`` (in sqrt units: edges stronger than about
    ``0.03 * strength`` survive, weaker texture and noise is flattened); the result is
    squared back. ``strength = 0`` returns a copy.

    Shapes: (3, H, W) float32 -> (3, H, W) float32. Units: sensor scale, non-negative out.
    Raises: ShapeError for a non (C, H, W) input; ConfigError for strength outside [0, 1].
    """
    if rgb.ndim != 3:
        raise ShapeError(f"denoise needs (C, H, W), got shape {rgb.shape}")
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"denoise strength must be in [0, 1], got {strength}")
    if strength == 0.0:
        return np.array(rgb, dtype=np.float32, copy=True)
    radius = 1 + round(2 * strength)
    eps = np.float32((0.03 * strength) ** 2)
    x = np.sqrt(np.maximum(np.asarray(rgb, dtype=np.float32), 0.0))
    guide = x.mean(axis=0)
    mean_i = _box(guide, radius)
    var_i = _box(guide * guide, radius) - mean_i * mean_i
    out = np.empty_like(x)
    for c in range(x.shape[0]):
        mean_p = _box(x[c], radius)
        cov = _box(guide * x[c], radius) - mean_i * mean_p
        a = cov / (var_i + eps)
        b = mean_p - a * mean_i
        out[c] = _box(a, radius) * guide + _box(b, radius)
    np.maximum(out, 0.0, out=out)
    return out * out


def sharpen(
    rgb: np.ndarray,
    amount: float,
    radius_px: float,
    *,
    domain: Literal["linear", "log"] = "linear",
) -> np.ndarray:
    """Unsharp mask: ``x + amount * (x - gaussian(x, radius_px))``, negatives clipped to 0.

    ``domain="linear"`` sharpens the linear values (overshoot scales with the edge
    contrast, so bright edges ring most); ``domain="log"`` sharpens ``log(x + 1e-4)`` and
    maps back, so overshoot is relative (a fixed fraction on both sides of every edge) and
    the result can never be negative. The Gaussian acts on the spatial axes only.

    Shapes: (C, H, W) or (H, W) float32 -> same. Units: sensor scale.
    Raises: ConfigError for a negative amount or non-positive radius.
    """
    if amount < 0:
        raise ConfigError(f"sharpen amount must be >= 0, got {amount}")
    if not radius_px > 0:
        raise ConfigError(f"sharpen radius_px must be > 0, got {radius_px}")
    x = np.asarray(rgb, dtype=np.float32)
    sigma = [0.0] * (x.ndim - 2) + [radius_px, radius_px]
    if domain == "linear":
        blurred = ndimage.gaussian_filter(x, sigma=sigma, mode="reflect")
        out = x + np.float32(amount) * (x - blurred)
        return np.maximum(out, 0.0)
    if domain == "log":
        off = np.float32(1e-4)
        lx = np.log(np.maximum(x, 0.0) + off)
        blurred = ndimage.gaussian_filter(lx, sigma=sigma, mode="reflect")
        return np.maximum(np.exp(lx + np.float32(amount) * (lx - blurred)) - off, 0.0)
    raise ConfigError(f"unknown sharpen domain {domain!r}; valid: linear, log")


def warp_image(
    img: np.ndarray,
    *,
    translation_px: tuple[float, float] = (0.0, 0.0),
    zoom: float = 1.0,
    radial: tuple[float, float, float] = (0.0, 0.0, 0.0),
    tangential: tuple[float, float] = (0.0, 0.0),
    principal_point_px: tuple[float, float] | None = None,
    order: Literal[1, 3] = 1,
) -> np.ndarray:
    """Backward parametric warp: zoom, translation, Brown-Conrady radial + tangential.

    Convention: input (C, H, W); all parameters in pixels of ``img``; points are ``(x, y)``
    (x = column, y = row); pixel centres at integer coordinates; backward warping: output
    pixel ``q = (x, y)`` samples the source at

        src(q) = c + |c| * (zoom * u * (1 + k1 r^2 + k2 r^4 + k3 r^6) + T(u)) + t,
        u = (q - c) / |c|,  r = |u|,
        T(u) = (2 p1 ux uy + p2 (r^2 + 2 ux^2),  p1 (r^2 + 2 uy^2) + 2 p2 ux uy),

    with ``t = translation_px = (tx, ty)``, ``(k1, k2, k3) = radial``,
    ``(p1, p2) = tangential``, ``c = principal_point_px`` (default the image centre
    ``((W - 1) / 2, (H - 1) / 2)``) and ``|c|`` the half diagonal
    ``norm(((W - 1) / 2, (H - 1) / 2))`` (always the image's, also with an explicit
    principal point). So ``t = (+1, 0)`` makes output column x show source column x + 1
    (content moves left). Evaluated as ``q + (zoom * R - 1) * (q - c) + |c| * T(u) + t``,
    which is exactly ``q + t`` for identity distortion, so identity parameters return the
    input exactly and integer translations shift pixels exactly.

    Sampling: ``scipy.ndimage.map_coordinates`` with ``order=1`` (bilinear, the default,
    exact at integer positions) or ``order=3`` (cubic B-spline with prefilter; sharper,
    reproduces samples only to float rounding and may overshoot, so negatives are clipped
    to 0). Outside the image: ``mode="nearest"`` (edge pixels replicated).

    Shapes: (C, H, W) -> (C, H, W) float32; (H, W) is accepted too.
    Raises: ShapeError for other ranks; ConfigError for a non-positive zoom or bad order.
    """
    if img.ndim not in (2, 3):
        raise ShapeError(f"warp_image needs (C, H, W) or (H, W), got shape {img.shape}")
    if not zoom > 0:
        raise ConfigError(f"zoom must be > 0, got {zoom}")
    if order not in (1, 3):
        raise ConfigError(f"order must be 1 (bilinear) or 3 (bicubic), got {order}")
    src = np.asarray(img, dtype=np.float32)
    planes = src[None] if src.ndim == 2 else src
    _, h, w = planes.shape
    half = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    norm = float(np.hypot(*half)) or 1.0
    cx, cy = (float(v) for v in (principal_point_px if principal_point_px is not None else half))
    k1, k2, k3 = (float(v) for v in radial)
    p1, p2 = (float(v) for v in tangential)
    tx, ty = (float(v) for v in translation_px)
    identity_shape = zoom == 1.0 and k1 == k2 == k3 == p1 == p2 == 0.0
    if identity_shape and tx == 0.0 and ty == 0.0:
        return planes.copy() if src.ndim == 3 else planes[0].copy()

    out = np.empty_like(planes)
    # Spline coefficients once per plane (not once per chunk) for the cubic case.
    sources = [
        ndimage.spline_filter(p, order=3, mode="nearest", output=np.float32) if order > 1 else p
        for p in planes
    ]
    xs = np.arange(w, dtype=np.float64)[None, :]
    for r0 in range(0, h, _CHUNK_ROWS):
        r1 = min(h, r0 + _CHUNK_ROWS)
        ys = np.arange(r0, r1, dtype=np.float64)[:, None]
        dx = xs - cx  # (1, W)
        dy = ys - cy  # (rows, 1)
        if identity_shape:
            sx = np.broadcast_to(xs + tx, (r1 - r0, w))
            sy = np.broadcast_to(ys + ty, (r1 - r0, w))
        else:
            ux = dx / norm
            uy = dy / norm
            r2 = ux * ux + uy * uy
            radial_factor = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
            scale = zoom * radial_factor - 1.0
            tan_x = 2.0 * p1 * ux * uy + p2 * (r2 + 2.0 * ux * ux)
            tan_y = p1 * (r2 + 2.0 * uy * uy) + 2.0 * p2 * ux * uy
            sx = xs + scale * dx + norm * tan_x + tx
            sy = ys + scale * dy + norm * tan_y + ty
        coords = np.stack([np.broadcast_to(sy, (r1 - r0, w)), np.broadcast_to(sx, (r1 - r0, w))])
        for c, plane in enumerate(sources):
            ndimage.map_coordinates(
                plane, coords, output=out[c, r0:r1], order=order, mode="nearest", prefilter=False
            )
    if order > 1:
        np.maximum(out, 0.0, out=out)
    return out if src.ndim == 3 else out[0]
