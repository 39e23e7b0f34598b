"""The edge-aware RAW-consistency refinement (core.edge_refine).

Synthetic data: a two-level scene with a sharp vertical luminance edge and a faint texture,
seen by a "ProRAW" whose gain steps at that edge (what an edge-aware local tone mapping
does: x2 on the dark side, x0.5 on the bright side) and a noise-free or noisy anchor that
is the forward operator of the truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.baselines import gain_field, upsample_gain
from core.cfa import CfaPattern
from core.edge_refine import (
    GridOptions,
    SmoothOptions,
    anchor_noise_model,
    apply_bilateral_gain,
    edge_aware_refine,
    fit_bilateral_gain,
    smooth_model_gain,
)
from core.errors import ShapeError
from core.forward import forward_np
from core.model.infer import anchor_refine

CFA = CfaPattern.from_name("RGGB")


def _scene(h48: int = 128, w48: int = 192, edge_x: int = 97) -> tuple[np.ndarray, np.ndarray]:
    """(truth, step gain): dark left (0.02), bright right (0.4), faint texture; the gain
    steps from 2 to 0.5 exactly at the edge (odd column: not on a Bayer cell boundary)."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:h48, 0:w48]
    level = np.where(x < edge_x, 0.02, 0.4).astype(np.float32)
    texture = 1.0 + 0.05 * np.sin(x / 3.0 + y / 5.0) + 0.02 * rng.standard_normal((h48, w48))
    truth = (level * texture)[None] * np.array([0.7, 1.0, 0.6], np.float32)[:, None, None]
    gain = np.where(x < edge_x, 2.0, 0.5).astype(np.float32)
    return truth.astype(np.float32), gain


def _log_err(out: np.ndarray, truth: np.ndarray) -> np.ndarray:
    r = np.log2(out[1] / truth[1])
    return np.abs(r - np.median(r))


def test_a_gain_step_at_an_edge_is_removed_without_a_halo() -> None:
    truth, gain = _scene()
    pro = truth * gain[None]
    anchor = forward_np(truth, CFA)
    out, stats = edge_aware_refine(pro, anchor, CFA)
    err = _log_err(out, truth)
    near = slice(97 - 6, 97 + 6)
    # Within 6 px of the edge (where a smooth correction blurs the 2 EV step).
    assert float(err[:, near].max()) < 0.1
    assert float(np.median(err)) < 0.01
    assert stats["refine_log2_min"] < -0.9 and stats["refine_log2_max"] > 0.9
    # The smooth (baseline B) correction on the same input leaves a halo there.
    g, _ = gain_field(pro, anchor, CFA, sigma_cells=1.0)
    smooth = pro * upsample_gain(g, *pro.shape[1:])[None]
    assert float(_log_err(smooth, truth)[:, near].max()) > 0.3


def test_consistent_input_is_left_alone_and_inplace_writes_into_the_input() -> None:
    truth, _ = _scene()
    anchor = forward_np(truth, CFA)
    work = truth.copy()
    out, stats = edge_aware_refine(work, anchor, CFA, inplace=True)
    assert out is work
    assert float(np.abs(np.log2(out / truth)).max()) < 1e-3
    assert abs(stats["refine_log2_min"]) < 1e-3 and abs(stats["refine_log2_max"]) < 1e-3


def test_noisy_shadows_are_weighted_by_the_anchor_noise_model() -> None:
    truth, gain = _scene()
    pro = truth * gain[None]
    rng = np.random.default_rng(0)
    clean = forward_np(truth, CFA)
    s_true, o_true = 2e-4, 4e-5
    anchor = clean + rng.standard_normal(clean.shape) * np.sqrt(s_true * clean + o_true)
    out, _ = edge_aware_refine(pro, anchor.astype(np.float32), CFA)
    err = _log_err(out, truth)
    # Dark side: read noise is ~30 % of the signal per pixel; the fitted gain is still
    # within a few hundredths of an EV (the grid pools ~100 pixels per node).
    assert float(np.median(err[:, :80])) < 0.05
    assert float(np.median(err[:, 110:])) < 0.02


def test_anchor_noise_model_recovers_shot_and_read_noise() -> None:
    # Flat steps at 8 levels (no texture), Poisson-Gaussian-like noise var = s A + o.
    rng = np.random.default_rng(1)
    levels = np.repeat(np.linspace(0.01, 0.8, 8), 32)[:, None] * np.ones((1, 256))
    s_true, o_true = 2e-4, 4e-6
    anchor = levels + rng.standard_normal(levels.shape) * np.sqrt(s_true * levels + o_true)
    s, o = anchor_noise_model(anchor.astype(np.float32), np.ones(anchor.shape, bool))
    assert s == pytest.approx(s_true, rel=0.15)
    assert o == pytest.approx(o_true, rel=0.5)


def test_clipped_anchor_pixels_do_not_pull_the_gain() -> None:
    truth, _ = _scene()
    truth[:, :, 120:] *= 5.0  # 2.0 in the anchor: above the sensor clip
    anchor = forward_np(truth, CFA)
    unclipped = anchor < 1.0
    anchor = np.minimum(anchor, 1.0)
    out, _ = edge_aware_refine(truth, anchor, CFA, unclipped=unclipped)
    assert float(np.abs(np.log2(out / truth)).max()) < 1e-3
    # Without the mask the clipped pixels would claim a 2x lower gain.
    wrong, _ = edge_aware_refine(truth, anchor, CFA, unclipped=np.ones_like(unclipped))
    assert float(np.log2(wrong[1, :, 150:] / truth[1, :, 150:]).mean()) < -0.5


def test_grid_layout_and_slicing_are_consistent() -> None:
    truth, _ = _scene()
    anchor = forward_np(truth, CFA) * 2.0  # a global factor of 2
    grid = fit_bilateral_gain(truth, anchor, CFA, options=GridOptions(cell12=4, bin_ev=0.5))
    h12, w12 = anchor.shape
    assert grid.log2_gain.shape[:2] == ((h12 - 1) // 4 + 2, (w12 - 1) // 4 + 2)
    assert grid.log2_gain.dtype == np.float32
    out, lo, hi = apply_bilateral_gain(truth, grid)
    assert lo == pytest.approx(1.0, abs=0.01) and hi == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(out, 2.0 * truth, rtol=0.01)


def test_bad_shapes_and_parameters_raise_typed_errors() -> None:
    truth, _ = _scene()
    anchor = forward_np(truth, CFA)
    with pytest.raises(ShapeError):
        edge_aware_refine(truth[:, :-2], anchor, CFA)
    with pytest.raises(ShapeError):
        edge_aware_refine(truth, anchor, CFA, unclipped=np.ones((3, 3), bool))
    with pytest.raises(ShapeError):
        edge_aware_refine(truth[0], anchor, CFA)
    with pytest.raises(ShapeError, match="bin_ev"):
        GridOptions(bin_ev=0.0)
    with pytest.raises(ShapeError, match="prior sds"):
        GridOptions(coarse_prior_sd=0.0)


def test_non_finite_pixels_stay_local() -> None:
    truth, gain = _scene()
    pro = truth * gain[None]
    pro[:, 10:20, 10:20] = np.nan
    pro[:, 30:34, 50:60] = np.inf
    anchor = forward_np(truth, CFA)
    anchor[5, 5] = np.nan
    out, stats = edge_aware_refine(pro, anchor, CFA)
    bad = ~np.isfinite(pro).all(axis=0)
    assert np.isfinite(out[:, ~bad]).all()
    assert np.isfinite(list(stats.values())).all()


def test_a_pattern_finer_than_the_raw12_grid_takes_the_correction_of_its_quads() -> None:
    """A 1-px grey checkerboard (0.9 / 0.02) seen with a 10 % exposure mismatch: every
    RAW12 pixel bins two bright and two dark 48MP pixels, so the anchor only carries data
    at the quads' mean luminance, which no 48MP pixel has. The coarse level (blurred over
    3 bins) carries the correction to the bright pixels' luminance; without it (pulled to
    1 instead) the bright pixels, which hold 98 % of the signal, keep the mismatch."""
    y, x = np.mgrid[0:96, 0:128]
    plane = np.where((x + y) % 2 == 0, 0.9, 0.02).astype(np.float32)
    cam = np.repeat(plane[None], 3, axis=0)
    anchor = forward_np(cam, CFA) * np.float32(1.1)
    opts = {"bin_ev": 0.1}  # the bright pixels sit 10 bins from the quads' luminance
    out, _ = edge_aware_refine(cam, anchor, CFA, options=GridOptions(**opts))
    inner = (slice(8, -8), slice(8, -8))
    ratio = forward_np(out, CFA)[inner] / anchor[inner]
    assert float(np.abs(ratio - 1.0).max()) < 0.01
    flat = GridOptions(coarse_sigma_cells=0.0, **opts)
    old, _ = edge_aware_refine(cam, anchor, CFA, options=flat)
    assert float(np.median(forward_np(old, CFA)[inner] / anchor[inner])) < 0.95


def _blobs(h: int, w: int, scale_px: float, seed: int = 0) -> np.ndarray:
    """Zero-mean band-pass random field, blobs of about ``scale_px`` (RMS 1): white noise
    through a difference of Gaussians (``scale_px / 4`` and ``scale_px / 2``)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    n = rng.standard_normal((h, w))
    f = ndimage.gaussian_filter(n, scale_px / 4.0, mode="wrap") - ndimage.gaussian_filter(
        n, scale_px / 2.0, mode="wrap"
    )
    return (f / f.std()).astype(np.float32)


def test_smoothing_takes_mid_scale_gain_mottle_out_and_keeps_edge_steps_and_detail() -> None:
    # What the network does in read-noise-limited shadows: its gain carries 0.15 EV of
    # mottle at ~20-50 px on top of an edge-aware step (x2 dark / x0.5 bright, kept: it follows
    # the ProRAW luminance) and of pixel-level detail (the detail head: 3 % per pixel, kept).
    h, w = 192, 256
    truth, step = _scene(h, w, edge_x=129)
    pro = truth  # ProRAW48 as the network saw it (only its luminance is used)
    mottle = 0.15 * _blobs(h, w, 48.0)
    detail = 1.0 + 0.03 * np.random.default_rng(5).standard_normal((h, w)).astype(np.float32)
    model_out = pro * (step * np.exp2(mottle) * detail)[None]
    out, stats = smooth_model_gain(model_out, pro)
    g_out = np.log2(out[1] / pro[1])
    expect = np.log2(step * detail)  # what should remain: the step and the detail
    resid = g_out - expect
    inner = (slice(16, -16), slice(16, -16))
    away = np.abs(np.arange(w) - 129)[None, :] > 24  # off the edge's own cells
    before = mottle[inner][away[:, 16:-16].repeat(h - 32, 0)]
    after = resid[inner][away[:, 16:-16].repeat(h - 32, 0)]
    assert np.std(after) < 0.5 * np.std(before)  # most of the mottle is gone (0.41x)
    # The step survives: mean log gain on each side, away from the edge, within 0.03 EV.
    assert abs(np.median(g_out[:, 20:100]) - 1.0) < 0.03
    assert abs(np.median(g_out[:, 160:236]) + 1.0) < 0.03
    # Pixel detail survives: the per-pixel part of the gain correlates with the detail.
    from scipy import ndimage

    def high(a: np.ndarray) -> np.ndarray:  # minus its 5x5 mean: the pixel-level part
        return a - ndimage.uniform_filter(a, 5)

    hp_out, hp_detail = high(g_out - np.log2(step)), high(np.log2(detail))
    assert np.corrcoef(hp_out[inner].ravel(), hp_detail[inner].ravel())[0, 1] > 0.95
    assert stats["smooth_log2_min"] < 0 < stats["smooth_log2_max"]


def test_a_gain_ramp_flattened_by_the_smoothing_is_restored_by_the_anchor() -> None:
    # A gain that changes inside a luminance region (a 2 EV ramp across the frame, as a
    # blur-type LTM) is averaged towards the region's mean near the region's ends by the
    # coarse level alone (0.35 EV here: a one-sided average); the RAW-consistency fit that
    # follows puts it back where the anchor supports it (noise-free anchor of that scene).
    h, w = 128, 192
    truth, _ = _scene(h, w)
    x = np.arange(w, dtype=np.float32)[None, :] / w
    ramp = np.exp2(2.0 * x - 1.0).astype(np.float32).repeat(h, 0)
    scene = truth * ramp[None]  # the scene the RAW12 saw, ProRAW48 = truth
    anchor = forward_np(scene, CFA)
    model_out = scene.copy()  # the network got it right
    smoothed, _ = smooth_model_gain(model_out, truth, inplace=True)
    assert smoothed is model_out
    assert np.abs(np.log2(smoothed[1] / scene[1])).max() > 0.2  # what the smoothing did
    # The shipped path on the network's output: the smoothing, then the RAW fit.
    out, stats = anchor_refine(scene.copy(), anchor, CFA, source=truth)
    err = np.log2(out[1] / scene[1])[16:-16, 16:-16]
    assert np.abs(err - np.median(err)).max() < 0.05
    assert "smooth_log2_max" in stats and "refine_log2_max" in stats
    keep = scene.copy()
    # sigma_coarse_cells 0 switches the step off.
    again, stats = smooth_model_gain(keep, truth, options=SmoothOptions(sigma_coarse_cells=0.0))
    assert np.array_equal(again, keep) and stats["smooth_log2_max"] == 0.0


def test_smoothing_rejects_bad_shapes_and_options() -> None:
    truth, _ = _scene(64, 96)
    with pytest.raises(ShapeError):
        smooth_model_gain(truth, truth[:, :32])
    with pytest.raises(ShapeError):
        smooth_model_gain(truth[:, :63], truth[:, :63])
    with pytest.raises(ShapeError):
        SmoothOptions(sigma_coarse_cells=0.5, sigma_fine_cells=1.0)
    with pytest.raises(ShapeError):
        SmoothOptions(bin_ev=0.0)
