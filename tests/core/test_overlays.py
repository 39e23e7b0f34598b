"""core.geometry.overlays: shapes, ranges, like-with-like comparison, before vs after."""

from __future__ import annotations

import numpy as np
import pytest

from core.cfa import CfaPattern
from core.errors import ShapeError
from core.forward import forward_np
from core.geometry.overlays import registered_mosaic, registration_overlays
from core.geometry.registration import AlignmentGate, RegistrationResult, register
from core.geometry.warp import WarpParams, warp
from core.simulate.scenes import make_scene

CFA = CfaPattern.from_name("BGGR")
SIM = WarpParams(translation_px=(3.0, -2.5), zoom=1.002)


@pytest.fixture(scope="module")
def scene_pair() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A foliage truth (3, 384, 512), its anchor F(truth), and a Camera48 with a smooth
    tone-mapping-like gain and the known misregistration SIM."""
    truth = make_scene("foliage", 384, 512, seed=0)
    anchor = forward_np(truth, CFA)
    yy, xx = np.mgrid[0:384, 0:512].astype(np.float32)
    gain = np.exp(0.5 * np.sin(xx / 150.0) * np.cos(yy / 120.0)).astype(np.float32)
    return truth, anchor, warp(truth * gain[None], SIM)


def _result(params: WarpParams, hw: tuple[int, int]) -> RegistrationResult:
    gate = AlignmentGate(passed=True, thresholds={}, figures={}, reasons=[])
    return RegistrationResult(params, None, 0.0, gate, 0.0, frame_hw=hw)


def test_registered_mosaic_identity_is_f_and_bands_match(scene_pair):
    _, _, cam = scene_pair
    np.testing.assert_array_equal(registered_mosaic(cam, CFA, None), forward_np(cam, CFA))
    params = WarpParams(translation_px=(0.5, -1.25), radial=(0.01, 0, 0))
    expect = forward_np(warp(cam, params), CFA)
    got = registered_mosaic(cam, CFA, _result(params, cam.shape[1:]))
    np.testing.assert_array_equal(got, expect)


def test_overlay_keys_shapes_and_ranges(scene_pair):
    _, anchor, cam = scene_pair
    res = register(cam, anchor, CFA)
    out = registration_overlays(cam, anchor, CFA, res)
    kinds = ("checkerboard", "blend", "difference", "edges")
    assert set(out) == {f"{k}_{s}" for k in kinds for s in ("before", "after")}
    for key, arr in out.items():
        assert arr.dtype == np.float32
        assert arr.shape == ((192, 256, 3) if key.startswith("edges") else (192, 256))
        assert np.isfinite(arr).all() and arr.min() >= 0.0 and arr.max() <= 1.0
    # After registration the (gain-normalized) difference is much smaller than before.
    before = np.abs(out["difference_before"] - 0.5).mean()
    after = np.abs(out["difference_after"] - 0.5).mean()
    assert after < 0.5 * before
    only_before = registration_overlays(cam, anchor, CFA, None)
    assert set(only_before) == {f"{k}_before" for k in kinds}


def test_overlay_shape_mismatch(scene_pair):
    _, anchor, cam = scene_pair
    with pytest.raises(ShapeError):
        registration_overlays(cam[:, :-2], anchor, CFA, None)
