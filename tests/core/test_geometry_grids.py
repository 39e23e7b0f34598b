"""core.geometry.grids: the normalization helper and the 12MP <-> 48MP centre relation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from core.errors import ShapeError
from core.forward import bin2x2
from core.geometry.grids import (
    normalized_to_pixel,
    pixel_grid,
    pixel_to_normalized,
    sampling_grid,
    x12_to_x48,
    x48_to_x12,
)


def test_normalization_endpoints_and_round_trip():
    # align_corners=True: first pixel centre -> -1, last -> +1, middle -> 0.
    assert pixel_to_normalized(0.0, 5) == -1.0
    assert pixel_to_normalized(4.0, 5) == 1.0
    assert pixel_to_normalized(2.0, 5) == 0.0
    x = np.linspace(-3.0, 20.0, 47)
    np.testing.assert_allclose(normalized_to_pixel(pixel_to_normalized(x, 17), 17), x, atol=1e-12)
    t = torch.arange(10, dtype=torch.float64)
    assert torch.allclose(normalized_to_pixel(pixel_to_normalized(t, 10), 10), t)
    with pytest.raises(ShapeError):
        pixel_to_normalized(0.0, 1)


def test_sampling_grid_is_x_then_y_and_samples_the_named_pixel():
    # A non-square image whose value encodes its (row, column): grid_sample at the grid
    # built for source pixel (x=3, y=1) must return the value of row 1, column 3.
    h, w = 4, 6
    img = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    grid = sampling_grid(torch.tensor([[3.0]]), torch.tensor([[1.0]]), src_h=h, src_w=w)
    assert grid.shape == (1, 1, 1, 2)
    assert grid[0, 0, 0, 0] == pytest.approx(2 * 3 / (w - 1) - 1)  # x first
    assert grid[0, 0, 0, 1] == pytest.approx(2 * 1 / (h - 1) - 1)  # then y
    out = nnf.grid_sample(img, grid, mode="bilinear", align_corners=True)
    assert float(out) == pytest.approx(1 * w + 3, abs=1e-4)


def test_pixel_grid_rows_offset():
    x, y = pixel_grid(3, 5, row0=10)
    assert x.shape == (1, 5) and y.shape == (3, 1)
    assert y[:, 0].tolist() == [10.0, 11.0, 12.0]


def test_x48_is_2_x12_plus_half():
    assert x12_to_x48(0.0) == 0.5
    assert x12_to_x48(3.0) == 6.5
    assert x48_to_x12(6.5) == 3.0
    x = np.arange(7.0)
    np.testing.assert_array_equal(x48_to_x12(x12_to_x48(x)), x)


def test_x48_relation_matches_binning():
    # A 48MP image that is linear in x: binning 2x2 (the RAW12 pixel) gives the value at
    # the pixel's centre, which must sit at x48 = 2 x12 + 0.5 (same for y).
    h48, w48 = 8, 12
    yy, xx = np.mgrid[0:h48, 0:w48].astype(np.float64)
    binned_x = bin2x2(xx)
    binned_y = bin2x2(yy)
    x12 = np.arange(w48 // 2, dtype=np.float64)
    y12 = np.arange(h48 // 2, dtype=np.float64)
    np.testing.assert_allclose(binned_x[0], x12_to_x48(x12))
    np.testing.assert_allclose(binned_y[:, 0], x12_to_x48(y12))
