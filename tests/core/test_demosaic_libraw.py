"""core.demosaic.libraw: LibRaw's DHT / AAHD through an in-memory DNG, kept linear."""

from __future__ import annotations

import numpy as np
import pytest

from core.cfa import CfaPattern
from core.demosaic import demosaic, mosaic_from_rgb
from core.demosaic import libraw as lr
from core.metrics import psnr
from tests.core.test_demosaic import interior, smooth_scene


@pytest.mark.parametrize("algorithm", ["DHT", "AAHD"])
def test_flat_field_scale_is_undone_exactly(algorithm: str) -> None:
    """A flat grey at 0.75 (one shared code, 65535 after scaling by the max) comes back
    as 0.75 everywhere, borders included: LibRaw adds no scaling of its own."""
    m = np.full((32, 48), 0.75, np.float32)
    out = lr.libraw_demosaic(m, CfaPattern.from_name("BGGR"), algorithm)
    np.testing.assert_allclose(out, 0.75, atol=0.75 / 65535 * 2)


@pytest.mark.parametrize("algorithm", ["DHT", "AAHD"])
def test_in_memory_dng_matches_the_mosaic(algorithm: str) -> None:
    """The pattern written into the DNG is the caller's: on a textured scene, samples at
    measured sites come back close to the mosaic (a wrong phase would swap R and B)."""
    truth = smooth_scene(seed=7)
    truth[0] *= 0.3  # make R and B clearly different
    cfa = CfaPattern.from_name("GRBG")
    m = mosaic_from_rgb(truth, cfa)
    out = lr.libraw_demosaic(m, cfa, algorithm)
    idx = cfa.color_mask(*m.shape)
    measured = np.take_along_axis(out, idx[None], 0)[0]
    assert np.abs(interior(measured - m)).max() < 0.01
    swapped = lr.libraw_demosaic(m, CfaPattern.from_name("GBRG"), algorithm)
    assert psnr(interior(swapped), interior(truth)) < psnr(interior(out), interior(truth)) - 10


def test_coded_scale_is_homogeneous_and_robust() -> None:
    """s(a x) = a s(x); one far outlier does not stretch the coded range past 16 x p99."""
    rng = np.random.default_rng(0)
    m = rng.uniform(0.1, 0.5, (64, 64)).astype(np.float32)
    s = lr.coded_scale(m)
    assert s == pytest.approx(float(m.max()))
    assert lr.coded_scale(m * np.float32(3.0)) == pytest.approx(3.0 * s, rel=1e-6)
    m[10, 10] = 1000.0
    assert lr.coded_scale(m) <= lr.RANGE_LIMIT * 0.5
    assert lr.coded_scale(np.zeros((8, 8), np.float32)) == 0.0


@pytest.mark.parametrize("method", ["dht", "aahd"])
def test_light_beyond_the_coded_range_falls_back_to_bilinear(method: str) -> None:
    """A 4x4 light (0.3 % of the frame) at 200x the scene's level is outside the 16-bit
    coded range: its neighbourhood comes from bilinear, so it keeps its level; far from
    it, LibRaw's result."""
    truth = smooth_scene(seed=2) * np.float32(0.5)
    truth[:, 21:25, 21:25] = 100.0
    cfa = CfaPattern.from_name("RGGB")
    m = mosaic_from_rgb(truth, cfa)
    assert lr.coded_scale(m) < 10.0
    out = demosaic(m, cfa, method)
    bil = demosaic(m, cfa, "bilinear")
    np.testing.assert_allclose(out[:, 22:24, 22:24], 100.0, rtol=1e-3)
    np.testing.assert_array_equal(out[:, 18:28, 18:28], bil[:, 18:28, 18:28])
    assert not np.array_equal(out[:, 40:, 50:], bil[:, 40:, 50:])
    assert psnr(out[:, 40:-4, 50:-4], truth[:, 40:-4, 50:-4]) > 40


def test_all_zero_mosaic() -> None:
    out = demosaic(np.zeros((16, 16), np.float32), "BGGR", "aahd")
    assert out.shape == (3, 16, 16) and not out.any()


def test_tiny_mosaic() -> None:
    """The reflected border lets LibRaw handle even a 2x2 mosaic."""
    m = np.array([[0.2, 0.5], [0.5, 0.3]], np.float32)
    out = demosaic(m, "RGGB", "dht")
    np.testing.assert_allclose(out[:, 0, 0], [0.2, 0.5, 0.3], atol=1e-4)
