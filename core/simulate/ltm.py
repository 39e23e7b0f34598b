"""Local tone mapping (LTM) operators for the capture-pair simulator.

Each operator returns a multiplicative gain field ``g`` (H, W) float32, > 0, such that the
simulated ProRAW pixels are ``scene * g`` (one gain for all three channels, so colours are
preserved). Several different operators exist so that a model trained on the simulator
does not learn the inverse of just one:

- ``blur``: gain from a Gaussian-blurred log luminance (classic, strongly haloed at large
  sigma: the dark side of a high-contrast edge is lifted less near the edge);
- ``bilateral``: edge-aware base layer from a guided filter in log luminance, computed at
  low resolution and sliced at full resolution (fast guided filter), so few halos;
- ``grid_table``: a DNG ProfileGainTableMap-like grid of per-cell tone tables indexed by a
  weighted (R, G, B, min, max) input; ``pgtm_arrays_for_scene`` exposes the arrays so the
  same map can be written as a real PGTM tag, ``grid_table_gain`` evaluates one;
- ``exposure_fusion``: Mertens-style exposure fusion of synthetic exposures of the
  luminance with a Laplacian pyramid, at low resolution.

Gains stay within ``[2**LOG2_GAIN_MIN, 2**LOG2_GAIN_MAX]`` = [1/4, 8] (-2..+3 EV) through
a smooth tanh clamp in log2 (real Apple PGTM gains span about 0.24..4.26). Smooth parts are
computed at low resolution (long side <= 512-768 px) and upsampled bilinearly, so every
operator handles 48MP frames; no full-resolution large-sigma filter is ever run.

Units: scenes are Camera48 (3, H, W) float32 on the sensor scale (1.0 = clip), >= 0.
``strength`` is in [0, 1]; 0 gives a gain of exactly 1 everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from core.errors import ConfigError, ShapeError
from core.simulate.isp import downsample_area, luminance, resize_bilinear

logger = logging.getLogger(__name__)

LOG2_GAIN_MIN = -2.0
LOG2_GAIN_MAX = 3.0
LUMA_FLOOR = 1e-5
"""Added to luminance before taking logs (about 16.6 EV below clip)."""
MID_GREY = 0.18
"""Scene value the operators pull the frame's key towards (with the frame's median)."""

TableIndex = Literal["spec", "n_minus_1"]
PgtmArrays = tuple[np.ndarray, tuple[float, float, float, float, float], float, float, float, float]
"""(table (points_v, points_h, points_n) float32, MapInputWeights (5), MapSpacingV,
MapSpacingH, MapOriginV, MapOriginH), the fields of a DNG ProfileGainTableMap."""

APPLE_LIKE_WEIGHTS: tuple[float, float, float, float, float] = (
    0.026176,
    0.088058,
    0.008889,
    0.0,
    0.123123,
)
"""MapInputWeights of the real iPhone 12 Pro PGTM in shared/data/real (R, G, B, min, max)."""


# ----------------------------------------------------------------------------- helpers


def _check_scene(scene: np.ndarray) -> None:
    if scene.ndim != 3 or scene.shape[0] != 3 or min(scene.shape[1:]) < 2:
        raise ShapeError(f"a scene must be (3, H, W) with H, W >= 2, got shape {scene.shape}")


def _check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"LTM strength must be in [0, 1], got {strength}")


def soft_clip_log2(x: np.ndarray) -> np.ndarray:
    """Smooth clamp of a log2 gain into (LOG2_GAIN_MIN, LOG2_GAIN_MAX).

    ``3 tanh(x / 3)`` for x >= 0 and ``2 tanh(x / 2)`` for x < 0 (with the default bounds
    -2 and 3): slope 1 at 0, saturating at the bounds. Same shape, float32.
    """
    x = np.asarray(x, dtype=np.float32)
    hi, lo = np.float32(LOG2_GAIN_MAX), np.float32(-LOG2_GAIN_MIN)
    return np.where(x >= 0, hi * np.tanh(x / hi), lo * np.tanh(x / lo)).astype(np.float32)


def _low_res_factor(h: int, w: int, max_side: int) -> int:
    return max(1, int(np.ceil(max(h, w) / max_side)))


def _low_res_log_luma(scene: np.ndarray, max_side: int) -> tuple[np.ndarray, int]:
    """log2 of the block-mean luminance at low resolution, and the block factor."""
    factor = _low_res_factor(scene.shape[1], scene.shape[2], max_side)
    low = downsample_area(luminance(scene), factor)
    return np.log2(low + np.float32(LUMA_FLOOR)).astype(np.float32), factor


def _anchor(log_low: np.ndarray) -> float:
    """The frame's key in log2: half its median, half mid grey (so dark frames get lifted,
    bright ones pulled down, within the gain bounds)."""
    return 0.5 * float(np.median(log_low)) + 0.5 * float(np.log2(MID_GREY))


def _gain_from_low_log2(log_gain_low: np.ndarray, h: int, w: int) -> np.ndarray:
    """Upsample a low-resolution log2 gain bilinearly and exponentiate: (h, w) float32."""
    up = resize_bilinear(log_gain_low, h, w)
    np.exp2(up, out=up)
    return up


def _box_mean(img: np.ndarray, radius: int) -> np.ndarray:
    return ndimage.uniform_filter(img, size=2 * radius + 1, mode="reflect")


# ----------------------------------------------------------------------------- operators


def blur_ltm(
    scene: np.ndarray,
    *,
    strength: float = 0.6,
    rng: np.random.Generator | None = None,
    sigma_frac: float | None = None,
    compression: float = 0.6,
) -> np.ndarray:
    """Classic LTM: compress a Gaussian-blurred log luminance ("base") towards the key.

    ``log2 g = softclip(-strength * compression * (base - key))`` with
    ``base = gaussian(log2 Y, sigma)`` and ``key`` from ``_anchor``. The gain does not look
    at the pixel itself, only at the blurred neighbourhood: next to a bright region a dark
    pixel is lifted less than far from it (dark halo), and a bright pixel next to a dark
    region is compressed less (bright halo); halos widen with sigma.

    Args:
        sigma_frac: Gaussian sigma as a fraction of the long side; default 0.04, or drawn
            from U(0.02, 0.1) when ``rng`` is given.
        compression: fraction of the base contrast removed at strength 1.
    Shapes: scene (3, H, W) -> gain (H, W) float32 in [1/4, 8]. Computed at long side
    <= 512 px, upsampled bilinearly.
    """
    _check_scene(scene)
    _check_strength(strength)
    h, w = scene.shape[1:]
    if sigma_frac is None:
        sigma_frac = 0.04 if rng is None else float(rng.uniform(0.02, 0.1))
    log_low, factor = _low_res_log_luma(scene, 512)
    sigma_low = max(sigma_frac * max(h, w) / factor, 0.5)
    base = ndimage.gaussian_filter(log_low, sigma_low, mode="reflect")
    log_gain = soft_clip_log2(np.float32(-strength * compression) * (base - _anchor(log_low)))
    return _gain_from_low_log2(log_gain, h, w)


def _guided_coefficients(
    guide: np.ndarray, radius: int, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Self-guided filter coefficients (mean_a, mean_b) so that ``q = mean_a * I + mean_b``."""
    mean_i = _box_mean(guide, radius)
    var_i = _box_mean(guide * guide, radius) - mean_i * mean_i
    a = var_i / (var_i + np.float32(eps))
    b = mean_i - a * mean_i
    return _box_mean(a, radius), _box_mean(b, radius)


def bilateral_ltm(
    scene: np.ndarray,
    *,
    strength: float = 0.6,
    rng: np.random.Generator | None = None,
    radius_frac: float | None = None,
    eps_log2: float | None = None,
    compression: float = 0.6,
) -> np.ndarray:
    """Edge-aware LTM: the same base compression as ``blur_ltm`` on a guided-filter base.

    The base layer is a self-guided filter of log2 luminance (He et al.): coefficients
    ``a, b`` are computed at low resolution (long side <= 512 px), upsampled bilinearly and
    applied to the full-resolution log luminance, ``base = A * log2 Y + B`` (the "fast
    guided filter"), so edges stronger than about ``sqrt(eps_log2)`` stops stay sharp in
    the base at full resolution and the gain does not bleed across them: few halos.

    Args:
        radius_frac: box radius as a fraction of the long side; default 0.04, or
            U(0.02, 0.08) with ``rng``.
        eps_log2: regulariser in (log2 units)^2; default 0.25 (0.5 EV), or U(0.1, 0.5).
        compression: fraction of the base contrast removed at strength 1.
    Shapes: scene (3, H, W) -> gain (H, W) float32 in [1/4, 8].
    """
    _check_scene(scene)
    _check_strength(strength)
    h, w = scene.shape[1:]
    if radius_frac is None:
        radius_frac = 0.04 if rng is None else float(rng.uniform(0.02, 0.08))
    if eps_log2 is None:
        eps_log2 = 0.25 if rng is None else float(rng.uniform(0.1, 0.5))
    log_low, factor = _low_res_log_luma(scene, 512)
    key = _anchor(log_low)
    radius = max(1, round(radius_frac * max(h, w) / factor))
    mean_a, mean_b = _guided_coefficients(log_low, radius, eps_log2)
    # Slice at full resolution: base = A * I + B, then the gain, all in one chunked pass.
    a_up = resize_bilinear(mean_a, h, w)
    b_up = resize_bilinear(mean_b, h, w)
    coef = np.float32(-strength * compression)
    for r0 in range(0, h, 256):
        r1 = min(h, r0 + 256)
        log_y = np.log2(luminance(scene[:, r0:r1]) + np.float32(LUMA_FLOOR))
        base = a_up[r0:r1] * log_y + b_up[r0:r1]
        a_up[r0:r1] = np.exp2(soft_clip_log2(coef * (base - np.float32(key))))
    return a_up


def _input_value(rgb: np.ndarray, weights: tuple[float, ...]) -> np.ndarray:
    """PGTM table input ``clamp(w . (R, G, B, min, max), 0, 1)``; (3, ...) -> (...) float32."""
    wr, wg, wb, wmin, wmax = (np.float32(v) for v in weights)
    val = rgb[0] * wr
    val += rgb[1] * wg
    val += rgb[2] * wb
    if wmin != 0:
        val += np.minimum(np.minimum(rgb[0], rgb[1]), rgb[2]) * wmin
    if wmax != 0:
        val += np.maximum(np.maximum(rgb[0], rgb[1]), rgb[2]) * wmax
    np.clip(val, 0.0, 1.0, out=val)
    return val.astype(np.float32, copy=False)


def _table_positions(points_n: int, table_index: TableIndex) -> np.ndarray:
    """Table input value at which each of the ``points_n`` entries sits."""
    denom = points_n if table_index == "spec" else max(points_n - 1, 1)
    return np.arange(points_n, dtype=np.float64) / denom


def pgtm_arrays_for_scene(
    scene: np.ndarray,
    *,
    points_v: int = 6,
    points_h: int = 8,
    points_n: int = 257,
    strength: float = 0.6,
    rng: np.random.Generator | None = None,
    table_index: TableIndex = "spec",
) -> PgtmArrays:
    """Design a ProfileGainTableMap (DNG 1.6) that tone-maps ``scene`` locally.

    Grid: point (i, j) sits at relative position (origin_v + i * spacing_v,
    origin_h + j * spacing_h) with spacing 1/points and origin 0.5/points (cell centres,
    like Apple's maps). Input weights: Apple's (``APPLE_LIKE_WEIGHTS``) by default; with
    ``rng`` a random blend of those and luminance-like weights, scaled by 2**U(-1, 0.5).
    Tables: for each point, its neighbourhood key ``k_ij`` (Gaussian-weighted mean of
    log2 of the table input around the point, sigma = half a spacing) and for entry n at
    input ``w_n``::

        log2 g = softclip(-strength * (0.45 * (k_ij - a) + 0.25 * (log2 max(w_n, 2**-12) - a)))

    with ``a`` the input value of a mid-grey (0.18) daylight neutral: dark cells are lifted,
    bright ones compressed (local part), and within a cell shadows are lifted and
    highlights compressed (tone-curve part). ``w_n`` follows ``table_index`` (see
    ``grid_table_gain``) so the table means the same under either indexing convention.

    Shapes: scene (3, H, W) -> table (points_v, points_h, points_n) float32 in [1/4, 8].
    Returns: (table, weights, spacing_v, spacing_h, origin_v, origin_h).
    Raises: ShapeError for a bad scene; ConfigError for bad grid sizes or strength.
    """
    _check_scene(scene)
    _check_strength(strength)
    if points_v < 1 or points_h < 1 or points_n < 2:
        raise ConfigError(
            f"PGTM grid needs points_v, points_h >= 1 and points_n >= 2, got "
            f"{points_v}x{points_h}x{points_n}"
        )
    if rng is None:
        weights = APPLE_LIKE_WEIGHTS
    else:
        luma_like = np.array([0.06, 0.12, 0.04, 0.0, 0.0])
        t = rng.uniform(0.0, 1.0)
        mixed = (1.0 - t) * np.array(APPLE_LIKE_WEIGHTS) + t * luma_like
        mixed *= 2.0 ** rng.uniform(-1.0, 0.5)
        weights = (
            float(mixed[0]),
            float(mixed[1]),
            float(mixed[2]),
            float(mixed[3]),
            float(mixed[4]),
        )
    spacing_v, spacing_h = 1.0 / points_v, 1.0 / points_h
    origin_v, origin_h = 0.5 / points_v, 0.5 / points_h
    factor = _low_res_factor(scene.shape[1], scene.shape[2], 256)
    low_rgb = downsample_area(scene, factor)
    log_in = np.log2(_input_value(low_rgb, weights) + np.float32(2.0**-12))
    hl, wl = log_in.shape
    smooth = ndimage.gaussian_filter(
        log_in, (max(0.5 * spacing_v * hl, 0.5), max(0.5 * spacing_h * wl, 0.5)), mode="reflect"
    )
    # Sample the smoothed key at the grid points (pixel-centre convention on the low grid).
    pv = (origin_v + spacing_v * np.arange(points_v)) * hl - 0.5
    ph = (origin_h + spacing_h * np.arange(points_h)) * wl - 0.5
    coords = np.stack(np.meshgrid(np.clip(pv, 0, hl - 1), np.clip(ph, 0, wl - 1), indexing="ij"))
    key = ndimage.map_coordinates(smooth, coords, order=1, mode="nearest")  # (V, H)
    grey = np.float32(MID_GREY) * np.asarray((0.52, 1.0, 0.72), dtype=np.float32)
    a = float(np.log2(_input_value(grey[:, None], weights)[0] + 2.0**-12))
    w_n = _table_positions(points_n, table_index)
    tone = np.log2(np.maximum(w_n, 2.0**-12)) - a  # (N,)
    log_gain = -strength * (0.45 * (key[:, :, None] - a) + 0.25 * tone[None, None, :])
    table = np.exp2(soft_clip_log2(log_gain.astype(np.float32))).astype(np.float32)
    return table, weights, spacing_v, spacing_h, origin_v, origin_h


def _grid_taps(
    n_px: int, n_points: int, origin: float, spacing: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map-point indices (i0, i1) and weight of i1 for pixels 0..n_px-1 along one axis."""
    rel = (np.arange(n_px, dtype=np.float64) + 0.5) / n_px
    pos = np.clip((rel - origin) / spacing, 0.0, n_points - 1)
    i0 = np.minimum(np.floor(pos).astype(np.intp), max(n_points - 2, 0))
    i1 = np.minimum(i0 + 1, n_points - 1)
    return i0, i1, pos - i0


def grid_table_gain(
    rgb: np.ndarray,
    table: np.ndarray,
    weights: tuple[float, ...] | np.ndarray,
    spacing_v: float,
    spacing_h: float,
    origin_v: float,
    origin_h: float,
    *,
    table_index: TableIndex = "spec",
) -> np.ndarray:
    """Evaluate a ProfileGainTableMap gain at every pixel (DNG 1.6 ProfileGainTableMap).

    Convention (DNG spec, "details on sampling conventions"):
    - pixel (x, y) of a W x H image sits at relative position ((x + 0.5) / W,
      (y + 0.5) / H) (pixel centres, half-pixel offset);
    - map point (i, j) sits at (origin_v + i * spacing_v, origin_h + j * spacing_h);
      tables are interpolated bilinearly between the four surrounding points, and
      outside the map the edge points are replicated (positions clamped to the grid);
    - the table input is ``w = clamp(weights . (R, G, B, min(R,G,B), max(R,G,B)), 0, 1)``
      from ``rgb`` as given (the caller applies BaselineExposure / colour space first);
    - table lookup is linear at index ``w * N`` (``table_index="spec"``: the DNG spec
      text says to multiply the input by MapPointsN; the index is clamped to N - 1, so
      entry n sits at w = n / N and inputs above (N - 1) / N use the last entry) or at
      ``w * (N - 1)`` (``"n_minus_1"``: entry n at w = n / (N - 1), the last entry at
      w = 1), for readers that follow that reading.
    Gain = sum over the 4 points of spatial weight x table lookup (equivalently lookup
    in the bilinearly interpolated table, since both are linear).

    Shapes: rgb (3, H, W), table (points_v, points_h, points_n) -> gain (H, W) float32.
    Evaluated in row chunks of 128 (memory bounded by the chunk, not the frame).
    Raises: ShapeError for bad shapes; ConfigError for non-positive spacing, wrong number
    of weights, or an unknown ``table_index``.
    """
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ShapeError(f"grid_table_gain needs rgb (3, H, W), got shape {rgb.shape}")
    tab = np.asarray(table, dtype=np.float32)
    if tab.ndim != 3 or min(tab.shape) < 1:
        raise ShapeError(f"PGTM table must be (points_v, points_h, points_n), got {tab.shape}")
    wts = tuple(float(v) for v in np.asarray(weights, dtype=np.float64).reshape(-1))
    if len(wts) != 5:
        raise ConfigError(f"MapInputWeights needs 5 values (R, G, B, min, max), got {len(wts)}")
    if not (spacing_v > 0 and spacing_h > 0):
        raise ConfigError(f"PGTM spacing must be > 0, got V={spacing_v}, H={spacing_h}")
    if table_index not in ("spec", "n_minus_1"):
        raise ConfigError(f"unknown table_index {table_index!r}; valid: spec, n_minus_1")
    _, h, w = rgb.shape
    pv_n, ph_n, n = tab.shape
    i0, i1, fv = _grid_taps(h, pv_n, origin_v, spacing_v)
    j0, j1, fh = _grid_taps(w, ph_n, origin_h, spacing_h)
    fh32 = fh.astype(np.float32)
    scale = np.float32(n if table_index == "spec" else max(n - 1, 1))
    out = np.empty((h, w), dtype=np.float32)
    chunk = 128
    cols0 = j0 * n  # (W,) offsets of the left point's table in a row of tables
    cols1 = j1 * n
    for r0 in range(0, h, chunk):
        r1 = min(h, r0 + chunk)
        rows = np.arange(r1 - r0)
        # Tables interpolated along V for each row of the chunk: (rows, points_h * N).
        fvc = fv[r0:r1, None, None].astype(np.float32)
        row_tabs = (tab[i0[r0:r1]] * (1.0 - fvc) + tab[i1[r0:r1]] * fvc).reshape(r1 - r0, -1)
        t = _input_value(rgb[:, r0:r1], wts) * scale
        np.clip(t, 0.0, n - 1, out=t)
        k0 = np.minimum(t.astype(np.intp), max(n - 2, 0))
        ft = t - k0
        k1 = np.minimum(k0 + 1, n - 1)
        base = rows[:, None] * row_tabs.shape[1]
        flat = row_tabs.reshape(-1)
        left = flat[base + cols0 + k0] * (1.0 - ft) + flat[base + cols0 + k1] * ft
        right = flat[base + cols1 + k0] * (1.0 - ft) + flat[base + cols1 + k1] * ft
        out[r0:r1] = left + (right - left) * fh32
    return out


def grid_table_ltm(
    scene: np.ndarray,
    *,
    strength: float = 0.6,
    rng: np.random.Generator | None = None,
    points_v: int = 6,
    points_h: int = 8,
    points_n: int = 257,
) -> np.ndarray:
    """PGTM-like LTM: ``grid_table_gain`` of the map ``pgtm_arrays_for_scene`` designs.

    With ``rng`` the input weights are randomised (see ``pgtm_arrays_for_scene``).
    Shapes: scene (3, H, W) -> gain (H, W) float32 in [1/4, 8].
    """
    arrays = pgtm_arrays_for_scene(
        scene, points_v=points_v, points_h=points_h, points_n=points_n, strength=strength, rng=rng
    )
    return grid_table_gain(scene, *arrays)


def _gaussian_pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    pyr = [img]
    for _ in range(levels - 1):
        pyr.append(ndimage.gaussian_filter(pyr[-1], 1.0, mode="reflect")[::2, ::2])
    return pyr


def _laplacian_pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    gauss = _gaussian_pyramid(img, levels)
    lap = [g - resize_bilinear(gauss[k + 1], *g.shape) for k, g in enumerate(gauss[:-1])]
    return [*lap, gauss[-1]]


def exposure_fusion_ltm(
    scene: np.ndarray,
    *,
    strength: float = 0.6,
    rng: np.random.Generator | None = None,
    spread_ev: float | None = None,
    sigma_well: float | None = None,
) -> np.ndarray:
    """Multi-scale LTM: Mertens exposure fusion of synthetic exposures of the luminance.

    Exposures ``e_k`` from ``-spread_ev`` to ``+1.5 * spread_ev`` (6 of them) around the key
    are display-encoded with ``d_k = x / (1 + x)``, ``x = 2**(log2 Y + e_k - key)``; each
    gets a well-exposedness weight ``exp(-(d_k - 0.5)^2 / (2 sigma_well^2))``; the ``d_k``
    are blended with a Laplacian pyramid of the images and a Gaussian pyramid of the
    normalised weights, then decoded back with the e = 0 curve. The gain is
    ``softclip(strength * (log2 fused - log2 Y))``. Everything runs at long side <= 768 px
    and the log gain is upsampled bilinearly, so near strong edges the gain shows narrow
    halos about one low-resolution pixel wide, and wider soft ones from the coarse levels.

    Args:
        spread_ev: exposure spread; default 2.0, or U(1.5, 3.0) with ``rng``.
        sigma_well: well-exposedness width; default 0.2, or U(0.15, 0.3) with ``rng``.
    Shapes: scene (3, H, W) -> gain (H, W) float32 in [1/4, 8].
    """
    _check_scene(scene)
    _check_strength(strength)
    h, w = scene.shape[1:]
    if spread_ev is None:
        spread_ev = 2.0 if rng is None else float(rng.uniform(1.5, 3.0))
    if sigma_well is None:
        sigma_well = 0.2 if rng is None else float(rng.uniform(0.15, 0.3))
    log_low, _ = _low_res_log_luma(scene, 768)
    key = _anchor(log_low)
    levels = max(1, min(6, int(np.log2(min(log_low.shape))) - 2))
    exposures = np.linspace(-spread_ev, 1.5 * spread_ev, 6)
    encoded = [1.0 / (1.0 + np.exp2(-(log_low + np.float32(e - key)))) for e in exposures]
    well = [np.exp(-((d - 0.5) ** 2) / (2 * sigma_well**2)) + 1e-12 for d in encoded]
    total = np.sum(well, axis=0)
    fused = [np.zeros_like(g) for g in _gaussian_pyramid(log_low, levels)]
    for d, wk in zip(encoded, well, strict=True):
        lap = _laplacian_pyramid(d.astype(np.float32), levels)
        gw = _gaussian_pyramid((wk / total).astype(np.float32), levels)
        for f, lk, gk in zip(fused, lap, gw, strict=True):
            f += lk * gk
    img = fused[-1]
    for lk in reversed(fused[:-1]):
        img = lk + resize_bilinear(img, *lk.shape)
    d_fused = np.clip(img, 1e-4, 1.0 - 1e-4)
    log_fused = np.log2(d_fused / (1.0 - d_fused)) + np.float32(key)
    log_gain = soft_clip_log2(np.float32(strength) * (log_fused - log_low))
    return _gain_from_low_log2(log_gain, h, w)


# ----------------------------------------------------------------------------- registry

LtmOperator = Callable[..., np.ndarray]
"""``op(scene, *, strength, rng) -> gain (H, W)``."""

LTM_OPERATORS: dict[str, LtmOperator] = {
    "blur": blur_ltm,
    "bilateral": bilateral_ltm,
    "grid_table": grid_table_ltm,
    "exposure_fusion": exposure_fusion_ltm,
}


def apply_ltm(
    scene: np.ndarray, name: str, *, strength: float, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Tone-map ``scene`` with one operator: returns ``(scene * gain, gain)``.

    ``rng`` randomises the operator's secondary parameters (sigma, eps, weights...);
    ``None`` uses the documented defaults.
    Shapes: scene (3, H, W) -> tonemapped (3, H, W) float32, gain (H, W) float32.
    Raises: ConfigError for an unknown operator (listing the valid ones) or a strength
    outside [0, 1]; ShapeError for a bad scene.
    """
    op = LTM_OPERATORS.get(name)
    if op is None:
        raise ConfigError(f"unknown LTM operator {name!r}; valid: {', '.join(LTM_OPERATORS)}")
    gain = op(scene, strength=strength, rng=rng)
    return np.asarray(scene, dtype=np.float32) * gain[None], gain


@dataclass(frozen=True)
class LtmResult:
    """One random tone mapping for training data.

    Attributes:
        name: operator key in ``LTM_OPERATORS``.
        strength: the strength used, in [0, 1].
        tonemapped: (3, H, W) float32, ``scene * gain``.
        gain: (H, W) float32 gain field.
        pgtm: for ``grid_table``, the PGTM arrays that produced ``gain`` (to write the map
            as a real ProfileGainTableMap); ``None`` otherwise.
    """

    name: str
    strength: float
    tonemapped: np.ndarray
    gain: np.ndarray
    pgtm: PgtmArrays | None = None


def random_ltm(
    scene: np.ndarray, rng: np.random.Generator, *, strength_range: tuple[float, float] = (0.3, 1.0)
) -> LtmResult:
    """Pick an operator uniformly and a strength from U(strength_range); apply it.

    Deterministic for the generator state. Shapes as ``apply_ltm``.
    """
    names = list(LTM_OPERATORS)
    name = names[int(rng.integers(0, len(names)))]
    strength = float(rng.uniform(*strength_range))
    if name == "grid_table":
        arrays = pgtm_arrays_for_scene(scene, strength=strength, rng=rng)
        gain = grid_table_gain(scene, *arrays)
        return LtmResult(name, strength, np.asarray(scene, np.float32) * gain[None], gain, arrays)
    tonemapped, gain = apply_ltm(scene, name, strength=strength, rng=rng)
    return LtmResult(name, strength, tonemapped, gain)
