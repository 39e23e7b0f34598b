"""RAW12 / ProRAW48 readers: real files, simulated files, and every kind of bad input.

Bad inputs are made from a valid simulated pair by byte surgery (truncation, corrupted
tile data, patched tags) so each test pins exactly one defect. Every bad input must raise
the typed error with a one-line message, and no reader writes anything.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile

from core.errors import (
    AbsurdSizeError,
    CorruptDataError,
    FileNotReadableError,
    InputFileError,
    NotADngError,
    PairMismatchError,
    TruncatedFileError,
    UnsupportedFormatError,
    WrongKindError,
)
from core.io.pair import load_pair
from core.io.proraw48 import read_proraw48
from core.io.raw12 import read_raw12
from tests.conftest import real_file


def _patch_tag(src: Path, dst: Path, code: int, value: int, *, raw_ifd: bool = True) -> Path:
    """Copy ``src`` to ``dst`` and overwrite the inline SHORT/LONG value of tag ``code``."""
    shutil.copyfile(src, dst)
    with tifffile.TiffFile(src) as tif:
        page = tif.pages.first
        if raw_ifd and page.pages is not None and len(page.pages):
            page = page.pages[0]
        tag = page.tags[code]
        order, dtype, offset = tif.byteorder, int(tag.dtype), tag.valueoffset
    fmt = {3: "H", 4: "I"}[dtype]
    with dst.open("r+b") as handle:
        handle.seek(offset)
        handle.write(struct.pack(order + fmt, value))
    return dst


def _tile_span(path: Path) -> tuple[int, int]:
    with tifffile.TiffFile(path) as tif:
        raw = tif.pages.first.pages[0]
        return int(raw.dataoffsets[0]), int(raw.databytecounts[0])


# --- real files ---------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_uncompressed_bayer_reads_with_active_area_and_crop() -> None:
    cap = read_raw12(real_file("bayer_canon550d_magiclantern_colorchart.dng"))
    # ActiveArea (26, 152, 1182, 1886) -> 1734x1156; DefaultCrop 0,0 1734x1156.
    assert cap.shape == (1156, 1734)
    assert cap.cfa.name == "RGGB"
    assert cap.white == 15000
    np.testing.assert_allclose(cap.black, 2056)
    assert cap.mosaic.dtype == np.float32
    # Real chart content: mostly inside (0, 1], a few noise pixels below black.
    assert 0.02 < float(np.median(cap.mosaic)) < 0.9
    assert cap.mosaic.max() <= 1.0 + 1e-6


@pytest.mark.real_data
def test_real_stripped_bayer_is_reported_truncated_not_zeros() -> None:
    # rawpy returns all zeros for this header-only file; we must refuse it instead.
    with pytest.raises(TruncatedFileError, match=r"incomplete|truncated"):
        read_raw12(real_file("bayer_canon350d_adobedngconverter_headeronly.dng"))


@pytest.mark.real_data
def test_real_proraw_header_tags_and_pgtm_without_pixels() -> None:
    path = real_file("proraw_iphone12pro_IMG_1361_headeronly.dng")
    cap = read_proraw48(path, decode=False)
    assert cap.bits_per_sample == 12 and cap.compression == 7
    assert cap.linearization_table is not None and cap.linearization_table.size == 4096
    assert cap.pgtm is not None and (cap.pgtm.points_v, cap.pgtm.points_h) == (6, 8)
    assert cap.identity.orientation == 6
    with pytest.raises(TruncatedFileError, match="truncated"):
        read_proraw48(path)


@pytest.mark.real_data
def test_real_raf_is_not_a_dng() -> None:
    with pytest.raises(NotADngError, match="not a DNG"):
        read_raw12(real_file("raf_fujifilm_s5pro_headeronly.raf"))


# --- simulated files: round trips ---------------------------------------------------------


def test_simulated_raw12_matches_codes(sim_pair_dir: Path) -> None:
    cap = read_raw12(sim_pair_dir / "raw12.dng")
    assert cap.shape == (96, 128) and cap.cfa.name == "BGGR"
    assert cap.white == 4095
    np.testing.assert_allclose(cap.black, 528)
    assert 3 in cap.opcode_lists
    with tifffile.TiffFile(sim_pair_dir / "raw12.dng") as tif:
        codes = tif.pages.first.pages[0].asarray()[:96, :128].astype(np.float32)
    np.testing.assert_allclose(cap.mosaic, (codes - 528) / (4095 - 528), atol=1e-6)


def test_simulated_proraw_linearizes_through_table(sim_pair_dir: Path) -> None:
    cap = read_proraw48(sim_pair_dir / "proraw48.dng")
    assert cap.shape == (192, 256)
    assert cap.image.shape == (3, 192, 256) and cap.image.dtype == np.float32
    assert cap.linearization_table is not None
    with tifffile.TiffFile(sim_pair_dir / "proraw48.dng") as tif:
        codes = tif.pages.first.pages[0].asarray()
    expected = cap.linearization_table.astype(np.float32)[codes] / 65535.0
    np.testing.assert_allclose(cap.image, np.moveaxis(expected, -1, 0), atol=1e-6)


@pytest.mark.parametrize(
    "layout",
    [{}, {"tile": (16, 32), "compression": "zlib"}, {"rowsperstrip": 7, "compression": "zlib"}],
    ids=["one-strip", "deflate-tiles", "deflate-strips"],
)
def test_streamed_decode_places_every_segment_inside_the_crop(
    tmp_path: Path, layout: dict[str, object]
) -> None:
    # A LinearRaw DNG whose tiles overhang the image (45x70 in 16x32 tiles) and whose
    # DefaultCrop (origin 3,5, size 60x31) cuts through segments: the tile-by-tile decode
    # must put each segment's pixels where the whole-frame decode would.
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4096, (45, 70, 3), dtype=np.uint16)
    path = tmp_path / "linear.dng"
    tifffile.imwrite(
        path,
        codes,
        photometric=34892,
        planarconfig="contig",
        extratags=[
            (50706, "B", 4, (1, 4, 0, 0), True),
            (50714, "H", 1, 64, True),
            (50717, "H", 1, 4000, True),
            (50719, "H", 2, (3, 5), True),
            (50720, "H", 2, (60, 31), True),
        ],
        **layout,  # type: ignore[arg-type]
    )
    cap = read_proraw48(path)
    expected = (codes[5:36, 3:63].astype(np.float32) - 64) / np.float32(4000 - 64)
    np.testing.assert_allclose(cap.image, np.moveaxis(expected, -1, 0), atol=1e-6)


def test_simulated_pair_anchor_matches_truth(sim_pair_dir: Path) -> None:
    from core.forward import forward_np

    pair = load_pair(sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng")
    truth = np.load(sim_pair_dir / "truth.npy")
    ideal = forward_np(truth, pair.raw12.cfa)
    ok = ideal < 0.9
    # Shading-corrected anchor = noise-free binned truth up to noise and 12-bit quantisation.
    err = pair.anchor[ok] - ideal[ok]
    assert abs(float(np.median(err))) < 2e-3
    assert float(np.std(err)) < 0.02
    assert pair.shading_applied == ("OpcodeList3:GainMap",)


# --- bad input ----------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotReadableError, match="not found"):
        read_raw12(tmp_path / "nope.dng")


@pytest.mark.parametrize("content", [b"", b"hello world" * 10, b"\xff\xd8\xff\xe0" + bytes(100)])
def test_non_dng_bytes(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.dng"
    path.write_bytes(content)
    with pytest.raises(NotADngError):
        read_raw12(path)
    with pytest.raises(NotADngError):
        read_proraw48(path)


def test_plain_tiff_is_not_a_dng(tmp_path: Path) -> None:
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16))
    with pytest.raises(NotADngError, match="no DNGVersion"):
        read_raw12(path)


def test_wrong_kind_both_ways(sim_pair_dir: Path) -> None:
    with pytest.raises(WrongKindError, match="--proraw48") as err:
        read_raw12(sim_pair_dir / "proraw48.dng")
    assert err.value.expected == "Bayer CFA"
    with pytest.raises(WrongKindError, match="--raw12"):
        read_proraw48(sim_pair_dir / "raw12.dng")


@pytest.mark.parametrize("name", ["raw12.dng", "proraw48.dng"])
def test_truncated_files(sim_pair_dir: Path, tmp_path: Path, name: str) -> None:
    data = (sim_pair_dir / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) * 2 // 3])
    reader = read_raw12 if name == "raw12.dng" else read_proraw48
    with pytest.raises(TruncatedFileError, match="truncated"):
        reader(path)


def test_corrupted_tile_data(sim_pair_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "proraw48.dng"
    shutil.copyfile(sim_pair_dir / "proraw48.dng", path)
    offset, count = _tile_span(path)
    with path.open("r+b") as handle:  # keep the SOI marker, scramble the JPEG headers
        handle.seek(offset + 2)
        handle.write(bytes(range(7, 7 + min(200, count - 2))))
    with pytest.raises(CorruptDataError, match="cannot be decoded"):
        read_proraw48(path)


@pytest.mark.parametrize("name", ["raw12.dng", "proraw48.dng"])
def test_unsupported_compression(sim_pair_dir: Path, tmp_path: Path, name: str) -> None:
    path = _patch_tag(sim_pair_dir / name, tmp_path / name, 259, 34712)  # JPEG 2000
    reader = read_raw12 if name == "raw12.dng" else read_proraw48
    with pytest.raises(UnsupportedFormatError, match=r"JPEG|compression 34712"):
        reader(path)


@pytest.mark.parametrize("name", ["raw12.dng", "proraw48.dng"])
def test_absurd_dimensions(sim_pair_dir: Path, tmp_path: Path, name: str) -> None:
    path = _patch_tag(sim_pair_dir / name, tmp_path / name, 256, 1_000_000)
    reader = read_raw12 if name == "raw12.dng" else read_proraw48
    with pytest.raises(AbsurdSizeError, match="implausible"):
        reader(path)


def test_mismatched_pair_names_both_sizes(sim_pair_dir: Path, tmp_path: Path) -> None:
    from core.simulate.pair import SimConfig, simulate_pair, write_pair

    other = write_pair(
        simulate_pair(SimConfig(scene="foliage", w12=96, h12=64, seed=1)), tmp_path / "other"
    )
    with pytest.raises(PairMismatchError, match="256x192 but RAW12 is 96x64") as err:
        load_pair(other.raw12, sim_pair_dir / "proraw48.dng")
    assert err.value.expected == (192, 128)


def test_every_error_is_one_readable_line(sim_pair_dir: Path, tmp_path: Path) -> None:
    data = (sim_pair_dir / "raw12.dng").read_bytes()
    path = tmp_path / "cut.dng"
    path.write_bytes(data[:5000])
    with pytest.raises(InputFileError) as err:
        read_raw12(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith("cut.dng: ")
    assert list(tmp_path.iterdir()) == [path]  # the reader wrote nothing


def test_banded_colour_matrix_equals_the_whole_frame_product() -> None:
    # Band edges (256 rows) fall inside the 601-row frame: every band must land in place.
    from core.io.pair import apply_matrix_banded

    rng = np.random.default_rng(0)
    img = rng.uniform(0, 2, (3, 601, 333)).astype(np.float32)
    m = rng.normal(size=(3, 3))
    expected = np.einsum("ij,jhw->ihw", m.astype(np.float32), img)
    np.testing.assert_allclose(apply_matrix_banded(m, img), expected, rtol=1e-6, atol=1e-6)
