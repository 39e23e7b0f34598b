"""core.demosaic: the RAW12 guidance demosaic."""

from __future__ import annotations

import numpy as np
import pytest

from core.cfa import CfaName, CfaPattern
from core.demosaic import METHODS, demosaic
from core.errors import ShapeError
from core.forward import remosaic_quad


@pytest.mark.parametrize("name", [n.value for n in CfaName])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_flat_colour_is_reproduced_for_every_phase(name: str, method: str) -> None:
    """A flat colour mosaicked with any pattern demosaics back to that colour (interior)."""
    cfa = CfaPattern.from_name(name)
    colour = np.array([0.2, 0.5, 0.3], np.float32)
    mosaic = cfa.as_array().astype(np.intp)
    m = colour[np.tile(mosaic, (8, 8))]
    rgb = demosaic(m, cfa, method)
    assert rgb.shape == (3, 16, 16) and rgb.dtype == np.float32
    np.testing.assert_allclose(
        rgb[:, 3:-3, 3:-3], colour[:, None, None] * np.ones((1, 10, 10)), atol=1e-5
    )


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
    rgb = demosaic(m12, cfa)
    ref = scene.reshape(3, 32, 2, 32, 2).mean(axis=(2, 4))
    assert np.abs(rgb - ref)[:, 2:-2, 2:-2].max() < 0.01


def test_bad_input() -> None:
    cfa = CfaPattern.from_name("RGGB")
    with pytest.raises(ShapeError):
        demosaic(np.zeros((3, 8, 8), np.float32), cfa)
    with pytest.raises(ShapeError):
        demosaic(np.zeros((7, 8), np.float32), cfa)
    with pytest.raises(ValueError, match="bilinear"):
        demosaic(np.zeros((8, 8), np.float32), cfa, "nope")
    out = demosaic(np.full((8, 8), np.nan, np.float32), cfa, "malvar")
    assert np.all(np.isfinite(out)) and out.min() >= 0
