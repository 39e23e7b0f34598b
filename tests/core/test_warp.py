"""core.geometry.warp: convention, exactness, fused grid, bands."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import ConfigError, ShapeError
from core.geometry.warp import (
    WarpParams,
    fused_grid,
    parametric_grid,
    source_coords,
    warp,
    warp_image,
)
from core.simulate.isp import warp_image as sim_warp_image


def _smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(3, h, w) float32 sum of low-frequency sinusoids (bilinear interpolation ~exact)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((3, h, w), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.005, 0.02), rng.uniform(0.005, 0.02), rng.uniform(0, 6)
        out[c] = 1.0 + 0.5 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
    return out


def _random_image(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(1).random((3, h, w), dtype=np.float32)


def test_identity_returns_input_exactly_numpy_and_torch():
    img = _random_image(13, 21)
    out = warp(img, WarpParams())
    assert isinstance(out, np.ndarray)
    np.testing.assert_array_equal(out, img)
    t = torch.from_numpy(img)
    assert torch.equal(warp(t, WarpParams()), t)
    np.testing.assert_array_equal(warp(img[0], WarpParams()), img[0])


def test_integer_shift_moves_pixels_exactly_x_is_columns():
    img = _random_image(12, 17)
    out = warp(img, WarpParams(translation_px=(3.0, -2.0)))
    # out(x, y) = img(x + 3, y - 2): columns shift by tx, rows by ty.
    np.testing.assert_array_equal(out[:, 2:, :-3], img[:, :-2, 3:])
    # Border replication like grid_sample's padding_mode="border".
    np.testing.assert_array_equal(out[:, 0, :-3], img[:, 0, 3:])
    np.testing.assert_array_equal(out[:, 5, -1], img[:, 3, -1])


def test_translation_sign_content_moves_left():
    # t = (+1, 0): output column x shows source column x + 1 (issue 3 convention).
    img = np.zeros((1, 5, 9), np.float32)
    img[0, 2, 4] = 1.0
    out = warp(img, WarpParams(translation_px=(1.0, 0.0)))
    assert out[0, 2, 3] == 1.0 and out[0, 2, 4] == 0.0
    out = warp(img, WarpParams(translation_px=(0.0, 1.0)))
    assert out[0, 1, 4] == 1.0


def test_subpixel_shift_via_grid_sample_is_bilinear():
    img = _random_image(9, 11)
    out = warp(img, WarpParams(translation_px=(0.25, 0.0)))
    expect = 0.75 * img[:, :, 3] + 0.25 * img[:, :, 4]
    np.testing.assert_allclose(out[:, :, 3], expect, atol=1e-5)


def test_formula_matches_the_simulator_convention():
    params = WarpParams(
        translation_px=(2.3, -1.7),
        zoom=1.004,
        radial=(0.02, -0.003, 0.001),
        tangential=(4e-4, -3e-4),
    )
    img = _smooth_image(48, 64)
    ours = warp(img, params)
    theirs = sim_warp_image(
        img,
        translation_px=params.translation_px,
        zoom=params.zoom,
        radial=params.radial,
        tangential=params.tangential,
    )
    np.testing.assert_allclose(ours, theirs, atol=2e-4)


def test_source_coords_identity_and_principal_point():
    x = torch.tensor([[0.0, 10.0, 63.0]], dtype=torch.float64)
    y = torch.tensor([[0.0], [47.0]], dtype=torch.float64)
    sx, sy = source_coords(WarpParams(), x, y, frame_h=48, frame_w=64)
    assert torch.equal(sx, x.expand(2, 3)) and torch.equal(sy, y.expand(2, 3))
    # A pure zoom leaves the principal point fixed.
    p = WarpParams(zoom=1.1, radial=(0.05, 0, 0), principal_point_px=(20.0, 10.0))
    cx, cy = source_coords(p, torch.tensor([20.0]), torch.tensor([10.0]), frame_h=48, frame_w=64)
    assert float(cx) == 20.0 and float(cy) == 10.0


def test_grid_shapes_and_identity_grid_precision():
    g = parametric_grid(WarpParams(), 6, 8, src_h=6, src_w=8)
    assert g.shape == (1, 6, 8, 2) and g.dtype == torch.float32
    img = _random_image(6, 8)
    # One grid_sample with an identity grid: equal up to float32 coordinate rounding.
    np.testing.assert_allclose(warp_image(img, g), img, atol=1e-5)


def test_fused_grid_equals_parametric_then_residual_warp():
    h, w = 64, 96
    img = _smooth_image(h, w, seed=3)
    params = WarpParams(translation_px=(1.3, -0.6), zoom=1.002, radial=(0.01, 0.0, 0.0))
    yy, xx = np.mgrid[0:4, 0:5]
    flow = np.stack((0.8 * np.sin(xx + yy), -0.5 * np.cos(xx - yy))).astype(np.float32)
    fused = warp(img, params, flow)
    step1 = warp(img, params)
    sequential = warp(step1, WarpParams(), flow)
    # Within interpolation error (the sequential path resamples twice).
    inner = (slice(None), slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(fused[inner], sequential[inner], atol=2e-3)
    grid = fused_grid(params, flow, h, w, src_h=h, src_w=w)
    np.testing.assert_array_equal(warp_image(img, grid), fused)


def test_banded_warp_equals_whole_frame():
    img = _random_image(37, 29)
    params = WarpParams(translation_px=(0.4, 1.7), zoom=0.99, radial=(0.03, 0, 0))
    flow = np.full((2, 3, 3), 0.3, np.float32)
    whole = warp(img, params, flow, band_pixels=10**9)
    banded = warp(img, params, flow, band_pixels=29 * 5)
    np.testing.assert_array_equal(whole, banded)


def test_bad_parameters_and_shapes():
    with pytest.raises(ConfigError, match="zoom"):
        WarpParams(zoom=0.0)
    with pytest.raises(ConfigError, match="radial"):
        WarpParams(radial=(0.1, 0.2))  # type: ignore[arg-type, unused-ignore]
    with pytest.raises(ConfigError, match="translation_px"):
        WarpParams(translation_px=(float("nan"), 0.0))
    with pytest.raises(ShapeError):
        warp(np.zeros((2, 2, 2, 2), np.float32), WarpParams())
    with pytest.raises(ShapeError, match="flow"):
        warp(_random_image(8, 8), WarpParams(), np.zeros((3, 2, 2), np.float32))
