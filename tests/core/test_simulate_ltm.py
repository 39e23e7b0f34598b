"""Tone mapping operators (core/simulate/ltm.py) and ProRAW/sensor-side processing
(core/simulate/isp.py) of the capture-pair simulator.

Small synthetic inputs: a 96x128 backlit scene, a 128x256 step edge (left 0.01, right
4.0) to measure halos, a hand-computed 2x2-point PGTM, ramps for the warp.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ConfigError, ShapeError
from core.simulate.isp import (
    denoise,
    downsample_area,
    poisson_gaussian_noise,
    resize_bilinear,
    sharpen,
    warp_image,
)
from core.simulate.ltm import (
    LTM_OPERATORS,
    apply_ltm,
    grid_table_gain,
    pgtm_arrays_for_scene,
    random_ltm,
)
from core.simulate.scenes import make_scene

H, W = 96, 128


@pytest.fixture(scope="module")
def backlit() -> np.ndarray:
    return make_scene("backlit", H, W, seed=7)


def _step_edge(h: int = 128, w: int = 256) -> np.ndarray:
    """Left half 0.01, right half 4.0 (neutral): 8.6 EV step at column w / 2."""
    s = np.full((3, h, w), 0.01, dtype=np.float32)
    s[:, :, w // 2 :] = 4.0
    return s


# ----------------------------------------------------------------------------- LTM


@pytest.mark.parametrize("name", list(LTM_OPERATORS))
@pytest.mark.parametrize("strength", [0.3, 1.0])
def test_gain_positive_bounded_varying(name: str, strength: float, backlit: np.ndarray) -> None:
    tm, g = apply_ltm(backlit, name, strength=strength, rng=np.random.default_rng(1))
    assert g.shape == (H, W) and g.dtype == np.float32
    assert np.isfinite(g).all()
    assert g.min() >= 0.25 - 1e-6 and g.max() <= 8.0 + 1e-6
    assert g.std() > 0.05  # spatially varying
    assert g[backlit[1] < 0.01].mean() > 1.0 > g[backlit[1] > 5.0].mean()  # lift / compress
    np.testing.assert_allclose(tm, backlit * g[None], rtol=1e-6)


@pytest.mark.parametrize("name", list(LTM_OPERATORS))
def test_strength_zero_is_identity_and_deterministic(name: str, backlit: np.ndarray) -> None:
    _, g = apply_ltm(backlit, name, strength=0.0, rng=np.random.default_rng(0))
    assert np.all(g == 1.0)
    _, g1 = apply_ltm(backlit, name, strength=0.7, rng=np.random.default_rng(3))
    _, g2 = apply_ltm(backlit, name, strength=0.7, rng=np.random.default_rng(3))
    assert np.array_equal(g1, g2)


def test_blur_halo_larger_than_bilateral() -> None:
    s = _step_edge()
    h, w = s.shape[1:]

    def halo_ev(g: np.ndarray) -> float:
        """Dark side: how much less the pixel next to the edge is lifted than one far away."""
        row = np.log2(g[h // 2])
        return float(row[8] - row[w // 2 - 1])

    blur = halo_ev(LTM_OPERATORS["blur"](s, strength=0.8))
    bilateral = halo_ev(LTM_OPERATORS["bilateral"](s, strength=0.8))
    # Measured: blur ~1.7 EV, bilateral ~0.03 EV.
    assert blur > 1.0
    assert abs(bilateral) < 0.2
    assert blur > bilateral + 0.8


def test_apply_ltm_bad_inputs(backlit: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="bilateral"):
        apply_ltm(backlit, "reinhard", strength=0.5)
    with pytest.raises(ConfigError):
        apply_ltm(backlit, "blur", strength=1.5)
    with pytest.raises(ShapeError):
        apply_ltm(backlit[0], "blur", strength=0.5)


def test_random_ltm_covers_operators_and_returns_pgtm(backlit: np.ndarray) -> None:
    rng = np.random.default_rng(11)
    seen = set()
    for _ in range(16):
        res = random_ltm(backlit, rng)
        seen.add(res.name)
        assert 0.3 <= res.strength <= 1.0
        assert res.gain.min() > 0
        assert (res.pgtm is not None) == (res.name == "grid_table")
        if res.pgtm is not None:
            np.testing.assert_array_equal(grid_table_gain(backlit, *res.pgtm), res.gain)
    assert seen == set(LTM_OPERATORS)


# ----------------------------------------------------------------------------- PGTM


def _tiny_table() -> np.ndarray:
    t = np.empty((2, 2, 2), dtype=np.float32)
    t[0, 0] = (1.0, 2.0)
    t[0, 1] = (2.0, 4.0)
    t[1, 0] = (0.5, 1.0)
    t[1, 1] = (4.0, 8.0)
    return t


@pytest.mark.parametrize(
    ("table_index", "expected"), [("spec", 2.015625), ("n_minus_1", 1.6796875)]
)
def test_grid_table_gain_golden(table_index: str, expected: float) -> None:
    # 4x4 image, points at relative 0.25 and 0.75 (origin 0.25, spacing 0.5), N = 2,
    # weights (1, 0, 0, 0, 0) so the table input is R.
    # Pixel (x=1, y=2): relative (0.375, 0.625) -> grid j = (0.375 - 0.25) / 0.5 = 0.25,
    # i = (0.625 - 0.25) / 0.5 = 0.75. R = 0.25.
    # spec: index = 0.25 * N = 0.5 -> tables at the input: T00 1.5, T01 3, T10 0.75, T11 6;
    #   row i=0: 1.5 * 0.75 + 3 * 0.25 = 1.875; row i=1: 0.75 * 0.75 + 6 * 0.25 = 2.0625;
    #   gain = 0.25 * 1.875 + 0.75 * 2.0625 = 2.015625.
    # n_minus_1: index = 0.25 * (N - 1) = 0.25 -> T00 1.25, T01 2.5, T10 0.625, T11 5;
    #   rows 1.5625 and 1.71875 -> 0.25 * 1.5625 + 0.75 * 1.71875 = 1.6796875.
    rgb = np.zeros((3, 4, 4), dtype=np.float32)
    rgb[0] = 0.25
    g = grid_table_gain(
        rgb, _tiny_table(), (1, 0, 0, 0, 0), 0.5, 0.5, 0.25, 0.25, table_index=table_index
    )  # type: ignore[arg-type]
    assert g[2, 1] == pytest.approx(expected, abs=1e-6)
    # Pixel (0, 0): relative 0.125 is before the first point -> clamped to point (0, 0).
    expected_t00 = 1.5 if table_index == "spec" else 1.25
    assert g[0, 0] == pytest.approx(expected_t00, abs=1e-6)


def test_grid_table_gain_input_clamp_and_min_max_weights() -> None:
    rgb = np.zeros((3, 4, 4), dtype=np.float32)
    rgb[0], rgb[1], rgb[2] = 3.0, 0.2, 0.1
    tab = _tiny_table()
    # w = clamp(max = 3.0) = 1 -> last entry at point (0, 0): 2.0 (both conventions).
    for ti in ("spec", "n_minus_1"):
        g = grid_table_gain(rgb, tab, (0, 0, 0, 0, 1), 0.5, 0.5, 0.25, 0.25, table_index=ti)
        assert g[0, 0] == pytest.approx(2.0)
    # w = min = 0.1 -> spec index 0.2 at point (0, 0): 1 + 0.2 * (2 - 1) = 1.2.
    g = grid_table_gain(rgb, tab, (0, 0, 0, 1, 0), 0.5, 0.5, 0.25, 0.25)
    assert g[0, 0] == pytest.approx(1.2)


def test_grid_table_gain_matches_loop_reference(backlit: np.ndarray) -> None:
    table, weights, sv, sh, ov, oh = pgtm_arrays_for_scene(
        backlit, points_v=3, points_h=5, points_n=17, strength=0.8, rng=np.random.default_rng(2)
    )
    g = grid_table_gain(backlit, table, weights, sv, sh, ov, oh)
    pv, ph, n = table.shape
    for y, x in [(0, 0), (5, 17), (47, 64), (95, 127), (60, 3)]:
        r, gg, b = (float(v) for v in backlit[:, y, x])
        wv = weights[0] * r + weights[1] * gg + weights[2] * b
        wv += weights[3] * min(r, gg, b) + weights[4] * max(r, gg, b)
        t = min(max(wv, 0.0), 1.0) * n
        t = min(t, n - 1)
        k = min(int(t), n - 2)
        fi = min(max(((y + 0.5) / H - ov) / sv, 0), pv - 1)
        fj = min(max(((x + 0.5) / W - oh) / sh, 0), ph - 1)
        i0, j0 = min(int(fi), pv - 2), min(int(fj), ph - 2)
        interp = (
            (1 - (fi - i0)) * (1 - (fj - j0)) * table[i0, j0]
            + (1 - (fi - i0)) * (fj - j0) * table[i0, j0 + 1]
            + (fi - i0) * (1 - (fj - j0)) * table[i0 + 1, j0]
            + (fi - i0) * (fj - j0) * table[i0 + 1, j0 + 1]
        )
        ref = interp[k] + (t - k) * (interp[k + 1] - interp[k])
        assert g[y, x] == pytest.approx(ref, rel=1e-5)


def test_pgtm_arrays_shape_and_range(backlit: np.ndarray) -> None:
    table, weights, sv, sh, ov, oh = pgtm_arrays_for_scene(
        backlit, points_v=6, points_h=8, points_n=257, strength=0.9
    )
    assert table.shape == (6, 8, 257) and table.dtype == np.float32
    assert table.min() >= 0.25 and table.max() <= 8.0
    assert len(weights) == 5 and all(isinstance(v, float) for v in weights)
    assert (sv, sh, ov, oh) == pytest.approx((1 / 6, 1 / 8, 1 / 12, 1 / 16))
    assert table[..., 0].mean() > table[..., -1].mean()  # shadows lifted, highlights not
    assert np.ptp(table[..., 128]) > 0.1  # differs between cells: local
    with pytest.raises(ConfigError):
        pgtm_arrays_for_scene(backlit, points_v=0)


# ----------------------------------------------------------------------------- warp


def _ramp(h: int = 40, w: int = 52) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x * 0.5 + y * 0.25, x * 0.1, y * 0.3])


def test_warp_identity_is_exact() -> None:
    img = np.random.default_rng(0).random((3, 40, 52), dtype=np.float32)
    assert np.array_equal(warp_image(img), img)
    assert np.array_equal(warp_image(img, order=3), img)


@pytest.mark.parametrize("order", [1, 3])
def test_warp_integer_translation_is_exact_and_x_moves_columns(order: int) -> None:
    img = np.random.default_rng(1).random((3, 40, 52), dtype=np.float32)
    out = warp_image(img, translation_px=(2.0, 0.0), order=order)  # type: ignore[arg-type]
    # Output column x samples source column x + 2.
    if order == 1:
        assert np.array_equal(out[:, :, :-2], img[:, :, 2:])
    else:
        np.testing.assert_allclose(out[:, :, :-2], img[:, :, 2:], atol=1e-5)
    out = warp_image(img, translation_px=(-1.0, 3.0))
    assert np.array_equal(out[:, :-3, 1:], img[:, 3:, :-1])


def test_warp_subpixel_translation_on_ramp() -> None:
    img = _ramp()
    out = warp_image(img, translation_px=(0.25, -0.5))
    # Bilinear sampling reproduces linear functions exactly (away from the clamped edge).
    np.testing.assert_allclose(
        out[0, 5:-5, 5:-5], img[0, 5:-5, 5:-5] + 0.25 * 0.5 - 0.5 * 0.25, atol=1e-5
    )


def test_warp_radial_moves_corner_analytically() -> None:
    h, w = 40, 52
    img = _ramp(h, w)
    k1 = -0.1
    out = warp_image(img, radial=(k1, 0.0, 0.0))
    # Corner q = (0, 0): u = -c / |c|, r = 1, so src = c + |c| u (1 + k1) = -k1 * c.
    cx, cy = (w - 1) / 2, (h - 1) / 2
    sx, sy = -k1 * cx, -k1 * cy
    assert out[0, 0, 0] == pytest.approx(0.5 * sx + 0.25 * sy, abs=1e-4)
    assert out[1, 0, 0] == pytest.approx(0.1 * sx, abs=1e-4)
    # The centre does not move.
    assert out[0, h // 2, w // 2] == pytest.approx(img[0, h // 2, w // 2], abs=1e-4)


def test_warp_zoom_and_tangential_match_formula() -> None:
    h, w = 40, 52
    img = _ramp(h, w)
    zoom, p1, p2 = 0.9, 0.01, -0.02
    out = warp_image(img, zoom=zoom, tangential=(p1, p2))
    cx, cy = (w - 1) / 2, (h - 1) / 2
    norm = np.hypot(cx, cy)
    x, y = 40, 8
    ux, uy = (x - cx) / norm, (y - cy) / norm
    r2 = ux * ux + uy * uy
    sx = cx + norm * (zoom * ux + 2 * p1 * ux * uy + p2 * (r2 + 2 * ux * ux))
    sy = cy + norm * (zoom * uy + p1 * (r2 + 2 * uy * uy) + 2 * p2 * ux * uy)
    assert out[1, y, x] == pytest.approx(0.1 * sx, abs=1e-4)
    assert out[2, y, x] == pytest.approx(0.3 * sy, abs=1e-4)


def test_warp_bad_inputs() -> None:
    with pytest.raises(ShapeError):
        warp_image(np.zeros((1, 2, 3, 4), np.float32))
    with pytest.raises(ConfigError):
        warp_image(np.zeros((3, 8, 8), np.float32), zoom=0.0)


# ----------------------------------------------------------------------------- noise etc.


@pytest.mark.parametrize("signal", [0.0005, 0.01, 0.2, 0.9])
def test_noise_statistics(signal: float) -> None:
    fw, rn = 6000.0, 3.0
    x = np.full(200_000, signal, dtype=np.float32)
    y = poisson_gaussian_noise(x, full_well_e=fw, read_noise_e=rn, rng=np.random.default_rng(5))
    expected_var = signal / fw + (rn / fw) ** 2
    assert y.dtype == np.float32
    assert y.mean() == pytest.approx(signal, abs=4 * np.sqrt(expected_var / x.size))
    assert y.var() == pytest.approx(expected_var, rel=0.03)


def test_noise_deterministic_and_validated() -> None:
    x = np.linspace(0, 1, 1000, dtype=np.float32).reshape(10, 100)
    a = poisson_gaussian_noise(x, full_well_e=5000, read_noise_e=2, rng=np.random.default_rng(9))
    b = poisson_gaussian_noise(x, full_well_e=5000, read_noise_e=2, rng=np.random.default_rng(9))
    assert np.array_equal(a, b) and a.shape == x.shape
    with pytest.raises(ConfigError):
        poisson_gaussian_noise(x, full_well_e=0, read_noise_e=1, rng=np.random.default_rng())


def test_denoise_reduces_noise_keeps_edges() -> None:
    rng = np.random.default_rng(0)
    clean = np.full((3, 64, 64), 0.05, dtype=np.float32)
    clean[:, :, 32:] = 0.5
    noisy = poisson_gaussian_noise(clean, full_well_e=2000, read_noise_e=2, rng=rng)
    noisy = np.maximum(noisy, 0)
    out = denoise(noisy, 0.8)
    assert out.shape == clean.shape and out.min() >= 0
    flat = (slice(None), slice(4, 60), slice(4, 28))
    assert out[flat].std() < 0.6 * noisy[flat].std()
    # The step stays a step: the two columns beside it keep most of the contrast.
    assert out[1, :, 33].mean() - out[1, :, 30].mean() > 0.4
    assert np.array_equal(denoise(noisy, 0.0), noisy)


@pytest.mark.parametrize("domain", ["linear", "log"])
def test_sharpen_overshoots_and_never_negative(domain: str) -> None:
    img = np.full((3, 32, 32), 0.01, dtype=np.float32)
    img[:, :, 16:] = 1.0
    out = sharpen(img, 1.5, 1.5, domain=domain)  # type: ignore[arg-type]
    assert out.min() >= 0
    assert out[1, 10, 16] > 1.0  # bright-side overshoot
    assert out[1, 10, 15] < 0.01  # dark-side undershoot (clipped at 0 in linear)
    np.testing.assert_allclose(out[:, :, :8], 0.01, rtol=1e-4)  # flat stays flat


def test_resize_and_downsample_helpers() -> None:
    a = np.arange(4, dtype=np.float32).reshape(1, 4)
    np.testing.assert_allclose(
        resize_bilinear(a, 1, 8)[0], [0, 0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3]
    )
    b = np.arange(25, dtype=np.float32).reshape(5, 5)
    np.testing.assert_allclose(
        downsample_area(b, 2), [[3, 5, 6.5], [13, 15, 16.5], [20.5, 22.5, 24]]
    )
