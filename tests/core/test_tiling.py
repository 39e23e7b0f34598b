"""Tile plans and blending: partition of unity, CFA alignment, identity and local models."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from core.errors import CancelledError, ConfigError, ShapeError
from core.inference.tiling import blend_weights, plan_tiles, run_tiled
from core.progress import CancelToken

SIZES = [
    (6048, 8064),
    (3024, 4032),
    (1512, 2016),
    (768, 1024),
    (512, 512),
    (516, 2052),
    (1000, 1000),
    (400, 300),
]


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_weights_partition_unity(h: int, w: int) -> None:
    plan = plan_tiles(h, w)
    total = np.zeros((h, w), np.float64)
    for tile, weight in zip(plan.tiles, blend_weights(plan), strict=True):
        assert weight.shape == tile.shape
        assert weight.min() >= 0.0
        total[tile.y0 : tile.y1, tile.x0 : tile.x1] += weight
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


@pytest.mark.parametrize(("h", "w"), SIZES)
def test_tiles_cover_the_frame_aligned_with_overlap(h: int, w: int) -> None:
    plan = plan_tiles(h, w, tile_px=768, overlap_px=48)
    assert all(y % 4 == 0 for y in plan.ys) and all(x % 4 == 0 for x in plan.xs)
    assert plan.ys[0] == 0 and plan.xs[0] == 0
    tiles = plan.tiles
    assert max(t.y1 for t in tiles) == h and max(t.x1 for t in tiles) == w
    for origins, n in ((plan.ys, h), (plan.xs, w)):
        side = min(768, n)
        for a, b in itertools.pairwise(origins):
            assert a + side - b >= 48  # neighbours overlap by at least overlap_px


def test_48mp_plan_is_small_and_uniform() -> None:
    plan = plan_tiles(6048, 8064, tile_px=1024, overlap_px=64)
    assert all(t.shape == (1024, 1024) for t in plan.tiles)
    assert len(plan) == 7 * 9


def test_identity_model_returns_input_exactly() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 4, (3, 600, 1000)).astype(np.float32)
    plan = plan_tiles(600, 1000, tile_px=256, overlap_px=32, enforce_design_bounds=False)

    def ident(tile):
        return img[:, tile.y0 : tile.y1, tile.x0 : tile.x1]

    out = run_tiled(ident, plan, 3)
    np.testing.assert_allclose(out, img, rtol=0, atol=4e-6 * 4)


def test_split_outputs_receive_consecutive_channel_blocks() -> None:
    # A 4-channel tile function blended into a (3, H, W) frame and an (H, W) plane gives
    # the same numbers as one (4, H, W) frame; a wrong split is refused.
    rng = np.random.default_rng(2)
    img = rng.uniform(0, 4, (4, 300, 500)).astype(np.float32)
    plan = plan_tiles(300, 500, tile_px=128, overlap_px=32, enforce_design_bounds=False)

    def fn(tile):
        return img[:, tile.y0 : tile.y1, tile.x0 : tile.x1] * 2.0

    whole = run_tiled(fn, plan, 4)
    rgb, plane = np.full((3, 300, 500), 7, np.float32), np.empty((300, 500), np.float32)
    first = run_tiled(fn, plan, 4, out=(rgb, plane))
    assert first is rgb
    np.testing.assert_array_equal(rgb, whole[:3])
    np.testing.assert_array_equal(plane, whole[3])
    with pytest.raises(ShapeError, match="do not hold"):
        run_tiled(fn, plan, 4, out=(rgb,))


def test_local_model_within_margin_matches_whole_image() -> None:
    # A 9x9 box filter (receptive-field radius 4) with a 12 px margin: tiled == whole.
    rng = np.random.default_rng(1)
    img = ndimage.gaussian_filter(rng.uniform(0, 1, (1, 520, 780)), 3).astype(np.float32)
    whole = ndimage.uniform_filter(img, size=(1, 9, 9), mode="nearest")
    plan = plan_tiles(
        520, 780, tile_px=256, overlap_px=48, margin_px=12, enforce_design_bounds=False
    )

    def model(tile):
        # The tile sees only its own box (edge padding at tile borders, like a real tile).
        crop = img[:, tile.y0 : tile.y1, tile.x0 : tile.x1]
        return ndimage.uniform_filter(crop, size=(1, 9, 9), mode="nearest")

    tiled = run_tiled(model, plan, 1)
    assert float(np.abs(tiled - whole).max()) < 1e-3


def test_bad_plans_and_bad_tiles() -> None:
    with pytest.raises(ConfigError, match="tile_px"):
        plan_tiles(1024, 1024, tile_px=2048)
    with pytest.raises(ConfigError, match="overlap_px"):
        plan_tiles(1024, 1024, overlap_px=8)
    with pytest.raises(ShapeError, match="multiple of 4"):
        plan_tiles(1022, 1024)
    plan = plan_tiles(1024, 1024)
    with pytest.raises(ShapeError, match="returned"):
        run_tiled(lambda t: np.zeros((3, 5, 5), np.float32), plan, 3)


def test_cancel_between_tiles() -> None:
    plan = plan_tiles(2048, 2048, tile_px=512, overlap_px=32)
    token = CancelToken()
    seen = []

    def fn(tile):
        seen.append(tile.index)
        if len(seen) == 2:
            token.cancel()
        return np.zeros((1, *tile.shape), np.float32)

    with pytest.raises(CancelledError):
        run_tiled(fn, plan, 1, cancel=token)
    assert len(seen) == 2


def test_partition_of_unity_property() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None)
    @given(
        st.integers(1, 700).map(lambda v: 4 * v),
        st.integers(1, 700).map(lambda v: 4 * v),
        st.sampled_from([512, 640, 768, 1024]),
        st.sampled_from([32, 48, 64]),
    )
    def check(h: int, w: int, tile: int, overlap: int) -> None:
        plan = plan_tiles(h, w, tile_px=tile, overlap_px=overlap)
        wy = np.zeros(h)
        for t, wgt in zip(plan.tiles, blend_weights(plan), strict=True):
            if t.x0 == 0:  # one column of tiles is enough for the row-axis sum
                wy[t.y0 : t.y1] += wgt[:, 0]
        np.testing.assert_allclose(wy, 1.0, atol=1e-6)

    check()
