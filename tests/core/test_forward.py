"""Forward operator F (DESIGN §3): NumPy == torch == explicit loop reference, adjoint, golden."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from core.cfa import CfaPattern
from core.errors import ShapeError
from core.forward import (
    ForwardOperator,
    adjoint_np,
    adjoint_torch,
    bin2x2,
    cfa_planes,
    forward_np,
    forward_torch,
    remosaic_quad,
)

PHASES = ["RGGB", "BGGR", "GRBG", "GBRG"]


# --------------------------------------------------------------------------- reference


def forward_reference_loop(
    camera48: np.ndarray, cfa: CfaPattern, gains: np.ndarray | None = None
) -> np.ndarray:
    """DESIGN §3 written out pixel by pixel, in the operator's dtype and summation order."""
    _, h48, w48 = camera48.shape
    dt = camera48.dtype.type
    out = np.zeros((h48 // 2, w48 // 2), dtype=camera48.dtype)
    for i in range(h48 // 2):
        for j in range(w48 // 2):
            c = cfa.colors[i % 2][j % 2]
            s = dt(camera48[c, 2 * i, 2 * j])
            s = dt(s + camera48[c, 2 * i, 2 * j + 1])
            s = dt(s + camera48[c, 2 * i + 1, 2 * j])
            s = dt(s + camera48[c, 2 * i + 1, 2 * j + 1])
            v = dt(s * dt(0.25))
            if gains is not None and gains.shape == (3,):
                v = dt(v * dt(gains[c]))
            elif gains is not None:
                v = dt(v * dt(gains[i, j]))
            out[i, j] = v
    return out


def adjoint_reference_loop(mosaic12: np.ndarray, cfa: CfaPattern) -> np.ndarray:
    """F* pixel by pixel: each value / 4 into the four 48MP pixels of its channel."""
    h12, w12 = mosaic12.shape
    out = np.zeros((3, 2 * h12, 2 * w12), dtype=mosaic12.dtype)
    for i in range(h12):
        for j in range(w12):
            c = cfa.colors[i % 2][j % 2]
            out[c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2] = mosaic12[i, j] / 4
    return out


def exact_camera48(rng: np.random.Generator, h48: int, w48: int, n: int | None = None):
    """Values k/64 with k < 256: every sum of four and every quarter is exact in float32."""
    shape = (3, h48, w48) if n is None else (n, 3, h48, w48)
    return (rng.integers(0, 256, size=shape) / 64.0).astype(np.float32)


def exact_gains(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Gains k/8 in [0.5, 2): products with a k/256 mean stay exact in float32."""
    return (rng.integers(4, 16, size=shape) / 8.0).astype(np.float32)


# --------------------------------------------------------------------------- golden


def test_golden_rggb_patch():
    """A 3x4x4 Camera48 patch through F by hand (RGGB).

    R[y, x] = 4y + x (0..15), G = 100 + R, B = 200 + R. Output (2x2) takes
    (0,0) R from rows 0-1 cols 0-1: (0 + 1 + 4 + 5) / 4 = 2.5
    (0,1) G from rows 0-1 cols 2-3: 100 + (2 + 3 + 6 + 7) / 4 = 104.5
    (1,0) G from rows 2-3 cols 0-1: 100 + (8 + 9 + 12 + 13) / 4 = 110.5
    (1,1) B from rows 2-3 cols 2-3: 200 + (10 + 11 + 14 + 15) / 4 = 212.5
    With per-channel gains (2, 1, 0.5): 5.0, 104.5, 110.5, 106.25.
    """
    base = np.arange(16, dtype=np.float32).reshape(4, 4)
    cam = np.stack([base, base + 100, base + 200])
    cfa = CfaPattern.from_name("RGGB")
    expected = np.array([[2.5, 104.5], [110.5, 212.5]], dtype=np.float32)
    np.testing.assert_array_equal(forward_np(cam, cfa), expected)
    np.testing.assert_array_equal(forward_torch(torch.from_numpy(cam)[None], cfa)[0, 0], expected)
    gained = np.array([[5.0, 104.5], [110.5, 106.25]], dtype=np.float32)
    gains = np.array([2.0, 1.0, 0.5], dtype=np.float32)
    np.testing.assert_array_equal(forward_np(cam, cfa, gains), gained)


def test_golden_bggr_patch():
    """Same patch, BGGR: (0,0) B = 202.5, (0,1) G = 104.5, (1,0) G = 110.5, (1,1) R = 12.5."""
    base = np.arange(16, dtype=np.float32).reshape(4, 4)
    cam = np.stack([base, base + 100, base + 200])
    expected = np.array([[202.5, 104.5], [110.5, 12.5]], dtype=np.float32)
    np.testing.assert_array_equal(forward_np(cam, CfaPattern.from_name("BGGR")), expected)


# --------------------------------------------------------------------------- equality


@pytest.mark.parametrize("name", PHASES)
@pytest.mark.parametrize("gain_kind", ["none", "channel", "pixel"])
@pytest.mark.parametrize("hw", [(8, 12), (6, 10), (2, 2)])
def test_numpy_torch_loop_exact(name, gain_kind, hw):
    rng = np.random.default_rng(zlib.crc32(f"{name}{gain_kind}{hw}".encode()))
    cfa = CfaPattern.from_name(name)
    h48, w48 = hw
    cam = exact_camera48(rng, h48, w48)
    gains = {
        "none": None,
        "channel": exact_gains(rng, (3,)),
        "pixel": exact_gains(rng, (h48 // 2, w48 // 2)),
    }[gain_kind]
    ref = forward_reference_loop(cam, cfa, gains)
    got_np = forward_np(cam, cfa, gains)
    tg = None
    if gains is not None:
        tg = torch.from_numpy(gains if gain_kind == "channel" else gains[None, None])
    got_t = forward_torch(torch.from_numpy(cam)[None], cfa, tg)[0, 0].numpy()
    assert got_np.dtype == np.float32
    np.testing.assert_array_equal(got_np, ref)
    np.testing.assert_array_equal(got_t, ref)


@pytest.mark.parametrize("name", PHASES)
def test_random_floats_within_one_ulp(name):
    """Arbitrary float32 values: same ops in the same order, so equal here; torch's pooling
    accumulation order is not a documented contract (CUDA/MPS), hence the 1-ulp allowance."""
    rng = np.random.default_rng(7)
    cfa = CfaPattern.from_name(name)
    cam = (rng.random((3, 24, 40)) * 4).astype(np.float32)
    gains = rng.uniform(0.5, 2, size=(12, 20)).astype(np.float32)
    ref = forward_reference_loop(cam, cfa, gains)
    np.testing.assert_array_equal(forward_np(cam, cfa, gains), ref)
    t = forward_torch(torch.from_numpy(cam)[None], cfa, torch.from_numpy(gains)[None, None])
    np.testing.assert_array_max_ulp(t[0, 0].numpy(), ref, maxulp=1)


def test_torch_batch_and_per_sample_channel_gains():
    rng = np.random.default_rng(3)
    cfa = CfaPattern.from_name("GRBG")
    cam = exact_camera48(rng, 8, 8, n=3)
    gains = exact_gains(rng, (3, 3))
    got = forward_torch(torch.from_numpy(cam), cfa, torch.from_numpy(gains))
    assert got.shape == (3, 1, 4, 4)
    for k in range(3):
        np.testing.assert_array_equal(
            got[k, 0].numpy(), forward_reference_loop(cam[k], cfa, gains[k])
        )


def test_module_wraps_function():
    rng = np.random.default_rng(4)
    cfa = CfaPattern.from_name("GBRG")
    cam = torch.from_numpy(exact_camera48(rng, 8, 8, n=2))
    assert torch.equal(ForwardOperator(cfa)(cam), forward_torch(cam, cfa))


def test_float64_kept():
    cam = np.random.default_rng(0).random((3, 4, 6))
    assert forward_np(cam, CfaPattern.from_name("RGGB")).dtype == np.float64


def test_out_buffer_used():
    rng = np.random.default_rng(5)
    cfa = CfaPattern.from_name("BGGR")
    cam = exact_camera48(rng, 8, 8)
    out = np.full((4, 4), np.nan, dtype=np.float32)
    res = forward_np(cam, cfa, out=out)
    assert res is out
    np.testing.assert_array_equal(out, forward_reference_loop(cam, cfa))
    with pytest.raises(ShapeError):
        forward_np(cam, cfa, out=np.empty((4, 5), np.float32))


def test_large_frame_crosses_band_boundaries():
    """More output rows than one cache band (64), a height that is not a band multiple."""
    rng = np.random.default_rng(6)
    cam = exact_camera48(rng, 2 * 150, 20)
    for name in PHASES:
        cfa = CfaPattern.from_name(name)
        np.testing.assert_array_equal(forward_np(cam, cfa), bin2x2(remosaic_quad(cam, cfa)))
        np.testing.assert_array_equal(
            forward_np(cam, cfa), forward_torch(torch.from_numpy(cam)[None], cfa)[0, 0].numpy()
        )


# --------------------------------------------------------------------------- quad-Bayer


@pytest.mark.parametrize("name", PHASES)
def test_bin_of_remosaic_equals_forward(name):
    rng = np.random.default_rng(11)
    cfa = CfaPattern.from_name(name)
    cam = (rng.random((3, 12, 20)) * 2).astype(np.float32)  # arbitrary, not exact values
    np.testing.assert_array_equal(bin2x2(remosaic_quad(cam, cfa)), forward_np(cam, cfa))


@pytest.mark.parametrize("name", PHASES)
def test_remosaic_follows_quad_pattern(name):
    cfa = CfaPattern.from_name(name)
    cam = np.stack([np.full((8, 8), float(c), np.float32) for c in range(3)])
    q = remosaic_quad(cam, cfa)
    np.testing.assert_array_equal(q, np.tile(cfa.quad(), (2, 2)).astype(np.float32))


@pytest.mark.parametrize("name", PHASES)
def test_cfa_planes_pick_named_colours(name):
    cfa = CfaPattern.from_name(name)
    cam = np.stack([np.full((8, 12), v, np.float32) for v in (1.0, 2.0, 3.0)])
    planes = cfa_planes(forward_np(cam, cfa), cfa)
    assert set(planes) == {"R", "Gr", "Gb", "B"}
    assert all(p.shape == (2, 3) for p in planes.values())
    assert np.all(planes["R"] == 1.0) and np.all(planes["B"] == 3.0)
    assert np.all(planes["Gr"] == 2.0) and np.all(planes["Gb"] == 2.0)
    # Gr shares its row with R.
    (ry, _), (gry, _) = cfa.plane_offsets()["R"], cfa.plane_offsets()["Gr"]
    assert ry == gry


# --------------------------------------------------------------------------- adjoint


@pytest.mark.parametrize("name", PHASES)
@pytest.mark.parametrize("gain_kind", ["none", "channel", "pixel"])
def test_adjoint_identity_numpy(name, gain_kind):
    rng = np.random.default_rng(21)
    cfa = CfaPattern.from_name(name)
    x = rng.standard_normal((3, 10, 14))
    y = rng.standard_normal((5, 7))
    gains = {"none": None, "channel": rng.uniform(0.5, 2, 3), "pixel": rng.uniform(0.5, 2, (5, 7))}[
        gain_kind
    ]
    lhs = np.vdot(forward_np(x, cfa, gains), y)
    rhs = np.vdot(x, adjoint_np(y, cfa, gains))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", PHASES)
@pytest.mark.parametrize("gain_kind", ["none", "channel", "pixel"])
def test_adjoint_identity_torch(name, gain_kind):
    gen = torch.Generator().manual_seed(5)
    cfa = CfaPattern.from_name(name)
    x = torch.randn(2, 3, 10, 14, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 1, 5, 7, generator=gen, dtype=torch.float64)
    gains = {
        "none": None,
        "channel": torch.rand(2, 3, generator=gen, dtype=torch.float64) + 0.5,
        "pixel": torch.rand(2, 1, 5, 7, generator=gen, dtype=torch.float64) + 0.5,
    }[gain_kind]
    lhs = (forward_torch(x, cfa, gains) * y).sum()
    rhs = (x * adjoint_torch(y, cfa, gains)).sum()
    assert lhs.item() == pytest.approx(rhs.item(), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", PHASES)
def test_adjoint_matches_loop_and_torch(name):
    rng = np.random.default_rng(8)
    cfa = CfaPattern.from_name(name)
    y = (rng.integers(0, 256, size=(6, 4)) / 64.0).astype(np.float32)
    ref = adjoint_reference_loop(y, cfa)
    np.testing.assert_array_equal(adjoint_np(y, cfa), ref)
    np.testing.assert_array_equal(
        adjoint_torch(torch.from_numpy(y)[None, None], cfa)[0].numpy(), ref
    )
    assert adjoint_np(y, cfa, out_shape=(12, 8)).shape == (3, 12, 8)
    with pytest.raises(ShapeError):
        adjoint_np(y, cfa, out_shape=(3, 12, 10))


def test_adjoint_of_gained_forward_is_transpose():
    """F with gains as an explicit matrix: F* is its transpose (tiny, exhaustive)."""
    rng = np.random.default_rng(9)
    cfa = CfaPattern.from_name("BGGR")
    gains = rng.uniform(0.5, 2, (2, 3))
    n_in = 3 * 4 * 6
    mat = np.stack([forward_np(e.reshape(3, 4, 6), cfa, gains).ravel() for e in np.eye(n_in)], 1)
    mat_t = np.stack([adjoint_np(e.reshape(2, 3), cfa, gains).ravel() for e in np.eye(6)], 1)
    np.testing.assert_allclose(mat.T, mat_t, rtol=0, atol=1e-15)


# --------------------------------------------------------------------------- autograd


def test_gradcheck_forward_and_adjoint():
    gen = torch.Generator().manual_seed(0)
    cfa = CfaPattern.from_name("GRBG")
    x = torch.rand(1, 3, 4, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    gc = torch.rand(1, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    gp = torch.rand(1, 1, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, g: forward_torch(a, cfa, g), (x, gc))
    assert torch.autograd.gradcheck(lambda a, g: forward_torch(a, cfa, g), (x, gp))
    assert torch.autograd.gradcheck(lambda b, g: adjoint_torch(b, cfa, g), (y, gp))


# --------------------------------------------------------------------------- bad shapes


@pytest.mark.parametrize("shape", [(3, 5, 8), (3, 8, 7), (3, 0, 4), (2, 4, 4), (4, 4)])
def test_bad_shapes_numpy(shape):
    cfa = CfaPattern.from_name("RGGB")
    with pytest.raises(ShapeError, match=r"Camera48|must"):
        forward_np(np.zeros(shape, np.float32), cfa)
    if len(shape) == 3 and shape[0] == 3:
        with pytest.raises(ShapeError):
            remosaic_quad(np.zeros(shape, np.float32), cfa)


def test_odd_message_is_readable():
    with pytest.raises(ShapeError) as err:
        forward_np(np.zeros((3, 6, 9), np.float32), CfaPattern.from_name("RGGB"))
    assert "9x6" in str(err.value) and "even" in str(err.value)


def test_bad_shapes_torch_and_gains():
    cfa = CfaPattern.from_name("RGGB")
    with pytest.raises(ShapeError):
        forward_torch(torch.zeros(1, 3, 5, 4), cfa)
    with pytest.raises(ShapeError):
        forward_torch(torch.zeros(3, 4, 4), cfa)
    with pytest.raises(ShapeError):
        forward_torch(torch.zeros(1, 3, 4, 4), cfa, torch.ones(4))
    with pytest.raises(ShapeError):
        forward_np(np.zeros((3, 4, 4), np.float32), cfa, np.ones((3, 3)))
    with pytest.raises(ShapeError):
        bin2x2(np.zeros((3, 4)))
    with pytest.raises(ShapeError):
        adjoint_torch(torch.zeros(1, 3, 2, 2), cfa)


# --------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(PHASES),
    h2=st.integers(1, 6),
    w2=st.integers(1, 6),
    seed=st.integers(0, 2**31 - 1),
    with_gains=st.booleans(),
)
def test_property_numpy_torch_loop(name, h2, w2, seed, with_gains):
    rng = np.random.default_rng(seed)
    cfa = CfaPattern.from_name(name)
    cam = exact_camera48(rng, 2 * h2, 2 * w2)
    gains = exact_gains(rng, (3,)) if with_gains else None
    ref = forward_reference_loop(cam, cfa, gains)
    np.testing.assert_array_equal(forward_np(cam, cfa, gains), ref)
    tg = torch.from_numpy(gains) if gains is not None else None
    np.testing.assert_array_equal(forward_torch(torch.from_numpy(cam)[None], cfa, tg)[0, 0], ref)
    if gains is None:
        np.testing.assert_array_equal(bin2x2(remosaic_quad(cam, cfa)), ref)
    y = exact_camera48(rng, h2, w2)[0]
    assert np.vdot(ref.astype(np.float64), y) == pytest.approx(
        np.vdot(cam.astype(np.float64), adjoint_np(y, cfa, gains).astype(np.float64)), rel=1e-6
    )
