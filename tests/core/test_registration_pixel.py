"""core.geometry.refine: the per-colour pixel-level stage of registration, on synthetic data.

Fixtures are built directly as arrays (no DNG round trip): a truth scene in Camera48, the
anchor ``F(truth)`` (``forward_np``, the DESIGN §3 operator) and Camera48 = the truth
resampled by ``isp.warp_image`` (what the simulator does to ProRAW48). Each test says
what it models.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from core.cfa import CfaPattern
from core.errors import ShapeError
from core.forward import forward_np
from core.geometry import refine, registration
from core.geometry.registration import _design, _linear_coeffs, _prior_rows
from core.geometry.warp import WarpParams, half_diagonal, source_coords
from core.simulate import isp

CFA = CfaPattern.from_name("BGGR")


def _edge_scene(h: int, w: int, edge_y: int, texture: bool = True) -> np.ndarray:
    """A grey wall over a brown table (a colour edge, sharp at the 48MP pixel), with a
    faint random texture: the table edge of the simulator's mixed_lighting scene."""
    top = np.array([0.45, 0.45, 0.42]) * 0.5
    bottom = np.array([0.35, 0.22, 0.12]) * 0.5
    truth = np.empty((3, h, w), np.float32)
    for c in range(3):
        truth[c, :edge_y] = top[c]
        truth[c, edge_y:] = bottom[c]
    if texture:
        rng = np.random.default_rng(0)
        truth *= (1.0 + 0.06 * (rng.random((h, w)) - 0.5)).astype(np.float32)[None]
    return truth


def _smooth_texture(
    h: int, w: int, seed: int = 0, freq: tuple[float, float] = (0.02, 0.12)
) -> np.ndarray:
    """Grey smooth random texture spanning about 3 stops (natural-image-like gradients);
    ``freq`` bounds its spatial frequencies (radians per 48MP px)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    lum = np.zeros((h, w), np.float32)
    for _ in range(6):
        fx, fy, ph = rng.uniform(*freq), rng.uniform(*freq), rng.uniform(0, 6.3)
        lum += np.sin(fx * x + ph) * np.cos(fy * y + 2 * ph)
    lum = np.exp(0.45 * lum).astype(np.float32) * np.float32(0.2)
    return np.stack([lum * 0.5, lum, lum * 0.6]).astype(np.float32)


def _fit(camera48: np.ndarray, anchor: np.ndarray, params: WarpParams, oy, ox, **kw):
    data = refine.prepare_pixels(camera48, anchor, CFA, None)
    patches = refine.pixel_patches(torch.tensor(oy), torch.tensor(ox))
    return refine.fit_pixel_patches(data, patches, params, None, camera48.shape[1:], **kw)


def test_coloured_edge_at_the_true_warp_is_not_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    # ProRAW48 resampled by a sub-pixel shift is blurred (interpolation) and the anchor is
    # not; across a colour edge the rows on each side are different Bayer phases with
    # different contrasts, so without the sharpness terms (kappa B_xx + kappa B_yy) the
    # fit moved the edge by up to 0.44 px at the TRUE warp.
    h = w = 256
    t = (5.3, -7.6)
    truth_warp = WarpParams(translation_px=(-t[0], -t[1]))
    worst = {}
    for blur_terms in (True, False):
        opts = dataclasses.replace(refine.options(), blur_terms=blur_terms)
        monkeypatch.setattr(refine, "_OPTIONS", opts)
        dys = []
        for edge_y in (100, 110, 120, 128, 140, 150):
            truth = _edge_scene(h, w, edge_y, texture=False)
            anchor = forward_np(truth, CFA)
            camera = isp.warp_image(truth, translation_px=t)
            fit = _fit(camera, anchor, truth_warp, [48, 48], [40, 72])
            dys.append(float(fit.delta[:, 1].abs().max()))
        worst[blur_terms] = max(dys)
    assert worst[True] < 0.12
    assert worst[False] > 0.3  # what the sharpness terms remove


def test_known_subpixel_shift_is_measured_per_patch() -> None:
    # Camera48 shows the scene at q + t (sub-pixel t, ProRAW misregistered); at the
    # identity warp every textured patch must ask for the correction delta = -t.
    truth = _smooth_texture(256, 320)
    t = (0.3, -0.45)
    camera = isp.warp_image(truth, translation_px=t)
    anchor = forward_np(truth, CFA)
    fit = _fit(camera, anchor, WarpParams(), [16, 16, 64, 64], [16, 96, 40, 110])
    assert bool(fit.usable.all())
    err = fit.delta + torch.tensor(t, dtype=torch.float64)
    assert float(err.abs().max()) < 0.03
    sd = torch.sqrt(torch.linalg.inv(fit.info).diagonal(dim1=1, dim2=2))
    assert float(sd.max()) < 0.05  # well determined patches


def test_estimate_tone_recovers_a_local_power_law() -> None:
    # A local tone mapping that multiplies every 48MP pixel by a power of its own
    # luminance, g = Y^kappa (the base layer of an edge-aware operator sliced at full
    # resolution): Camera48 = truth^(1 + kappa) for a grey scene, so the anchor is
    # Camera48^(1 + e) with e = -kappa / (1 + kappa). The anchor has shot noise (what the
    # noise model, and the choice of pixels well above it, are measured from).
    truth = _smooth_texture(256, 320, seed=3, freq=(0.01, 0.05))
    grey = truth.mean(axis=0, keepdims=True)
    kappa = -0.4
    camera = (truth * np.power(grey / grey.mean(), kappa)).astype(np.float32)
    anchor = forward_np(truth, CFA)
    rng = np.random.default_rng(5)
    anchor += (np.sqrt(anchor / 4000.0) * rng.standard_normal(anchor.shape)).astype(np.float32)
    data = refine.prepare_pixels(camera, anchor, CFA, None)
    patches = refine.pixel_patches(torch.tensor([16, 16, 64, 64]), torch.tensor([16, 96, 40, 110]))
    params = WarpParams()
    fields = refine.patch_fields(data, patches, params, None, camera.shape[1:])
    fit = refine.fit_pixel_patches(data, patches, params, None, camera.shape[1:], fields=fields)
    e, var_e = refine.estimate_tone(data, patches, params, None, camera.shape[1:], fit, fields)
    expected = -kappa / (1.0 + kappa)  # 0.667
    assert torch.all(torch.isfinite(var_e))
    np.testing.assert_allclose(e.numpy(), expected, atol=0.08)
    # No tone curve: exponent ~ 0.
    data0 = refine.prepare_pixels(truth, anchor, CFA, None)
    fields0 = refine.patch_fields(data0, patches, params, None, truth.shape[1:])
    fit0 = refine.fit_pixel_patches(data0, patches, params, None, truth.shape[1:], fields=fields0)
    e0, _ = refine.estimate_tone(data0, patches, params, None, truth.shape[1:], fit0, fields0)
    assert float(e0.abs().max()) < 0.06  # vs 0.67 with the curve


def test_prepare_pixels_normalizes_colours_and_masks_around_clipping() -> None:
    # A flat field of camera colour (0.4, 1.0, 0.55) on both sides, one clipped anchor
    # pixel: every colour normalizes to 1, the clipped pixel and a 2 px margin are masked.
    h12, w12 = 64, 80
    camera = np.empty((3, 2 * h12, 2 * w12), np.float32)
    for c, v in enumerate((0.4, 1.0, 0.55)):
        camera[c] = v * 0.3
    anchor = forward_np(camera * 0.5, CFA)
    unclipped = np.ones((h12, w12), bool)
    unclipped[30, 40] = False
    data = refine.prepare_pixels(camera, anchor, CFA, unclipped)
    a = data.anchor.numpy()
    assert np.allclose(a[data.valid.numpy()], 1.0, atol=1e-5)
    np.testing.assert_allclose(data.camera_scale.numpy(), 1.0 / (0.3 * np.array([0.4, 1.0, 0.55])))
    valid = data.valid.numpy()
    assert not valid[28:33, 38:43].any()
    assert valid[27, 40] and valid[30, 43] and valid.sum() == h12 * w12 - 25


def test_noise_model_is_measured_from_the_anchor() -> None:
    # Shot + read noise of known variance var = a * A + b on flat fields of 8 levels.
    rng = np.random.default_rng(1)
    h12, w12 = 256, 256
    levels = np.repeat(np.linspace(0.2, 2.0, 8), h12 // 8)[:, None] * np.ones((1, w12))
    a_true, b_true = 2e-3, 1e-4
    noisy = levels + rng.standard_normal(levels.shape) * np.sqrt(a_true * levels + b_true)
    na, nb = refine.anchor_noise_model(noisy.astype(np.float32), np.ones((h12, w12), bool))
    assert na == pytest.approx(a_true, rel=0.3)
    assert nb == pytest.approx(b_true, abs=3e-4)


def test_pixel_patches_keep_the_cfa_phase() -> None:
    p = refine.pixel_patches(torch.tensor([0, 16]), torch.tensor([2, 32]))
    assert p.qx.tolist() == [2 * 2 + 31.5, 2 * 32 + 31.5]  # centre of the 64x64 48MP block
    with pytest.raises(ShapeError, match="even"):
        refine.pixel_patches(torch.tensor([1]), torch.tensor([0]))


def test_prior_centres_k2_k3_on_the_inverse_of_a_k1_correction() -> None:
    # ProRAW48 resampled through a radial k1 correction (simulator and DNG WarpRectilinear
    # direction); the map from the RAW12 grid back into it is the inverse, whose best
    # (zoom, k1, k2, k3) fit has k2 ~ 3 k1^2 and k3 ~ 12 k1^3: the centre of the prior.
    h, w = 576, 768
    sim = WarpParams(zoom=1.002, radial=(0.02, 0.0, 0.0))
    x = torch.arange(0, w, 8, dtype=torch.float64)[None, :]
    y = torch.arange(0, h, 8, dtype=torch.float64)[:, None]
    x, y = (v.reshape(-1) for v in torch.broadcast_tensors(x, y))
    sx, sy = x.clone(), y.clone()
    for _ in range(60):  # invert W_sim by fixed-point iteration
        fx, fy = source_coords(sim, sx, sy, frame_h=h, frame_w=w)
        sx, sy = sx - (fx - x), sy - (fy - y)
    b = _design(x, y, ((w - 1) / 2, (h - 1) / 2), half_diagonal(h, w))[:, :, :6]
    target = torch.stack((sx - x, sy - y), -1).reshape(-1)
    phi = torch.linalg.lstsq(b.reshape(-1, 6), target[:, None]).solution[:, 0]
    z = 1.0 + float(phi[2])
    k1, k2, k3 = (float(v) / z for v in phi[3:6])
    assert k2 == pytest.approx(3 * k1 * k1, rel=0.15)
    assert k3 == pytest.approx(12 * k1**3, rel=0.5)
    # The prior rows vanish exactly there (prior mean of the deviations: zero).
    full = torch.zeros(8, dtype=torch.float64)
    full[2:6] = phi[2:6]
    full[4] = 3 * float(phi[3]) ** 2 / z
    full[5] = 12 * float(phi[3]) ** 3 / z**2
    rows, tgt = _prior_rows(full, torch.from_numpy(_linear_coeffs(WarpParams())))
    assert math.isclose(float(rows[4] @ full), float(tgt[4]), abs_tol=1e-12)
    assert math.isclose(float(rows[5] @ full), float(tgt[5]), abs_tol=1e-12)


def test_patch_periods_find_gratings_and_leave_random_texture_alone() -> None:
    # Three 64x64 px patches: a 0.2 cycles/px grating at 30 degrees (period 5 px, finer
    # than RAW12's colour sampling), a 0.02 cycles/px grating (period 50 px, beyond the
    # lags searched) and random texture smoothed over 2 px (no second peak).
    h = w = 96
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    a = np.deg2rad(30.0)
    fine = 0.5 + 0.3 * np.cos(2 * np.pi * 0.2 * (np.cos(a) * xx + np.sin(a) * yy))
    coarse = 0.5 + 0.3 * np.cos(2 * np.pi * 0.02 * xx)
    rng = np.random.default_rng(3)
    noise = rng.random((h, w))
    smooth = 0.5 + 0.3 * (noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1)) / 3
    fields = []
    for plane in (fine, coarse, smooth):
        box = 0.25 * (plane[:-1, :-1] + plane[1:, :-1] + plane[:-1, 1:] + plane[1:, 1:])
        f = np.zeros((3, 5, 80, 80), np.float32)
        f[:, 0] = box[:80, :80]
        fields.append(f)
    crops = refine.PatchFields(
        fields=torch.from_numpy(np.stack(fields)),
        x0=torch.zeros(3, dtype=torch.float64),
        y0=torch.zeros(3, dtype=torch.float64),
    )
    periods = refine.patch_periods(crops)
    # Shortest near-repeat: the period along the wave vector or a shorter lattice lag.
    assert 2.0 <= float(periods[0]) <= 6.0, periods
    assert math.isinf(float(periods[1])) and math.isinf(float(periods[2])), periods


def test_edge_polarity_points_to_the_bright_side_of_an_edge_and_cancels_on_a_line() -> None:
    # One vertical edge, bright on the left: the patch's polarity is (-1, 0). A bright
    # vertical line on a dark ground has both polarities: near 0.
    h, w = 128, 256
    edge = np.full((3, h, w), 0.05, np.float32)
    edge[:, :, : w // 4 + 3] = 0.4  # edge inside the first patch (48MP x = 67)
    edge[:, :, w // 2 : w // 2 + 6] = 0.4  # a 6 px line inside the second (x = 128..133)
    anchor = forward_np(edge, CFA)
    data = refine.prepare_pixels(edge, anchor, CFA, None)
    patches = refine.pixel_patches(torch.tensor([16, 16]), torch.tensor([16, 48]))
    crops = refine.patch_fields(data, patches, WarpParams(), None, (h, w))
    v = registration._edge_polarity(crops)
    assert float(v[0, 0]) < -0.95 and abs(float(v[0, 1])) < 0.05
    assert float(v[1].norm()) < 0.1


def _synthetic_patch_shifts(
    beta: float, frame_hw: tuple[int, int], seed: int = 0
) -> tuple[refine.PatchShifts, refine.PixelPatches, torch.Tensor, WarpParams]:
    """Patch shifts on a 16 x 12 grid that see the warp ``truth`` (a translation and a
    zoom) plus ``beta`` times their edge polarity, with 0.05 px noise. The polarity leans
    outwards from the centre (bright objects in the middle of the frame, as in a backlit
    or window scene), so an unmodelled bias looks like a zoom; the rest is random."""
    h, w = frame_hw
    rng = np.random.default_rng(seed)
    gy, gx = np.mgrid[0:12, 0:16]
    oy = torch.tensor((gy.ravel() * (h // 2 - 40) // 11) // 2 * 2)
    ox = torch.tensor((gx.ravel() * (w // 2 - 40) // 15) // 2 * 2)
    patches = refine.pixel_patches(oy, ox)
    k = int(oy.shape[0])
    truth = WarpParams(translation_px=(0.4, -0.3), zoom=1.0 + 2e-4)
    sx, sy = source_coords(truth, patches.qx, patches.qy, frame_h=h, frame_w=w)
    radial = torch.stack((patches.qx - (w - 1) / 2, patches.qy - (h - 1) / 2), -1)
    radial = radial / radial.norm(dim=1, keepdim=True).clamp(min=1.0)
    rand = torch.from_numpy(rng.normal(size=(k, 2)))
    dirs = 0.6 * radial + 0.5 * rand / rand.norm(dim=1, keepdim=True)
    noise = torch.from_numpy(rng.normal(scale=0.05, size=(k, 2)))
    delta = torch.stack((sx - patches.qx, sy - patches.qy), -1) + beta * dirs + noise
    info = torch.eye(2, dtype=torch.float64).repeat(k, 1, 1) / 0.05**2
    ones = torch.ones(k, dtype=torch.bool)
    shifts = refine.PatchShifts(
        delta=delta, info=info, ncc=torch.ones(k, dtype=torch.float64), usable=ones, textured=ones
    )
    return shifts, patches, dirs, truth


def _frame_error(a: WarpParams, b: WarpParams, h: int, w: int) -> float:
    x = torch.arange(0, w, 32, dtype=torch.float64)[None, :]
    y = torch.arange(0, h, 32, dtype=torch.float64)[:, None]
    ax, ay = source_coords(a, x, y, frame_h=h, frame_w=w)
    bx, by = source_coords(b, x, y, frame_h=h, frame_w=w)
    return float(torch.sqrt(((ax - bx) ** 2 + (ay - by) ** 2).mean()))


_FRAME = (1512, 2016)


def _fit_with_and_without(
    beta: float, cov: dict[str, torch.Tensor]
) -> tuple[WarpParams, WarpParams, WarpParams]:
    """The pixel-stage parametric fit of ``_synthetic_patch_shifts(beta)`` with the
    edge-polarity term (``cov`` receives its outputs) and without; and the true warp."""
    h, w = _FRAME
    pre = registration._preset("default")
    shifts, patches, dirs, truth = _synthetic_patch_shifts(beta, (h, w))
    start = WarpParams(principal_point_px=((w - 1) / 2, (h - 1) / 2))
    active = registration._ACTIVE_ALL
    with_term, _ = registration._fit_params(
        shifts, patches, start, (h, w), pre, active, 0.0, cov, None, dirs
    )
    without, _ = registration._fit_params(shifts, patches, start, (h, w), pre, active, 0.0)
    return with_term, without, truth


def test_fit_separates_a_shared_edge_polarity_bias_from_the_warp() -> None:
    # What an edge-aware tone curve applied at 48MP does to the pixel stage (measured on
    # the bilateral 8064x6048 benchmark: -0.5 to -1 px along each patch's polarity): a
    # bias that follows each edge's bright side. Fitted jointly it is recovered and the
    # warp is right; without the term it leaks into the zoom.
    cov: dict[str, torch.Tensor] = {}
    with_term, without, truth = _fit_with_and_without(-0.6, cov)
    assert abs(float(cov["edge_bias_px"][0]) + 0.6) < 0.05
    assert _frame_error(with_term, truth, *_FRAME) < 0.05
    assert _frame_error(without, truth, *_FRAME) > 0.2


def test_a_small_edge_polarity_bias_is_not_fitted() -> None:
    # Below _EDGE_BIAS_MIN_PX the term is dropped (it would free the warp's directions
    # it shares with the polarity for little gain): the fit is the one without it.
    cov: dict[str, torch.Tensor] = {"edge_bias_px": torch.ones(1)}  # from an earlier round
    with_term, without, _ = _fit_with_and_without(-0.1, cov)
    assert "edge_bias_px" not in cov
    assert _frame_error(with_term, without, *_FRAME) < 1e-9


def test_gain_mesh_normal_matrices_equal_the_dense_basis() -> None:
    # The mesh's normal matrices are formed through the raster (separable tents); they
    # must equal the products with the dense (n, m) basis, and the tents sum to 1.
    mesh = refine._mesh(32)
    assert mesh.m == 25 and mesh.dense.shape == (32 * 32, 25)
    assert torch.allclose(mesh.dense.sum(1), torch.ones(32 * 32), atol=1e-5)
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(3, 2, 32 * 32, generator=gen)
    d = torch.rand(3, 32 * 32, generator=gen)
    assert torch.allclose(refine._mesh_project(mesh, v), v @ mesh.dense, atol=1e-4)
    dense = torch.einsum("kn,ni,nj->kij", d, mesh.dense, mesh.dense)
    assert torch.allclose(refine._mesh_gram(mesh, d), dense, atol=1e-4)
    idx = torch.arange(32 * 32, dtype=torch.float32)[None]
    raster = refine._to_raster(idx, 32)
    assert torch.equal(refine._from_raster(raster), idx)
    # phase-major index 256 is phase 1 (py 0, px 1): raster row 0, column 1
    assert raster[0, 0, 1] == 256 and raster[0, 1, 0] == 512


def _ltm_ramp_edge(edge_y: int, h: int = 256, w: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """A blurred dark/bright edge (0.04 -> 0.4, Gaussian sigma 1.5 px, 4 % texture) tone
    mapped by a gain computed on a grid of 11 px and upsampled bilinearly (what an LTM
    computed at ~750 px does at full 48MP: the simulator's exposure fusion and blur
    operators): ``log2 g = -0.5 (log2 Y_low - log2 0.13)``, 1.7 EV from the dark to the
    bright side over one grid cell. Returns (Camera48, anchor) at the identity warp."""
    truth = np.full((3, h, w), 0.04, np.float32)
    truth[:, edge_y:] = 0.4
    truth = ndimage.gaussian_filter(truth, (0, 1.5, 1.5))
    rng = np.random.default_rng(edge_y)
    truth *= (1.0 + 0.04 * (rng.random((h, w)) - 0.5)).astype(np.float32)[None]
    f = 11
    hl, wl = -(-h // f), -(-w // f)
    pad = np.pad(truth[1], ((0, hl * f - h), (0, wl * f - w)), mode="edge")
    low = pad.reshape(hl, f, wl, f).mean(axis=(1, 3))
    log_gain = -0.5 * (np.log2(low) - np.log2(0.13))
    ys = (np.arange(h) + 0.5) / f - 0.5
    xs = (np.arange(w) + 0.5) / f - 0.5
    up = ndimage.map_coordinates(
        log_gain, np.meshgrid(ys, xs, indexing="ij"), order=1, mode="nearest"
    )
    return truth * np.exp2(up).astype(np.float32)[None], forward_np(truth, CFA)


def test_gain_mesh_halves_the_shift_a_low_resolution_tone_gain_puts_on_edges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # At the TRUE warp, a gain that falls from the dark to the bright side over ~11 px
    # moves each edge towards its dark side (the fit reads the gain's slope across the
    # blurred edge as a shift); the patch's linear gain trend cannot follow a ramp that
    # narrow, the mesh (knots every 16 48MP px) partly can. Mean over 8 edge positions
    # (phases against the gain's grid), 3 patches each: -0.47 px without, -0.24 with.
    means = {}
    for mesh in (False, True):
        monkeypatch.setattr(
            refine, "_OPTIONS", dataclasses.replace(refine.options(), gain_mesh=mesh)
        )
        dys = []
        for edge_y in (96, 100, 104, 108, 112, 117, 121, 125):
            camera, anchor = _ltm_ramp_edge(edge_y)
            fit = _fit(camera, anchor, WarpParams(), [34, 34, 34], [16, 56, 80])
            assert bool(fit.usable.all())
            dys.append(float(fit.delta[:, 1].mean()))
        means[mesh] = float(np.mean(dys))
    assert means[False] < -0.3  # towards the dark side (up)
    assert abs(means[True]) < 0.6 * abs(means[False])


def test_gain_mesh_shift_stays_unbiased_within_its_reported_precision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No tone mapping, the anchor with shot noise (full well ~1500 e- at clip), a smooth
    # texture (wavelengths 50-300 px, which a 16 px gain mesh can partly mimic): the
    # mesh costs precision, and the information the fit reports must say so. Every
    # patch's error stays within 4 of its reported sd, and the sd grows with the mesh.
    truth = _smooth_texture(256, 320)
    t = (0.3, -0.45)
    camera = isp.warp_image(truth, translation_px=t)
    anchor = forward_np(truth, CFA)
    rng = np.random.default_rng(1)
    anchor += np.sqrt(anchor / 1500.0).astype(np.float32) * rng.standard_normal(
        anchor.shape
    ).astype(np.float32)
    sds = {}
    for mesh in (False, True):
        fit = _fit(camera, anchor, WarpParams(), [16, 16, 64, 64], [16, 96, 40, 110], mesh=mesh)
        cov = torch.linalg.inv(fit.info)
        err = fit.delta + torch.tensor(t, dtype=torch.float64)
        z = (err[:, None, :] @ torch.linalg.solve(cov, err[..., None]))[:, 0, 0].sqrt()
        assert float(z.max()) < 4.0, (mesh, err, z)
        sds[mesh] = float(torch.sqrt(cov.diagonal(dim1=1, dim2=2)).mean())
    assert sds[True] > sds[False]


def _grain_wall(h: int, w: int, seed: int) -> np.ndarray:
    """A plain grey wall at 0.3 of clip with +-3 % pixel-scale grain (the simulator's
    plain_wall, without its smooth light falloff)."""
    rng = np.random.default_rng(seed)
    grain = ndimage.gaussian_filter(rng.standard_normal((h, w)), 1.0)
    grain *= 0.03 / grain.std()
    lum = (0.3 * (1.0 + grain)).astype(np.float32)
    return np.stack([lum * 0.5, lum, lum * 0.7]).astype(np.float32)


@pytest.mark.parametrize("mesh", [False, True])
def test_fine_score_sees_faint_grain_but_not_the_meshs_own_fit_of_the_noise(mesh: bool) -> None:
    # The anchor is the wall with shot noise (~1500 e- at clip: the grain is about the
    # noise); ProRAW48 is the same wall, or another wall (other grain). With the gain
    # mesh on, the fitted gain follows the anchor's own smooth noise and the plain score
    # reads 0.16-0.19 on the WRONG wall; the fine score fits those smooth parts out of
    # both sides first: the right wall scores ~0.43, the wrong one 0.03-0.06 (the fit's
    # own bias: each patch moved ~1.4 px to where the other grain happens to agree),
    # below the gate's pooled threshold.
    h, w = 256, 320
    wall = _grain_wall(h, w, 0)
    anchor = forward_np(wall, CFA)
    rng = np.random.default_rng(2)
    anchor += np.sqrt(anchor / 1500.0).astype(np.float32) * rng.standard_normal(
        anchor.shape
    ).astype(np.float32)
    oy, ox = [16, 16, 64, 64, 96, 96], [16, 96, 40, 110, 16, 100]
    fits = {
        name: _fit(camera, anchor, WarpParams(), oy, ox, mesh=mesh)
        for name, camera in (("same", wall), ("other", _grain_wall(h, w, 1)))
    }
    same, other = fits["same"], fits["other"]
    assert same.ncc_fine is not None and other.ncc_fine is not None
    assert float(same.ncc_fine.mean()) > 2 * registration._NCC_POOLED
    assert abs(float(other.ncc_fine.mean())) < registration._NCC_POOLED
    if mesh:  # what the fine score is for: the plain one is fooled by the mesh
        assert float(other.ncc.mean()) > 2 * registration._NCC_POOLED


def test_pooled_blocks_weight_by_information_and_distrust_disagreeing_patches() -> None:
    # Four check patches in one block (frame 128x128, 16 patches -> spacing 32 px; side
    # 2 -> 64 px blocks). Agreeing patches: the block's shift is the information-
    # weighted mean and its information the sum. Patches 1 px apart with 0.1 px
    # precision: the block's information is cut by their chi-square per dof.
    qx = torch.tensor([10.0, 40.0, 10.0, 40.0] + [100.0] * 12, dtype=torch.float64)
    qy = torch.tensor([10.0, 10.0, 40.0, 40.0] + [100.0] * 12, dtype=torch.float64)
    keep = torch.tensor([True] * 4 + [False] * 12)
    eye = torch.eye(2, dtype=torch.float64)
    info = torch.stack([eye * v for v in (1.0, 3.0, 1.0, 3.0)] + [eye] * 12)
    score = torch.full((16,), 0.2, dtype=torch.float64)
    delta = torch.zeros(16, 2, dtype=torch.float64)
    delta[:4, 0] = torch.tensor([0.4, 0.0, 0.4, 0.0])
    bx, by, bd, bi, sc, index = registration._pooled_blocks(
        qx, qy, delta, info, keep, score, 2, (128, 128)
    )
    assert len(bx) == 1 and index[:4].tolist() == [0] * 4 and bool((index[4:] == -1).all())
    assert float(bd[0, 0]) == pytest.approx(0.1)  # (0.4 + 0.4) / 8
    # chi2 = 2 * (0.3^2 * 1) + 2 * (0.1^2 * 3) = 0.24 over 6 dof: below 1, no inflation.
    torch.testing.assert_close(bi[0], 8.0 * eye)
    assert (float(bx[0]), float(by[0]), float(sc[0])) == pytest.approx((25.0, 25.0, 0.2))
    delta[:4, 0] = torch.tensor([1.0, -1.0, 1.0, -1.0])
    info[:4] = 100.0 * eye
    _, _, bd, bi, _, _ = registration._pooled_blocks(
        qx, qy, delta, info, keep, score, 2, (128, 128)
    )
    chi2 = 4 * 100.0 * 1.0  # every patch 1 px from the mean, information 100
    torch.testing.assert_close(bi[0], 400.0 * eye / (chi2 / 6.0))
