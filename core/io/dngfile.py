"""Low-level DNG access shared by the RAW12 and ProRAW48 readers (tifffile based).

Responsibilities: open a file and translate library errors into our typed ones, find the
raw IFD (``NewSubfileType == 0`` in IFD0 or any SubIFD), read tags from the raw IFD first
and IFD0 second (Apple keeps colour tags in IFD0 and level tags in the raw IFD), decode
rationals, and validate that image data extents fit in the file (LibRaw silently returns
zeros for truncated tiles).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from core.errors import (
    AbsurdSizeError,
    CorruptDataError,
    FileNotReadableError,
    NotADngError,
    TruncatedFileError,
    WrongKindError,
)
from core.io.captures import CameraIdentity, ColorMetadata

log = logging.getLogger(__name__)

#: Largest side we accept (a 48MP frame is 8064 px wide; 3x margin).
MAX_SIDE_PX = 24_000
#: Largest pixel count we accept (about 4x a 48MP frame).
MAX_PIXELS = 200_000_000

PHOTOMETRIC_CFA = 32803
PHOTOMETRIC_LINEAR_RAW = 34892

COMPRESSION_NAMES: dict[int, str] = {
    1: "uncompressed",
    7: "lossless JPEG",
    8: "Deflate",
    34892: "lossy JPEG",
    52546: "JPEG XL",
}

TAG_DNG_VERSION = 50706
TAG_PGTM = 52525


@dataclass(frozen=True)
class DngHandle:
    """An open DNG: the tifffile object, its IFD0 and its raw IFD."""

    path: Path
    tif: tifffile.TiffFile
    ifd0: tifffile.TiffPage
    raw: tifffile.TiffPage
    file_size: int

    def tag(self, code: int, *, raw_first: bool = True) -> Any:
        """Value of tag ``code`` from the raw IFD then IFD0 (or the reverse); None if absent."""
        order = (self.raw, self.ifd0) if raw_first else (self.ifd0, self.raw)
        for page in order:
            found = page.tags.get(code)
            if found is not None:
                return found.value
        return None


def _subifds(page: tifffile.TiffPage) -> list[tifffile.TiffPage]:
    """The SubIFDs of ``page`` as pages (empty when there are none)."""
    if 330 not in page.tags:
        return []
    subs = page.pages
    return [] if subs is None else [p for p in subs if isinstance(p, tifffile.TiffPage)]


@contextlib.contextmanager
def open_dng(path: str | Path) -> Iterator[DngHandle]:
    """Open ``path`` as a DNG and locate its raw IFD.

    Raises:
        FileNotReadableError: missing or unreadable file.
        NotADngError: not a TIFF, or a TIFF without DNGVersion.
        CorruptDataError: the IFD structure cannot be parsed.
        WrongKindError: a DNG with no full-resolution raw IFD.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotReadableError("file not found", file)
    try:
        size = file.stat().st_size
        tif = tifffile.TiffFile(file)
    except PermissionError as err:
        raise FileNotReadableError("permission denied", file) from err
    except tifffile.TiffFileError as err:
        raise NotADngError(f"not a DNG/TIFF file ({err})", file) from err
    except (ValueError, OSError, IndexError, KeyError, EOFError) as err:
        raise CorruptDataError(f"the TIFF structure is damaged ({err})", file) from err
    try:
        try:
            pages = list(tif.pages)
        except Exception as err:  # tifffile raises many types on broken IFD chains
            raise CorruptDataError(f"the TIFF structure is damaged ({err})", file) from err
        if not pages or not isinstance(pages[0], tifffile.TiffPage):
            raise NotADngError("TIFF without a readable first image", file)
        ifd0 = pages[0]
        if TAG_DNG_VERSION not in ifd0.tags:
            raise NotADngError("a TIFF but not a DNG (no DNGVersion tag)", file)
        try:
            candidates = [ifd0, *_subifds(ifd0)]
        except Exception as err:
            raise CorruptDataError(f"SubIFDs cannot be read ({err})", file) from err
        raw = next((p for p in candidates if _new_subfile_type(p) == 0), None)
        if raw is None:
            raise WrongKindError(
                "DNG has no main raw image (no IFD with NewSubfileType 0)",
                file,
                expected="raw IFD",
                actual="previews only",
            )
        yield DngHandle(path=file, tif=tif, ifd0=ifd0, raw=raw, file_size=size)
    finally:
        tif.close()


def _new_subfile_type(page: tifffile.TiffPage) -> int:
    tag = page.tags.get(254)
    return int(tag.value) if tag is not None else 0


def check_dimensions(handle: DngHandle) -> tuple[int, int]:
    """(height, width) of the raw IFD after sanity checks.

    Raises:
        AbsurdSizeError: zero, negative or implausibly large dimensions.
    """
    page = handle.raw
    h, w = int(page.imagelength), int(page.imagewidth)
    if h <= 0 or w <= 0 or h > MAX_SIDE_PX or w > MAX_SIDE_PX or h * w > MAX_PIXELS:
        raise AbsurdSizeError(f"declares an implausible image size {w}x{h}", handle.path)
    return h, w


def check_data_extents(handle: DngHandle) -> None:
    """Check every tile/strip of the raw IFD lies inside the file.

    Raises:
        TruncatedFileError: an offset + byte count runs past the end of the file, or a
            tile/strip is missing (offset or count of zero).
        CorruptDataError: the number of chunks does not match the declared layout.
    """
    page = handle.raw
    offsets = np.asarray(page.dataoffsets, dtype=np.int64)
    counts = np.asarray(page.databytecounts, dtype=np.int64)
    if offsets.size == 0 or offsets.size != counts.size:
        raise CorruptDataError("image data offsets are missing or inconsistent", handle.path)
    if page.is_tiled:
        th, tw = int(page.tilelength), int(page.tilewidth)
        if th <= 0 or tw <= 0:
            raise CorruptDataError(f"invalid tile size {tw}x{th}", handle.path)
        spp = int(page.samplesperpixel) if int(page.planarconfig) == 2 else 1
        expected = (-(-int(page.imagelength) // th)) * (-(-int(page.imagewidth) // tw)) * spp
        if offsets.size < expected:
            raise TruncatedFileError(
                f"image data is incomplete: {offsets.size} tiles where its size needs {expected}",
                handle.path,
            )
        if offsets.size != expected:
            raise CorruptDataError(
                f"has {offsets.size} tiles but its size needs {expected}", handle.path
            )
    end = offsets + counts
    if np.any(counts <= 0) or np.any(offsets <= 0):
        raise TruncatedFileError("image data is missing (empty tiles or strips)", handle.path)
    if int(end.max()) > handle.file_size:
        missing = int(np.count_nonzero(end > handle.file_size))
        raise TruncatedFileError(
            f"the file is truncated: {missing} of {offsets.size} image chunks run past its end "
            f"({handle.file_size} bytes)",
            handle.path,
        )


def rationals(value: Any) -> np.ndarray:
    """Decode a tifffile tag value to float64: flat (num, den, ...) pairs or plain numbers.

    tifffile returns RATIONAL/SRATIONAL values as a flat tuple of integers (n0, d0, n1,
    d1, ...) and FLOAT/DOUBLE values as floats; a zero denominator decodes to NaN.
    """
    if value is None:
        return np.zeros(0)
    if isinstance(value, (bytes, bytearray)):
        return np.frombuffer(bytes(value), dtype=np.uint8).astype(np.float64)
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype.kind == "f":
        return arr.astype(np.float64)
    return arr.astype(np.float64)


def rational_tag(
    handle: DngHandle, code: int, *, raw_first: bool = True, rational: bool = True
) -> np.ndarray | None:
    """Tag ``code`` as float64 values, decoding rational pairs; None when absent."""
    page_order = (handle.raw, handle.ifd0) if raw_first else (handle.ifd0, handle.raw)
    for page in page_order:
        tag = page.tags.get(code)
        if tag is None:
            continue
        is_rational = tag.dtype in (5, 10) or getattr(tag.dtype, "value", None) in (5, 10)
        arr = rationals(tag.value)
        if is_rational and rational:
            num, den = arr[0::2], arr[1::2]
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(den != 0, num / np.where(den == 0, 1, den), np.nan)
        return arr
    return None


def _matrix(values: np.ndarray | None, path: Path, name: str) -> np.ndarray | None:
    if values is None:
        return None
    if values.size == 9:
        return values.reshape(3, 3)
    if values.size == 3:
        return np.diag(values)
    raise CorruptDataError(f"{name} has {values.size} values; a 3-colour camera needs 9", path)


def _vector(values: np.ndarray | None, path: Path, name: str) -> np.ndarray | None:
    if values is None:
        return None
    if values.size != 3 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise CorruptDataError(f"{name} must be 3 positive numbers, got {values.tolist()}", path)
    return values.astype(np.float64)


def _scalar(values: np.ndarray | None) -> float | None:
    if values is None or values.size == 0 or not np.isfinite(values[0]):
        return None
    return float(values[0])


def _text(handle: DngHandle, code: int) -> str:
    value = handle.tag(code, raw_first=False)
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.split(b"\0", 1)[0].decode("latin-1", "replace")
    return str(value).strip()


def read_color_metadata(handle: DngHandle) -> ColorMetadata:
    """Colour and tone tags of the file (raw IFD first, then IFD0); absent tags are None.

    Raises:
        CorruptDataError: a colour tag has the wrong number of values or non-positive
            neutral/balance values.
    """
    p = handle.path

    def illum(code: int) -> int | None:
        value = handle.tag(code)
        return int(value) if value is not None else None

    curve = rational_tag(handle, 50940, rational=False)
    white_xy = rational_tag(handle, 50729)
    noise = rational_tag(handle, 51041, rational=False)
    return ColorMetadata(
        color_matrix1=_matrix(rational_tag(handle, 50721), p, "ColorMatrix1"),
        color_matrix2=_matrix(rational_tag(handle, 50722), p, "ColorMatrix2"),
        calibration_illuminant1=illum(50778),
        calibration_illuminant2=illum(50779),
        forward_matrix1=_matrix(rational_tag(handle, 50964), p, "ForwardMatrix1"),
        forward_matrix2=_matrix(rational_tag(handle, 50965), p, "ForwardMatrix2"),
        camera_calibration1=_matrix(rational_tag(handle, 50723), p, "CameraCalibration1"),
        camera_calibration2=_matrix(rational_tag(handle, 50724), p, "CameraCalibration2"),
        analog_balance=_vector(rational_tag(handle, 50727), p, "AnalogBalance"),
        as_shot_neutral=_vector(rational_tag(handle, 50728), p, "AsShotNeutral"),
        as_shot_white_xy=(float(white_xy[0]), float(white_xy[1]))
        if white_xy is not None and white_xy.size == 2
        else None,
        baseline_exposure=_scalar(rational_tag(handle, 50730)),
        baseline_noise=_scalar(rational_tag(handle, 50731)),
        baseline_sharpness=_scalar(rational_tag(handle, 50732)),
        noise_profile=tuple(float(v) for v in noise) if noise is not None else None,
        profile_name=_text(handle, 50936) or None,
        profile_tone_curve=curve.reshape(-1, 2).astype(np.float32)
        if curve is not None and curve.size >= 4 and curve.size % 2 == 0
        else None,
    )


def read_identity(handle: DngHandle) -> CameraIdentity:
    """Make, model, software, orientation and DNG version (IFD0 first)."""
    version = handle.tag(TAG_DNG_VERSION, raw_first=False)
    dng_version: tuple[int, int, int, int] | None = None
    if version is not None:
        raw_bytes = (
            bytes(version)
            if isinstance(version, (bytes, bytearray))
            else bytes(int(v) for v in np.atleast_1d(version))
        )
        if len(raw_bytes) >= 4:
            dng_version = (raw_bytes[0], raw_bytes[1], raw_bytes[2], raw_bytes[3])
    orientation = handle.tag(274, raw_first=False)
    exif = handle.ifd0.tags.get(34665)
    dto = ""
    if exif is not None and isinstance(exif.value, dict):
        dto = str(exif.value.get("DateTimeOriginal", "") or "")
    return CameraIdentity(
        make=_text(handle, 271),
        model=_text(handle, 272),
        unique_camera_model=_text(handle, 50708),
        software=_text(handle, 305),
        orientation=int(orientation) if orientation is not None else 1,
        dng_version=dng_version,
        datetime_original=dto or _text(handle, 306),
    )


def compression_name(code: int) -> str:
    """Human name of a TIFF compression code."""
    return COMPRESSION_NAMES.get(code, f"compression {code}")


def int_tuple(values: Sequence[float] | np.ndarray | None) -> tuple[int, ...]:
    """Round float tag values to ints (for crop origins/sizes stored as rationals)."""
    if values is None:
        return ()
    return tuple(round(float(v)) for v in np.atleast_1d(values))
