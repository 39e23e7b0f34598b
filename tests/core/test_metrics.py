"""Metrics: known values, the right CFA planes, and LTM/halo/detail/cast detectors that fire."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from core.cfa import CfaPattern
from core.errors import ConfigError, ShapeError
from core.forward import cfa_planes, forward_np
from core.metrics import (
    anchor_metrics,
    cfa_error_histograms,
    chroma_stability,
    gradient_correlation,
    halo_indicator,
    halo_map,
    ltm_residual,
    luminance,
    psnr,
    ssim,
    truth_metrics,
)

PHASES = ["RGGB", "BGGR", "GRBG", "GBRG"]


@pytest.fixture(scope="module")
def scene() -> dict[str, np.ndarray]:
    """A 240x320 Camera48-like scene with strong edges, seeded.

    Base layer: dark background 0.02, a bright disk 0.5 (~4.6 EV step) and a 0.3 rectangle;
    detail layer: ~0.1 EV log-normal texture, lightly blurred. Channels are the luminance
    times (0.8, 1, 1.2). Returned with its base layer so a test can build an edge-aware tone
    map (a gain from the base layer alone changes only at the base's edges).
    """
    rng = np.random.default_rng(0)
    h, w = 240, 320
    yy, xx = np.mgrid[:h, :w]
    base = np.full((h, w), 0.02, np.float32)
    base[(yy - 120) ** 2 + (xx - 160) ** 2 < 60**2] = 0.5
    base[20:80, 220:300] = 0.3
    tex = ndimage.gaussian_filter(np.exp2(rng.normal(0, 0.1, (h, w))).astype(np.float32), 0.7)
    y = base * tex
    return {"cam": np.stack([y * 0.8, y, y * 1.2]), "base": base, "y": y, "xx": xx}


def small_capture(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, CfaPattern]:
    """Camera48 (3, 16, 24) in [0.1, 0.6) and its exact anchor F(camera48)."""
    rng = np.random.default_rng(seed)
    cfa = CfaPattern.from_name(name)
    cam = (0.1 + 0.5 * rng.random((3, 16, 24))).astype(np.float32)
    return cam, forward_np(cam, cfa), cfa


# --------------------------------------------------------------------------- PSNR / SSIM


def test_psnr_identical_is_inf_and_known_constant_error():
    a = np.full((8, 8), 0.5, np.float32)
    assert psnr(a, a) == math.inf
    # mse = 0.01**2 -> 10 log10(1 / 1e-4) = 40 dB.
    assert psnr(a + np.float32(0.01), a) == pytest.approx(40.0, abs=1e-4)
    # peak 2 adds 20 log10(2) = 6.0206 dB.
    assert psnr(a + np.float32(0.01), a, peak=2.0) == pytest.approx(46.0206, abs=1e-3)
    mask = np.zeros((8, 8), bool)
    assert math.isnan(psnr(a, a, mask=mask))
    with pytest.raises(ShapeError):
        psnr(a, a[:4])


def test_psnr_mask_broadcasts_over_channels():
    a = np.zeros((3, 4, 4))
    b = a.copy()
    b[:, 0, 0] = 1.0  # huge error at one pixel, masked out
    mask = np.ones((4, 4), bool)
    mask[0, 0] = False
    assert psnr(a, b, mask=mask) == math.inf


def test_ssim_identical_and_degraded():
    rng = np.random.default_rng(1)
    a = rng.random((32, 32))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, ndimage.gaussian_filter(a, 2)) < 0.8
    assert math.isnan(ssim(a[:2, :2], a[:2, :2]))
    assert ssim(a[:5, :5], a[:5, :5]) == pytest.approx(1.0)  # window shrinks to 5


# --------------------------------------------------------------------------- anchor


@pytest.mark.parametrize("name", PHASES)
def test_anchor_exact_output(name):
    cam, anchor, cfa = small_capture(name)
    m = anchor_metrics(cam, anchor, cfa)
    assert m.psnr_db == math.inf and m.mae == 0.0
    assert m.ssim == pytest.approx(1.0)
    assert m.n_valid == anchor.size and m.n_clipped == 0 and m.n_masked == 0
    assert all(s.rmse == 0.0 and s.count == anchor.size // 4 for s in m.per_cfa.values())


@pytest.mark.parametrize("name", PHASES)
def test_per_cfa_stats_pick_gb_only(name):
    cam, anchor, cfa = small_capture(name)
    dy, dx = cfa.plane_offsets()["Gb"]
    anchor = anchor.copy()
    anchor[dy::2, dx::2] -= np.float32(0.0625)  # F(out) - anchor = +1/16 on Gb only
    m = anchor_metrics(cam, anchor, cfa)
    gb = m.per_cfa["Gb"]
    assert gb.mean == pytest.approx(0.0625, abs=1e-6)
    assert gb.p01 == pytest.approx(0.0625, abs=1e-6) and gb.p99 == pytest.approx(0.0625, abs=1e-6)
    assert gb.std == pytest.approx(0.0, abs=1e-6)
    for other in ("R", "Gr", "B"):
        assert m.per_cfa[other].rmse == 0.0
    # Only a quarter of the pixels carry the error: mse = 0.0625**2 / 4.
    assert m.psnr_db == pytest.approx(10 * math.log10(4 / 0.0625**2), abs=1e-3)
    assert m.ssim_per_cfa["R"] == pytest.approx(1.0)


@pytest.mark.parametrize("name", PHASES)
def test_histograms_pick_gb_only(name):
    cam, anchor, cfa = small_capture(name)
    dy, dx = cfa.plane_offsets()["Gb"]
    anchor = anchor.copy()
    anchor[dy::2, dx::2] *= np.float32(0.5)  # F / anchor = 2 -> +1 EV on Gb
    hist = cfa_error_histograms(cam, anchor, cfa, bins=np.linspace(-2, 2, 9), scale="ev")
    edges = hist["Gb"][1]
    centers = 0.5 * (edges[1:] + edges[:-1])
    assert hist["Gb"][0].sum() == anchor.size // 4
    assert centers[np.argmax(hist["Gb"][0])] == pytest.approx(1.25)  # bin [1, 1.5)
    for other in ("R", "Gr", "B"):
        assert centers[np.argmax(hist[other][0])] == pytest.approx(0.25)  # bin [0, 0.5)


@pytest.mark.parametrize("name", PHASES)
def test_histogram_roi_keeps_cfa_phase(name):
    """An odd-offset ROI re-phases the CFA: the Gb error stays in the Gb histogram."""
    cam, anchor, cfa = small_capture(name)
    dy, dx = cfa.plane_offsets()["Gb"]
    anchor = anchor.copy()
    anchor[dy::2, dx::2] -= np.float32(0.0625)
    hist = cfa_error_histograms(cam, anchor, cfa, bins=16, roi=(1, 6, 3, 10))
    total = sum(int(c.sum()) for c, _ in hist.values())
    assert total == 5 * 7
    edges = hist["Gb"][1]
    gb_vals = np.repeat(0.5 * (edges[1:] + edges[:-1]), hist["Gb"][0])
    assert np.all(gb_vals > 0.05)
    for other in ("R", "Gr", "B"):
        c, e = hist[other]
        assert np.all(np.abs(np.repeat(0.5 * (e[1:] + e[:-1]), c)) < 0.01)


def test_histogram_bad_input():
    cam, anchor, cfa = small_capture("RGGB")
    with pytest.raises(ConfigError, match="linear, ev"):
        cfa_error_histograms(cam, anchor, cfa, scale="log")  # type: ignore[arg-type]
    with pytest.raises(ShapeError):
        cfa_error_histograms(cam, anchor, cfa, roi=(4, 4, 0, 3))
    with pytest.raises(ShapeError):
        anchor_metrics(cam, anchor[:, :-1], cfa)


def test_clipped_anchor_pixels_excluded():
    cam, anchor, cfa = small_capture("BGGR", seed=3)
    clean = anchor_metrics(cam, anchor + np.float32(0.01), cfa)
    clipped = (anchor + np.float32(0.01)).copy()
    clipped[:3, :5] = 1.0  # sensor clip; F(out) there is far below
    m = anchor_metrics(cam, clipped, cfa)
    assert m.n_clipped == 15 and m.n_valid == anchor.size - 15
    assert m.n_clip_violations == 15  # the output is darker than the clip the sensor saw
    assert m.psnr_db == pytest.approx(40.0, abs=1e-3)
    assert m.psnr_db == pytest.approx(clean.psnr_db, abs=1e-3)
    assert sum(s.count for s in m.per_cfa.values()) == m.n_valid
    # An output above the clip where the anchor clipped is consistent: no violation.
    bright = cam.copy()
    bright[:, :6, :10] = 2.0
    assert anchor_metrics(bright, clipped, cfa).n_clip_violations == 0


def test_user_mask_and_json():
    cam, anchor, cfa = small_capture("GRBG")
    mask = np.ones(anchor.shape, bool)
    mask[0] = False
    m = anchor_metrics(cam, anchor, cfa, mask=mask)
    assert m.n_masked == anchor.shape[1] and m.n_valid == anchor.size - anchor.shape[1]
    text = json.dumps(m.to_dict(), allow_nan=False)  # inf PSNR -> null
    assert json.loads(text)["psnr_db"] is None
    assert set(json.loads(text)["per_cfa"]) == {"R", "Gr", "Gb", "B"}


# --------------------------------------------------------------------------- scene metrics


def test_luminance_weights():
    cam = np.stack([np.full((2, 2), v, np.float32) for v in (4.0, 2.0, 8.0)])
    np.testing.assert_allclose(luminance(cam), 0.25 * 4 + 0.5 * 2 + 0.25 * 8)
    with pytest.raises(ShapeError):
        luminance(np.zeros((4, 2, 2)))


def test_ltm_residual_global_gain_is_zero(scene):
    assert ltm_residual(scene["cam"] * 3.0, scene["cam"]) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("wavelength_frac", [1.0, 0.5])
def test_ltm_residual_matches_analytic_sine(scene, wavelength_frac):
    """log2 gain = A sin(2 pi x / lam): RMS A / sqrt(2), damped by the low-pass as
    exp(-2 pi^2 sigma^2 / lam^2)."""
    cam, xx = scene["cam"], scene["xx"]
    h, w = xx.shape
    amp, lam = 0.5, w * wavelength_frac
    gain = np.exp2(amp * np.sin(2 * np.pi * xx / lam)).astype(np.float32)
    sigma = 0.03 * math.hypot(h, w)
    expected = amp / math.sqrt(2) * math.exp(-2 * math.pi**2 * sigma**2 / lam**2)
    got = ltm_residual(cam * gain, cam)
    assert got == pytest.approx(expected, rel=0.05)
    assert got > 0.25


def test_halo_higher_for_blur_ltm_than_edge_aware_or_global(scene):
    """Same compression curve (gain = (Y_local / 0.1) ** -0.5), three ways of taking Y_local."""
    cam, base, y = scene["cam"], scene["base"], scene["y"]
    blur_gain = (ndimage.gaussian_filter(y, 8.0) / 0.1) ** -0.5  # halos
    edge_gain = (base / 0.1) ** -0.5  # edge-aware: changes only at the base's edges
    kw = {"scale": 1.0}  # sigmas 2 px and 16 px in this image's pixels
    h_blur = halo_indicator(cam * blur_gain, cam, **kw)
    h_edge = halo_indicator(cam * edge_gain, cam, **kw)
    h_global = halo_indicator(cam * 0.7, cam, **kw)
    assert h_blur > 0.1
    assert h_edge < 0.25 * h_blur
    assert h_global == pytest.approx(0.0, abs=1e-4)
    hmap = halo_map(cam * blur_gain, cam, **kw)
    assert hmap.shape == y.shape and hmap.dtype == np.float32
    # The halo band sits along the disk's rim, not in the flat background far from edges.
    ring = np.abs(hmap[120, 160 + 60 - 12 : 160 + 60 + 12])
    assert np.nanmax(ring) > 5 * np.nanmax(np.abs(hmap[200:, :40]))


def test_halo_binned_path_and_no_edges(scene):
    cam = scene["cam"]
    gain = (ndimage.gaussian_filter(scene["y"], 8.0) / 0.1) ** -0.5
    full = halo_indicator(cam * gain, cam, scale=1.0)
    binned = halo_indicator(cam * gain, cam, scale=1.0, max_pixels=cam[0].size // 4)
    assert binned == pytest.approx(full, rel=0.5) and binned > 0.05
    assert halo_map(cam * gain, cam, scale=1.0, max_pixels=cam[0].size // 4).shape == gain.shape
    flat = np.full((3, 32, 32), 0.2, np.float32)
    assert math.isnan(halo_indicator(flat, flat))


def test_gradient_correlation(scene):
    cam = scene["cam"]
    assert gradient_correlation(cam, cam) == pytest.approx(1.0)
    assert gradient_correlation(cam * 4.0, cam) == pytest.approx(1.0)
    blurred = ndimage.gaussian_filter(cam, (0, 1.5, 1.5))
    assert gradient_correlation(blurred, cam) < 0.7


def test_chroma_stability_flags_corner_cast(scene):
    cam = scene["cam"]
    clean = chroma_stability(cam * 1.5, cam)
    assert clean.max_abs_dev_ev == pytest.approx(0.0, abs=1e-5)
    cast = cam.copy()
    cast[2, :40, :40] *= 1.5  # a blue cast in the top-left cell (240/6 x 320/8 = 40 x 40)
    cs = chroma_stability(cast, cam, grid=(6, 8))
    assert cs.worst_cell == (0, 0) and cs.worst_ratio == "B/G"
    assert cs.max_abs_dev_ev == pytest.approx(math.log2(1.5), abs=1e-3)
    assert cs.deviation_map.shape == (6, 8, 2)
    assert np.nanmax(np.abs(cs.deviation_map[1:, 1:])) < 1e-3
    json.dumps(cs.to_dict(), allow_nan=False)


def test_truth_metrics_gain_fit(scene):
    cam = scene["cam"]
    tm = truth_metrics(cam * 0.5, cam)
    assert tm.gain == pytest.approx(2.0)
    assert tm.psnr_gain_fitted_db > 100 and tm.psnr_db < tm.psnr_gain_fitted_db
    assert tm.ltm_residual_ev == pytest.approx(0.0, abs=1e-6)
    assert tm.gradient_correlation == pytest.approx(1.0)
    json.dumps(tm.to_dict(), allow_nan=False)
    with pytest.raises(ShapeError):
        truth_metrics(cam, cam[:, :-2])


def test_truth_log_metrics_do_not_depend_on_the_output_exposure(scene):
    # A halo-like error (a blurred gain bump at the scene's edges) seen at two exposures
    # 6 EV apart: the log floor must select the same pixels for both (it once followed the
    # output's own exposure, so A and the ProRAW input, equal up to a gain, scored
    # differently).
    from scipy import ndimage

    cam = scene["cam"]
    bump = ndimage.gaussian_filter(np.linspace(-1, 1, cam.shape[2])[None] ** 2, 8.0)
    out = (cam * np.exp2(0.3 * bump)[None]).astype(np.float32)
    dark = truth_metrics(out * np.float32(2.0**-6), cam)
    bright = truth_metrics(out, cam)
    for name in ("ltm_residual_ev", "halo_indicator_ev", "gradient_correlation"):
        assert getattr(dark, name) == pytest.approx(getattr(bright, name), rel=1e-3), name


def test_log_metrics_ignore_clipped_or_dark_and_masked(scene):
    cam = scene["cam"].copy()
    out = cam * 2.0
    out[:, :50, :50] = 0.0  # dead region below the floor: left out, not a huge residual
    assert ltm_residual(out, cam) == pytest.approx(0.0, abs=1e-6)
    mask = np.ones(cam.shape[1:], bool)
    mask[:50, :50] = False
    out2 = cam * 2.0
    out2[:, :50, :50] *= 8.0
    assert ltm_residual(out2, cam, mask=mask) == pytest.approx(0.0, abs=1e-6)
    assert ltm_residual(out2, cam) > 0.05
    assert cfa_planes(np.zeros((4, 4)), CfaPattern.from_name("RGGB"))["Gb"].shape == (2, 2)
