"""core.demosaic: every guidance demosaic method through the one entry point."""

from __future__ import annotations

import numpy as np
import pytest

from core.cfa import CfaName, CfaPattern
from core.demosaic import (
    METHODS,
    NonFiniteMosaicError,
    demosaic,
    mosaic_from_rgb,
    phase_offset_to_rggb,
)
from core.errors import ConfigError, ShapeError
from core.forward import remosaic_quad
from core.metrics import psnr

ALL_METHODS = sorted(METHODS)
PHASES = [n.value for n in CfaName]


def smooth_scene(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    """A smooth colour scene on the 12MP grid, shaped like a photograph: a luminance of
    low-frequency sinusoids (periods >= 24 px) times a colour that varies more slowly
    still (periods >= 64 px), values within about 0.1-0.9; what every demosaicer must
    reproduce almost exactly."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    def wave(period_px: float) -> np.ndarray:
        fy, fx = rng.uniform(-1, 1, 2) / period_px
        return np.sin(2 * np.pi * (fy * yy + fx * xx) + rng.uniform(0, 2 * np.pi))

    lum = 0.5 + 0.25 * wave(24.0)
    planes = [lum * (1.0 + 0.35 * wave(64.0)) for _ in range(3)]
    return np.stack(planes).astype(np.float32)


def interior(x: np.ndarray, b: int = 4) -> np.ndarray:
    return x[..., b:-b, b:-b]


def test_methods_listed() -> None:
    assert set(METHODS) == {"bilinear", "malvar", "dht", "aahd", "learned"}


@pytest.mark.parametrize("name", PHASES)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_flat_colour_is_reproduced_for_every_phase(name: str, method: str) -> None:
    """A flat colour mosaicked with any pattern demosaics back to that colour (interior)."""
    cfa = CfaPattern.from_name(name)
    colour = np.array([0.2, 0.5, 0.3], np.float32)
    m = colour[np.tile(cfa.as_array(), (12, 12))]
    rgb = demosaic(m, cfa, method)
    assert rgb.shape == (3, 24, 24) and rgb.dtype == np.float32
    expected = colour[:, None, None] * np.ones((1, 16, 16), np.float32)
    # DHT/AAHD go through 16-bit codes: one code step of the max (0.5 / 65535) is 8e-6.
    if method == "learned":  # learned, not exact: within 0.2 %
        np.testing.assert_allclose(interior(rgb), expected, rtol=2e-3)
    else:
        np.testing.assert_allclose(interior(rgb), expected, atol=2e-5)


@pytest.mark.parametrize("name", PHASES)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_smooth_scene_is_reproduced(name: str, method: str) -> None:
    """Every method reproduces a smooth scene's truth from its mosaic, in every phase."""
    truth = smooth_scene(seed=PHASES.index(name))
    cfa = CfaPattern.from_name(name)
    out = demosaic(mosaic_from_rgb(truth, cfa), cfa, method)
    assert psnr(interior(out), interior(truth)) > 40.0


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("factor", [2.0, 0.37])
def test_linear_in_exposure(method: str, factor: float) -> None:
    """demosaic(a x) == a demosaic(x): a textured HDR mosaic (values up to 3) at two gains.

    Exact up to float rounding for bilinear, Malvar and the network; DHT/AAHD see the
    same 16-bit codes for x and a x (the coded scale is homogeneous), but x / s can differ
    by one ulp and round to the neighbouring code: allow one code step (s / 65535)."""
    rng = np.random.default_rng(1)
    truth = smooth_scene(seed=3) * np.float32(3.0)
    truth *= rng.uniform(0.5, 1.0, truth.shape).astype(np.float32)  # pixel-level texture
    cfa = CfaPattern.from_name("BGGR")
    m = mosaic_from_rgb(truth, cfa)
    a = demosaic(m, cfa, method)
    b = demosaic(m * np.float32(factor), cfa, method)
    step = factor * float(m.max()) / 65535 if method in ("dht", "aahd") else 1e-6
    np.testing.assert_allclose(b, factor * a, rtol=1e-5, atol=1.01 * step)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_highlights_above_one_are_kept(method: str) -> None:
    """Lights at 2-4x the clip on a 0.1-0.5 scene keep their level (linear HDR, nothing
    clipped or compressed): the middle of a 16x16 coloured light within 1 % and a 6x6
    light's within 2 % for the linear filters and LibRaw; the learned model (its 11 px
    reach sees the 10x darker surround) within 2 % and 10 % (measured 1.5 % and 5-8 %)."""
    truth = smooth_scene(seed=5) * np.float32(0.6)
    light = np.array([4.0, 3.0, 2.0], np.float32)[:, None, None]
    truth[:, 30:36, 10:16] = light
    truth[:, 24:40, 44:60] = light
    cfa = CfaPattern.from_name("RGGB")
    out = demosaic(mosaic_from_rgb(truth, cfa), cfa, method)
    large_tol, small_tol = (0.02, 0.10) if method == "learned" else (0.01, 0.02)
    np.testing.assert_allclose(out[:, 28:36, 48:56], truth[:, 28:36, 48:56], rtol=large_tol)
    np.testing.assert_allclose(out[:, 32:34, 12:14], truth[:, 32:34, 12:14], rtol=small_tol)
    assert out[:, 30:36, 10:16].max() > 3.5


def test_known_samples_are_kept_bilinear() -> None:
    """Bilinear keeps each measured sample away from the border: R at R sites of RGGB."""
    cfa = CfaPattern.from_name("RGGB")
    rng = np.random.default_rng(0)
    m = rng.random((8, 8)).astype(np.float32)
    rgb = demosaic(m, cfa)
    np.testing.assert_allclose(rgb[0, 2:-2:2, 2:-2:2], m[2:-2:2, 2:-2:2], atol=1e-6)
    np.testing.assert_allclose(rgb[2, 3:-2:2, 3:-2:2], m[3:-2:2, 3:-2:2], atol=1e-6)


def test_quad_scene_round_trip_is_close() -> None:
    """A smooth scene through the quad mosaic, binned, demosaics close to the binned scene."""
    cfa = CfaPattern.from_name("BGGR")
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    scene = np.stack([0.3 + 0.2 * xx, 0.5 + 0.1 * yy, 0.4 - 0.1 * xx]).astype(np.float32)
    quad = remosaic_quad(scene, cfa)
    m12 = quad.reshape(32, 2, 32, 2).mean(axis=(1, 3))
    ref = scene.reshape(3, 32, 2, 32, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(m12, mosaic_from_rgb(ref, cfa), atol=1e-6)
    rgb = demosaic(m12, cfa)
    assert np.abs(rgb - ref)[:, 2:-2, 2:-2].max() < 0.01


def test_mosaic_from_rgb_golden() -> None:
    """m[y, x] = rgb[P[y % 2][x % 2], y, x]; GRBG on a 3x2x2 patch, by hand."""
    rgb = np.arange(12, dtype=np.float32).reshape(3, 2, 2)  # R 0..3, G 4..7, B 8..11
    # GRBG: (0,0) G -> 4, (0,1) R -> 1, (1,0) B -> 10, (1,1) G -> 7
    np.testing.assert_array_equal(mosaic_from_rgb(rgb, "GRBG"), [[4, 1], [10, 7]])


@pytest.mark.parametrize("name", PHASES)
def test_phase_offset_to_rggb(name: str) -> None:
    cfa = CfaPattern.from_name(name)
    dy, dx = phase_offset_to_rggb(cfa)
    assert cfa.shifted(dy, dx).name == "RGGB"


def test_output_never_negative() -> None:
    """Malvar undershoots at a hard edge; the result is clamped at 0."""
    m = np.zeros((16, 16), np.float32)
    m[:, 8:] = 1.0
    assert demosaic(m, "RGGB", "malvar").min() >= 0.0


def test_negative_mosaic_values_are_accepted() -> None:
    """Read noise around black gives slightly negative Mosaic12 values: not an error."""
    m = np.full((16, 16), -1e-3, np.float32)
    for method in ("bilinear", "dht"):
        assert demosaic(m, "RGGB", method).max() == 0.0


def test_bad_input() -> None:
    cfa = CfaPattern.from_name("RGGB")
    with pytest.raises(ShapeError, match=r"\(H12, W12\)"):
        demosaic(np.zeros((3, 8, 8), np.float32), cfa)
    with pytest.raises(ShapeError, match="even"):
        demosaic(np.zeros((7, 8), np.float32), cfa)
    with pytest.raises(ShapeError):
        demosaic(np.zeros((0, 0), np.float32), cfa)
    with pytest.raises(ShapeError, match="real numbers"):
        demosaic(np.full((8, 8), "a"), cfa)
    with pytest.raises(ShapeError, match="valid"):
        demosaic(np.zeros((8, 8), np.float32), "RGBG")
    with pytest.raises(ConfigError, match="bilinear, malvar, dht, aahd, learned"):
        demosaic(np.zeros((8, 8), np.float32), cfa, "nope")
    with pytest.raises(ValueError):  # ConfigError is a ValueError, as before
        demosaic(np.zeros((8, 8), np.float32), cfa, "AHD")
    bad = np.zeros((8, 8), np.float32)
    bad[3, 4] = np.nan
    bad[0, 0] = np.inf
    with pytest.raises(NonFiniteMosaicError, match="2 non-finite") as info:
        demosaic(bad, cfa, "malvar")
    assert info.value.count == 2 and isinstance(info.value, ValueError)


def test_pattern_name_accepted() -> None:
    m = np.random.default_rng(2).random((16, 16)).astype(np.float32)
    np.testing.assert_array_equal(
        demosaic(m, "GBRG", "malvar"), demosaic(m, CfaPattern.from_name("GBRG"), "malvar")
    )
