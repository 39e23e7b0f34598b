"""ProfileGainTableMap: parsing, writing, SDK-exact evaluation, inversion, bad input."""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import CorruptDataError, ShapeError
from core.io.pgtm import (
    ProfileGainTableMap,
    apply_pgtm,
    invert_pgtm,
    parse_pgtm,
    pgtm_gain,
    pgtm_monotone,
    serialize_pgtm,
)

REAL_DIR = Path(__file__).parents[2] / ".." / "shared" / "data" / "real"
REAL_BIN = REAL_DIR / "proraw_iphone12pro_IMG_1361_headeronly.pgtm.bin"
REAL_DNG = REAL_DIR / "proraw_iphone12pro_IMG_1361_headeronly.dng"


def _real_bytes() -> bytes:
    if not REAL_BIN.exists():
        if os.environ.get("CI"):
            pytest.fail(f"real data missing in CI: {REAL_BIN}")
        pytest.skip(f"real data not available: {REAL_BIN}")
    return REAL_BIN.read_bytes()


@pytest.fixture(scope="module")
def real_pgtm() -> ProfileGainTableMap:
    return parse_pgtm(_real_bytes())


def _map(
    table: np.ndarray,
    *,
    spacing=(0.5, 0.5),
    origin=(0.25, 0.25),
    weights=(1 / 3, 1 / 3, 1 / 3, 0.0, 0.0),
    gamma: float = 1.0,
    version: int = 1,
    data_type: int = 3,
    gain_min: float = 1.0,
    gain_max: float = 1.0,
) -> ProfileGainTableMap:
    t = np.asarray(table, dtype=np.float32)
    return ProfileGainTableMap(
        points_v=t.shape[0],
        points_h=t.shape[1],
        spacing_v=spacing[0],
        spacing_h=spacing[1],
        origin_v=origin[0],
        origin_h=origin[1],
        points_n=t.shape[2],
        input_weights=weights,
        table=t,
        gamma=gamma,
        version=version,
        data_type=data_type,
        gain_min=gain_min,
        gain_max=gain_max,
    )


def _header(
    pv: int,
    ph: int,
    n: int,
    *,
    spacing=(0.5, 0.5),
    origin=(0.0, 0.0),
    weights=(1.0, 0.0, 0.0, 0.0, 0.0),
) -> bytes:
    return struct.pack(
        ">IIddddI5f", pv, ph, spacing[0], spacing[1], origin[0], origin[1], n, *weights
    )


def _monotone_table(pv: int, ph: int, n: int, seed: int) -> np.ndarray:
    """Tone-curve-like gains g(t) = c / sqrt(1 + 15 t): t * g(t) rises everywhere."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(0.5, 3.0, (pv, ph, 1))
    t = np.arange(n) / n
    return (c / np.sqrt(1.0 + 15.0 * t)).astype(np.float32)


def _sdk_reference_gain(rgb: np.ndarray, p: ProfileGainTableMap, ev: float) -> np.ndarray:
    """Line-by-line float32 port of the SDK's RefBaselineProfileGainTableMap (slow loop)."""
    f = np.float32
    h, w = rgb.shape[1:]
    sv, ov = (1.0, 0.0) if p.points_v == 1 else (p.spacing_v, p.origin_v)
    sh, oh = (1.0, 0.0) if p.points_h == 1 else (p.spacing_h, p.origin_h)
    miw = [f(x) for x in p.input_weights]
    n = p.points_n
    out = np.empty((h, w), dtype=np.float32)

    def lerp(a: np.float32, b: np.float32, t: np.float32) -> np.float32:
        return f(a + t * (b - a))

    for row in range(h):
        for col in range(w):
            u = f((f(col) + f(0.5)) / f(w))
            v = f((f(row) + f(0.5)) / f(h))
            xm = min(max(f((u - f(oh)) / f(sh)), f(0)), f(p.points_h - 1))
            ym = min(max(f((v - f(ov)) / f(sv)), f(0)), f(p.points_v - 1))
            x0, y0 = int(xm), int(ym)
            x1, y1 = min(x0 + 1, p.points_h - 1), min(y0 + 1, p.points_v - 1)
            xf, yf = f(xm - x0), f(ym - y0)
            r, g, b = (f(c) for c in rgb[:, row, col])
            wgt = f(
                miw[0] * r + miw[1] * g + miw[2] * b + miw[3] * min(r, g, b) + miw[4] * max(r, g, b)
            )
            wgt = min(max(f(wgt * f(2.0**ev)), f(0)), f(1))
            if p.gamma != 1.0:
                wgt = f(wgt ** f(p.gamma))
            ws = f(wgt * n)
            w0 = min(int(ws), n - 1)
            w1 = min(w0 + 1, n - 1)
            wf = f(ws - w0)
            e = p.table
            g00 = lerp(e[y0, x0, w0], e[y0, x0, w1], wf)
            g01 = lerp(e[y0, x1, w0], e[y0, x1, w1], wf)
            g10 = lerp(e[y1, x0, w0], e[y1, x0, w1], wf)
            g11 = lerp(e[y1, x1, w0], e[y1, x1, w1], wf)
            out[row, col] = lerp(lerp(g00, g01, xf), lerp(g10, g11, xf), yf)
    return out


# --------------------------------------------------------------------------- real file


@pytest.mark.real_data
def test_real_pgtm_figures(real_pgtm: ProfileGainTableMap) -> None:
    p = real_pgtm
    assert (p.points_v, p.points_h, p.points_n) == (6, 8, 257)
    assert p.table.shape == (6, 8, 257) and p.table.dtype == np.float32
    assert p.spacing_v == pytest.approx(0.1534, abs=1e-4)
    assert p.spacing_h == pytest.approx(0.1190, abs=1e-4)
    assert p.origin_v == pytest.approx(0.1164, abs=1e-4)
    assert p.origin_h == pytest.approx(0.0833, abs=1e-4)
    assert p.input_weights == pytest.approx((0.0262, 0.0881, 0.0089, 0.0, 0.1231), abs=1e-4)
    lo, hi = p.gain_range
    assert lo == pytest.approx(0.243, abs=1e-3) and hi == pytest.approx(4.256, abs=1e-3)
    assert (p.version, p.gamma, p.data_type) == (1, 1.0, 3)


@pytest.mark.real_data
def test_real_pgtm_round_trip_is_bit_exact() -> None:
    raw = _real_bytes()
    assert len(raw) == 49_408
    assert serialize_pgtm(parse_pgtm(raw)) == raw


@pytest.mark.real_data
def test_real_pgtm_tag_in_dng_equals_extracted_bin() -> None:
    tifffile = pytest.importorskip("tifffile")
    raw = _real_bytes()
    if not REAL_DNG.exists():
        pytest.skip(f"real data not available: {REAL_DNG}")
    with tifffile.TiffFile(REAL_DNG) as tif:
        byteorder = tif.byteorder
        raw_ifd = tif.pages[0].pages[0]  # SubIFD0: the raw IFD (NewSubfileType 0)
        assert raw_ifd.tags["NewSubfileType"].value == 0
        tag = raw_ifd.tags.get(52525)
        assert tag is not None, "ProfileGainTableMap must be in SubIFD0"
        value = bytes(tag.value)
        assert tif.pages[0].tags.get(52525) is None  # Apple does not put it in IFD0
    assert byteorder == ">"
    assert value == raw
    p = parse_pgtm(value, byteorder=byteorder)
    assert (p.points_v, p.points_h, p.points_n) == (6, 8, 257)


@pytest.mark.real_data
def test_real_pgtm_matches_sdk_reference_loop(real_pgtm: ProfileGainTableMap) -> None:
    rng = np.random.default_rng(3)
    rgb = rng.uniform(0.0, 1.5, (3, 9, 13)).astype(np.float32)
    got = pgtm_gain(rgb, real_pgtm, baseline_exposure_ev=-0.3)
    want = _sdk_reference_gain(rgb, real_pgtm, -0.3)
    np.testing.assert_allclose(got, want, rtol=2e-5)


# --------------------------------------------------------------------------- golden numbers


def test_table_lookup_golden_1x1() -> None:
    # One table, N = 4 entries at inputs 0, 1/4, 2/4, 3/4 (SDK index = t * N, not t * (N-1)).
    p = _map(np.array([[[2.0, 1.0, 0.5, 0.25]]]))
    rgb = np.zeros((3, 1, 4), dtype=np.float32)
    rgb[:, 0, 0] = 0.3  # t = 0.3 -> 1.2: 1.0 + 0.2 * (0.5 - 1.0) = 0.9
    rgb[:, 0, 1] = 0.9  # t = 0.9 -> 3.6: index 3 is the last, so g = 0.25
    rgb[:, 0, 2] = (0.6, 0.0, 0.3)  # t = (0.6 + 0 + 0.3) / 3 = 0.3 -> 0.9 again
    rgb[:, 0, 3] = 5.0  # clamped to t = 1 -> 0.25
    np.testing.assert_allclose(pgtm_gain(rgb, p)[0], [0.9, 0.25, 0.9, 0.25], rtol=1e-6)
    # BaselineExposure +1 EV doubles the input before clamping: 0.3 -> 0.6 -> 2.4:
    # 0.5 + 0.4 * (0.25 - 0.5) = 0.4.
    assert pgtm_gain(rgb, p, baseline_exposure_ev=1.0)[0, 0] == pytest.approx(0.4, rel=1e-6)


def test_min_max_weights_golden() -> None:
    # weights (0, 0, 0, 1, 1): t = min + max. rgb (0.1, 0.2, 0.05) -> t = 0.25 -> index 1.
    p = _map(np.array([[[2.0, 1.0, 0.5, 0.25]]]), weights=(0.0, 0.0, 0.0, 1.0, 1.0))
    rgb = np.array([0.1, 0.2, 0.05], dtype=np.float32).reshape(3, 1, 1)
    assert pgtm_gain(rgb, p)[0, 0] == pytest.approx(1.0, rel=1e-6)


def test_spatial_bilinear_golden_2x2() -> None:
    # Constant tables (N = 1) 1, 2 / 3, 4 at relative positions 0.125 and 0.875 of a 4x4
    # image (origin 0.125, spacing 0.75). Pixel centres (i + 0.5) / 4 = .125, .375, .625,
    # .875 map to indices 0, 1/3, 2/3, 1, so the gain is 1 + fx + 2 fy:
    #   (y=1, x=2): 1 + 2/3 + 2/3 = 7/3;  (y=3, x=0): 1 + 0 + 2 = 3.
    p = _map(
        np.array([[[1.0], [2.0]], [[3.0], [4.0]]]), spacing=(0.75, 0.75), origin=(0.125, 0.125)
    )
    g = pgtm_gain(np.ones((3, 4, 4), dtype=np.float32), p)
    assert g[1, 2] == pytest.approx(7 / 3, rel=1e-6)
    assert g[3, 0] == pytest.approx(3.0, rel=1e-6)
    assert g[0, 0] == pytest.approx(1.0) and g[3, 3] == pytest.approx(4.0)


def test_outside_the_map_is_clamped_to_edge_tables() -> None:
    # Map points at relative 0.25 and 0.75 of a 4x4 image: pixel rows 0 (v = .125) and
    # 3 (v = .875) are outside and take the edge tables; rows 1, 2 interpolate 1/4, 3/4.
    p = _map(np.array([[[1.0], [1.0]], [[3.0], [3.0]]]), spacing=(0.5, 0.5), origin=(0.25, 0.25))
    col = pgtm_gain(np.ones((3, 4, 4), dtype=np.float32), p)[:, 0]
    np.testing.assert_allclose(col, [1.0, 1.5, 2.5, 3.0], rtol=1e-6)


@pytest.mark.parametrize("gamma", [1.0, 0.5, 2.2])
def test_random_maps_match_sdk_reference_loop(gamma: float) -> None:
    rng = np.random.default_rng(int(gamma * 10))
    table = rng.uniform(0.3, 3.0, (3, 4, 5))
    p = _map(
        table,
        spacing=(0.3, 0.25),
        origin=(-0.1, 0.2),
        version=2,
        gamma=gamma,
        weights=(0.2, 0.5, 0.1, 0.3, -0.05),
    )
    rgb = rng.uniform(-0.2, 1.3, (3, 11, 7)).astype(np.float32)
    np.testing.assert_allclose(
        pgtm_gain(rgb, p, baseline_exposure_ev=0.5), _sdk_reference_gain(rgb, p, 0.5), rtol=2e-5
    )


def test_single_point_axes_ignore_spacing_and_origin() -> None:
    # The SDK forces spacing 1 / origin 0 on a 1-point axis; zero spacing is then legal.
    p = _map(np.array([[[2.0, 1.0]], [[4.0, 3.0]]]), spacing=(1.0, 0.0), origin=(0.0, 7.0))
    g = pgtm_gain(np.zeros((3, 2, 3), dtype=np.float32), p)
    np.testing.assert_allclose(g[:, 0], [2.5, 3.5], rtol=1e-6)  # rows at .25 and .75
    assert np.all(g == g[:, :1])


def test_tile_gain_equals_crop_of_full_gain(real_pgtm_or_synthetic: ProfileGainTableMap) -> None:
    rng = np.random.default_rng(5)
    rgb = rng.uniform(0.0, 2.0, (3, 40, 60)).astype(np.float32)
    full = pgtm_gain(rgb, real_pgtm_or_synthetic)
    tile = pgtm_gain(
        rgb[:, 10:30, 17:50], real_pgtm_or_synthetic, origin=(17, 10), image_size=(40, 60)
    )
    np.testing.assert_array_equal(tile, full[10:30, 17:50])


@pytest.fixture
def real_pgtm_or_synthetic() -> ProfileGainTableMap:
    if REAL_BIN.exists():
        return parse_pgtm(REAL_BIN.read_bytes())
    return _map(_monotone_table(4, 5, 33, 0), spacing=(0.3, 0.2), origin=(0.05, 0.1))


def test_gain_handles_nan_and_inf_input() -> None:
    p = _map(np.array([[[2.0, 1.0, 0.5, 0.25]]]))
    rgb = np.array([np.nan, np.inf, -np.inf], dtype=np.float32).reshape(3, 1, 1)
    rgb = np.broadcast_to(rgb, (3, 2, 2)).copy()
    assert np.all(np.isfinite(pgtm_gain(rgb, p)))


def test_gain_rejects_bad_shapes() -> None:
    p = _map(np.ones((1, 1, 2)))
    with pytest.raises(ShapeError):
        pgtm_gain(np.ones((4, 2, 2), dtype=np.float32), p)
    with pytest.raises(ShapeError):
        pgtm_gain(np.ones((3, 2, 2), dtype=np.float32), p, origin=(1, 0))
    with pytest.raises(ShapeError):
        pgtm_gain(np.ones((3, 2, 2), dtype=np.float32), p, origin=(1, 0), image_size=(2, 2))
    with pytest.raises(ShapeError):
        ProfileGainTableMap(1, 1, 1.0, 1.0, 0.0, 0.0, 3, (1, 0, 0, 0, 0), np.ones((1, 1, 2)))


# --------------------------------------------------------------------------- apply / invert


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_apply_invert_round_trip_monotone_map(dtype: type) -> None:
    p = _map(_monotone_table(6, 8, 257, 1), spacing=(0.15, 0.12), origin=(0.1, 0.08))
    assert pgtm_monotone(p)
    rng = np.random.default_rng(7)
    rgb = np.exp(rng.uniform(np.log(1e-4), np.log(16.0), (3, 64, 96))).astype(dtype)
    rendered = apply_pgtm(rgb, p, baseline_exposure_ev=0.7)
    assert rendered.dtype == dtype
    back = invert_pgtm(rendered, p, baseline_exposure_ev=0.7)
    np.testing.assert_allclose(back, rgb, rtol=1e-4)


def test_apply_invert_round_trip_gamma_map() -> None:
    p = _map(
        _monotone_table(3, 3, 65, 2), spacing=(0.4, 0.4), origin=(0.1, 0.1), version=2, gamma=2.0
    )
    assert pgtm_monotone(p)
    rng = np.random.default_rng(8)
    rgb = np.exp(rng.uniform(np.log(1e-3), np.log(8.0), (3, 32, 32))).astype(np.float32)
    back = invert_pgtm(apply_pgtm(rgb, p), p)
    np.testing.assert_allclose(back, rgb, rtol=1e-4)


@pytest.mark.real_data
def test_real_map_inverts_where_it_is_injective(real_pgtm: ProfileGainTableMap) -> None:
    # Random HDR input (1e-4 .. 16, i.e. up to 4 stops over white). The real map is exactly
    # invertible where t * g(t) rises: dark and mid tones (table input below ~0.05 here)
    # and everything beyond the table (input > 1, constant gain).
    rng = np.random.default_rng(9)
    rgb = np.exp(rng.uniform(np.log(1e-4), np.log(16.0), (3, 120, 160))).astype(np.float32)
    ev = -0.3
    rendered = apply_pgtm(rgb, real_pgtm, baseline_exposure_ev=ev)
    back = invert_pgtm(rendered, real_pgtm, baseline_exposure_ev=ev)
    w = np.array(real_pgtm.input_weights)
    t = 2.0**ev * (np.tensordot(w[:3], rgb, 1) + w[3] * rgb.min(0) + w[4] * rgb.max(0))
    injective = (t < 0.05) | (t > 1.0)
    assert injective.mean() > 0.4
    rel = np.abs(back - rgb) / rgb
    assert rel[:, injective].max() < 1e-4
    # Everywhere, the inverse is a preimage: rendering it again gives the same output.
    np.testing.assert_allclose(
        apply_pgtm(back, real_pgtm, baseline_exposure_ev=ev), rendered, rtol=1e-5
    )


@pytest.mark.real_data
def test_real_map_is_not_injective_in_the_highlights(real_pgtm: ProfileGainTableMap) -> None:
    # Finding, kept as a test: Apple's table makes t * g(t) nearly flat (and in places
    # slightly decreasing) for table inputs from ~0.1-0.2 up to 1, so bright inputs that
    # differ by 2 stops render to within 1% of each other: they cannot be told apart.
    assert not pgtm_monotone(real_pgtm)
    grays = np.array([1.0, 2.0, 4.0], dtype=np.float32)  # t = 0.246 .. 0.985 at EV 0
    rgb = np.broadcast_to(grays[None, :, None], (3, 3, 1)).copy()
    # Evaluate all three at the same image position (the map centre): tile of a 1x1 image.
    out = np.stack([apply_pgtm(rgb[:, i : i + 1], real_pgtm)[1, 0, 0] for i in range(3)])
    assert np.ptp(out) / out.mean() < 0.01


# --------------------------------------------------------------------------- version 2


@pytest.mark.parametrize("data_type", [0, 1, 2, 3])
@pytest.mark.parametrize("byteorder", [">", "<"])
def test_pgtm2_round_trip_all_data_types(data_type: int, byteorder: str) -> None:
    rng = np.random.default_rng(data_type)
    pv, ph, n = 2, 3, 17
    header = struct.pack(
        byteorder + "IIddddI5fIfff",
        pv,
        ph,
        0.5,
        0.4,
        -0.1,
        0.05,
        n,
        0.1,
        0.2,
        0.3,
        0.0,
        0.4,
        data_type,
        1.8,
        0.5,
        3.0,
    )
    count = pv * ph * n
    storage = {0: "u1", 1: "u2", 2: "f2", 3: "f4"}[data_type]
    if data_type < 2:
        codes = rng.integers(0, 256 if data_type == 0 else 65536, count)
    else:
        codes = rng.uniform(0.5, 3.0, count)
    raw = header + codes.astype(np.dtype(storage).newbyteorder(byteorder)).tobytes()
    p = parse_pgtm(raw, byteorder=byteorder, version=2)
    assert (p.version, p.data_type, p.gamma) == (2, data_type, pytest.approx(1.8))
    assert serialize_pgtm(p, byteorder=byteorder) == raw
    if data_type == 0:  # gain = GainMin + code / 255 * (GainMax - GainMin)
        assert p.table.reshape(-1)[0] == pytest.approx(0.5 + codes[0] / 255 * 2.5, rel=1e-6)


@pytest.mark.parametrize(("data_type", "max_int"), [(0, 255), (1, 65535)])
def test_pgtm2_integer_codes_round_trip_for_every_code(data_type: int, max_int: int) -> None:
    codes = np.arange(max_int + 1)
    header = struct.pack(
        ">IIddddI5fIfff",
        1,
        1,
        1.0,
        1.0,
        0.0,
        0.0,
        codes.size,
        1.0,
        0.0,
        0.0,
        0.0,
        0.0,
        data_type,
        1.0,
        0.243,
        4.256,
    )
    raw = header + codes.astype(">u1" if data_type == 0 else ">u2").tobytes()
    assert serialize_pgtm(parse_pgtm(raw, version=2)) == raw


# --------------------------------------------------------------------------- bad input


def test_bad_input_raises_corrupt_data() -> None:
    good = _header(1, 1, 2) + struct.pack(">2f", 1.0, 2.0)
    assert parse_pgtm(good).table.shape == (1, 1, 2)
    cases = {
        "zero bytes": b"",
        "truncated header": good[:40],
        "truncated table": good[:-1],
        "claims 10^6 points": _header(1000, 1000, 1) + good[64:],
        "absurd dimensions": _header(65536, 65536, 65536) + good[64:],
        "empty map": _header(0, 1, 2) + good[64:],
        "NaN gain": _header(1, 1, 2) + struct.pack(">2f", 1.0, float("nan")),
        "inf gain": _header(1, 1, 2) + struct.pack(">2f", float("inf"), 1.0),
        "zero gain": _header(1, 1, 2) + struct.pack(">2f", 0.0, 1.0),
        "zero spacing": _header(2, 1, 1, spacing=(0.0, 1.0)) + struct.pack(">2f", 1, 1),
        "negative spacing": _header(1, 2, 1, spacing=(1.0, -0.5)) + struct.pack(">2f", 1, 1),
        "NaN origin": _header(2, 1, 1, origin=(float("nan"), 0.0)) + struct.pack(">2f", 1, 1),
        "NaN weight": _header(1, 1, 2, weights=(float("nan"), 0, 0, 0, 0)) + good[64:],
    }
    for name, raw in cases.items():
        with pytest.raises(CorruptDataError):
            parse_pgtm(raw)
            pytest.fail(name)


def test_bad_pgtm2_header_raises_corrupt_data() -> None:
    def v2(data_type: int, gamma: float, gmin: float = 0.5, gmax: float = 2.0) -> bytes:
        return (
            _header(1, 1, 2)
            + struct.pack(">Ifff", data_type, gamma, gmin, gmax)
            + b"\x00\x00\x00\x00\x00\x00\x00\x00"
        )

    assert parse_pgtm(v2(3, 1.0)[:-8] + struct.pack(">2f", 1, 1), version=2).version == 2
    for raw in (
        v2(7, 1.0),
        v2(1, 0.0),
        v2(1, float("nan")),
        v2(1, 50.0),
        v2(0, 1.0, gmin=0.0),
        v2(0, 1.0, gmax=1e6),
        v2(3, 1.0)[:70],
    ):
        with pytest.raises(CorruptDataError):
            parse_pgtm(raw, version=2)


def test_trailing_bytes_are_ignored() -> None:
    good = _header(1, 1, 2) + struct.pack(">2f", 1.0, 2.0)
    p = parse_pgtm(good + b"\x00" * 8)
    assert serialize_pgtm(p) == good


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=200), cut=st.integers(0, 200), flip=st.integers(0, 199))
def test_fuzzed_bytes_never_leak_other_errors(data: bytes, cut: int, flip: int) -> None:
    base = bytearray(_header(2, 2, 3, spacing=(0.5, 0.5)) + np.ones(12, ">f4").tobytes())
    if flip < len(base):
        base[flip] ^= 0xFF
    for raw in (data, bytes(base[:cut]), bytes(base)):
        for version in (1, 2):
            with contextlib.suppress(CorruptDataError):
                parse_pgtm(raw, version=version)
