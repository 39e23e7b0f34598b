"""DNG opcode lists: byte layout, round trips, lens-shading gains, bad input."""

from __future__ import annotations

import contextlib
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.cfa import CfaName, CfaPattern
from core.errors import CorruptDataError, ShadingError, ShapeError
from core.io.opcodes import (
    FLAG_OPTIONAL,
    FixVignetteRadialOpcode,
    GainMapOpcode,
    OpcodeList,
    UnknownOpcode,
    apply_shading,
    parse_opcode_list,
    serialize_opcode_list,
    shading_gain_map,
    unsupported_mandatory,
)

RGGB = CfaPattern.from_name("RGGB")


def _gain_map(
    gains: np.ndarray,
    *,
    area=(0, 0, 0, 0),
    plane: int = 0,
    planes: int = 1,
    pitch=(1, 1),
    spacing=(0.5, 0.5),
    origin=(0.0, 0.0),
    flags: int = 0,
) -> GainMapOpcode:
    g = np.asarray(gains, dtype=np.float32)
    if g.ndim == 2:
        g = g[:, :, None]
    return GainMapOpcode(
        *area,
        plane,
        planes,
        *pitch,
        g.shape[0],
        g.shape[1],
        *spacing,
        *origin,
        g.shape[2],
        g,
        flags=flags,
    )


def _opcode_bytes(
    opcode_id: int, payload: bytes, *, flags: int = 0, version: int = 0x01030000
) -> bytes:
    """One opcode as the spec lays it out: id, version, flags, byte count, parameters."""
    return struct.pack(">IIII", opcode_id, version, flags, len(payload)) + payload


def _list_bytes(*opcodes: bytes) -> bytes:
    return struct.pack(">I", len(opcodes)) + b"".join(opcodes)


# --------------------------------------------------------------------------- byte layout


def test_gain_map_bytes_written_by_hand_parse_to_the_right_fields() -> None:
    payload = struct.pack(">iiiiIIII", 1, 0, 3024, 4032, 0, 1, 2, 2)  # area, planes, pitch
    payload += struct.pack(">IIddddI", 2, 3, 1.0, 0.5, 0.0, 0.0, 1)  # map header
    payload += struct.pack(">6f", 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)  # gains, V-major
    raw = _list_bytes(_opcode_bytes(9, payload, flags=FLAG_OPTIONAL))
    parsed = parse_opcode_list(raw, 2)
    (op,) = parsed.opcodes
    assert isinstance(op, GainMapOpcode)
    assert (op.top, op.left, op.bottom, op.right) == (1, 0, 3024, 4032)
    assert (op.plane, op.planes, op.row_pitch, op.col_pitch) == (0, 1, 2, 2)
    assert (op.map_points_v, op.map_points_h, op.map_planes) == (2, 3, 1)
    assert (op.map_spacing_v, op.map_spacing_h, op.map_origin_v, op.map_origin_h) == (
        1.0,
        0.5,
        0.0,
        0.0,
    )
    np.testing.assert_array_equal(op.gains[:, :, 0], [[1.0, 1.5, 2.0], [2.5, 3.0, 3.5]])
    assert (op.flags, op.version) == (FLAG_OPTIONAL, 0x01030000)
    assert serialize_opcode_list(parsed) == raw


def test_vignette_bytes_written_by_hand_parse_to_the_right_fields() -> None:
    payload = struct.pack(">7d", 0.1, 0.2, 0.3, 0.4, 0.5, 0.45, 0.55)  # k0..k4, cx, cy
    raw = _list_bytes(_opcode_bytes(3, payload))
    parsed = parse_opcode_list(raw, 3)
    (op,) = parsed.opcodes
    assert isinstance(op, FixVignetteRadialOpcode)
    assert op.k == (0.1, 0.2, 0.3, 0.4, 0.5)
    assert (op.center_x, op.center_y) == (0.45, 0.55)
    assert serialize_opcode_list(parsed) == raw


def test_round_trip_every_opcode_kind() -> None:
    rng = np.random.default_rng(0)
    ops = (
        _gain_map(
            rng.uniform(1.0, 2.0, (5, 7, 2)),
            area=(0, 1, 100, 101),
            planes=2,
            pitch=(2, 2),
            spacing=(0.25, 1 / 6),
            origin=(-0.01, 0.02),
        ),
        FixVignetteRadialOpcode((0.3, -0.1, 0.05, 0.0, 1e-3), 0.48, 0.52, flags=FLAG_OPTIONAL),
        UnknownOpcode(14, 0, 0x01060000, b"\x01\x02\x03\x04\x05"),
        UnknownOpcode(1, FLAG_OPTIONAL, 0x01030000, b""),
    )
    for list_id in (1, 2, 3):
        raw = serialize_opcode_list(OpcodeList(list_id, ops))
        parsed = parse_opcode_list(raw, list_id)
        assert parsed.list_id == list_id
        assert [type(o) for o in parsed.opcodes] == [type(o) for o in ops]
        np.testing.assert_array_equal(parsed.opcodes[0].gains, ops[0].gains)
        assert parsed.opcodes[1] == ops[1] and parsed.opcodes[2] == ops[2]
        assert serialize_opcode_list(parsed) == raw
    empty = serialize_opcode_list(OpcodeList(3))
    assert empty == b"\x00\x00\x00\x00"  # Android writes an empty OpcodeList3 like this
    assert parse_opcode_list(empty, 3).opcodes == ()


def test_android_style_list_has_the_expected_size() -> None:
    # Four 13x17 pitch-2 GainMaps: 4 + 4 * (16 + 32 + 44 + 4 * 13 * 17) = 3908 bytes, the
    # size of the Nexus 5X OpcodeList2 described in shared/data/real/README.md.
    ops = tuple(
        _gain_map(
            np.ones((13, 17)), area=(dy, dx, 3028, 4080), pitch=(2, 2), spacing=(1 / 12, 1 / 16)
        )
        for dy in (0, 1)
        for dx in (0, 1)
    )
    assert len(serialize_opcode_list(OpcodeList(2, ops))) == 3908


# --------------------------------------------------------------------------- GainMap gains


def test_gain_map_golden_bilinear() -> None:
    # 2x2 map 1, 2 / 3, 4 at relative 0.125 and 0.875 of a 4x4 image (origin 0.125,
    # spacing 0.75). Pixel centres (i + 0.5) / 4 = .125, .375, .625, .875 -> map indices
    # 0, 1/3, 2/3, 1, so gain = 1 + fx + 2 fy:
    #   (y=1, x=2): 1 + 2/3 + 2/3 = 7/3;  (y=2, x=1): 1 + 1/3 + 4/3 = 8/3;  (y=3, x=3): 4.
    op = _gain_map([[1.0, 2.0], [3.0, 4.0]], spacing=(0.75, 0.75), origin=(0.125, 0.125))
    g = shading_gain_map([OpcodeList(2, (op,))], 4, 4, RGGB)
    assert g.dtype == np.float32 and g.shape == (4, 4)
    assert g[1, 2] == pytest.approx(7 / 3, rel=1e-6)
    assert g[2, 1] == pytest.approx(8 / 3, rel=1e-6)
    assert g[0, 0] == pytest.approx(1.0) and g[3, 3] == pytest.approx(4.0)


def test_gain_map_clamps_outside_the_map_and_respects_area() -> None:
    # Map points at 0.25 / 0.75 of an 8-row image: rows 0, 1 (v < .25) take the first row
    # value 1, rows 6, 7 the last (3). Area rows 2..5 only, so rows outside stay 1 anyway.
    op = _gain_map([[1.0], [3.0]], area=(2, 0, 6, 8), spacing=(0.5, 1.0), origin=(0.25, 0.0))
    g = shading_gain_map([OpcodeList(2, (op,))], 8, 8, RGGB)[:, 0]
    # rows 2..5: v = (r + .5) / 8 = .3125 .4375 .5625 .6875 -> idx .125 .375 .625 .875
    np.testing.assert_allclose(g, [1, 1, 1.25, 1.75, 2.25, 2.75, 1, 1], rtol=1e-6)
    op_all = _gain_map([[1.0], [3.0]], spacing=(0.5, 1.0), origin=(0.25, 0.0))
    g_all = shading_gain_map([OpcodeList(2, (op_all,))], 8, 8, RGGB)[:, 0]
    np.testing.assert_allclose(g_all[[0, 1, 6, 7]], [1, 1, 3, 3], rtol=1e-6)


@pytest.mark.parametrize("name", [c.value for c in CfaName])
@pytest.mark.parametrize("crop", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_four_pitch2_gain_maps_hit_the_right_cfa_positions(
    name: str, crop: tuple[int, int]
) -> None:
    # Android style: one constant GainMap per CFA position of the full image, with Top/Left
    # at the position and pitch 2. The mosaic is a crop at (x, y) = crop of a 10x8 image, so
    # its own CFA pattern is the image's shifted by the crop.
    image_cfa = CfaPattern.from_name(name)
    per_plane = {"R": 2.0, "Gr": 3.0, "Gb": 5.0, "B": 7.0}
    ops = tuple(
        _gain_map(np.full((3, 3), per_plane[plane]), area=(dy, dx, 8, 10), pitch=(2, 2))
        for plane, (dy, dx) in image_cfa.plane_offsets().items()
    )
    cx, cy = crop
    h, w = 8 - cy, 10 - cx
    mosaic_cfa = image_cfa.shifted(cy, cx)
    g = shading_gain_map([OpcodeList(2, ops)], h, w, mosaic_cfa, origin=crop, image_size=(8, 10))
    for plane, (dy, dx) in mosaic_cfa.plane_offsets().items():
        np.testing.assert_allclose(g[dy::2, dx::2], per_plane[plane], rtol=1e-6)


def test_opcode_list3_gain_map_uses_the_pixel_colour_as_plane() -> None:
    op = _gain_map(np.array([[[1.1, 1.2, 1.3]]]), planes=3)
    g = shading_gain_map([OpcodeList(3, (op,))], 4, 4, RGGB)
    np.testing.assert_allclose(g[0::2, 0::2], 1.1, rtol=1e-6)  # R
    np.testing.assert_allclose(g[0::2, 1::2], 1.2, rtol=1e-6)  # G
    np.testing.assert_allclose(g[1::2, 0::2], 1.2, rtol=1e-6)  # G
    np.testing.assert_allclose(g[1::2, 1::2], 1.3, rtol=1e-6)  # B
    # A map with one plane serves every plane; plane/planes restrict which are touched.
    only_blue = _gain_map(np.array([[[2.0]]]), plane=2, planes=1)
    g = shading_gain_map([OpcodeList(3, (only_blue,))], 2, 2, RGGB)
    np.testing.assert_allclose(g, [[1.0, 1.0], [1.0, 2.0]])
    # In lists 1 and 2 a CFA image has a single plane 0: a plane-2 opcode does nothing.
    assert np.all(shading_gain_map([OpcodeList(2, (only_blue,))], 2, 2, RGGB) == 1.0)


# --------------------------------------------------------------------------- FixVignetteRadial


def test_vignette_golden_centre_and_corner() -> None:
    # 5x5 image, centre (0.5, 0.5) -> (2.5, 2.5) px: pixel (2, 2)'s centre, so gain 1.
    # Farthest corner at hypot(2.5, 2.5) = 3.5355 px. Pixel (0, 0)'s centre (0.5, 0.5) is
    # (2, 2) px away: r^2 = 8 / 12.5 = 0.64; with k = (0.5, 0.25, 0, 0, 0):
    # gain = 1 + 0.5 * 0.64 + 0.25 * 0.64^2 = 1 + 0.32 + 0.1024 = 1.4224.
    op = FixVignetteRadialOpcode((0.5, 0.25, 0.0, 0.0, 0.0), 0.5, 0.5)
    g = shading_gain_map([OpcodeList(3, (op,))], 5, 5, RGGB)
    assert g[2, 2] == pytest.approx(1.0, abs=1e-7)
    assert g[0, 0] == pytest.approx(1.4224, rel=1e-6)
    np.testing.assert_allclose(g, g[::-1, ::-1], rtol=1e-6)  # symmetric about the centre


def test_vignette_uses_every_coefficient_and_off_centre_radius() -> None:
    # Centre (0.25, 0.5) of an 8x4 (h x w) image = (x 1, y 4) px; farthest corner distance
    # hypot(4, 3) = 5. Pixel (y 7, x 3): centre (3.5, 7.5) is (2.5, 3.5) px away ->
    # r^2 = (6.25 + 12.25) / 25 = 0.74; with k = 0.1 .. 0.5 and 0.74^(1..5) = 0.74, 0.5476,
    # 0.405224, 0.29986576, 0.2219006624: gain = 1 + 0.074 + 0.10952 + 0.1215672
    # + 0.119946304 + 0.11095033 = 1.5359838.
    k = (0.1, 0.2, 0.3, 0.4, 0.5)
    op = FixVignetteRadialOpcode(k, 0.25, 0.5)
    g = shading_gain_map([OpcodeList(3, (op,))], 8, 4, RGGB)
    want = 1 + sum(c * 0.74 ** (i + 1) for i, c in enumerate(k))
    assert g[7, 3] == pytest.approx(want, rel=1e-6)
    assert math.isclose(want, 1.5359838, rel_tol=1e-7)


def test_tile_gain_equals_crop_of_full_gain() -> None:
    ops = (
        FixVignetteRadialOpcode((0.4, 0.1, 0.0, 0.0, 0.0), 0.47, 0.53),
        *(
            _gain_map(
                np.linspace(1, 2, 12).reshape(3, 4) + dy + dx,
                area=(dy, dx, 40, 60),
                pitch=(2, 2),
                spacing=(0.5, 1 / 3),
            )
            for dy in (0, 1)
            for dx in (0, 1)
        ),
    )
    lists = [OpcodeList(2, ops[1:]), OpcodeList(3, ops[:1])]
    full = shading_gain_map(lists, 40, 60, RGGB)
    tile = shading_gain_map(
        lists, 20, 33, RGGB.shifted(10, 17), origin=(17, 10), image_size=(40, 60)
    )
    np.testing.assert_allclose(tile, full[10:30, 17:50], rtol=1e-6)


def test_apply_shading_multiplies() -> None:
    op = FixVignetteRadialOpcode((0.5, 0.0, 0.0, 0.0, 0.0), 0.5, 0.5)
    mosaic = np.random.default_rng(1).random((6, 8)).astype(np.float32)
    lists = [OpcodeList(3, (op,))]
    out = apply_shading(mosaic, lists, RGGB)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, mosaic * shading_gain_map(lists, 6, 8, RGGB), rtol=1e-6)
    with pytest.raises(ShapeError):
        apply_shading(mosaic[None], lists, RGGB)
    with pytest.raises(ShapeError):
        shading_gain_map(lists, 6, 8, RGGB, origin=(2, 0))
    with pytest.raises(ShapeError):
        shading_gain_map(lists, 6, 8, RGGB, origin=(2, 0), image_size=(6, 8))


def test_implausible_combined_gain_is_reported() -> None:
    ops = tuple(_gain_map(np.full((1, 1), 9000.0)) for _ in range(3))
    with pytest.raises(ShadingError):
        shading_gain_map([OpcodeList(2, ops)], 2, 2, RGGB)


def test_no_shading_opcodes_gives_unit_gain() -> None:
    lists = [OpcodeList(3, (UnknownOpcode(14, 1, 0x01060000, b"x"),)), OpcodeList(2)]
    assert np.all(shading_gain_map(lists, 4, 6, RGGB) == 1.0)


# --------------------------------------------------------------------------- mandatory opcodes


def test_unsupported_mandatory_opcodes_are_reported() -> None:
    lst = OpcodeList(
        3,
        (
            FixVignetteRadialOpcode((0.1, 0, 0, 0, 0), 0.5, 0.5),  # mandatory but supported
            UnknownOpcode(14, 0, 0x01060000, b"warp"),  # WarpRectilinear2, flags 0: mandatory
            UnknownOpcode(4, FLAG_OPTIONAL, 0x01030000, b"bad pixels"),  # optional: skippable
            UnknownOpcode(99, 2, 0x01030000, b""),  # skip-if-preview only: still mandatory
        ),
    )
    assert unsupported_mandatory(lst) == [
        "OpcodeList3: WarpRectilinear2 (id 14)",
        "OpcodeList3: opcode 99 (id 99)",
    ]
    raw = serialize_opcode_list(lst)
    assert unsupported_mandatory(parse_opcode_list(raw, 3)) == unsupported_mandatory(lst)


# --------------------------------------------------------------------------- bad input


def _good_gain_map_payload(**kw: float) -> bytes:
    op = _gain_map(np.ones((2, 2)), area=(0, 0, 4, 4), pitch=(2, 2))
    return serialize_opcode_list(OpcodeList(2, (op,)))[4 + 16 :]


def test_broken_list_structure_raises_corrupt_data() -> None:
    vig = _opcode_bytes(3, struct.pack(">7d", 0.1, 0, 0, 0, 0, 0.5, 0.5))
    good = _list_bytes(vig)
    assert len(parse_opcode_list(good, 3).opcodes) == 1
    for raw in (
        b"",  # zero bytes
        b"\x00\x00",  # shorter than the count
        good[:-1],  # truncated inside the parameters
        good[:10],  # truncated inside the opcode header
        struct.pack(">I", 1_000_000) + vig,  # count far larger than the data
        struct.pack(">I", 2) + vig,  # one opcode missing
        good + b"\x00",  # trailing byte
        struct.pack(">I", 1) + struct.pack(">IIII", 3, 0, 0, 0xFFFFFFFF),  # size too big
    ):
        with pytest.raises(CorruptDataError):
            parse_opcode_list(raw, 3)


def test_malformed_shading_opcodes_raise_shading_error() -> None:
    gm = _good_gain_map_payload()
    area = gm[:32]
    map_header = gm[32:76]

    def header(pv: int, ph: int, sv: float, sh: float, planes: int = 1) -> bytes:
        return struct.pack(">IIddddI", pv, ph, sv, sh, 0.0, 0.0, planes)

    bad_payloads = {
        "gain data short": gm[:-4],
        "gain data long": gm + b"\x00" * 4,
        "too short for a header": gm[:40],
        "NaN gain": area + map_header + struct.pack(">4f", 1, float("nan"), 1, 1),
        "negative gain": area + map_header + struct.pack(">4f", 1, -1, 1, 1),
        "absurd gain": area + map_header + struct.pack(">4f", 1, 1e30, 1, 1),
        "zero spacing": area + header(2, 2, 0.0, 0.5) + gm[76:],
        "negative spacing": area + header(2, 2, 0.5, -1.0) + gm[76:],
        "zero map planes": area + header(2, 2, 0.5, 0.5, planes=0),
        "zero planes": struct.pack(">iiiiIIII", 0, 0, 4, 4, 0, 0, 2, 2) + gm[32:],
        "zero pitch": struct.pack(">iiiiIIII", 0, 0, 4, 4, 0, 1, 0, 2) + gm[32:],
        "pitch larger than area": struct.pack(">iiiiIIII", 0, 0, 4, 4, 0, 1, 8, 2) + gm[32:],
        "absurd map": area + header(100000, 100000, 0.5, 0.5) + gm[76:],
    }
    for name, payload in bad_payloads.items():
        with pytest.raises(ShadingError):
            parse_opcode_list(_list_bytes(_opcode_bytes(9, payload)), 2)
            pytest.fail(name)
    for payload in (
        struct.pack(">6d", 0.1, 0, 0, 0, 0, 0.5),  # 48 bytes, not 56
        struct.pack(">7d", 0.1, 0, 0, 0, 0, 1.5, 0.5),  # centre outside
        struct.pack(">7d", float("nan"), 0, 0, 0, 0, 0.5, 0.5),
        struct.pack(">7d", -2.0, 0, 0, 0, 0, 0.5, 0.5),  # gain -1 at the corners
        struct.pack(">7d", 1e300, 0, 0, 0, 0, 0.5, 0.5),
    ):
        with pytest.raises(ShadingError):
            parse_opcode_list(_list_bytes(_opcode_bytes(3, payload)), 3)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), cut=st.integers(0, 300), flip=st.integers(0, 299))
def test_fuzzed_lists_raise_only_typed_errors(data: bytes, cut: int, flip: int) -> None:
    base = bytearray(
        serialize_opcode_list(
            OpcodeList(
                2,
                (
                    _gain_map(np.ones((2, 3)), area=(0, 0, 8, 8), pitch=(2, 2)),
                    FixVignetteRadialOpcode((0.1, 0, 0, 0, 0), 0.5, 0.5),
                    UnknownOpcode(14, 0, 0x01060000, b"abc"),
                ),
            )
        )
    )
    if flip < len(base):
        base[flip] ^= 0x5A
    for raw in (data, bytes(base[:cut]), bytes(base)):
        with contextlib.suppress(CorruptDataError, ShadingError):
            lst = parse_opcode_list(raw, 2)
            g = shading_gain_map([lst], 8, 8, RGGB)
            assert g.shape == (8, 8)
