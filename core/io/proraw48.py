"""ProRAW48 reader: a demosaiced LinearRaw DNG to a :class:`ProRawCapture`.

Decoding goes through tifffile + imagecodecs, which read lossless JPEG (7) and JPEG XL
(52546) tiles (LibRaw cannot read the JPEG XL ones). Stored codes go through the
``LinearizationTable`` (when present), then ``BlackLevel``/``WhiteLevel`` per sample.
The ProfileGainTableMap (tag 52525; raw IFD, or IFD0 as the 1.7.1 spec intended) is parsed
into a typed object; it is *not* applied here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import tifffile

from core.errors import (
    CorruptDataError,
    InputFileError,
    UnsupportedFormatError,
    WrongKindError,
)
from core.io.captures import ProRawCapture
from core.io.dngfile import (
    PHOTOMETRIC_CFA,
    PHOTOMETRIC_LINEAR_RAW,
    TAG_PGTM,
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
from core.io.pgtm import ProfileGainTableMap, parse_pgtm

log = logging.getLogger(__name__)

#: Compression codes we decode for LinearRaw: uncompressed, lossless JPEG, Deflate, JPEG XL.
SUPPORTED_LINEAR_COMPRESSION = {1, 7, 8, 52546}
#: Rows decoded to float per step, to bound the peak memory of the conversion to float32.
_ROW_BAND = 512


def _levels(handle: DngHandle, code: int, default: float, spp: int) -> np.ndarray:
    values = rational_tag(handle, code)
    if values is None or values.size == 0:
        return np.full(spp, default)
    if values.size == 1:
        return np.full(spp, float(values[0]))
    if values.size < spp:
        raise CorruptDataError(
            f"tag {code} has {values.size} values for {spp} samples", handle.path
        )
    return values[:spp].astype(np.float64)


def _read_pgtm(handle: DngHandle) -> ProfileGainTableMap | None:
    tag = handle.raw.tags.get(TAG_PGTM) or handle.ifd0.tags.get(TAG_PGTM)
    if tag is None:
        return None
    data = (
        tag.value
        if isinstance(tag.value, (bytes, bytearray))
        else bytes(np.asarray(tag.value, dtype=np.uint8))
    )
    try:
        if handle.tif.byteorder == ">":
            return parse_pgtm(bytes(data), byteorder=">")
        return parse_pgtm(bytes(data), byteorder="<")
    except InputFileError as err:
        raise type(err)(f"ProfileGainTableMap: {err.reason}", handle.path) from err


def _linearization_table(handle: DngHandle) -> np.ndarray | None:
    tag = handle.raw.tags.get(50712)
    if tag is None:
        return None
    table = np.asarray(tag.value, dtype=np.float64).ravel()
    if table.size < 2 or table.size > 65536 or not np.all(np.isfinite(table)):
        raise CorruptDataError(f"LinearizationTable has {table.size} entries", handle.path)
    return table


def read_proraw48(path: str | Path, *, decode: bool = True) -> ProRawCapture:
    """Read a LinearRaw DNG (ProRAW48).

    Args:
        path: the DNG.
        decode: False reads the tags only (``image`` is then an empty (3, 0, 0) array);
            used by ``inspect`` and pair matching.

    Returns:
        ProRawCapture whose ``image`` is float32 (3, H48, W48), 1.0 = white level, in the
        file's stored colour space (not yet mapped to RAW12's camera space).

    Raises:
        FileNotReadableError, NotADngError: not a readable DNG.
        WrongKindError: a Bayer DNG (RAW12) or a non-RGB LinearRaw.
        TruncatedFileError: tiles run past the end of the file.
        UnsupportedFormatError: a compression we cannot decode.
        AbsurdSizeError, CorruptDataError: implausible tags or undecodable data.
    """
    file = Path(path)
    with open_dng(file) as handle:
        photometric = int(handle.raw.photometric)
        if photometric == PHOTOMETRIC_CFA:
            raise WrongKindError(
                "this is a Bayer RAW DNG, not a demosaiced ProRAW; pass it as --raw12",
                file,
                expected="LinearRaw",
                actual="Bayer CFA",
            )
        if photometric != PHOTOMETRIC_LINEAR_RAW:
            raise WrongKindError(
                f"raw image is not LinearRaw (photometric {photometric})",
                file,
                expected="LinearRaw",
                actual=f"photometric {photometric}",
            )
        spp = int(handle.raw.samplesperpixel)
        if spp != 3:
            raise WrongKindError(
                f"LinearRaw has {spp} samples per pixel; ProRAW has 3",
                file,
                expected="3 samples",
                actual=f"{spp} samples",
            )
        compression = int(handle.raw.compression)
        if compression not in SUPPORTED_LINEAR_COMPRESSION:
            raise UnsupportedFormatError(
                f"raw data uses {compression_name(compression)}, which Linear48 cannot decode", file
            )
        h, w = check_dimensions(handle)
        table = _linearization_table(handle)
        black = _levels(handle, 50714, 0.0, spp)
        bps = int(np.atleast_1d(handle.raw.bitspersample)[0])
        default_white = float(table[-1]) if table is not None else float(2**bps - 1)
        white = _levels(handle, 50717, default_white, spp)
        if np.any(white <= black):
            raise CorruptDataError("WhiteLevel is not above BlackLevel", file)
        origin = rational_tag(handle, 50719)
        size = rational_tag(handle, 50720)
        cx, cy = int_tuple(origin)[:2] if origin is not None else (0, 0)
        cw, ch = int_tuple(size)[:2] if size is not None else (w - cx, h - cy)
        if cx < 0 or cy < 0 or cw <= 0 or ch <= 0 or cx + cw > w or cy + ch > h:
            raise CorruptDataError(f"DefaultCrop exceeds the {w}x{h} image", file)
        color = read_color_metadata(handle)
        identity = read_identity(handle)
        pgtm = _read_pgtm(handle)
        image = np.zeros((3, 0, 0), np.float32)
        if decode:
            check_data_extents(handle)
            try:
                image = _decode_streamed(handle.raw, (cx, cy, cw, ch), table, black, white)
            except (ValueError, RuntimeError, OSError, IndexError) as err:
                raise CorruptDataError(f"image tiles cannot be decoded ({err})", file) from err
            except Exception as err:  # imagecodecs raises its own codec-specific errors
                if type(err).__module__.startswith("imagecodecs"):
                    raise CorruptDataError(f"image tiles cannot be decoded ({err})", file) from err
                raise
    log.info(
        "%s: LinearRaw %dx%d, %s, %d-bit, LUT %s, PGTM %s",
        file.name,
        cw,
        ch,
        compression_name(compression),
        bps,
        "yes" if table is not None else "no",
        "yes" if pgtm is not None else "no",
    )
    return ProRawCapture(
        path=file,
        image=image,
        color=color,
        identity=identity,
        pgtm=pgtm,
        linearization_table=table.astype(np.uint16)
        if table is not None and table.max(initial=0) <= 65535
        else table,
        black=black,
        white=white,
        bits_per_sample=bps,
        compression=compression,
        crop=(cx, cy, cw, ch),
    )


def _decode_streamed(
    page: tifffile.TiffPage,
    crop: tuple[int, int, int, int],
    table: np.ndarray | None,
    black: np.ndarray,
    white: np.ndarray,
) -> np.ndarray:
    """Decode the raw IFD tile by tile (or strip by strip) straight into float32.

    Each decoded segment is linearized into its place in the cropped frame as soon as it
    is decoded, so the stored codes never exist as a whole frame (290 MB of uint16 at
    8064x6048): peak memory is the float32 result plus a few segments. Missing (empty)
    segments read as code 0, as ``TiffPage.asarray`` fills them.

    Args:
        crop: DefaultCrop (x, y, width, height) in pixels of the stored image.
    Returns: float32 (3, height, width), 1.0 = white level.
    """
    cx, cy, cw, ch = crop
    out = np.empty((3, ch, cw), np.float32)
    zero = _linearize(np.zeros((1, 1, 3), np.uint16), table, black, white)[:, 0, 0]
    out[:] = zero[:, None, None]
    h, w = int(page.imagelength), int(page.imagewidth)
    for segment, index, _shape in page.segments(maxworkers=None):
        if segment is None:
            continue
        y0, x0 = int(index[2]), int(index[3])
        seg = np.asarray(segment)
        if seg.ndim == 4:  # (depth, length, width, samples)
            seg = seg[0]
        if seg.ndim != 3 or seg.shape[-1] != 3:
            raise ValueError(f"decoded segment has shape {seg.shape}, expected (h, w, 3)")
        # Tiles are decoded full-size: clip to the image, then to the crop.
        ya, yb = max(y0, cy), min(y0 + seg.shape[0], h, cy + ch)
        xa, xb = max(x0, cx), min(x0 + seg.shape[1], w, cx + cw)
        if ya >= yb or xa >= xb:
            continue
        part = seg[ya - y0 : yb - y0, xa - x0 : xb - x0]
        out[:, ya - cy : yb - cy, xa - cx : xb - cx] = _linearize(part, table, black, white)
    return out


def _linearize(
    codes: np.ndarray, table: np.ndarray | None, black: np.ndarray, white: np.ndarray
) -> np.ndarray:
    """Stored codes (H, W, 3) -> float32 (3, H, W), 1.0 = white, in row bands.

    Codes beyond the LinearizationTable use its last entry (DNG spec).
    """
    h, w, _ = codes.shape
    out = np.empty((3, h, w), np.float32)
    lut = None
    if table is not None:
        lut = table.astype(np.float32)
    scale = (1.0 / (white - black)).astype(np.float32)
    for y0 in range(0, h, _ROW_BAND):
        band = codes[y0 : y0 + _ROW_BAND]
        for c in range(3):
            plane = band[..., c]
            if lut is not None:
                vals = lut[np.minimum(plane, lut.size - 1)]
            else:
                vals = plane.astype(np.float32)
            out[c, y0 : y0 + _ROW_BAND] = (vals - np.float32(black[c])) * scale[c]
    return out
