"""Scene generators of the capture-pair simulator (core/simulate/scenes.py).

Small frames (96x128 unless a test needs more room); every scene must honour the Camera48
contract (float32 (3, H, W), finite, >= 0), be deterministic per seed, and show what its
description claims (dynamic range, highlights above clip, frequencies).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from core.errors import ConfigError, ShapeError
from core.simulate import scenes
from core.simulate.isp import luminance
from core.simulate.scenes import SCENES, make_scene, panel_slices, scene_names

H, W = 96, 128


@pytest.fixture(scope="module")
def built() -> dict[str, np.ndarray]:
    """Every scene at 96x128, seed 0."""
    return {name: make_scene(name, H, W, seed=0) for name in SCENES}


@pytest.mark.parametrize("name", list(SCENES))
def test_scene_contract(name: str, built: dict[str, np.ndarray]) -> None:
    s = built[name]
    assert s.shape == (3, H, W)
    assert s.dtype == np.float32
    assert s.flags.c_contiguous
    assert np.isfinite(s).all()
    assert s.min() >= 0.0
    assert s.max() <= 60.0  # HDR highlights up to ~50, no runaway values


@pytest.mark.parametrize("name", list(SCENES))
def test_scene_deterministic_per_seed(name: str, built: dict[str, np.ndarray]) -> None:
    assert np.array_equal(make_scene(name, H, W, seed=0), built[name])
    other = make_scene(name, H, W, seed=1)
    assert not np.array_equal(other, built[name])


@pytest.mark.parametrize("name", list(SCENES))
def test_scene_odd_but_valid_sizes(name: str) -> None:
    s = make_scene(name, 20, 36, seed=2)  # small, non-square, multiples of 4
    assert s.shape == (3, 20, 36)
    assert np.isfinite(s).all()
    assert s.min() >= 0.0


def test_scene_names_and_kinds() -> None:
    assert scene_names() == list(SCENES)
    natural, pattern = scene_names("natural"), scene_names("pattern")
    low = scene_names("low_texture")
    assert set(natural) | set(pattern) | set(low) == set(SCENES)
    assert len(natural) + len(pattern) + len(low) == len(SCENES)
    assert {"plain_wall", "thin_clouds"} <= set(low)
    assert {
        "backlit",
        "bright_window",
        "mixed_lighting",
        "city_lights",
        "foliage",
        "portrait_like",
    } <= set(natural)
    assert {"zone_plate", "siemens_star", "stripes", "checkers", "gradient_sky"} <= set(pattern)
    for name, spec in SCENES.items():
        assert spec.name == name
        assert spec.description


@pytest.mark.parametrize("name", scene_names("low_texture"))
def test_low_texture_scenes_hold_faint_fine_texture_and_no_edge(name: str) -> None:
    # What registration's low-texture row needs: structure at the pixel scale (grain,
    # cirrus fibres) of a few percent -- comparable to the RAW12 noise at these levels --
    # and no edge: every 4 px step changes the level by far less than an edge would.
    s = make_scene(name, 192, 256, seed=3)
    g = s[1].astype(np.float64)
    smooth = ndimage.gaussian_filter(g, 4.0)
    fine = (g - smooth) / smooth
    assert 0.003 < fine.std() < 0.05
    steps = np.abs(np.log(g[:, 4:] / g[:, :-4]))
    assert steps.max() < 0.25  # an edge of the textured scenes is > 1 (a factor e)
    assert 0.05 < float(np.median(g)) < 1.0  # mid-tones, no highlight, no deep shadow


def test_bad_name_names_valid_ones() -> None:
    with pytest.raises(ConfigError, match="backlit"):
        make_scene("no_such_scene", H, W)
    with pytest.raises(ConfigError):
        scene_names("photos")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [(98, 128), (96, 130), (0, 128), (8, 8), (96, 10**6), (96.0, 128)])
def test_bad_size_is_shape_error(size: tuple[int, int]) -> None:
    with pytest.raises(ShapeError):
        make_scene("backlit", *size)


def _ratio(s: np.ndarray) -> float:
    lum = luminance(s)
    return float(np.percentile(lum, 99.9) / np.percentile(lum, 1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backlit_dynamic_range(seed: int) -> None:
    s = make_scene("backlit", H, W, seed=seed)
    assert _ratio(s) > 2**10  # > 10 EV between the sun and the silhouette
    assert s.max() > 20.0  # the sun disc
    assert (luminance(s) < 0.02).mean() > 0.2  # a large dark silhouette


def test_bright_window_dynamic_range(built: dict[str, np.ndarray]) -> None:
    s = built["bright_window"]
    assert _ratio(s) > 2**8
    assert (luminance(s) > 2.0).mean() > 0.02  # the window view
    assert np.median(luminance(s)) < 0.2  # the room


def test_city_lights_dark_with_highlights_above_clip(built: dict[str, np.ndarray]) -> None:
    s = built["city_lights"]
    lum = luminance(s)
    assert np.median(lum) < 0.02
    assert (s > 1.0).any()
    assert (lum > 1.0).sum() >= 5  # several point lights above clip, not one


def test_mixed_lighting_has_two_illuminant_colours(built: dict[str, np.ndarray]) -> None:
    s = built["mixed_lighting"]
    top = s[:, : H // 6]  # wall band above the chart, lit by both sources
    rb = top[0] / np.maximum(top[2], 1e-6)
    left, right = np.median(rb[:, : W // 6]), np.median(rb[:, -W // 6 :])
    assert max(left, right) / min(left, right) > 1.5  # warm side vs cool side
    assert s.max() >= 10.0  # the visible bulb


def test_foliage_has_fine_texture(built: dict[str, np.ndarray]) -> None:
    g = built["foliage"][1]
    spec = np.abs(np.fft.rfft2(g - g.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(H))[:, None]
    fx = np.fft.rfftfreq(W)[None, :]
    high = spec[(fx > 0.15) | (fy > 0.15)].sum() / spec.sum()
    assert high > 0.01  # pixel-scale leaf edges, not just blobs
    assert 2**2 < _ratio(built["foliage"]) < 2**12  # medium contrast


@pytest.mark.parametrize("name", scene_names("natural"))
def test_natural_scenes_are_hdr_ish(name: str, built: dict[str, np.ndarray]) -> None:
    assert _ratio(built[name]) > 2**4


def test_stripes_peaks_at_claimed_frequencies() -> None:
    h, w = 192, 256
    s = make_scene("stripes", h, w, seed=4)[1]
    for (ys, xs), (freq, angle) in zip(
        panel_slices(h, w, *scenes.STRIPE_GRID), scenes.STRIPE_PANELS, strict=True
    ):
        if angle not in (0.0, 90.0):
            continue
        panel = s[ys, xs]
        profile = panel.mean(axis=0) if angle == 0.0 else panel.mean(axis=1)
        n = profile.size
        spectrum = np.abs(np.fft.rfft(profile - profile.mean()))
        peak = np.fft.rfftfreq(n)[np.argmax(spectrum)]
        assert abs(peak - freq) <= 1.0 / n + 1e-9, (freq, angle, peak)


def test_checkers_one_pixel_panel_alternates(built: dict[str, np.ndarray]) -> None:
    assert scenes.CHECKER_SIZES_PX[0] == 1
    ys, xs = panel_slices(H, W, *scenes.CHECKER_GRID)[0]
    panel = built["checkers"][1][ys, xs]
    steps = np.sign(np.diff(panel, axis=1))
    assert np.all(steps[:, :-1] == -steps[:, 1:])
    assert np.all(panel[:, :-1] != panel[:, 1:])
    assert np.all(panel[:-1, :] != panel[1:, :])
    ys, xs = panel_slices(H, W, *scenes.CHECKER_GRID)[1]  # 2 px squares
    row = built["checkers"][1][ys, xs][0]
    runs = np.diff(np.flatnonzero(np.diff(row) != 0))
    assert np.all(runs == 2)


def test_panels_start_on_quad_phase() -> None:
    for ys, xs in panel_slices(96, 132, 3, 4):
        assert ys.start % 4 == 0 and xs.start % 4 == 0


def test_zone_plate_sweeps_up_to_48mp_nyquist() -> None:
    h, w = 128, 128
    s = make_scene("zone_plate", h, w, seed=0)[1]
    spec = np.abs(np.fft.fft2(s - s.mean())) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))
    # Energy spread across the whole band, including above the 12MP Nyquist (0.25).
    above_12mp = spec[f > 0.25].sum() / spec.sum()
    assert 0.1 < above_12mp < 0.9
    # Near the centre it is low frequency: neighbouring pixels almost equal.
    c = s[h // 2 - 2 : h // 2 + 2, w // 2 - 2 : w // 2 + 2]
    assert np.ptp(c) < 0.05


def test_siemens_star_has_claimed_spokes() -> None:
    from scipy import ndimage

    h, w = 128, 128
    s = make_scene("siemens_star", h, w, seed=5)[1]
    n_ang = 1024
    ang = np.linspace(0, 2 * np.pi, n_ang, endpoint=False)
    r = 45.0  # between N/pi ~ 20 px and the outer radius 0.47 * 128 ~ 60 px
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ring = ndimage.map_coordinates(s, [cy + r * np.sin(ang), cx + r * np.cos(ang)], order=1)
    spectrum = np.abs(np.fft.rfft(ring - ring.mean()))
    assert int(np.argmax(spectrum)) == scenes.SIEMENS_SPOKES


def test_gradient_sky_is_smooth() -> None:
    s = make_scene("gradient_sky", 192, 256, seed=0)
    lum = luminance(s)
    assert lum.max() / lum.min() > 4  # real gradients, not flat
    d2y = np.abs(np.diff(lum, 2, axis=0))
    d2x = np.abs(np.diff(lum, 2, axis=1))
    assert max(d2y.max(), d2x.max()) < 0.02 * lum.max()  # no edges anywhere
