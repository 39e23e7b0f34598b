"""Scene generators for the capture-pair simulator: the ground-truth Camera48 light field.

A scene is what an ideal 48MP sensor would record before any processing: float32
(3, H48, W48), linear camera-native RGB on the sensor scale (1.0 = sensor clip; DESIGN §2).
Highlights may exceed 1 (lamps, sun, windows up to about 50); values are never negative.
H48 and W48 are multiples of 4 (the quad-Bayer period).

Colour: a neutral surface under daylight reads ``DAYLIGHT_CAMERA_RGB`` (green = 1), under
tungsten ``TUNGSTEN_CAMERA_RGB``, roughly as an iPhone main camera's AsShotNeutral; the
scenes are therefore not white balanced, like a real raw file.

Scale: large structures (horizon, window, buildings) are placed in frame-relative units, so
a 96x128 test scene and an 8064x6048 frame show the same composition; fine textures (leaf
edges, grass fringe, micro texture, windows of distant buildings) are sized in pixels so
every size has detail up to the pixel level.

Every builder is ``(h48, w48, rng) -> (3, h48, w48) float32``, deterministic for the
generator state, vectorised, and 48MP-capable (few full-size temporaries; large smooth
fields are computed at low resolution and upsampled bilinearly). All scenes are listed in
the plain dict ``SCENES``; ``make_scene`` validates the name and size.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from core.errors import ConfigError, ShapeError
from core.simulate.isp import luminance, resize_bilinear

logger = logging.getLogger(__name__)

SceneKind = Literal["natural", "pattern", "low_texture"]
SceneBuilder = Callable[[int, int, np.random.Generator], np.ndarray]

DAYLIGHT_CAMERA_RGB: tuple[float, float, float] = (0.52, 1.0, 0.72)
"""Camera-native response to a neutral surface under daylight (D65-ish), green = 1."""
TUNGSTEN_CAMERA_RGB: tuple[float, float, float] = (0.92, 1.0, 0.36)
"""Camera-native response to a neutral surface under tungsten (~2850 K), green = 1."""

MIN_SIDE_PX = 16
MAX_SIDE_PX = 16384

STRIPE_GRID: tuple[int, int] = (3, 4)
"""Rows x columns of the ``stripes`` panels (``panel_slices`` gives their extents)."""
STRIPE_PANELS: tuple[tuple[float, float], ...] = (
    (0.02, 0.0),
    (0.05, 90.0),
    (0.10, 45.0),
    (0.125, 0.0),
    (0.20, 30.0),
    (0.24, 0.0),
    (0.25, 90.0),
    (0.26, 0.0),
    (0.33, 60.0),
    (0.45, 0.0),
    (0.48, 90.0),
    (0.49, 0.0),
)
"""``stripes`` panels in reading order: (frequency in cycles per 48MP pixel, angle of the
wave vector in degrees; 0 = intensity varies along x, i.e. vertical stripes). 0.25 is the
12MP Nyquist frequency on the 48MP grid, 0.5 the 48MP one."""
CHECKER_GRID: tuple[int, int] = (2, 4)
CHECKER_SIZES_PX: tuple[int, ...] = (1, 2, 3, 4, 8, 16, 32, 64)
"""``checkers`` panels in reading order: square size in 48MP pixels."""
SIEMENS_SPOKES = 64
"""Number of sinusoidal periods around the ``siemens_star``."""

_PATTERN_MEAN = 0.46
_PATTERN_AMPLITUDE = 0.44


@dataclass(frozen=True)
class SceneSpec:
    """One scene generator.

    Attributes:
        name: key in ``SCENES``.
        kind: ``"natural"`` (photographic content), ``"pattern"`` (torture chart) or
            ``"low_texture"`` (plain surfaces whose only structure is faint grain, near
            the noise: the registration benchmark's low-texture row; not in the training
            pools, which take natural and pattern scenes).
        description: what the scene models and why it is in the set.
        builder: ``(h48, w48, rng) -> (3, h48, w48) float32`` Camera48 scene.
    """

    name: str
    kind: SceneKind
    description: str
    builder: SceneBuilder


# ----------------------------------------------------------------------------- helpers


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in frame-height units: y (h, 1) in (0, 1), x (1, w)."""
    y = ((np.arange(h, dtype=np.float32) + 0.5) / np.float32(h))[:, None]
    x = ((np.arange(w, dtype=np.float32) + 0.5) / np.float32(h))[None, :]
    return y, x


_TILE_PX = 512


def _noise(
    h: int, w: int, cell_px: float, rng: np.random.Generator, cell_px_x: float | None = None
) -> np.ndarray:
    """Value noise in [0, 1]: random knots ~``cell_px`` apart, bilinearly interpolated.

    ``cell_px_x`` makes it anisotropic (cells ``cell_px`` tall, ``cell_px_x`` wide).
    Fine noise (more knots than a 512x512 tile holds) is a periodic 512 px tile repeated
    from a random offset: at pixel-scale cells the period is invisible and it costs one
    memory copy instead of interpolating millions of knots. Shape (h, w) float32.
    """
    cx = cell_px if cell_px_x is None else cell_px_x
    if (h / cell_px) * (w / cx) <= _TILE_PX * _TILE_PX:
        gh = max(2, int(np.ceil(h / cell_px)) + 1)
        gw = max(2, int(np.ceil(w / cx)) + 1)
        return resize_bilinear(rng.random((gh, gw), dtype=np.float32), h, w)
    ky = max(2, round(_TILE_PX / cell_px))
    kx = max(2, round(_TILE_PX / cx))
    knots = rng.random((ky, kx), dtype=np.float32)
    # Periodic bilinear interpolation of the knots over one tile (wrapping at the end).
    taps = []
    for k in (ky, kx):
        pos = np.arange(_TILE_PX) * (k / _TILE_PX)
        i0 = np.floor(pos).astype(np.intp)
        taps.append((i0 % k, (i0 + 1) % k, (pos - i0).astype(np.float32)))
    (y0, y1, fy), (x0, x1, fx) = taps
    rows = knots[y0] * (1.0 - fy[:, None]) + knots[y1] * fy[:, None]
    tile = rows[:, x0] * (1.0 - fx) + rows[:, x1] * fx
    tile = np.roll(tile, tuple(int(v) for v in rng.integers(0, _TILE_PX, 2)), axis=(0, 1))
    strip = np.tile(tile, (1, -(-w // _TILE_PX)))[:, :w]
    out = np.empty((h, w), dtype=np.float32)
    for r0 in range(0, h, _TILE_PX):
        r1 = min(h, r0 + _TILE_PX)
        out[r0:r1] = strip[: r1 - r0]
    return out


def _fbm(
    h: int, w: int, rng: np.random.Generator, cells_px: Sequence[float], gains: Sequence[float]
) -> np.ndarray:
    """Sum of value-noise octaves, zero-mean-ish, within [-1, 1]. Shape (h, w) float32."""
    total = np.zeros((h, w), dtype=np.float32)
    for cell, gain in zip(cells_px, gains, strict=True):
        octave = _noise(h, w, cell, rng)
        octave -= np.float32(0.5)
        octave *= np.float32(2.0 * gain / sum(gains))
        total += octave
    return total


def _smooth_fbm(
    h: int, w: int, rng: np.random.Generator, cells_frac: Sequence[float], gains: Sequence[float]
) -> np.ndarray:
    """Low-frequency fbm (cells given as fractions of the frame height), built at a
    resolution of about 256 px tall and upsampled once. Shape (h, w) float32."""
    hs = min(h, 256)
    ws = max(2, round(w * hs / h))
    small = _fbm(hs, ws, rng, [c * hs for c in cells_frac], gains)
    return resize_bilinear(small, h, w)


def _noise1d(n: int, cell: float, rng: np.random.Generator) -> np.ndarray:
    """1-D value noise in [0, 1] with ~``cell`` samples per knot. Shape (n,) float32."""
    knots = max(2, int(np.ceil(n / cell)) + 1)
    vals = rng.random(knots)
    pos = np.linspace(0.0, knots - 1.0, n)
    return np.interp(pos, np.arange(knots), vals).astype(np.float32)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - np.float32(e0)) / np.float32(e1 - e0), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer (IEC 61966-2-1) on values in [0, 1]."""
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _rgb(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


_DAY = _rgb(*DAYLIGHT_CAMERA_RGB)
_TUNGSTEN = _rgb(*TUNGSTEN_CAMERA_RGB)

# ColorChecker-like reflectances: sRGB 8-bit values of the 24 classic patches, linearised.
_CHECKER_SRGB8 = np.array(
    [
        (115, 82, 68),
        (194, 150, 130),
        (98, 122, 157),
        (87, 108, 67),
        (133, 128, 177),
        (103, 189, 170),
        (214, 126, 44),
        (80, 91, 166),
        (193, 90, 99),
        (94, 60, 108),
        (157, 188, 64),
        (224, 163, 46),
        (56, 61, 150),
        (70, 148, 73),
        (175, 54, 60),
        (231, 199, 31),
        (187, 86, 149),
        (8, 133, 161),
        (243, 243, 242),
        (200, 200, 200),
        (160, 160, 160),
        (122, 122, 121),
        (85, 85, 85),
        (52, 52, 52),
    ],
    dtype=np.float32,
)


def _assemble(
    planes: Sequence[np.ndarray], colours: Sequence[np.ndarray], h: int, w: int
) -> np.ndarray:
    """``out[c] = sum_k planes[k] * colours[k][c]``; colours are (3,) or (3, h, 1)."""
    out = np.zeros((3, h, w), dtype=np.float32)
    for plane, colour in zip(planes, colours, strict=True):
        for c in range(3):
            out[c] += plane * colour[c]
    return out


def panel_slices(h48: int, w48: int, rows: int, cols: int) -> list[tuple[slice, slice]]:
    """Extents of a ``rows x cols`` panel layout (reading order) used by pattern scenes.

    Panel boundaries are rounded down to multiples of 4 so each panel starts on the
    quad-Bayer phase (0, 0); the last row/column takes the remainder.
    Returns a list of (row slice, column slice).
    """
    ys = [4 * ((h48 * i // rows) // 4) for i in range(rows)] + [h48]
    xs = [4 * ((w48 * j // cols) // 4) for j in range(cols)] + [w48]
    return [
        (slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1])) for i in range(rows) for j in range(cols)
    ]


# ----------------------------------------------------------------------------- natural


def _backlit(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = _grid(h, w)
    aspect = w / h
    horizon = float(rng.uniform(0.58, 0.7))
    # Sky: bright near the horizon, deeper blue at the zenith (per-row colour).
    t = np.clip((horizon - y) / horizon, 0.0, 1.0)
    sky_row = rng.uniform(3.0, 6.0) * (1.0 - t) + rng.uniform(0.8, 1.5) * t
    zenith, near_horizon = _rgb(0.70, 1.0, 1.45), _rgb(1.05, 1.0, 0.80)
    sky_col = (
        _DAY[:, None, None]
        * (near_horizon[:, None, None] * (1.0 - t) + zenith[:, None, None] * t)
        * sky_row
    )
    # Sun disc (~50 x clip) with a glow, always above the horizon and left unoccluded.
    sun_x = float(rng.uniform(0.3, 0.7)) * aspect
    sun_y = float(rng.uniform(0.15, horizon - 0.15))
    d2 = (x - np.float32(sun_x)) ** 2 + (y - np.float32(sun_y)) ** 2
    glow = np.exp(d2 * np.float32(-1.0 / (2 * 0.06**2)))
    glow *= np.float32(12.0)
    glow += np.float32(3.0) * np.exp(np.sqrt(d2) * np.float32(-1.0 / 0.2))
    sun_r = 0.035
    glow[d2 < sun_r**2] = 50.0
    del d2
    # Foreground: hill line with a fine grass fringe (pixel-scale edges against the sky).
    hill = (
        horizon
        + 0.05 * (_noise1d(w, w / 6, rng) - 0.5)
        + 0.012 * (_noise1d(w, 3.0, rng) - 0.5)
        + 0.006 * (_noise1d(w, 1.5, rng) - 0.5)
    )
    ground = y > hill[None, :].astype(np.float32)
    # A person-like silhouette (head + shoulders/torso) beside the sun.
    side = 1.0 if sun_x < aspect / 2 else -1.0
    px = sun_x + side * float(rng.uniform(0.16, 0.3))
    head_y = horizon - float(rng.uniform(0.08, 0.16))
    head = ((x - px) / 0.055) ** 2 + ((y - head_y) / 0.07) ** 2 < 1.0
    torso_top = head_y + 0.075
    shoulder = ((x - px) / 0.16) ** 2 + ((y - torso_top - 0.07) / 0.08) ** 2 < 1.0
    body = (np.abs(x - px) < 0.16) & (y > torso_top + 0.07)
    fg = ground | head | shoulder | body
    del ground, head, shoulder, body
    # A tree crown on the other side: leaves = thresholded noise inside an ellipse, so the
    # sky shows through many small gaps (high-contrast fine edges).
    cx_t = float(np.clip(sun_x - side * rng.uniform(0.35, 0.6), 0.1, aspect - 0.1))
    cy_t, rx_t, ry_t = horizon - 0.22, 0.2, 0.2
    r0, r1 = max(0, int((cy_t - ry_t) * h)), min(h, int(np.ceil((cy_t + ry_t) * h)))
    c0, c1 = max(0, int((cx_t - rx_t) * h)), min(w, int(np.ceil((cx_t + rx_t) * h)))
    if r1 > r0 and c1 > c0:
        yy, xx = y[r0:r1], x[:, c0:c1]
        e = ((xx - cx_t) / rx_t) ** 2 + ((yy - cy_t) / ry_t) ** 2
        leaves = _fbm(r1 - r0, c1 - c0, rng, (max(h / 40, 6.0), 6.0, 2.5), (1.0, 0.6, 0.4))
        fg[r0:r1, c0:c1] |= leaves > (e - 0.55) * 0.9
        trunk = (np.abs(xx - cx_t) < 0.015) & (yy > cy_t)
        fg[r0:r1, c0:c1] |= trunk
    # Dark foreground with texture: skylight fill only, ~12 EV below the sky.
    tex = _fbm(h, w, rng, (max(h / 12, 4.0), 12.0, 3.0), (1.0, 0.5, 0.35))
    tex *= np.float32(0.5)
    tex += np.float32(1.0)
    tex *= np.float32(rng.uniform(0.003, 0.006))
    fg_col = _DAY * _rgb(0.9, 1.0, 0.85)
    out = np.empty((3, h, w), dtype=np.float32)
    for c in range(3):
        bright = sky_col[c] + glow * (_DAY[c] * np.float32((1.05, 1.0, 0.9)[c]))
        out[c] = np.where(fg, tex * fg_col[c], bright)
    return out


def _bright_window(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = _grid(h, w)
    aspect = w / h
    ww = float(rng.uniform(0.28, 0.42)) * aspect
    wx0 = float(rng.uniform(0.1, 0.9 - 0.42)) * aspect
    wy0, wh = float(rng.uniform(0.1, 0.18)), float(rng.uniform(0.38, 0.48))
    floor_y = float(rng.uniform(0.72, 0.8))
    n_panes_x, n_panes_y = int(rng.integers(2, 4)), int(rng.integers(1, 3))
    bar = max(0.008, 2.5 / h)  # bar thickness, at least ~2.5 px
    # Window bars (outer frame + mullions) from 1-D tests.
    u = (x - wx0) / ww * n_panes_x
    bars_x = np.abs(u - np.round(u)) * (ww / n_panes_x) < bar / 2
    v = (y - wy0) / wh * n_panes_y
    bars_y = np.abs(v - np.round(v)) * (wh / n_panes_y) < bar / 2
    in_x = (x > wx0 - bar / 2) & (x < wx0 + ww + bar / 2)
    in_y = (y > wy0 - bar / 2) & (y < wy0 + wh + bar / 2)
    # Room: labels 0 wall, 1 floor, 2 sofa, 3 picture, 4 window frame.
    labels = np.zeros((h, w), dtype=np.uint8)
    labels[np.broadcast_to(y > floor_y, (h, w))] = 1
    sofa_x0 = float(rng.uniform(0.02, 0.5)) * aspect
    sofa = (x > sofa_x0) & (x < sofa_x0 + 0.45) & (y > floor_y - 0.12) & (y < floor_y + 0.08)
    labels[sofa] = 2
    pic_x0 = (wx0 + ww + 0.08) if wx0 + ww + 0.3 < aspect else max(0.02, wx0 - 0.3)
    picture = (x > pic_x0) & (x < pic_x0 + 0.18) & (y > 0.22) & (y < 0.4)
    labels[picture] = 3
    frame = in_x & in_y & (bars_x | bars_y)
    labels[frame] = 4
    window = in_x & in_y & ~frame
    refl = np.stack(
        [
            _rgb(0.60, 0.57, 0.50),
            _rgb(0.32, 0.22, 0.13),
            _rgb(0.10, 0.03, 0.03),
            _rgb(0.15, 0.25, 0.45),
            _rgb(0.55, 0.55, 0.55),
        ],
        axis=1,
    )  # (3, labels)
    # Interior light: window light falling off with distance, plus a little ambient.
    dist = np.sqrt((x - (wx0 + ww / 2)) ** 2 + (y - (wy0 + wh / 2)) ** 2)
    illum = np.float32(0.012) + np.float32(0.16) * np.exp(dist * np.float32(-1.0 / 0.35))
    del dist
    # Sun pool on the floor: the window projected along a slanted direction, bar shadows in.
    slant = float(rng.uniform(-0.6, 0.6))
    depth = float(rng.uniform(0.12, 0.2))
    xw = x - np.float32(slant) * (y - np.float32(floor_y))
    uw = (xw - wx0) / ww * n_panes_x
    pool = (
        (y > floor_y)
        & (y < floor_y + depth)
        & (xw > wx0)
        & (xw < wx0 + ww)
        & (np.abs(uw - np.round(uw)) * (ww / n_panes_x) >= bar / 2)
    )
    del xw, uw
    illum[pool & (labels == 1)] += np.float32(rng.uniform(1.5, 3.0))
    # Textures: wall plaster, floor planks (seams + grain), fabric.
    tex = np.float32(1.0) + np.float32(0.08) * _fbm(h, w, rng, (24.0, 4.0), (1.0, 0.5))
    grain = _noise(h, w, 3.0, rng, cell_px_x=40.0)
    seams = np.abs(((x * 12.0) % 1.0) - 0.5) > 0.5 - 1.5 / h
    floor_tex = (np.float32(0.8) + np.float32(0.4) * grain) * np.where(seams, 0.3, 1.0)
    floor_mask = labels == 1
    tex[floor_mask] = floor_tex[floor_mask]
    del grain, floor_tex, floor_mask
    out = np.empty((3, h, w), dtype=np.float32)
    for c in range(3):
        out[c] = refl[c][labels] * illum * tex
    del labels, illum, tex
    # Outside view through the window (only inside its bounding box): bright sky with
    # soft clouds above a sunlit tree line.
    rows = np.flatnonzero(np.any(window, axis=1))
    cols = np.flatnonzero(np.any(window, axis=0))
    if rows.size and cols.size:
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        bh, bw = r1 - r0, c1 - c0
        yy = y[r0:r1]
        clouds = _smoothstep(
            0.1, 0.5, _fbm(bh, bw, rng, (max(bh / 3, 4.0), max(bh / 8, 3.0)), (1.0, 0.5))
        )
        sky = (
            np.float32(rng.uniform(5.0, 8.0)) * (1.0 + 0.5 * clouds) * (1.0 - 0.3 * (yy - wy0) / wh)
        )
        line = (
            wy0
            + wh * rng.uniform(0.55, 0.75)
            + 0.04 * (_noise1d(bw, max(bw / 8, 2.0), rng) - 0.5)
            + 0.01 * (_noise1d(bw, 2.0, rng) - 0.5)
        )
        trees = yy > line[None, :].astype(np.float32)
        leaf = np.float32(1.2) + np.float32(1.0) * _noise(bh, bw, 3.0, rng)
        win = window[r0:r1, c0:c1]
        sky_col = _DAY * _rgb(0.85, 1.0, 1.2)
        tree_col = _DAY * _rgb(0.45, 1.0, 0.35)
        for c in range(3):
            view = np.where(trees, leaf * tree_col[c], sky * sky_col[c])
            block = out[c, r0:r1, c0:c1]
            block[win] = view[win]
    return out


def _mixed_lighting(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, x = _grid(h, w)
    aspect = w / h
    # Reflectances: a textured grey wall, a ColorChecker-like chart, a table top.
    labels = np.zeros((h, w), dtype=np.uint8)
    table_y = float(rng.uniform(0.72, 0.8))
    labels[np.broadcast_to(y > table_y, (h, w))] = 25
    chart_w = min(0.5 * aspect, 0.75)
    chart_x0 = float(rng.uniform(0.25, 0.5)) * aspect - chart_w / 2
    chart_y0, chart_h = 0.2, chart_w * 4 / 6
    cu = (x - chart_x0) / chart_w * 6
    cv = (y - chart_y0) / chart_h * 4
    in_chart = (cu > 0) & (cu < 6) & (cv > 0) & (cv < 4)
    gap = (np.abs(cu - np.round(cu)) < 0.08) | (np.abs(cv - np.round(cv)) < 0.08)
    patch = (
        np.floor(np.clip(cv, 0, 3.99)).astype(np.uint8) * 6
        + np.floor(np.clip(cu, 0, 5.99)).astype(np.uint8)
        + 1
    )
    chart = in_chart & ~gap
    labels[chart] = patch[chart]
    del cu, cv, gap, patch, chart
    labels[in_chart & (labels == 0)] = 26  # chart background (black card)
    refl = np.concatenate(
        [
            _rgb(0.45, 0.45, 0.42)[:, None],
            _srgb_to_linear(_CHECKER_SRGB8.T / 255.0),
            _rgb(0.35, 0.22, 0.12)[:, None],
            _rgb(0.03, 0.03, 0.03)[:, None],
        ],
        axis=1,
    )  # (3, 27)
    # Illuminants: a tungsten lamp (visible bulb) on one side, daylight from the other.
    lamp_left = bool(rng.integers(0, 2))
    lx = (0.12 if lamp_left else 0.88) * aspect
    ly = float(rng.uniform(0.15, 0.3))
    d2 = (x - lx) ** 2 + (y - ly) ** 2
    lt = np.float32(rng.uniform(0.6, 1.2)) / (np.float32(1.0) + d2 * np.float32(1 / 0.08))
    side = x / aspect if lamp_left else 1.0 - x / aspect
    ld = np.float32(rng.uniform(0.2, 0.5)) * _smoothstep(0.3, 1.0, side) * (1.0 + 0.2 * y)
    ld = np.broadcast_to(ld, (h, w))
    tex = _fbm(h, w, rng, (32.0, 6.0, 2.0), (1.0, 0.5, 0.3))
    tex *= np.float32(0.06)
    tex += np.float32(1.0)
    out = np.empty((3, h, w), dtype=np.float32)
    for c in range(3):
        np.take(refl[c], labels, out=out[c])
        out[c] *= tex
        light = lt * _TUNGSTEN[c]
        light += ld * _DAY[c]
        out[c] *= light
        del light
    del tex, lt, labels
    bulb = d2 < np.float32(0.025**2)
    for c in range(3):
        out[c][bulb] = np.float32(20.0) * _TUNGSTEN[c]
    return out


def _city_lights(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    y, _ = _grid(h, w)
    # Buildings: random widths and roof heights along x (per-column arrays).
    widths = []
    total = 0
    while total < w:
        bw = int(max(4, rng.uniform(0.04, 0.16) * h))
        widths.append(bw)
        total += bw
    n_b = len(widths)
    starts = np.concatenate([[0], np.cumsum(widths)[:-1]])
    bid = np.repeat(np.arange(n_b), widths)[:w]
    roof = rng.uniform(0.2, 0.7, n_b).astype(np.float32)[bid]  # (w,)
    in_bldg = y > roof[None, :]
    # Windows: a grid per building (period in px at least 3), lit at random with warm,
    # neutral or cool light; a few exceed the clip.
    per_x = max(3, round(0.018 * h))
    per_y = max(3, round(0.028 * h))
    col_in = np.arange(w) - starts[bid]
    wcol = col_in // per_x
    win_x = (col_in % per_x) < max(1, round(per_x * 0.55))
    rows = np.arange(h)
    wrow = rows // per_y
    win_y = (rows % per_y) < max(1, round(per_y * 0.5))
    n_rows, n_cols = int(wrow.max()) + 1, int(wcol.max()) + 1
    lit = rng.random((n_b, n_rows, n_cols)) < rng.uniform(0.25, 0.45)
    # Unlit windows are dark glass (a faint reflection), lit ones log-normal around 0.4.
    level = np.where(lit, rng.lognormal(np.log(0.4), 0.8, lit.shape), 0.0008).astype(np.float32)
    hue = rng.integers(0, 3, lit.shape)
    palette = np.stack(
        [_TUNGSTEN * _rgb(1.1, 1.0, 0.8), _DAY * _rgb(0.9, 1.0, 1.0), _DAY * _rgb(0.8, 1.0, 1.3)]
    )  # (3 hues, 3 channels)
    cell = (bid[None, :] * n_rows + wrow[:, None]) * n_cols + wcol[None, :]  # (h, w) int
    is_win = in_bldg & win_y[:, None] & win_x[None, :]
    facade = np.float32(0.0015) * (np.float32(1.0) + np.float32(0.3) * _noise(h, w, 6.0, rng))
    # Night sky with sodium skyglow near the horizon.
    sky = (np.float32(0.0015) + np.float32(0.004) * y).astype(np.float32)
    skyglow = _TUNGSTEN * _rgb(1.3, 1.0, 0.6)
    # Point lights: small ones at full resolution, bigger glows at quarter resolution.
    from scipy import ndimage

    points = np.zeros((h, w), dtype=np.float32)
    n_small = max(20, int(600 * h * w / 1e6))
    ys = (rng.uniform(0.45, 1.0, n_small) * h).astype(np.intp).clip(0, h - 1)
    xs = (rng.uniform(0.0, 1.0, n_small) * w).astype(np.intp).clip(0, w - 1)
    sigma = 0.9
    peak = rng.lognormal(np.log(3.0), 0.9, n_small).astype(np.float32)
    np.add.at(points, (ys, xs), peak * np.float32(2 * np.pi * sigma**2))
    points = ndimage.gaussian_filter(points, sigma, mode="constant", truncate=3.0)
    hq, wq = max(4, h // 4), max(4, w // 4)
    big = np.zeros((hq, wq), dtype=np.float32)
    n_big = max(5, int(40 * h * w / 1e6))
    by = (rng.uniform(0.55, 1.0, n_big) * hq).astype(np.intp).clip(0, hq - 1)
    bx = (rng.uniform(0.0, 1.0, n_big) * wq).astype(np.intp).clip(0, wq - 1)
    bsig = 1.5
    np.add.at(
        big,
        (by, bx),
        rng.uniform(2.0, 12.0, n_big).astype(np.float32) * np.float32(2 * np.pi * bsig**2),
    )
    big = ndimage.gaussian_filter(big, bsig, mode="constant", truncate=3.0)
    points += resize_bilinear(big, h, w)
    del big
    np.minimum(points, np.float32(45.0), out=points)  # overlapping lamps stay plausible
    light_col = _TUNGSTEN * _rgb(1.2, 1.0, 0.7)
    out = np.empty((3, h, w), dtype=np.float32)
    for c in range(3):
        win_val = (level * palette[hue, c].astype(np.float32)).reshape(-1)
        plane = np.where(in_bldg, facade * _DAY[c], sky * skyglow[c])
        plane[is_win] = win_val[cell[is_win]]
        plane += points * light_col[c]
        out[c] = plane
    return out


def _foliage(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    # Bright sky seen through gaps, then three leaf layers from back to front; each layer
    # is thresholded noise: leaf shapes from octaves built at quarter resolution plus a
    # 2.5 px octave that makes the leaf edges ragged at the pixel level. ``top`` records
    # the front-most layer at each pixel (0 = sky); colours are applied once at the end.
    scale = max(1.0, h / 1000.0)  # leaf size grows slowly with the frame
    hq, wq = max(4, h // 4), max(4, w // 4)
    top = np.zeros((h, w), dtype=np.uint8)
    for layer, thr in enumerate((-0.15, 0.0, 0.1)):
        leaf_px = 12.0 * scale * (layer + 1)
        shape = _fbm(hq, wq, rng, (0.08 * hq, 0.03 * hq, max(leaf_px / 4, 1.5)), (1.0, 0.6, 0.5))
        field = resize_bilinear(shape, h, w)
        edge = _noise(h, w, 2.5, rng)
        edge -= np.float32(0.5)
        edge *= np.float32(0.35)
        field += edge
        del edge
        top[field > np.float32(thr)] = layer + 1
        del field
    # Sunlight (flecks, deeper layers darker), leaf hue (yellow-green to dark green), veins.
    light = np.exp2(np.float32(1.5) * _smooth_fbm(h, w, rng, (0.25, 0.06), (1.0, 0.8)))
    vein = _noise(h, w, 2.0, rng)
    vein *= np.float32(0.3)
    vein += np.float32(0.85)
    light *= vein
    del vein
    light *= np.array([0.0, 0.08, 0.25, 0.6], dtype=np.float32)[top]
    hue = _smooth_fbm(h, w, rng, (0.2,), (1.0,))
    hue *= np.float32(0.5)
    hue += np.float32(0.5)
    sky = top == 0
    sky_level = np.float32(rng.uniform(1.5, 3.0))
    sky_col = _DAY * _rgb(0.85, 1.0, 1.2)
    out = np.empty((3, h, w), dtype=np.float32)
    for c in range(3):
        yellow, dark = (0.55, 1.0, 0.25)[c], (0.25, 0.8, 0.3)[c]
        np.multiply(hue, np.float32(_DAY[c] * (yellow - dark)), out=out[c])
        out[c] += np.float32(_DAY[c] * dark)
        out[c] *= light
        out[c][sky] = sky_level * sky_col[c]
    return out


_NATURAL_IMAGES: dict[str, str] = {
    "portrait_like": "astronaut.png",
    "natural_coffee": "coffee.png",
    "natural_chelsea": "chelsea.png",
    "natural_rocket": "rocket.jpg",
    "natural_motorcycle": "motorcycle_left.png",
}


@functools.lru_cache(maxsize=8)
def _load_bundled_image(filename: str) -> np.ndarray:
    """An 8-bit RGB image shipped inside scikit-image's wheel (no download, no pooch).

    Returns (h, w, 3) uint8 (read-only). Raises ConfigError if the file is not installed.
    """
    import skimage
    import skimage.io

    path = Path(skimage.__file__).parent / "data" / filename
    if not path.is_file():
        raise ConfigError(
            f"scene image {filename} is not installed with scikit-image (looked in {path.parent})"
        )
    img = np.asarray(skimage.io.imread(path))[..., :3]
    img.setflags(write=False)
    return img


def _natural_builder(filename: str) -> SceneBuilder:
    def build(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        src = _load_bundled_image(filename)
        sh, sw = src.shape[:2]
        # Random crop with the target aspect ratio (80-100 % of the largest fit), random
        # horizontal flip.
        frac = rng.uniform(0.8, 1.0)
        ch = min(sh, sw * h / w) * frac
        cw = ch * w / h
        ch_i, cw_i = min(sh, max(2, round(ch))), min(sw, max(2, round(cw)))
        y0 = int(rng.integers(0, sh - ch_i + 1))
        x0 = int(rng.integers(0, sw - cw_i + 1))
        crop = src[y0 : y0 + ch_i, x0 : x0 + cw_i].astype(np.float32) / np.float32(255.0)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        lin = _srgb_to_linear(np.moveaxis(crop, -1, 0))  # (3, ch, cw)
        # HDR boost: near-white parts (clipped in the 8-bit source) were brighter in the
        # scene, up to 2**hdr_ev; then exposure onto the sensor scale and daylight colour.
        lum = luminance(lin)
        hdr_ev = rng.uniform(2.0, 4.5)
        lin *= np.exp2(np.float32(hdr_ev) * _smoothstep(0.5, 1.0, lum) ** 2)[None]
        # Exposure: the 99th luminance percentile of the photo before the boost lands at
        # 0.3-0.7 of clip; then a veiling-glare floor (nothing in a lens is perfectly
        # black) and the daylight camera colour.
        p99 = max(float(np.percentile(lum, 99.0)), 1e-3)
        lin *= np.float32(rng.uniform(0.3, 0.7) / p99)
        lin += np.float32(2e-4)
        lin *= _DAY[:, None, None]
        out = resize_bilinear(lin, h, w)
        # Micro texture: the upsampled photo has no pixel-level detail; a real 48MP
        # capture does. A +-4 % multiplicative grain at 2-3 px restores some.
        grain = _noise(h, w, 2.5, rng)
        grain -= np.float32(0.5)
        grain *= np.float32(0.08)
        grain += np.float32(1.0)
        out *= grain[None]
        return out

    build.__name__ = f"_natural_{Path(filename).stem}"
    return build


# ----------------------------------------------------------------------------- patterns


def _grey(plane: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A neutral chart under daylight: ``plane * DAYLIGHT_CAMERA_RGB`` times an exposure
    jitter of +-10 %. (3, h, w) float32."""
    exposure = np.float32(rng.uniform(0.9, 1.1))
    return np.stack([plane * (exposure * _DAY[c]) for c in range(3)])


def _zone_plate(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    # Circular zone plate: local frequency f(r) = r / R cycles/px grows linearly with the
    # radius and reaches 0.5 (48MP Nyquist) just beyond the frame corner, so it sweeps
    # through the 12MP Nyquist (0.25) at half the corner radius without aliasing.
    cx = (w - 1) / 2 + rng.uniform(-2, 2)
    cy = (h - 1) / 2 + rng.uniform(-2, 2)
    r_corner = np.hypot(max(cx, w - 1 - cx), max(cy, h - 1 - cy))
    big_r = 2.0 * (r_corner + 1.0)
    px = (np.pi / big_r) * (np.arange(w) - cx) ** 2
    py = (np.pi / big_r) * (np.arange(h) - cy) ** 2 + rng.uniform(0, 2 * np.pi)
    phase = py.astype(np.float32)[:, None] + px.astype(np.float32)[None, :]
    plane = np.cos(phase)
    plane *= np.float32(_PATTERN_AMPLITUDE)
    plane += np.float32(_PATTERN_MEAN)
    return _grey(plane, rng)


def _siemens_star(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    # Sinusoidal star with SIEMENS_SPOKES periods around; its local period 2 pi r / N px
    # reaches 2 px (48MP Nyquist) at r = N / pi, inside which the disc is flat grey.
    n = SIEMENS_SPOKES
    cx, cy = (w - 1) / 2, (h - 1) / 2
    dx = (np.arange(w, dtype=np.float32) - np.float32(cx))[None, :]
    dy = (np.arange(h, dtype=np.float32) - np.float32(cy))[:, None]
    r = np.sqrt(dx * dx + dy * dy)
    theta = np.arctan2(dy, dx)
    plane = np.sin(theta * np.float32(n) + np.float32(rng.uniform(0, 2 * np.pi)))
    del theta
    plane *= np.float32(_PATTERN_AMPLITUDE)
    plane += np.float32(_PATTERN_MEAN)
    r_in = n / np.pi
    r_out = 0.47 * min(h, w)
    plane[r < r_in] = _PATTERN_MEAN
    plane[r > r_out] = 0.3
    return _grey(plane, rng)


def _stripes(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    plane = np.empty((h, w), dtype=np.float32)
    for (ys, xs), (freq, angle) in zip(
        panel_slices(h, w, *STRIPE_GRID), STRIPE_PANELS, strict=True
    ):
        a = np.deg2rad(angle)
        kx, ky = 2 * np.pi * freq * np.cos(a), 2 * np.pi * freq * np.sin(a)
        xx = np.arange(xs.stop - xs.start, dtype=np.float64)[None, :]
        yy = np.arange(ys.stop - ys.start, dtype=np.float64)[:, None]
        phase = (kx * xx).astype(np.float32) + (ky * yy + rng.uniform(0, 2 * np.pi)).astype(
            np.float32
        )
        plane[ys, xs] = np.float32(_PATTERN_MEAN) + np.float32(_PATTERN_AMPLITUDE) * np.cos(phase)
    return _grey(plane, rng)


def _checkers(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    plane = np.empty((h, w), dtype=np.float32)
    lo, hi = _PATTERN_MEAN - _PATTERN_AMPLITUDE, _PATTERN_MEAN + _PATTERN_AMPLITUDE
    for (ys, xs), size in zip(panel_slices(h, w, *CHECKER_GRID), CHECKER_SIZES_PX, strict=True):
        ox, oy = (int(v) for v in rng.integers(0, size, 2))
        xx = (np.arange(xs.stop - xs.start) + ox) // size
        yy = (np.arange(ys.stop - ys.start) + oy) // size
        parity = (yy[:, None] + xx[None, :]) % 2
        plane[ys, xs] = np.where(parity == 1, np.float32(hi), np.float32(lo))
    return _grey(plane, rng)


def _gradient_sky(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    # Only smooth content: vertical sky gradient, a broad sun glow without a disc, soft
    # clouds, and a blurred horizon into a dim ground. Seams of tiled inference show here.
    y, x = _grid(h, w)
    aspect = w / h
    horizon = float(rng.uniform(0.6, 0.8))
    t = np.clip(y / horizon, 0.0, 1.0)
    sky = (rng.uniform(0.4, 0.8) * (1.0 - t) + rng.uniform(2.5, 4.0) * t).astype(np.float32)
    gx, gy = float(rng.uniform(0.2, 0.8)) * aspect, float(rng.uniform(0.2, 0.5))
    glow = np.exp(((x - gx) ** 2 + (y - gy) ** 2) * np.float32(-1.0 / (2 * 0.3**2)))
    glow *= np.float32(rng.uniform(1.0, 3.0))
    clouds = _smoothstep(-0.1, 0.6, _smooth_fbm(h, w, rng, (0.6, 0.3), (1.0, 0.5)))
    ground_w = _smoothstep(horizon - 0.04, horizon + 0.08, y)  # (h, 1) blend to ground
    zenith, low = _rgb(0.7, 1.0, 1.5), _rgb(1.0, 1.0, 0.9)
    out = np.empty((3, h, w), dtype=np.float32)
    for c in range(3):
        sky_c = sky * (zenith[c] * (1.0 - t) + low[c] * t)  # (h, 1)
        plane = sky_c + glow * np.float32(1.1)
        plane += clouds * (np.float32(1.5) - np.float32(0.5) * sky_c)
        plane *= np.float32(1.0) - ground_w
        plane += ground_w * np.float32(0.06 * (0.8, 1.0, 0.6)[c])
        out[c] = plane * _DAY[c]
    return out


# ----------------------------------------------------------------------------- low texture


def _plain_wall(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    # A matte painted wall, window-lit from one side (a smooth light falloff), on paint
    # whose only detail is faint grain: +-2.5 % reflectance at 1.5-6 px cells (roller
    # stipple, plaster) and +-4 % blotches a tenth of the frame wide; no edge anywhere.
    y, x = _grid(h, w)
    aspect = w / h
    side = float(rng.choice((-1.0, 1.0)))
    u = (x / np.float32(aspect) - 0.5) * np.float32(side) + np.float32(0.5)  # 0 far, 1 near
    level = float(rng.uniform(0.15, 0.35))
    light = level * (0.3 + 0.7 * np.exp(np.float32(1.6) * (u - 1.0))) * (1.0 - 0.25 * y)
    grain = _fbm(h, w, rng, (1.5, 3.0, 6.0), (1.0, 0.8, 0.6))
    grain *= np.float32(0.025)
    blotch = _smooth_fbm(h, w, rng, (0.1, 0.04), (1.0, 0.6))
    blotch *= np.float32(0.04)
    grain += blotch
    del blotch
    grain += np.float32(1.0)
    grain *= light
    paint = _DAY * _rgb(*(float(v) for v in rng.uniform((0.95, 0.9, 0.8), (1.05, 1.0, 0.95))))
    return _assemble([grain], [paint], h, w)


def _thin_clouds(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    # Sky (deeper blue at the zenith) under a thin cirrus veil: density 0.3 everywhere, up
    # to 1 in patches (thresholded smooth fbm), modulated by fibres (anisotropic value
    # noise, 4 px across and 16 px along, plus 2 px isotropic grain), lifting the sky by
    # at most ~12 %.
    y, _ = _grid(h, w)
    t = np.clip(y, 0.0, 1.0)
    sky = np.float32(rng.uniform(0.3, 0.5)) * (np.float32(1.0) + np.float32(1.2) * t)
    patches = _smoothstep(-0.4, 0.6, _smooth_fbm(h, w, rng, (0.5, 0.2), (1.0, 0.6)))
    patches *= np.float32(0.7)
    patches += np.float32(0.3)  # a thin veil everywhere, denser patches
    fibre = _noise(h, w, 4.0, rng, cell_px_x=16.0)
    fibre *= np.float32(0.6)
    fine = _noise(h, w, 2.0, rng)
    fine *= np.float32(0.4)
    fibre += fine
    del fine
    patches *= fibre
    del fibre
    patches *= np.float32(rng.uniform(0.08, 0.12))
    zenith, low = _rgb(0.7, 1.0, 1.5), _rgb(0.95, 1.0, 1.05)
    out = np.empty((3, h, w), dtype=np.float32)
    for c in range(3):
        sky_c = sky * (zenith[c] * (np.float32(1.0) - t) + low[c] * t)  # (h, 1)
        np.add(patches, np.float32(1.0), out=out[c])
        out[c] *= sky_c * np.float32(_DAY[c])
    return out


# ----------------------------------------------------------------------------- registry

SCENES: dict[str, SceneSpec] = {
    spec.name: spec
    for spec in (
        SceneSpec(
            "backlit",
            "natural",
            "Person and tree silhouetted against a bright sky with the sun in frame "
            "(sun ~50x clip, foreground ~0.005): >12 EV, strong dark/bright edges "
            "and a pixel-fine grass fringe, where LTM halos show.",
            _backlit,
        ),
        SceneSpec(
            "bright_window",
            "natural",
            "Dim room (~0.01-0.1) with a window onto a bright sky (5-12) and trees, "
            "dark window bars, a sunlit floor pool with bar shadows, furniture.",
            _bright_window,
        ),
        SceneSpec(
            "mixed_lighting",
            "natural",
            "ColorChecker-like chart and grey wall lit by a tungsten lamp (visible "
            "bulb, 20x clip) on one side and daylight on the other: the illuminant "
            "colour changes across the frame.",
            _mixed_lighting,
        ),
        SceneSpec(
            "city_lights",
            "natural",
            "Night skyline: dark sky and facades (~0.002), random lit windows, "
            "thousands of small point lights and larger glows, many above clip.",
            _city_lights,
        ),
        SceneSpec(
            "foliage",
            "natural",
            "Three layers of leaf-like shapes with sun flecks and yellow-to-dark "
            "green variation over bright sky gaps: dense pixel-scale texture.",
            _foliage,
        ),
        *(
            SceneSpec(
                name,
                "natural",
                f"scikit-image's bundled {filename} (sRGB -> linear, random crop/flip, "
                "highlights boosted 2-4.5 EV, daylight camera colour, 2-3 px micro "
                "texture).",
                _natural_builder(filename),
            )
            for name, filename in _NATURAL_IMAGES.items()
        ),
        SceneSpec(
            "zone_plate",
            "pattern",
            "Circular zone plate, frequency rising linearly from 0 at the centre to "
            "the 48MP Nyquist at the corners (12MP Nyquist halfway).",
            _zone_plate,
        ),
        SceneSpec(
            "siemens_star",
            "pattern",
            f"Sinusoidal Siemens star, {SIEMENS_SPOKES} periods; grey disc where the "
            "period drops below 2 px.",
            _siemens_star,
        ),
        SceneSpec(
            "stripes",
            "pattern",
            "3x4 panels of sinusoidal gratings (STRIPE_PANELS): 0.02-0.49 cycles/px, "
            "0/30/45/60/90 degrees, around the 12MP (0.25) and 48MP (0.5) Nyquist.",
            _stripes,
        ),
        SceneSpec(
            "checkers",
            "pattern",
            "2x4 panels of checkerboards with 1, 2, 3, 4, 8, 16, 32, 64 px squares "
            "(CHECKER_SIZES_PX), random phase.",
            _checkers,
        ),
        SceneSpec(
            "gradient_sky",
            "pattern",
            "Smooth sky gradients, a broad glow, soft clouds and a blurred horizon; no "
            "edges, so tiled-inference seams and banding show first.",
            _gradient_sky,
        ),
        SceneSpec(
            "plain_wall",
            "low_texture",
            "Matte painted wall lit from one side; its only detail is paint grain of "
            "+-2.5 % at 1.5-6 px and +-4 % blotches, no edge: registration's "
            "low-texture case.",
            _plain_wall,
        ),
        SceneSpec(
            "thin_clouds",
            "low_texture",
            "Blue sky gradient under a thin cirrus veil, denser in patches (fibres "
            "4x16 px, at most ~12 % above the sky), no horizon: registration's "
            "low-texture case.",
            _thin_clouds,
        ),
    )
}


def scene_names(kind: SceneKind | None = None) -> list[str]:
    """Names of all scenes, or of one kind (``"natural"``, ``"pattern"`` or
    ``"low_texture"``), in SCENES order.

    Raises: ConfigError for an unknown kind.
    """
    if kind is not None and kind not in ("natural", "pattern", "low_texture"):
        raise ConfigError(f"unknown scene kind {kind!r}; valid: natural, pattern, low_texture")
    return [name for name, spec in SCENES.items() if kind is None or spec.kind == kind]


def _check_size(h48: int, w48: int) -> None:
    for label, v in (("h48", h48), ("w48", w48)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ShapeError(f"{label} must be an integer, got {v!r}")
        if v % 4 or not MIN_SIDE_PX <= v <= MAX_SIDE_PX:
            raise ShapeError(
                f"{label}={v} is not a scene size: it must be a multiple of 4 "
                f"(quad-Bayer period) between {MIN_SIDE_PX} and {MAX_SIDE_PX}"
            )


def make_scene(name: str, h48: int, w48: int, *, seed: int = 0) -> np.ndarray:
    """Build a Camera48 ground-truth scene.

    Shapes: returns float32 (3, h48, w48), C-contiguous.
    Units: linear camera-native RGB on the sensor scale (1.0 = sensor clip), >= 0, finite;
    may exceed 1 in highlights.
    Deterministic: the same (name, size, seed) gives the same array.
    Raises: ConfigError for an unknown name (the message lists the valid ones);
        ShapeError when h48 or w48 is not a multiple of 4 in [16, 16384].
    """
    spec = SCENES.get(name)
    if spec is None:
        raise ConfigError(f"unknown scene {name!r}; valid: {', '.join(SCENES)}")
    _check_size(h48, w48)
    rng = np.random.default_rng(seed)
    out = spec.builder(int(h48), int(w48), rng)
    np.maximum(out, 0.0, out=out)
    return np.ascontiguousarray(out, dtype=np.float32)
