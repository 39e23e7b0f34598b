"""DNG writer: structure, round trips through tifffile and rawpy, headroom, atomicity.

Fast (< 60 s): small synthetic images only. Third-party renderers are in
``test_dng_readers.py``.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile

from core.cfa import CfaPattern
from core.errors import (
    CancelledError,
    ConfigError,
    FileNotReadableError,
    NotADngError,
    OutputError,
    ShapeError,
)
from core.io.captures import CameraIdentity, ColorMetadata
from core.io.dng_writer import (
    DngWriteOptions,
    camera_neutral,
    choose_tile_size,
    headroom_ev,
    read_provenance,
    write_bayer_dng,
    write_linear_dng,
    write_linearraw_dng,
)
from core.io.ljpeg import decode_ljpeg, encode_ljpeg, sof3_header
from core.io.tiff_writer import (
    Ifd,
    ImageData,
    TiffType,
    ascii_entry,
    entry,
    to_rational,
    write_tiff,
)
from core.progress import CancelToken, Progress

CM1 = np.array([[0.9, -0.35, -0.08], [-0.45, 1.25, 0.22], [-0.06, 0.16, 0.65]])
CM2 = np.array([[0.7, -0.2, -0.05], [-0.4, 1.2, 0.2], [-0.05, 0.15, 0.6]])
NEUTRAL = np.array([0.45, 1.0, 0.55])


def make_color(**overrides: object) -> ColorMetadata:
    """iPhone-like colour tags: two matrices (Std A, D65), AsShotNeutral, -0.3 EV."""
    base: dict[str, object] = dict(
        color_matrix1=CM1,
        color_matrix2=CM2,
        calibration_illuminant1=17,
        calibration_illuminant2=21,
        as_shot_neutral=NEUTRAL,
        baseline_exposure=-0.3,
        noise_profile=(3e-5, 3e-8),
        baseline_sharpness=1.5,
        profile_name="Test Profile",
    )
    base.update(overrides)
    return ColorMetadata(**base)  # type: ignore[arg-type]


IDENTITY = CameraIdentity(
    make="Apple", model="iPhone 15 Pro", unique_camera_model="iPhone16,1 back camera"
)


def image_from_codes(codes: np.ndarray) -> np.ndarray:
    """Camera48 (3, H, W) float32 whose uint16 encoding at h = 0 is exactly ``codes``."""
    return (codes.astype(np.float32) / np.float32(65535)).astype(np.float32)


def random_codes(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(3, H, W) uint16 smooth-ish codes below 65535 (so the image max stays <= 1)."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 40000, w)[None, None, :] + np.linspace(0, 20000, h)[None, :, None]
    noise = rng.integers(0, 5000, size=(3, h, w))
    return np.clip(ramp + noise, 0, 65534).astype(np.uint16)


def raw_page_array(path: Path) -> np.ndarray:
    """SubIFD0's pixels as (3, H, W) via tifffile (a reader independent of ours)."""
    with tifffile.TiffFile(path) as tif:
        return tif.pages.first.pages[0].asarray().transpose(2, 0, 1)


def ifd_entries(path: Path) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """(tag, type, count) of IFD0 and SubIFD0 in file order, parsed by hand."""
    data = path.read_bytes()
    bo = "<" if data[:2] == b"II" else ">"

    def read_ifd(offset: int) -> list[tuple[int, int, int]]:
        (n,) = struct.unpack_from(bo + "H", data, offset)
        return [struct.unpack_from(bo + "HHI", data, offset + 2 + 12 * k) for k in range(n)]

    (ifd0_off,) = struct.unpack_from(bo + "I", data, 4)
    ifd0 = read_ifd(ifd0_off)
    sub = next(e for e in ifd0 if e[0] == 330)
    k = ifd0.index(sub)
    (sub_off,) = struct.unpack_from(bo + "I", data, ifd0_off + 2 + 12 * k + 8)
    return ifd0, read_ifd(sub_off)


# --------------------------------------------------------------------------- tiff_writer


def test_tiff_writer_golden_bytes():
    """Tiny hand-checked file: one IFD, four entries, one 2-byte strip, little endian.

    0x00  49 49 2a00 08000000              II, 42, IFD0 at 8
    0x08  0400                             4 entries, sorted by tag:
          0001 0300 01000000 0200 0000     256 ImageWidth SHORT x1 = 2 (inline)
          0e01 0200 06000000 3e000000      270 ImageDescription ASCII x6 at 0x3e
          1101 0400 01000000 44000000      273 StripOffsets LONG x1 = 0x44 (patched)
          1701 0400 01000000 02000000      279 StripByteCounts LONG x1 = 2 (patched)
          00000000                         no next IFD; IFD = 2 + 4*12 + 4 = 54 bytes
    0x3e  68 65 6c 6c 6f 00                "hello" NUL (8 + 54 = 62 = 0x3e, word aligned)
    0x44  07 09                            the strip (62 + 6 = 68 = 0x44); size 70
    """
    ifd = Ifd(
        [ascii_entry(270, "hello", "<"), entry(256, TiffType.SHORT, 2, "<")],
        ImageData("strips", 1, iter([b"\x07\x09"])),
    )
    buf = io.BytesIO()
    size = write_tiff(buf, ifd, byteorder="<")
    data = buf.getvalue()
    expected = bytes.fromhex(
        "49492a0008000000"
        "0400"
        "000103000100000002000000"
        "0e01020006000000"
        "3e000000"
        "110104000100000044000000"
        "170104000100000002000000"
        "00000000"
        "68656c6c6f00"
        "0709"
    )
    assert data == expected
    assert size == len(expected) == 70


def test_tiff_writer_streams_chunks_and_checks_count():
    chunks_seen: list[int] = []

    def gen():
        for k in range(3):
            chunks_seen.append(k)
            yield bytes([k + 1]) * (k + 1)

    buf = io.BytesIO()
    write_tiff(
        buf, Ifd([entry(256, TiffType.LONG, 1, ">")], ImageData("tiles", 3, gen())), byteorder=">"
    )
    assert chunks_seen == [0, 1, 2]
    with pytest.raises(ValueError, match="declared 4"):
        write_tiff(io.BytesIO(), Ifd([], ImageData("tiles", 4, iter([b"a"] * 3))))
    with pytest.raises(ValueError, match="duplicate"):
        write_tiff(io.BytesIO(), Ifd([entry(256, TiffType.SHORT, 1, "<")] * 2))
    with pytest.raises(ValueError, match="written by the TIFF writer"):
        write_tiff(io.BytesIO(), Ifd([entry(324, TiffType.LONG, 1, "<")]))
    with pytest.raises(ValueError, match="do not fit"):
        entry(256, TiffType.SHORT, 70000, "<")


def test_rationals_are_exact_for_dyadic_and_close_otherwise():
    assert to_rational(1 / 64, signed=True) == (1, 64)
    assert to_rational(-0.3, signed=True) == (-3, 10)
    num, den = to_rational(0.6722, signed=True)
    assert abs(num / den - 0.6722) < 1e-12
    with pytest.raises(ValueError):
        to_rational(-1.0, signed=False)


# --------------------------------------------------------------------------- ljpeg


@pytest.mark.parametrize("bits", [10, 12, 16])
@pytest.mark.parametrize("components", [1, 3])
def test_ljpeg_round_trip_bit_exact(bits, components):
    rng = np.random.default_rng(bits)
    shape = (48, 32, 3) if components == 3 else (48, 32)
    tile = rng.integers(0, 1 << bits, size=shape).astype(np.uint16)
    stream = encode_ljpeg(tile, bits)
    assert sof3_header(stream) == (bits, 48, 32, components)
    assert b"\xff\xe0" not in stream[:40] and b"\xff\xee" not in stream[:40]  # no APPn
    np.testing.assert_array_equal(decode_ljpeg(stream), tile)


def test_ljpeg_rejects_codes_above_precision():
    with pytest.raises(ShapeError, match="10-bit"):
        encode_ljpeg(np.full((16, 16, 3), 1024, np.uint16), 10)


# --------------------------------------------------------------------------- helpers


def test_headroom_steps():
    assert headroom_ev(0.5) == 0.0
    assert headroom_ev(1.0) == 0.0
    assert headroom_ev(2.0) == 1.0
    assert headroom_ev(2.01) == 65 / 64  # log2(2.01) = 1.0072 -> 64.46 steps -> 65
    for vmax in (1.0001, 3.3, 17.0, 1000.0):
        h = headroom_ev(vmax)
        assert vmax / 2**h <= 1.0 < vmax / 2 ** (h - 1 / 64)


def test_choose_tile_size():
    assert choose_tile_size(6048, 8064) == 336
    assert choose_tile_size(336, 448) == 112
    assert choose_tile_size(750, 1000) == 256  # nothing divides: padded edge tiles
    assert choose_tile_size(20, 30) == 32


def test_options_validation_names_the_field():
    with pytest.raises(ConfigError, match="sample_format"):
        DngWriteOptions(sample_format="int8")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="tile_size"):
        DngWriteOptions(tile_size=100)
    with pytest.raises(ConfigError, match="byteorder"):
        DngWriteOptions(byteorder="=")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- Linear48 output


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("tile_size", [None, 64])  # 64 on 200x120: padded edge tiles
def test_uint16_ljpeg_tiles_round_trip_bit_exact(tmp_path, byteorder, tile_size):
    codes = random_codes(120, 200)
    path = tmp_path / "out.dng"
    info = write_linear_dng(
        path,
        image_from_codes(codes),
        color=make_color(),
        identity=IDENTITY,
        options=DngWriteOptions(byteorder=byteorder, tile_size=tile_size),
    )
    assert info.layout == "ljpeg-tiles" and info.headroom_ev == 0.0
    assert info.tile_size == (tile_size or choose_tile_size(120, 200))
    assert info.bytes_written == path.stat().st_size
    np.testing.assert_array_equal(raw_page_array(path), codes)
    with tifffile.TiffFile(path) as tif:
        raw = tif.pages.first.pages[0]
        assert tif.byteorder == byteorder
        assert raw.compression == 7 and raw.photometric == 34892 and raw.is_tiled
        assert raw.tags[50717].value == (65535, 65535, 65535)


def test_uint16_strips_round_trip_bit_exact(tmp_path):
    codes = random_codes(97, 130)  # odd height: a short last strip
    path = tmp_path / "strips.dng"
    info = write_linear_dng(
        path,
        image_from_codes(codes),
        color=make_color(),
        identity=IDENTITY,
        options=DngWriteOptions(layout="strips"),
    )
    assert info.layout == "strips" and info.tile_size is None
    np.testing.assert_array_equal(raw_page_array(path), codes)
    with tifffile.TiffFile(path) as tif:
        raw = tif.pages.first.pages[0]
        assert raw.compression == 1 and not raw.is_tiled
        offsets, counts = raw.dataoffsets, raw.databytecounts
        # strips are contiguous (dcraw reads them as one block from the first offset)
        assert all(o + c == n for o, c, n in zip(offsets, counts, offsets[1:], strict=False))


@pytest.mark.parametrize(
    ("fmt", "layout", "dtype"),
    [
        ("float32", "ljpeg-tiles", np.float32),
        ("float32", "strips", np.float32),
        ("float16", "ljpeg-tiles", np.float16),
    ],
)
def test_float_round_trip_with_headroom(tmp_path, fmt, layout, dtype):
    rng = np.random.default_rng(3)
    img = rng.random((3, 64, 96), dtype=np.float32) * np.float32(0.9)
    img[1, 10, 20] = 5.0  # HDR highlight: h = ceil(64 log2 5) / 64 = 149/64
    path = tmp_path / f"{fmt}.dng"
    info = write_linear_dng(
        path,
        img,
        color=make_color(),
        identity=IDENTITY,
        options=DngWriteOptions(sample_format=fmt, layout=layout),
    )
    assert info.headroom_ev == 149 / 64
    assert info.layout == ("deflate-tiles" if layout == "ljpeg-tiles" else "deflate-strips")
    stored = raw_page_array(path)
    assert stored.dtype == dtype
    expected = (img / np.float32(2**info.headroom_ev)).astype(dtype)
    np.testing.assert_array_equal(stored, expected)
    assert stored.max() <= 1.0
    with tifffile.TiffFile(path) as tif:
        ifd0, raw = tif.pages.first, tif.pages.first.pages[0]
        assert raw.compression == 8 and raw.predictor == 3
        assert raw.tags[339].value == (3, 3, 3)  # SampleFormat IEEE float
        assert raw.tags[50717].value == (1, 1, 1)  # WhiteLevel 1, explicit
        assert ifd0.tags[50707].value == b"\x01\x04\x00\x00"  # DNGBackwardVersion 1.4


def test_headroom_and_baseline_exposure_golden(tmp_path):
    """Golden tiny case, by hand.

    Pixels: v = 2.0 (max), 0.5, 1.0, 0.0, and -1 / NaN (written as 0).
    h = log2(2.0) = 1 exactly (64/64 EV), so code = 65535 * v / 2:
      2.0 -> 65535;  1.0 -> 32767.5 -> 32768 (rint, ties to even);
      0.5 -> 16383.75 -> 16384;  0 / -1 / NaN -> 0.
    BaselineExposure = -0.3 (RAW12) + 1 = 0.7 -> SRATIONAL 7/10.
    NoiseProfile (S, O) = (3e-5, 3e-8) for data halved -> (1.5e-5, 7.5e-9).
    """
    img = np.zeros((3, 16, 16), np.float32)
    img[:, 0, 0] = 2.0
    img[:, 0, 1] = 1.0
    img[:, 0, 2] = 0.5
    img[0, 0, 3] = -1.0
    img[1, 0, 3] = np.nan
    path = tmp_path / "golden.dng"
    info = write_linear_dng(path, img, color=make_color(), identity=IDENTITY)
    assert info.headroom_ev == 1.0 and info.baseline_exposure == pytest.approx(0.7)
    assert any("1 EV darker" in n for n in info.notes)
    stored = raw_page_array(path)
    assert stored[:, 0, :4].T.tolist() == [[65535] * 3, [32768] * 3, [16384] * 3, [0, 0, 0]]
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.tags[50730].value == (7, 10)
        np.testing.assert_allclose(tif.pages.first.pages[0].tags[51041].value, (1.5e-5, 7.5e-9))


def test_structure_and_required_tags(tmp_path):
    path = tmp_path / "tags.dng"
    color = make_color(profile_tone_curve=np.array([[0, 0], [1, 1]], np.float32))
    write_linear_dng(path, image_from_codes(random_codes(32, 48)), color=color, identity=IDENTITY)
    ifd0, raw = ifd_entries(path)
    for entries in (ifd0, raw):
        tags = [e[0] for e in entries]
        assert tags == sorted(set(tags))  # ascending, no duplicates
    types0 = {e[0]: e[1] for e in ifd0}
    assert types0[330] == 4  # SubIFDs as LONG, not IFD (13)
    required0 = {
        254,
        271,
        272,
        274,
        305,
        270,
        700,
        50706,
        50707,
        50708,
        50721,
        50722,
        50728,
        50730,
        50778,
        50779,
    }
    assert required0 <= set(types0)
    assert {50940, 52525, 50964, 50965}.isdisjoint(types0)  # no tone curve/PGTM/FM
    raw_tags = {e[0] for e in raw}
    assert {254, 50714, 50717, 50719, 50720} <= raw_tags
    with tifffile.TiffFile(path) as tif:
        page0 = tif.pages.first
        assert page0.tags[254].value == 1 and page0.tags[50706].value == b"\x01\x04\x00\x00"
        assert page0.photometric == 2 and page0.shape[2] == 3 and max(page0.shape[:2]) <= 256
        assert page0.pages[0].tags[254].value == 0
        assert page0.tags[305].value.startswith("Linear48 ")
        np.testing.assert_allclose(
            np.array(page0.tags[50721].value, float).reshape(9, 2)
            @ [1, 0]
            / np.array(page0.tags[50721].value, float).reshape(9, 2)[:, 1],
            CM1.ravel(),
        )


def test_forward_matrix_only_when_given_and_neutral_derived(tmp_path):
    fm = np.array([[0.6, 0.3, 0.1], [0.25, 0.7, 0.05], [0.05, 0.1, 0.65]])
    color = make_color(as_shot_neutral=None, forward_matrix1=fm, analog_balance=[2, 1, 1.8])
    path = tmp_path / "fm.dng"
    info = write_linear_dng(
        path, image_from_codes(random_codes(32, 48)), color=color, identity=IDENTITY
    )
    assert any("AsShotNeutral" in n for n in info.notes)
    neutral, _ = camera_neutral(color)
    assert neutral[1] == 1.0 and np.all(neutral > 0)
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags
        assert 50964 in tags and 50965 not in tags and 50727 in tags
        stored = np.array(tags[50728].value, float).reshape(3, 2)
        np.testing.assert_allclose(stored[:, 0] / stored[:, 1], neutral, rtol=1e-6)
    no_matrix, note = camera_neutral(ColorMetadata())
    assert no_matrix.tolist() == [1, 1, 1] and "1 1 1" in note


def test_progress_events_per_tile(tmp_path):
    events: list[Progress] = []
    info = write_linear_dng(
        tmp_path / "p.dng",
        image_from_codes(random_codes(64, 96)),
        color=make_color(),
        identity=IDENTITY,
        options=DngWriteOptions(tile_size=32, threads=2),
        progress=events.append,
    )
    assert info.tile_size == 32
    assert [e.done for e in events] == list(range(1, 7)) and {e.total for e in events} == {6}
    assert {e.stage for e in events} == {"write"}


@pytest.mark.parametrize("threads", [1, 3])
def test_cancel_mid_write_leaves_no_file(tmp_path, threads):
    token = CancelToken()

    def progress(p: Progress) -> None:
        if p.done == 2:
            token.cancel()

    path = tmp_path / "cancel.dng"
    with pytest.raises(CancelledError):
        write_linear_dng(
            path,
            image_from_codes(random_codes(64, 96)),
            color=make_color(),
            identity=IDENTITY,
            options=DngWriteOptions(tile_size=16, threads=threads),
            progress=progress,
            cancel=token,
        )
    assert list(tmp_path.iterdir()) == []


def test_overwrite_false_keeps_original(tmp_path):
    path = tmp_path / "exists.dng"
    path.write_bytes(b"original")
    with pytest.raises(OutputError, match="already exists"):
        write_linear_dng(
            path,
            image_from_codes(random_codes(16, 16)),
            color=make_color(),
            identity=IDENTITY,
            options=DngWriteOptions(overwrite=False),
        )
    assert path.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["exists.dng"]


def test_unwritable_destinations(tmp_path):
    img = image_from_codes(random_codes(16, 16))
    with pytest.raises(OutputError, match="does not exist"):
        write_linear_dng(tmp_path / "missing" / "x.dng", img, color=make_color(), identity=IDENTITY)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OutputError):
        write_linear_dng(tmp_path / "file" / "x.dng", img, color=make_color(), identity=IDENTITY)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 8, 8), np.float32),
        np.zeros((8, 8), np.float32),
        np.zeros((3, 8, 8), np.uint16),
        np.zeros((3, 0, 8), np.float32),
    ],
)
def test_bad_input_raises_shape_error(tmp_path, bad):
    with pytest.raises(ShapeError):
        write_linear_dng(tmp_path / "bad.dng", bad, color=make_color(), identity=IDENTITY)
    assert list(tmp_path.iterdir()) == []


def test_missing_color_matrix_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="color_matrix1"):
        write_linear_dng(
            tmp_path / "x.dng",
            np.zeros((3, 8, 8), np.float32),
            color=ColorMetadata(),
            identity=IDENTITY,
        )


def test_provenance_round_trip(tmp_path):
    prov = {
        "software": "Linear48 0.1.0",
        "method": "two-head",
        "model_sha256": "ab" * 32,
        "anchor_psnr_db": np.float32(41.25),
        "note": 'quotes " and <tags> & ampersands',
        "nested": {"gains": [1.5, 2.0]},
    }
    path = tmp_path / "prov.dng"
    write_linear_dng(
        path,
        image_from_codes(random_codes(16, 16)),
        color=make_color(),
        identity=IDENTITY,
        provenance=prov,
    )
    back = read_provenance(path)
    assert back == {**prov, "anchor_psnr_db": 41.25}
    plain = tmp_path / "plain.dng"
    write_linear_dng(
        plain, image_from_codes(random_codes(16, 16)), color=make_color(), identity=IDENTITY
    )
    assert read_provenance(plain) is None
    junk = tmp_path / "junk.dng"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(NotADngError):
        read_provenance(junk)
    with pytest.raises(FileNotReadableError):
        read_provenance(tmp_path / "nope.dng")


# --------------------------------------------------------------------------- simulator


@pytest.mark.parametrize("pattern", ["BGGR", "RGGB"])
@pytest.mark.parametrize("black", [528, np.array([[520.0, 530.0], [531.0, 540.0]])])
def test_bayer_dng_reads_back_with_rawpy(tmp_path, pattern, black):
    rng = np.random.default_rng(7)
    h, w, active_w = 96, 136, 128  # 8 zero padding columns on the right, like an iPhone
    stored = np.zeros((h, w), np.uint16)
    stored[:, :active_w] = rng.integers(520, 4096, size=(h, active_w))
    path = tmp_path / "bayer.dng"
    cfa = CfaPattern.from_name(pattern)
    info = write_bayer_dng(
        path,
        stored,
        cfa=cfa,
        black=black,
        white=4095,
        color=make_color(as_shot_neutral=np.array([0.41873, 1, 0.57812])),
        identity=IDENTITY,
        active_area=(0, 0, h, active_w),
        tile_shape=(48, 40),
        opcode_list3=b"\x00\x00\x00\x00",
    )
    assert info.layout == "ljpeg-tiles"
    with rawpy.imread(str(path)) as raw:
        visible = raw.raw_image_visible.copy()
        got_pattern = CfaPattern.from_array(raw.raw_pattern)
        black_rawpy = list(raw.black_level_per_channel)
        white, wb = raw.white_level, list(raw.camera_whitebalance)
    np.testing.assert_array_equal(visible, stored[:, :active_w])
    assert got_pattern == cfa
    blk = np.broadcast_to(np.asarray(black, float), (2, 2))
    # rawpy lists black per colour index R, G, B, G2 (G2 = the green on blue rows)
    offsets = cfa.plane_offsets()
    expect = [blk[offsets[n]] for n in ("R", "Gr", "B", "Gb")]
    assert black_rawpy == pytest.approx(expect)
    assert white == 4095
    assert wb[:3] == pytest.approx([1 / 0.41873, 1.0, 1 / 0.57812], rel=1e-4)
    with tifffile.TiffFile(path) as tif:
        raw_ifd = tif.pages.first.pages[0]
        assert tif.byteorder == ">" and raw_ifd.tags[254].value == 0
        assert raw_ifd.tags[51022].value == b"\x00\x00\x00\x00"
        assert (raw_ifd.tilelength, raw_ifd.tilewidth) == (48, 40)


def test_bayer_dng_rejects_odd_active_area_and_wide_codes(tmp_path):
    stored = np.full((32, 32), 600, np.uint16)
    common = dict(
        cfa=CfaPattern.from_name("RGGB"),
        black=528,
        white=4095,
        color=make_color(),
        identity=IDENTITY,
    )
    with pytest.raises(ShapeError, match="odd offset"):
        write_bayer_dng(tmp_path / "odd.dng", stored, active_area=(1, 0, 31, 32), **common)
    with pytest.raises(ShapeError, match="12 bits"):
        write_bayer_dng(
            tmp_path / "wide.dng", stored | np.uint16(1 << 13), bits_per_sample=12, **common
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bits", [10, 16])
def test_linearraw_dng_round_trip(tmp_path, bits):
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 1 << bits, size=(3, 60, 84)).astype(np.uint16)
    table = np.minimum(np.arange(1 << bits) * 40, 65535).astype(np.uint16)
    pgtm = bytes(range(256)) * 3
    path = tmp_path / "proraw.dng"
    write_linearraw_dng(
        path,
        codes,
        bits_per_sample=bits,
        linearization_table=table,
        black=[0, 0, 0],
        white=[65535] * 3,
        color=make_color(profile_tone_curve=np.array([[0, 0], [1, 1.0]])),
        identity=IDENTITY,
        pgtm=pgtm,
        tile_shape=(30, 28),
    )
    np.testing.assert_array_equal(raw_page_array(path), codes)
    with tifffile.TiffFile(path) as tif:
        raw = tif.pages.first.pages[0]
        assert raw.bitspersample == bits and raw.compression == 7
        np.testing.assert_array_equal(raw.tags[50712].value, table)
        assert raw.tags[52525].value == pgtm and raw.tags[52525].dtype == 7
        assert 50940 in tif.pages.first.tags  # the simulated ProRAW keeps its tone curve
    with pytest.raises(ShapeError, match="bits"):
        write_linearraw_dng(
            tmp_path / "x.dng",
            codes | np.uint16(1 << 15),
            bits_per_sample=12,
            linearization_table=None,
            black=[0] * 3,
            white=[4095] * 3,
            color=make_color(),
            identity=IDENTITY,
        )
