"""RAW12 reader: a Bayer CFA DNG to a :class:`RawCapture` on the Mosaic12 scale.

Pixels are decoded by rawpy (LibRaw) and copied out inside its ``with`` block; every tag
(CFA phase, levels, ActiveArea, DefaultCrop, colour, opcodes) is parsed from the file with
tifffile, never assumed. Tile/strip extents are checked before LibRaw runs, because LibRaw
returns zeros instead of an error for truncated data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from core.cfa import CfaPattern
from core.errors import (
    AbsurdSizeError,
    CorruptDataError,
    InputFileError,
    ShapeError,
    UnsupportedFormatError,
    WrongKindError,
)
from core.io.captures import RawCapture
from core.io.dngfile import (
    PHOTOMETRIC_CFA,
    PHOTOMETRIC_LINEAR_RAW,
    DngHandle,
    check_data_extents,
    check_dimensions,
    compression_name,
    int_tuple,
    open_dng,
    rational_tag,
    read_color_metadata,
    read_identity,
)
from core.io.opcodes import OpcodeList, parse_opcode_list

log = logging.getLogger(__name__)

#: Compression codes LibRaw decodes for Bayer DNGs.
SUPPORTED_BAYER_COMPRESSION = {1: "uncompressed", 7: "lossless JPEG", 8: "Deflate"}
OPCODE_TAGS = {1: 51008, 2: 51009, 3: 51022}


def _cfa_from_tags(handle: DngHandle) -> CfaPattern:
    dims = handle.tag(33421)
    pattern = handle.tag(33422)
    if dims is None or pattern is None:
        raise CorruptDataError("Bayer DNG without CFAPattern/CFARepeatPatternDim", handle.path)
    dims_t = int_tuple(np.atleast_1d(dims))
    if dims_t != (2, 2):
        raise UnsupportedFormatError(
            f"CFA repeat pattern {dims_t} is not a 2x2 Bayer pattern (X-Trans and quad "
            "patterns are not RAW12 files)",
            handle.path,
        )
    raw = (
        np.frombuffer(bytes(pattern), dtype=np.uint8)
        if isinstance(pattern, (bytes, bytearray))
        else np.asarray(pattern, dtype=np.uint8).ravel()
    )
    plane_color = handle.tag(50710)
    planes = (
        np.frombuffer(bytes(plane_color), dtype=np.uint8)
        if isinstance(plane_color, (bytes, bytearray))
        else np.array([0, 1, 2], np.uint8)
    )
    if raw.size != 4 or raw.max(initial=0) >= planes.size:
        raise CorruptDataError(f"CFAPattern {raw.tolist()} is not a 2x2 pattern", handle.path)
    colors = planes[raw]
    try:
        return CfaPattern.from_array(colors.reshape(2, 2))
    except ShapeError as err:
        raise UnsupportedFormatError(
            f"CFA colours {colors.tolist()} are not R/G/B Bayer", handle.path
        ) from err


def _active_area(handle: DngHandle, h: int, w: int) -> tuple[int, int, int, int]:
    values = rational_tag(handle, 50829, rational=False)
    if values is None:
        return (0, 0, h, w)
    top, left, bottom, right = int_tuple(values)[:4]
    if not (0 <= top < bottom <= h and 0 <= left < right <= w):
        raise CorruptDataError(
            f"ActiveArea {top, left, bottom, right} lies outside the {w}x{h} image", handle.path
        )
    return top, left, bottom, right


def _default_crop(handle: DngHandle, ah: int, aw: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the DefaultCrop inside the active area (whole area when absent)."""
    origin = rational_tag(handle, 50719)
    size = rational_tag(handle, 50720)
    x, y = int_tuple(origin)[:2] if origin is not None else (0, 0)
    cw, ch = int_tuple(size)[:2] if size is not None else (aw - x, ah - y)
    if x < 0 or y < 0 or cw <= 0 or ch <= 0 or x + cw > aw or y + ch > ah:
        raise CorruptDataError(
            f"DefaultCrop origin {x, y} size {cw}x{ch} exceeds the {aw}x{ah} active area",
            handle.path,
        )
    return x, y, cw, ch


def _black_pattern(handle: DngHandle, h: int, w: int) -> np.ndarray:
    """Per-pixel black level (h, w) float64 over the active area (BlackLevel + deltas)."""
    dims = rational_tag(handle, 50713, rational=False)
    rr, rc = int_tuple(dims)[:2] if dims is not None else (1, 1)
    levels = rational_tag(handle, 50714)
    if levels is None:
        levels = np.zeros(1)
    if rr <= 0 or rc <= 0 or rr > 8 or rc > 8 or levels.size < rr * rc:
        raise CorruptDataError(
            f"BlackLevel has {levels.size} values for a {rr}x{rc} repeat pattern", handle.path
        )
    block = levels[: rr * rc].reshape(rr, rc)
    black = np.tile(block, (-(-h // rr), -(-w // rc)))[:h, :w]
    delta_h = rational_tag(handle, 50715)
    delta_v = rational_tag(handle, 50716)
    if delta_h is not None and delta_h.size == w:
        black = black + delta_h[None, :]
    if delta_v is not None and delta_v.size == h:
        black = black + delta_v[:, None]
    return black


def _white_level(handle: DngHandle) -> float:
    values = rational_tag(handle, 50717, rational=False)
    if values is not None and values.size:
        return float(values[0])
    bps = int(np.atleast_1d(handle.raw.bitspersample)[0])
    return float(2**bps - 1)


def _opcode_lists(handle: DngHandle) -> dict[int, OpcodeList]:
    out: dict[int, OpcodeList] = {}
    for list_id, code in OPCODE_TAGS.items():
        tag = handle.raw.tags.get(code) or handle.ifd0.tags.get(code)
        if tag is None:
            continue
        data = (
            tag.value
            if isinstance(tag.value, (bytes, bytearray))
            else bytes(np.asarray(tag.value, dtype=np.uint8))
        )
        try:
            out[list_id] = parse_opcode_list(bytes(data), list_id)
        except InputFileError as err:
            raise type(err)(f"OpcodeList{list_id}: {err.reason}", handle.path) from err
    return out


def _decode_with_rawpy(path: Path, stored: tuple[int, int]) -> np.ndarray:
    """Full stored raw frame (H, W) uint16 via LibRaw, copied out of its ``with`` block."""
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            image = np.array(raw.raw_image, dtype=np.uint16, copy=True)
    except (rawpy.LibRawError, OSError) as err:  # LibRawError covers IO/data/format errors
        raise CorruptDataError(f"LibRaw cannot decode the raw data ({err})", path) from err
    if image.shape != stored:
        raise CorruptDataError(
            f"LibRaw decoded {image.shape[1]}x{image.shape[0]} but the file declares "
            f"{stored[1]}x{stored[0]}",
            path,
        )
    return image


def read_raw12(path: str | Path) -> RawCapture:
    """Read a Bayer CFA DNG (RAW12) into Mosaic12.

    Returns:
        RawCapture whose ``mosaic`` is float32 (H12, W12): the active area after
        DefaultCrop, ``(raw - black) / (white - black)`` per pixel (1.0 = clip; noise may
        go slightly below 0).

    Raises:
        FileNotReadableError, NotADngError: not a readable DNG.
        WrongKindError: a LinearRaw (ProRAW) or other non-Bayer DNG.
        TruncatedFileError: image data runs past the end of the file.
        UnsupportedFormatError: compression or CFA layout LibRaw/Linear48 cannot handle.
        AbsurdSizeError, CorruptDataError: implausible or inconsistent tags.
    """
    file = Path(path)
    with open_dng(file) as handle:
        photometric = int(handle.raw.photometric)
        if photometric == PHOTOMETRIC_LINEAR_RAW:
            raise WrongKindError(
                "this is a demosaiced LinearRaw DNG (like ProRAW), not a Bayer RAW; pass it as "
                "--proraw48",
                file,
                expected="Bayer CFA",
                actual="LinearRaw",
            )
        if photometric != PHOTOMETRIC_CFA:
            raise WrongKindError(
                f"raw image is not a Bayer CFA (photometric {photometric})",
                file,
                expected="Bayer CFA",
                actual=f"photometric {photometric}",
            )
        if int(handle.raw.samplesperpixel) != 1:
            raise WrongKindError(
                "Bayer raw must have one sample per pixel",
                file,
                expected="1 sample",
                actual=str(handle.raw.samplesperpixel),
            )
        compression = int(handle.raw.compression)
        if compression not in SUPPORTED_BAYER_COMPRESSION:
            raise UnsupportedFormatError(
                f"raw data uses {compression_name(compression)}, which Linear48 cannot read for "
                "Bayer files",
                file,
            )
        h, w = check_dimensions(handle)
        check_data_extents(handle)
        cfa_active = _cfa_from_tags(handle)
        top, left, bottom, right = _active_area(handle, h, w)
        ah, aw = bottom - top, right - left
        cx, cy, cw, ch = _default_crop(handle, ah, aw)
        black_active = _black_pattern(handle, ah, aw)
        white = _white_level(handle)
        color = read_color_metadata(handle)
        identity = read_identity(handle)
        opcode_lists = _opcode_lists(handle)
    if ch < 2 or cw < 2:
        raise AbsurdSizeError(f"usable image is only {cw}x{ch} pixels", file)
    stored = _decode_with_rawpy(file, (h, w))
    raw = stored[top + cy : top + cy + ch, left + cx : left + cx + cw].astype(np.float32)
    black = black_active[cy : cy + ch, cx : cx + cw]
    if np.any(white <= black):
        raise CorruptDataError(f"WhiteLevel {white:g} is not above BlackLevel", file)
    mosaic = ((raw - black) / (white - black)).astype(np.float32)
    cfa = cfa_active.shifted(cy % 2, cx % 2)
    black_2x2 = np.array(
        [[float(black[dy::2, dx::2].mean()) for dx in range(2)] for dy in range(2)]
    )
    if not np.any(stored):
        log.warning("%s: raw data decodes to all zeros", file.name)
    return RawCapture(
        path=file,
        mosaic=mosaic,
        cfa=cfa,
        black=black_2x2,
        white=white,
        color=color,
        identity=identity,
        active_area=(top, left, bottom, right),
        crop_origin=(cx, cy),
        opcode_lists=opcode_lists,
        stored_size=(h, w),
        compression=compression,
    )
