"""DNG writers: the 48MP linear output (DESIGN §7) and the capture-pair simulator's inputs.

Three public writers share one assembly path (:func:`_write_dng`):

- :func:`write_linear_dng` — Linear48's output: Camera48 as LinearRaw (3 samples), uint16
  lossless-JPEG tiles (default), uint16 uncompressed strips, or float32/float16 Deflate
  with the floating-point predictor; headroom encoded in BaselineExposure.
- :func:`write_bayer_dng` — an iPhone-like 12MP Bayer CFA DNG ("RAW12").
- :func:`write_linearraw_dng` — an Apple-ProRAW-like LinearRaw DNG ("ProRAW48") with a
  LinearizationTable and optionally a ProfileGainTableMap.

File layout (all three, like Apple's files): IFD0 = a small 8-bit RGB preview
(NewSubfileType 1) carrying the DNG-level tags (colour, identity, XMP); SubIFD0 = the
full-resolution raw image with NewSubfileType 0 written explicitly. Everything is written
through :func:`core.io.atomic.atomic_write`: a failed or cancelled write leaves no file.

Provenance (a JSON-able mapping) travels as JSON in one property of a private XMP
namespace in IFD0 (tag 700) and is read back with :func:`read_provenance`.
"""

from __future__ import annotations

import json
import logging
import math
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from enum import IntEnum
from importlib import metadata
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

import imagecodecs
import numpy as np

from core.cfa import CfaPattern
from core.errors import (
    ConfigError,
    CorruptDataError,
    FileNotReadableError,
    NotADngError,
    OutputError,
    ShapeError,
)
from core.io.atomic import atomic_write
from core.io.captures import CameraIdentity, ColorMetadata
from core.io.ljpeg import encode_ljpeg, encode_tiles
from core.io.tiff_writer import (
    ByteOrder,
    Entry,
    Ifd,
    ImageData,
    TiffType,
    ascii_entry,
    bytes_entry,
    entry,
    write_tiff,
)
from core.progress import CancelToken, ProgressCallback

logger = logging.getLogger(__name__)

SampleFormat = Literal["uint16", "float32", "float16"]
Layout = Literal["ljpeg-tiles", "strips"]

_SAMPLE_FORMATS: tuple[str, ...] = ("uint16", "float32", "float16")
_LAYOUTS: tuple[str, ...] = ("ljpeg-tiles", "strips")
_BYTEORDERS: tuple[str, ...] = ("<", ">")

XMP_NAMESPACE = "https://linear48.invalid/ns/1.0/"
_XMP_PROPERTY = "Provenance"

# Headroom is quantised to 1/64 EV so BaselineExposure stays an exact rational.
HEADROOM_STEP_EV = 1.0 / 64.0
_UINT16_WHITE = 65535
_STRIP_TARGET_BYTES = 1 << 20


class Tag(IntEnum):
    """TIFF / EXIF / DNG tag numbers used here (DNG spec 1.7.1)."""

    NEW_SUBFILE_TYPE = 254
    IMAGE_WIDTH = 256
    IMAGE_LENGTH = 257
    BITS_PER_SAMPLE = 258
    COMPRESSION = 259
    PHOTOMETRIC = 262
    IMAGE_DESCRIPTION = 270
    MAKE = 271
    MODEL = 272
    ORIENTATION = 274
    SAMPLES_PER_PIXEL = 277
    ROWS_PER_STRIP = 278
    X_RESOLUTION = 282
    Y_RESOLUTION = 283
    PLANAR_CONFIGURATION = 284
    RESOLUTION_UNIT = 296
    SOFTWARE = 305
    PREDICTOR = 317
    TILE_WIDTH = 322
    TILE_LENGTH = 323
    SAMPLE_FORMAT = 339
    XMP = 700
    CFA_REPEAT_PATTERN_DIM = 33421
    CFA_PATTERN = 33422
    DNG_VERSION = 50706
    DNG_BACKWARD_VERSION = 50707
    UNIQUE_CAMERA_MODEL = 50708
    CFA_PLANE_COLOR = 50710
    CFA_LAYOUT = 50711
    LINEARIZATION_TABLE = 50712
    BLACK_LEVEL_REPEAT_DIM = 50713
    BLACK_LEVEL = 50714
    WHITE_LEVEL = 50717
    DEFAULT_CROP_ORIGIN = 50719
    DEFAULT_CROP_SIZE = 50720
    COLOR_MATRIX1 = 50721
    COLOR_MATRIX2 = 50722
    CAMERA_CALIBRATION1 = 50723
    CAMERA_CALIBRATION2 = 50724
    ANALOG_BALANCE = 50727
    AS_SHOT_NEUTRAL = 50728
    BASELINE_EXPOSURE = 50730
    BASELINE_NOISE = 50731
    BASELINE_SHARPNESS = 50732
    CALIBRATION_ILLUMINANT1 = 50778
    CALIBRATION_ILLUMINANT2 = 50779
    ACTIVE_AREA = 50829
    PROFILE_NAME = 50936
    PROFILE_TONE_CURVE = 50940
    FORWARD_MATRIX1 = 50964
    FORWARD_MATRIX2 = 50965
    OPCODE_LIST2 = 51009
    OPCODE_LIST3 = 51022
    NOISE_PROFILE = 51041
    PROFILE_GAIN_TABLE_MAP = 52525


class Compression(IntEnum):
    """TIFF Compression values used here."""

    NONE = 1
    LJPEG = 7
    DEFLATE = 8


PHOTOMETRIC_RGB = 2
PHOTOMETRIC_CFA = 32803
PHOTOMETRIC_LINEAR_RAW = 34892
PREDICTOR_FLOATING_POINT = 3


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class DngWriteOptions:
    """How :func:`write_linear_dng` stores the image (DESIGN §7).

    Attributes:
        sample_format: ``"uint16"`` (default, widest reader support), or the HDR opt-in
            ``"float32"`` / ``"float16"`` (SampleFormat 3, Deflate + floating-point
            predictor, DNGBackwardVersion 1.4; no dcraw, RawTherapee 5.9, LibRaw < 0.21).
        layout: ``"ljpeg-tiles"`` (uint16: lossless JPEG tiles) or ``"strips"`` (uint16:
            uncompressed strips). Float data is always Deflate + predictor 3, in tiles
            for ``"ljpeg-tiles"`` and in strips for ``"strips"``.
        tile_size: square tile side in pixels, a multiple of 16; None picks one that
            divides both image dimensions (see :func:`choose_tile_size`).
        preview_long_side: long side of the 8-bit preview in IFD0, in pixels (>= 16).
        overwrite: replace an existing file (else OutputError).
        threads: encoder threads; 0 = ``os.cpu_count()``.
        byteorder: ``"<"`` (II, default) or ``">"`` (MM, as Apple writes).
    """

    sample_format: SampleFormat = "uint16"
    layout: Layout = "ljpeg-tiles"
    tile_size: int | None = None
    preview_long_side: int = 256
    overwrite: bool = True
    threads: int = 0
    byteorder: ByteOrder = "<"

    def __post_init__(self) -> None:
        _check_choice("sample_format", self.sample_format, _SAMPLE_FORMATS)
        _check_choice("layout", self.layout, _LAYOUTS)
        _check_choice("byteorder", self.byteorder, _BYTEORDERS)
        if self.tile_size is not None and (self.tile_size < 16 or self.tile_size % 16):
            raise ConfigError(
                f"tile_size must be a positive multiple of 16 (TIFF), got {self.tile_size}"
            )
        if self.preview_long_side < 16:
            raise ConfigError(f"preview_long_side must be >= 16, got {self.preview_long_side}")
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0 (0 = all cores), got {self.threads}")


@dataclass(frozen=True)
class DngWriteInfo:
    """What a writer did.

    Attributes:
        path: the file written.
        height, width: raw image size in pixels.
        sample_format: ``"uint16"``, ``"float32"`` or ``"float16"``.
        layout: storage actually used: ``"ljpeg-tiles"``, ``"strips"``,
            ``"deflate-tiles"`` or ``"deflate-strips"``.
        tile_size: (square) tile side in pixels; None for strips. For the simulator
            writers with non-square tiles, the tile width.
        headroom_ev: h, the stops above the RAW clip kept in range (0 = none).
        baseline_exposure: BaselineExposure written, in EV.
        bytes_written: file size in bytes.
        encode_seconds: wall time spent encoding and writing the file.
        notes: remarks a report should show (e.g. a neutral that had to be guessed).
    """

    path: Path
    height: int
    width: int
    sample_format: str
    layout: str
    tile_size: int | None
    headroom_ev: float
    baseline_exposure: float
    bytes_written: int
    encode_seconds: float
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------- helpers


def _check_choice(name: str, value: object, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, valid))}, got {value!r}")


def software_version() -> str:
    """Linear48's version string (installed metadata, else pyproject.toml)."""
    try:
        return metadata.version("linear48")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def headroom_ev(vmax: float) -> float:
    """Stops of headroom h for a maximum value ``vmax`` (DESIGN §7).

    0 when ``vmax <= 1``; otherwise log2(vmax) rounded up to a 1/64 EV step, so that
    ``vmax / 2**h <= 1`` and nothing clips.
    """
    if not math.isfinite(vmax) or vmax <= 1.0:
        return 0.0
    steps = math.ceil(math.log2(vmax) / HEADROOM_STEP_EV)
    while vmax / 2.0 ** (steps * HEADROOM_STEP_EV) > 1.0:  # guard against log2 rounding
        steps += 1
    return steps * HEADROOM_STEP_EV


def choose_tile_size(height: int, width: int) -> int:
    """A square tile side (multiple of 16, as TIFF requires) for an image.

    Preference: the largest common divisor of both dimensions in 256..512 (8064x6048 ->
    336); else the common divisor in 64..1024 closest to 384 (448x336 -> 112); else 256
    (or less for a small image) with padded partial edge tiles.
    """
    common = [
        t for t in range(16, min(height, width) + 1, 16) if height % t == 0 and width % t == 0
    ]
    preferred = [t for t in common if 256 <= t <= 512]
    if preferred:
        return max(preferred)
    usable = [t for t in common if 64 <= t <= 1024]
    if usable:
        return min(usable, key=lambda t: (abs(t - 384), -t))
    return min(256, 16 * math.ceil(max(height, width) / 16))


def _ascii(text: str) -> str:
    """TIFF ASCII: non-ASCII characters become '?' (readers choke on UTF-8 here)."""
    return text.encode("ascii", "replace").decode("ascii").replace("\0", "")


def _matrix(value: np.ndarray | None, name: str) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 9 or not np.all(np.isfinite(arr)):
        raise ShapeError(f"{name} must be a finite 3x3 matrix, got shape {arr.shape}")
    return arr.reshape(3, 3)


def _vector3(
    value: np.ndarray | Sequence[float] | None, name: str, *, positive: bool = True
) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64).ravel()
    if arr.size != 3 or not np.all(np.isfinite(arr)) or (positive and np.any(arr <= 0)):
        raise ShapeError(f"{name} must be 3 finite positive values, got {arr}")
    return arr


def camera_neutral(color: ColorMetadata) -> tuple[np.ndarray, str]:
    """The AsShotNeutral to write, and a note when it had to be derived.

    Uses ``color.as_shot_neutral`` when present. Otherwise the stored-value neutral of the
    as-shot white (AsShotWhiteXY, else D65) through the DNG colour maths of
    :mod:`core.color` (``AB @ CC @ CM(xy) @ XYZ``); (1, 1, 1) without a usable matrix.

    Returns:
        ((3,) float64 neutral, green normalised to 1 when derived; note or "").
    """
    from core.color import D65_XY, xy_to_xyz, xyz_to_stored

    given = _vector3(color.as_shot_neutral, "as_shot_neutral")
    if given is not None:
        return given, ""
    if _matrix(color.color_matrix1, "color_matrix1") is None:
        return np.ones(3), "no AsShotNeutral and no ColorMatrix: wrote AsShotNeutral 1 1 1"
    xy = np.asarray(color.as_shot_white_xy or D65_XY, dtype=np.float64)
    cam = xyz_to_stored(color, xy) @ xy_to_xyz(xy)
    if not np.all(cam > 0):
        return np.ones(3), "derived AsShotNeutral not positive: wrote AsShotNeutral 1 1 1"
    source = "AsShotWhiteXY" if color.as_shot_white_xy else "D65"
    return cam / cam[1], f"no AsShotNeutral: derived from ColorMatrix and {source}"


def _provenance_json(provenance: Mapping[str, Any]) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        return str(obj)

    return json.dumps(
        dict(provenance), sort_keys=True, default=default, allow_nan=False, ensure_ascii=True
    )


def xmp_packet(provenance: Mapping[str, Any] | None, software: str) -> bytes:
    """An XMP packet (UTF-8) with CreatorTool and, if given, the provenance JSON.

    The JSON sits in one property ``linear48:Provenance`` of the private namespace
    :data:`XMP_NAMESPACE`, XML-escaped.
    """
    prop = ""
    if provenance is not None:
        prop = (
            f"\n   <linear48:{_XMP_PROPERTY}>"
            f"{escape(_provenance_json(provenance))}</linear48:{_XMP_PROPERTY}>"
        )
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    xmlns:linear48="{XMP_NAMESPACE}">\n'
        f"   <xmp:CreatorTool>{escape(software)}</xmp:CreatorTool>{prop}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return text.encode("utf-8")


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """The provenance dict stored by :func:`write_linear_dng`, or None if the file has none.

    Raises:
        FileNotReadableError: the file does not exist or cannot be opened.
        NotADngError: the file is not a TIFF/DNG.
        CorruptDataError: the XMP packet or the JSON in it is malformed.
    """
    import tifffile

    p = Path(path)
    try:
        with tifffile.TiffFile(p) as tif:
            tag = tif.pages.first.tags.get(Tag.XMP)
            raw = None if tag is None else tag.value
    except FileNotFoundError as err:
        raise FileNotReadableError("file not found", p) from err
    except OSError as err:
        raise FileNotReadableError(f"cannot open: {err.strerror or err}", p) from err
    except tifffile.TiffFileError as err:
        raise NotADngError(f"not a DNG/TIFF file ({err})", p) from err
    if raw is None:
        return None
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    try:
        root = ET.fromstring(data.strip(b"\0 \n"))
    except ET.ParseError as err:
        raise CorruptDataError(f"the XMP packet is malformed ({err})", p) from err
    node = root.find(f".//{{{XMP_NAMESPACE}}}{_XMP_PROPERTY}")
    if node is None or node.text is None:
        return None
    try:
        value = json.loads(node.text)
    except json.JSONDecodeError as err:
        raise CorruptDataError(f"the Linear48 provenance is not valid JSON ({err})", p) from err
    if not isinstance(value, dict):
        raise CorruptDataError("the Linear48 provenance is not a JSON object", p)
    return value


def _level_entry(tag: Tag, values: np.ndarray, bo: ByteOrder, *, allow_rational: bool) -> Entry:
    """BlackLevel/WhiteLevel as SHORT or LONG when integral, else RATIONAL."""
    vals = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(vals)) or np.any(vals < 0):
        raise ShapeError(f"{tag.name} must be finite and >= 0, got {vals}")
    if np.all(vals == np.round(vals)):
        type_ = TiffType.SHORT if vals.max() <= 0xFFFF else TiffType.LONG
        return entry(tag, type_, vals, bo)
    if not allow_rational:
        raise ShapeError(f"{tag.name} must be integers, got {vals}")
    return entry(tag, TiffType.RATIONAL, vals, bo)


# --------------------------------------------------------------------------- IFD0 / preview


@dataclass(frozen=True)
class _Header:
    """DNG-level (IFD0) content shared by every writer."""

    color: ColorMetadata
    identity: CameraIdentity
    software: str
    description: str
    baseline_exposure: float
    dng_version: tuple[int, int, int, int]
    backward_version: tuple[int, int, int, int]
    xmp: bytes | None
    neutral: np.ndarray
    extra: tuple[Entry, ...] = ()


def _ifd0_entries(h: _Header, bo: ByteOrder) -> list[Entry]:
    """Identity, colour and tone tags of IFD0 (DESIGN §7 required set + copies)."""
    c, ident = h.color, h.identity
    out = [
        ascii_entry(Tag.IMAGE_DESCRIPTION, _ascii(h.description), bo),
        ascii_entry(Tag.MAKE, _ascii(ident.make) or "Unknown", bo),
        ascii_entry(Tag.MODEL, _ascii(ident.model) or "Unknown", bo),
        entry(Tag.ORIENTATION, TiffType.SHORT, ident.orientation, bo),
        ascii_entry(Tag.SOFTWARE, _ascii(h.software), bo),
        entry(Tag.DNG_VERSION, TiffType.BYTE, h.dng_version, bo),
        entry(Tag.DNG_BACKWARD_VERSION, TiffType.BYTE, h.backward_version, bo),
        ascii_entry(
            Tag.UNIQUE_CAMERA_MODEL,
            _ascii(ident.unique_camera_model or f"{ident.make} {ident.model}".strip()) or "Unknown",
            bo,
        ),
        entry(Tag.AS_SHOT_NEUTRAL, TiffType.RATIONAL, h.neutral, bo),
        entry(Tag.BASELINE_EXPOSURE, TiffType.SRATIONAL, h.baseline_exposure, bo),
    ]
    if h.xmp is not None:
        out.append(bytes_entry(Tag.XMP, h.xmp, bo, TiffType.BYTE))
    matrices = [
        (Tag.COLOR_MATRIX1, c.color_matrix1),
        (Tag.COLOR_MATRIX2, c.color_matrix2),
        (Tag.CAMERA_CALIBRATION1, c.camera_calibration1),
        (Tag.CAMERA_CALIBRATION2, c.camera_calibration2),
        (Tag.FORWARD_MATRIX1, c.forward_matrix1),
        (Tag.FORWARD_MATRIX2, c.forward_matrix2),
    ]
    for tag, mat in matrices:
        m = _matrix(mat, tag.name)
        if m is not None:
            out.append(entry(tag, TiffType.SRATIONAL, m, bo))
    for tag, ill in (
        (Tag.CALIBRATION_ILLUMINANT1, c.calibration_illuminant1),
        (Tag.CALIBRATION_ILLUMINANT2, c.calibration_illuminant2),
    ):
        if ill is not None:
            out.append(entry(tag, TiffType.SHORT, ill, bo))
    ab = _vector3(c.analog_balance, "analog_balance")
    if ab is not None:
        out.append(entry(Tag.ANALOG_BALANCE, TiffType.RATIONAL, ab, bo))
    if c.baseline_noise is not None:
        out.append(entry(Tag.BASELINE_NOISE, TiffType.RATIONAL, c.baseline_noise, bo))
    if c.baseline_sharpness is not None:
        out.append(entry(Tag.BASELINE_SHARPNESS, TiffType.RATIONAL, c.baseline_sharpness, bo))
    if c.profile_name:
        out.append(ascii_entry(Tag.PROFILE_NAME, _ascii(c.profile_name), bo))
    return out + list(h.extra)


def _preview_ifd(rgb8: np.ndarray, header: _Header, bo: ByteOrder, raw: Ifd) -> Ifd:
    """IFD0: the 8-bit RGB preview (one uncompressed strip) + DNG-level tags + SubIFD0."""
    ph, pw, _ = rgb8.shape
    entries = [
        entry(Tag.NEW_SUBFILE_TYPE, TiffType.LONG, 1, bo),
        entry(Tag.IMAGE_WIDTH, TiffType.LONG, pw, bo),
        entry(Tag.IMAGE_LENGTH, TiffType.LONG, ph, bo),
        entry(Tag.BITS_PER_SAMPLE, TiffType.SHORT, [8, 8, 8], bo),
        entry(Tag.COMPRESSION, TiffType.SHORT, Compression.NONE, bo),
        entry(Tag.PHOTOMETRIC, TiffType.SHORT, PHOTOMETRIC_RGB, bo),
        entry(Tag.SAMPLES_PER_PIXEL, TiffType.SHORT, 3, bo),
        entry(Tag.ROWS_PER_STRIP, TiffType.LONG, ph, bo),
        entry(Tag.X_RESOLUTION, TiffType.RATIONAL, 72, bo),
        entry(Tag.Y_RESOLUTION, TiffType.RATIONAL, 72, bo),
        entry(Tag.PLANAR_CONFIGURATION, TiffType.SHORT, 1, bo),
        entry(Tag.RESOLUTION_UNIT, TiffType.SHORT, 2, bo),
        *_ifd0_entries(header, bo),
    ]
    data = np.ascontiguousarray(rgb8, dtype=np.uint8).tobytes()
    return Ifd(entries, ImageData("strips", 1, [data]), [raw])


def _downsample(planes: np.ndarray, long_side: int) -> np.ndarray:
    """Box-filter (C, H, W) to a long side of about ``long_side`` without touching every pixel.

    Samples a grid with step s, then averages k x k blocks of it (block = s*k pixels),
    so a 48MP frame costs a few hundred thousand reads. Returns float32 (C, h, w).
    """
    _, hh, ww = planes.shape
    block = max(1, math.ceil(max(hh, ww) / long_side))
    step = max(1, block // 4)
    k = math.ceil(block / step)
    block = step * k
    h, w = max(1, hh // block), max(1, ww // block)
    if hh < block or ww < block:  # tiny image: plain subsampling
        return planes[:, ::block, ::block].astype(np.float32)
    sub = planes[:, : h * block : step, : w * block : step].astype(np.float32)
    return sub.reshape(planes.shape[0], h, k, w, k).mean(axis=(2, 4))


def render_preview(linear_rgb: np.ndarray, neutral: np.ndarray, exposure_ev: float) -> np.ndarray:
    """A rough 8-bit preview of linear camera RGB.

    Shapes: linear_rgb (3, h, w) on the Camera48 scale -> (h, w, 3) uint8.
    White balance by ``neutral`` (green = 1), ``exposure_ev`` stops of gain, clip, and a
    2.2 power for display. No colour matrix: it is a thumbnail for file browsers, not a
    render (renders live in the app).
    """
    gains = (neutral[1] / np.asarray(neutral, dtype=np.float64)).astype(np.float32)
    v = np.nan_to_num(linear_rgb, nan=0.0, posinf=1.0, neginf=0.0)
    v = v * gains[:, None, None] * np.float32(2.0**exposure_ev)
    v = np.clip(v, 0.0, 1.0) ** np.float32(1 / 2.2)
    return np.ascontiguousarray(np.rint(v * 255).astype(np.uint8).transpose(1, 2, 0))


# --------------------------------------------------------------------------- raw IFD


# A region reader: (y0, y1, x0, x1) -> (y1-y0, x1-x0, C) array already in the stored
# dtype (uint16 codes, or float32/float16 values), or (h, w) for one sample per pixel.
RegionReader = Callable[[int, int, int, int], np.ndarray]


@dataclass(frozen=True)
class _RawStorage:
    """How the raw IFD stores its samples."""

    height: int
    width: int
    samples: int
    bits: int
    sample_format: int  # 1 = unsigned integer, 3 = IEEE float
    compression: Compression
    tile_shape: tuple[int, int] | None  # (tile height, tile width); None = strips
    rows_per_strip: int = 0

    @property
    def layout_name(self) -> str:
        if self.compression == Compression.DEFLATE:
            return "deflate-tiles" if self.tile_shape else "deflate-strips"
        return "ljpeg-tiles" if self.tile_shape else "strips"

    @property
    def n_chunks(self) -> int:
        if self.tile_shape is None:
            return math.ceil(self.height / self.rows_per_strip)
        th, tw = self.tile_shape
        return math.ceil(self.height / th) * math.ceil(self.width / tw)

    def chunk_region(self, i: int) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) of chunk ``i`` clipped to the image."""
        if self.tile_shape is None:
            y0 = i * self.rows_per_strip
            return y0, min(y0 + self.rows_per_strip, self.height), 0, self.width
        th, tw = self.tile_shape
        ty, tx = divmod(i, math.ceil(self.width / tw))
        return (ty * th, min((ty + 1) * th, self.height), tx * tw, min((tx + 1) * tw, self.width))

    def entries(self, bo: ByteOrder) -> list[Entry]:
        """The structural tags of the raw IFD (size, samples, compression, tiling)."""
        photometric = PHOTOMETRIC_LINEAR_RAW if self.samples == 3 else PHOTOMETRIC_CFA
        out = [
            entry(Tag.NEW_SUBFILE_TYPE, TiffType.LONG, 0, bo),
            entry(Tag.IMAGE_WIDTH, TiffType.LONG, self.width, bo),
            entry(Tag.IMAGE_LENGTH, TiffType.LONG, self.height, bo),
            entry(Tag.BITS_PER_SAMPLE, TiffType.SHORT, [self.bits] * self.samples, bo),
            entry(Tag.COMPRESSION, TiffType.SHORT, self.compression, bo),
            entry(Tag.PHOTOMETRIC, TiffType.SHORT, photometric, bo),
            entry(Tag.SAMPLES_PER_PIXEL, TiffType.SHORT, self.samples, bo),
            entry(Tag.PLANAR_CONFIGURATION, TiffType.SHORT, 1, bo),
            entry(Tag.SAMPLE_FORMAT, TiffType.SHORT, [self.sample_format] * self.samples, bo),
        ]
        if self.tile_shape is None:
            out.append(entry(Tag.ROWS_PER_STRIP, TiffType.LONG, self.rows_per_strip, bo))
        else:
            th, tw = self.tile_shape
            out.append(entry(Tag.TILE_WIDTH, TiffType.LONG, tw, bo))
            out.append(entry(Tag.TILE_LENGTH, TiffType.LONG, th, bo))
        if self.compression == Compression.DEFLATE:
            out.append(entry(Tag.PREDICTOR, TiffType.SHORT, PREDICTOR_FLOATING_POINT, bo))
        return out

    def encoder(self, read: RegionReader, bo: ByteOrder) -> Callable[[int], bytes]:
        """``encode(i) -> bytes`` for chunk ``i``; partial edge tiles are padded by
        repeating the last row/column, as TIFF requires full-size tiles."""

        def block(i: int) -> np.ndarray:
            y0, y1, x0, x1 = self.chunk_region(i)
            arr = read(y0, y1, x0, x1)
            if self.tile_shape is not None:
                th, tw = self.tile_shape
                pad = [(0, th - (y1 - y0)), (0, tw - (x1 - x0))] + [(0, 0)] * (arr.ndim - 2)
                if any(p[1] for p in pad):
                    arr = np.pad(arr, pad, mode="edge")
            return arr

        if self.compression == Compression.LJPEG:
            return lambda i: encode_ljpeg(block(i), self.bits)
        if self.compression == Compression.DEFLATE:

            def deflate(i: int) -> bytes:
                arr = block(i)
                if arr.ndim == 2:
                    arr = arr[:, :, None]
                # The floating-point predictor's output is byte-order independent (the
                # bytes of each row are regrouped most significant first).
                native = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
                pred = imagecodecs.floatpred_encode(native, axis=-2)
                # libdeflate: zlib-wrapped like zlib itself, about 2.5x faster.
                return bytes(imagecodecs.deflate_encode(pred.tobytes(), level=6))

            return deflate
        return lambda i: _raw_bytes(block(i), bo)


def _raw_bytes(arr: np.ndarray, bo: ByteOrder) -> bytes:
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder(bo)).tobytes()


def _strip_rows(height: int, width: int, samples: int, bytes_per_sample: int) -> int:
    """Rows per strip so that one strip holds about 1 MiB, never more than the height
    (rawspeed rejects RowsPerStrip > ImageLength)."""
    rows = _STRIP_TARGET_BYTES // max(1, width * samples * bytes_per_sample)
    return max(1, min(height, rows))


# --------------------------------------------------------------------------- assembly


def _write_dng(
    path: str | Path,
    *,
    header: _Header,
    preview: np.ndarray,
    storage: _RawStorage,
    read: RegionReader,
    raw_tags: list[Entry],
    byteorder: ByteOrder,
    overwrite: bool,
    threads: int,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> int:
    """Assemble IFD0 (preview + header) and SubIFD0 (raw) and write them atomically.

    Returns the file size in bytes. Raises CancelledError / OutputError unchanged; a
    ValueError from the TIFF layer means a programming error.
    """
    if cancel is not None:
        cancel.raise_if_cancelled()
    chunks = encode_tiles(
        storage.n_chunks,
        storage.encoder(read, byteorder),
        threads=threads,
        progress=progress,
        cancel=cancel,
        stage="write",
    )
    with closing(chunks):
        raw_ifd = Ifd(
            storage.entries(byteorder) + raw_tags,
            ImageData("tiles" if storage.tile_shape else "strips", storage.n_chunks, chunks),
        )
        ifd0 = _preview_ifd(preview, header, byteorder, raw_ifd)
        with atomic_write(path, overwrite=overwrite) as handle:
            try:
                return write_tiff(handle, ifd0, byteorder=byteorder)
            except OSError as err:
                raise OutputError(f"cannot write {Path(path).name}: {err.strerror or err}") from err


def _crop_entries(origin: tuple[int, int], size: tuple[int, int], bo: ByteOrder) -> list[Entry]:
    return [
        entry(Tag.DEFAULT_CROP_ORIGIN, TiffType.LONG, origin, bo),
        entry(Tag.DEFAULT_CROP_SIZE, TiffType.LONG, size, bo),
    ]


def _noise_profile_entry(
    profile: tuple[float, ...] | None, scale: float, bo: ByteOrder
) -> list[Entry]:
    """NoiseProfile (S, O pairs) for data divided by ``scale``: S/scale, O/scale**2."""
    if not profile:
        return []
    vals = np.asarray(profile, dtype=np.float64)
    if vals.size % 2 or not np.all(np.isfinite(vals)):
        logger.warning("NoiseProfile with %d values skipped (needs S, O pairs)", vals.size)
        return []
    vals = vals.reshape(-1, 2) / np.array([scale, scale * scale])
    return [entry(Tag.NOISE_PROFILE, TiffType.DOUBLE, vals.ravel(), bo)]


def _check_writable(path: str | Path, overwrite: bool) -> Path:
    """Fail early (before encoding anything) on a missing folder or an existing file."""
    p = Path(path)
    if not p.parent.is_dir():
        raise OutputError(f"output folder {p.parent} does not exist")
    if p.exists() and not overwrite:
        raise OutputError(f"{p} already exists; pass --force to overwrite it")
    return p


# --------------------------------------------------------------------------- Linear48 output


def write_linear_dng(
    path: str | Path,
    camera48: np.ndarray,
    *,
    color: ColorMetadata,
    identity: CameraIdentity,
    options: DngWriteOptions = DngWriteOptions(),
    provenance: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> DngWriteInfo:
    """Write Camera48 as a 48MP scene-linear LinearRaw DNG (DESIGN §7).

    Shapes/units: camera48 float (3, H, W), linear camera-native RGB, not white balanced,
    1.0 = RAW12 sensor clip; values above 1.0 are kept (headroom), negatives and NaN are
    written as 0. Stored: ``code = black + (white - black) * v / 2**h`` with h the
    smallest 1/64-EV headroom that avoids clipping, ``BaselineExposure = RAW12's + h``.
    uint16: black 0, white 65535; float: black 0, WhiteLevel 1, values <= 1.0.

    Colour tags are copied from ``color`` (never ProfileGainTableMap or
    ProfileToneCurve); AsShotNeutral is derived when absent (see :func:`camera_neutral`,
    recorded in ``DngWriteInfo.notes``). NoiseProfile is rescaled for the headroom.

    Raises:
        ShapeError: camera48 is not a floating (3, H, W) array, or a colour tag has the
            wrong shape.
        ConfigError: ``color`` has no ColorMatrix1 (DNG readers need one).
        OutputError: folder missing / not writable, or the file exists and
            ``options.overwrite`` is False.
        CancelledError: ``cancel`` was triggered; no file is left behind.
    """
    t0 = time.perf_counter()
    if not isinstance(camera48, np.ndarray) or camera48.ndim != 3 or camera48.shape[0] != 3:
        shape = getattr(camera48, "shape", None)
        raise ShapeError(f"camera48 must be a (3, H, W) array, got shape {shape}")
    if not np.issubdtype(camera48.dtype, np.floating):
        raise ShapeError(f"camera48 must be floating point (float32), got {camera48.dtype}")
    _, height, width = camera48.shape
    if height < 1 or width < 1:
        raise ShapeError(f"camera48 is empty: {camera48.shape}")
    if color.color_matrix1 is None:
        raise ConfigError(
            "color.color_matrix1 is required: DNG readers cannot render without a ColorMatrix1"
        )
    out_path = _check_writable(path, options.overwrite)
    bo = options.byteorder
    notes: list[str] = []

    finite_max = float(np.max(camera48, initial=0.0))
    if not math.isfinite(finite_max):
        finite_max = float(np.max(np.where(np.isfinite(camera48), camera48, 0.0), initial=0.0))
        notes.append("non-finite values written as 0")
    h = headroom_ev(finite_max)
    scale = 2.0**h
    if h > 0:
        notes.append(
            f"highlights reach {finite_max:.3g}x the RAW clip: stored {h:.4g} EV "
            "darker with BaselineExposure raised to match (readers that ignore "
            "BaselineExposure show it darker)"
        )
    baseline = color.baseline_exposure_ev + h

    fmt = options.sample_format
    if fmt == "uint16":
        bits, sample_format = 16, 1
        compression = Compression.LJPEG if options.layout == "ljpeg-tiles" else Compression.NONE
        out_dtype: np.dtype[Any] = np.dtype(np.uint16)
        dng_backward = (1, 1, 0, 0)
    else:
        bits = 32 if fmt == "float32" else 16
        sample_format, compression = 3, Compression.DEFLATE
        out_dtype = np.dtype(np.float32 if fmt == "float32" else np.float16)
        dng_backward = (1, 4, 0, 0)

    tiled = options.layout == "ljpeg-tiles"
    tile = (options.tile_size or choose_tile_size(height, width)) if tiled else None
    storage = _RawStorage(
        height,
        width,
        3,
        bits,
        sample_format,
        compression,
        (tile, tile) if tile else None,
        0 if tiled else _strip_rows(height, width, 3, out_dtype.itemsize),
    )

    def read(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        v = np.asarray(camera48[:, y0:y1, x0:x1], dtype=np.float32).transpose(1, 2, 0)
        v = np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0)
        if fmt == "uint16":  # code = black + (white - black) * v / 2**h, black = 0
            v = np.clip(v * np.float32(_UINT16_WHITE), 0.0, None) / np.float32(scale)
            return np.rint(np.minimum(v, _UINT16_WHITE)).astype(np.uint16)
        # float: WhiteLevel 1, stored = v / 2**h (correctly rounded in float32)
        return np.clip(v / np.float32(scale), 0.0, 1.0).astype(out_dtype)

    neutral, note = camera_neutral(color)
    if note:
        notes.append(note)
        logger.info("%s: %s", out_path.name, note)
    software = f"Linear48 {software_version()}"
    header = _Header(
        color=color,
        identity=identity,
        software=software,
        description=(f"Linear48 scene-linear camera RGB, not white balanced; {h:.4g} EV headroom"),
        baseline_exposure=baseline,
        dng_version=(1, 4, 0, 0),
        backward_version=dng_backward,
        xmp=xmp_packet(provenance, software),
        neutral=neutral,
    )
    preview = render_preview(
        _downsample(camera48, options.preview_long_side), neutral, color.baseline_exposure_ev
    )
    white = [1] * 3 if fmt != "uint16" else [_UINT16_WHITE] * 3
    raw_tags = [
        entry(Tag.BLACK_LEVEL, TiffType.SHORT, [0, 0, 0], bo),
        entry(Tag.WHITE_LEVEL, TiffType.LONG, white, bo),
        *_crop_entries((0, 0), (width, height), bo),
        *_noise_profile_entry(color.noise_profile, scale, bo),
    ]
    size = _write_dng(
        out_path,
        header=header,
        preview=preview,
        storage=storage,
        read=read,
        raw_tags=raw_tags,
        byteorder=bo,
        overwrite=options.overwrite,
        threads=options.threads,
        progress=progress,
        cancel=cancel,
    )
    return DngWriteInfo(
        path=out_path,
        height=height,
        width=width,
        sample_format=fmt,
        layout=storage.layout_name,
        tile_size=tile,
        headroom_ev=h,
        baseline_exposure=baseline,
        bytes_written=size,
        encode_seconds=time.perf_counter() - t0,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- simulator


def _sim_header(
    color: ColorMetadata, identity: CameraIdentity, description: str, bo: ByteOrder
) -> _Header:
    """IFD0 content of a simulated camera file: the camera's own Software, DNG version and
    ProfileToneCurve (which Linear48's output never carries)."""
    neutral, _ = camera_neutral(color)
    return _Header(
        color=color,
        identity=identity,
        software=identity.software or f"Linear48 {software_version()} simulator",
        description=description,
        baseline_exposure=color.baseline_exposure_ev,
        dng_version=identity.dng_version or (1, 4, 0, 0),
        backward_version=(1, 1, 0, 0),
        xmp=None,
        neutral=neutral,
        extra=tuple(_tone_curve_entry(color, bo)),
    )


def _tone_curve_entry(color: ColorMetadata, bo: ByteOrder) -> list[Entry]:
    if color.profile_tone_curve is None:
        return []
    curve = np.asarray(color.profile_tone_curve, dtype=np.float64)
    if curve.ndim != 2 or curve.shape[1] != 2:
        raise ShapeError(f"profile_tone_curve must be (N, 2), got {curve.shape}")
    return [entry(Tag.PROFILE_TONE_CURVE, TiffType.FLOAT, curve.ravel(), bo)]


def _sim_tile_shape(tile_shape: tuple[int, int] | None, h: int, w: int) -> tuple[int, int]:
    if tile_shape is None:
        t = choose_tile_size(h, w)
        return (t, t)
    th, tw = (int(v) for v in tile_shape)
    if th < 1 or tw < 1:
        raise ConfigError(f"tile_shape must be positive (height, width), got {tile_shape}")
    return (th, tw)


def _write_sim_dng(
    path: str | Path,
    *,
    header: _Header,
    preview: np.ndarray,
    storage: _RawStorage,
    read: RegionReader,
    raw_tags: list[Entry],
    color: ColorMetadata,
    byteorder: ByteOrder,
    overwrite: bool,
    threads: int,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    t0: float,
) -> DngWriteInfo:
    """Shared tail of the simulator writers: write the file, describe what was written."""
    size = _write_dng(
        path,
        header=header,
        preview=preview,
        storage=storage,
        read=read,
        raw_tags=raw_tags,
        byteorder=byteorder,
        overwrite=overwrite,
        threads=threads,
        progress=progress,
        cancel=cancel,
    )
    _, tw = storage.tile_shape or (0, 0)
    return DngWriteInfo(
        path=Path(path),
        height=storage.height,
        width=storage.width,
        sample_format="uint16",
        layout=storage.layout_name,
        tile_size=tw,
        headroom_ev=0.0,
        baseline_exposure=color.baseline_exposure_ev,
        bytes_written=size,
        encode_seconds=time.perf_counter() - t0,
    )


def write_bayer_dng(
    path: str | Path,
    stored: np.ndarray,
    *,
    cfa: CfaPattern,
    black: float | np.ndarray,
    white: int,
    color: ColorMetadata,
    identity: CameraIdentity,
    active_area: tuple[int, int, int, int] | None = None,
    default_crop: tuple[int, int, int, int] | None = None,
    opcode_list2: bytes | None = None,
    opcode_list3: bytes | None = None,
    tile_shape: tuple[int, int] | None = None,
    byteorder: ByteOrder = ">",
    bits_per_sample: int = 16,
    preview_long_side: int = 256,
    overwrite: bool = True,
    threads: int = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> DngWriteInfo:
    """Write an iPhone-like Bayer CFA DNG (the simulator's RAW12).

    Shapes/units: stored uint16 (H, W) raw codes as stored, padding columns included;
    ``cfa`` is the phase of stored pixel (0, 0) (= of the active area's top-left, whose
    offsets must be even: readers disagree on the origin of CFAPattern and BlackLevel
    otherwise); ``black`` a scalar or a (2, 2) array per CFA position
    (BlackLevelRepeatDim 1x1 or 2x2), in raw codes; ``white`` in raw codes.
    ``active_area`` (top, left, bottom, right) in stored pixels; ``default_crop``
    (x, y, w, h) relative to the active area (default: all of it). Opcode lists are
    written verbatim (UNDEFINED) in the raw IFD. Tiles: lossless JPEG, one component,
    precision ``bits_per_sample``; ``tile_shape`` (height, width), e.g. (378, 264) as on
    an iPhone 15 Pro's 3024x4224 frame; None picks a square tile.

    Raises:
        ShapeError: wrong dtype/shape, codes above 2**bits, bad levels, an active area
            outside the frame or at odd offsets, a crop outside the active area.
        OutputError, CancelledError: as :func:`write_linear_dng`.
    """
    t0 = time.perf_counter()
    if not isinstance(stored, np.ndarray) or stored.ndim != 2 or stored.dtype != np.uint16:
        raise ShapeError(
            f"stored must be a uint16 (H, W) array, got "
            f"{getattr(stored, 'dtype', None)} {getattr(stored, 'shape', None)}"
        )
    height, width = stored.shape
    if not 2 <= bits_per_sample <= 16 or not 0 < white < (1 << bits_per_sample):
        raise ShapeError(f"white {white} does not fit {bits_per_sample}-bit samples")
    top, left, bottom, right = active_area or (0, 0, height, width)
    if not (0 <= top < bottom <= height and 0 <= left < right <= width):
        raise ShapeError(f"active_area {active_area} outside the {width}x{height} frame")
    if top % 2 or left % 2:
        raise ShapeError(
            f"active_area {active_area} starts at an odd offset; keep the CFA "
            "phase (even top and left)"
        )
    if int(stored.max(initial=0)) >= 1 << bits_per_sample:
        raise ShapeError(f"stored codes exceed {bits_per_sample} bits")
    cx, cy, cw, ch = default_crop or (0, 0, right - left, bottom - top)
    if cx < 0 or cy < 0 or cw < 1 or ch < 1 or cx + cw > right - left or cy + ch > bottom - top:
        raise ShapeError(f"default_crop {default_crop} outside the active area")
    black_arr = np.asarray(black, dtype=np.float64)
    if black_arr.shape not in ((), (1,), (2, 2)):
        raise ShapeError(f"black must be a scalar or (2, 2), got shape {black_arr.shape}")
    repeat = (2, 2) if black_arr.shape == (2, 2) else (1, 1)
    _check_writable(path, overwrite)
    bo = byteorder
    storage = _RawStorage(
        height,
        width,
        1,
        bits_per_sample,
        1,
        Compression.LJPEG,
        _sim_tile_shape(tile_shape, height, width),
    )

    def read(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return stored[y0:y1, x0:x1]

    raw_tags = [
        entry(Tag.CFA_REPEAT_PATTERN_DIM, TiffType.SHORT, [2, 2], bo),
        entry(Tag.CFA_PATTERN, TiffType.BYTE, cfa.as_array().ravel(), bo),
        entry(Tag.CFA_PLANE_COLOR, TiffType.BYTE, [0, 1, 2], bo),
        entry(Tag.CFA_LAYOUT, TiffType.SHORT, 1, bo),
        entry(Tag.BLACK_LEVEL_REPEAT_DIM, TiffType.SHORT, repeat, bo),
        _level_entry(Tag.BLACK_LEVEL, black_arr, bo, allow_rational=True),
        _level_entry(Tag.WHITE_LEVEL, np.array([white]), bo, allow_rational=False),
        *_crop_entries((cx, cy), (cw, ch), bo),
        entry(Tag.ACTIVE_AREA, TiffType.LONG, [top, left, bottom, right], bo),
        *_noise_profile_entry(color.noise_profile, 1.0, bo),
    ]
    if opcode_list2:
        raw_tags.append(bytes_entry(Tag.OPCODE_LIST2, opcode_list2, bo))
    if opcode_list3:
        raw_tags.append(bytes_entry(Tag.OPCODE_LIST3, opcode_list3, bo))

    # Preview: 2x2 superpixels of the active area (R, mean G, B), then box-filtered.
    area = stored[top:bottom, left:right]
    hh, ww = (area.shape[0] // 2) * 2, (area.shape[1] // 2) * 2
    blk = np.broadcast_to(
        black_arr.reshape(-1)[:4].reshape(2, 2)
        if black_arr.size == 4
        else black_arr.reshape(-1)[:1],
        (2, 2),
    )
    planes = []
    for name in ("R", "Gr", "B"):
        dy, dx = cfa.plane_offsets()[name]
        bl = float(blk[dy, dx])
        sub = area[dy:hh:2, dx:ww:2].astype(np.float32)
        planes.append((sub - bl) / max(1.0, white - bl))
    header = _sim_header(color, identity, "Bayer CFA raw", bo)
    preview = render_preview(
        _downsample(np.stack(planes), preview_long_side), header.neutral, color.baseline_exposure_ev
    )
    return _write_sim_dng(
        path,
        header=header,
        preview=preview,
        storage=storage,
        read=read,
        raw_tags=raw_tags,
        color=color,
        byteorder=bo,
        overwrite=overwrite,
        threads=threads,
        progress=progress,
        cancel=cancel,
        t0=t0,
    )


def write_linearraw_dng(
    path: str | Path,
    codes: np.ndarray,
    *,
    bits_per_sample: int,
    linearization_table: np.ndarray | None,
    black: Sequence[float],
    white: Sequence[float],
    color: ColorMetadata,
    identity: CameraIdentity,
    pgtm: bytes | None = None,
    tile_shape: tuple[int, int] | None = None,
    byteorder: ByteOrder = ">",
    preview_long_side: int = 256,
    overwrite: bool = True,
    threads: int = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> DngWriteInfo:
    """Write an Apple-ProRAW-like LinearRaw DNG (the simulator's ProRAW48).

    Shapes/units: codes uint16 (3, H, W) stored codes < 2**bits_per_sample (10, 12 or
    16); ``linearization_table`` (N,) uint16 maps codes to linear values (N >= the
    largest code + 1), or None; ``black``/``white`` (3,) per sample, in linearized units.
    ``pgtm`` is the raw value of tag 52525 (ProfileGainTableMap), written in the raw IFD
    as UNDEFINED like Apple does. Tiles: lossless JPEG, 3 components, precision
    ``bits_per_sample``.

    Raises:
        ShapeError: wrong dtype/shape, codes out of range for the bits or the table,
            bad levels.
        OutputError, CancelledError: as :func:`write_linear_dng`.
    """
    t0 = time.perf_counter()
    if (
        not isinstance(codes, np.ndarray)
        or codes.ndim != 3
        or codes.shape[0] != 3
        or codes.dtype != np.uint16
    ):
        raise ShapeError(
            f"codes must be a uint16 (3, H, W) array, got "
            f"{getattr(codes, 'dtype', None)} {getattr(codes, 'shape', None)}"
        )
    if bits_per_sample not in (10, 12, 16):
        raise ShapeError(f"bits_per_sample must be 10, 12 or 16, got {bits_per_sample}")
    _, height, width = codes.shape
    max_code = int(codes.max(initial=0))
    if max_code >= 1 << bits_per_sample:
        raise ShapeError(f"codes reach {max_code}, more than {bits_per_sample} bits hold")
    table = None
    if linearization_table is not None:
        table = np.asarray(linearization_table)
        if table.ndim != 1 or table.size <= max_code or table.size > 65536:
            raise ShapeError(
                f"linearization_table must be (N,) with N > {max_code} "
                f"(largest code), got shape {table.shape}"
            )
        if table.min() < 0 or table.max() > 0xFFFF:
            raise ShapeError("linearization_table values must fit uint16")
    black_arr = np.asarray(black, dtype=np.float64).ravel()
    white_arr = np.asarray(white, dtype=np.float64).ravel()
    if black_arr.size != 3 or white_arr.size != 3 or np.any(white_arr <= black_arr):
        raise ShapeError(
            f"black/white must be 3 values each with white > black, got {black_arr} / {white_arr}"
        )
    _check_writable(path, overwrite)
    bo = byteorder
    storage = _RawStorage(
        height,
        width,
        3,
        bits_per_sample,
        1,
        Compression.LJPEG,
        _sim_tile_shape(tile_shape, height, width),
    )

    def read(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return codes[:, y0:y1, x0:x1].transpose(1, 2, 0)

    raw_tags = [
        _level_entry(Tag.BLACK_LEVEL, black_arr, bo, allow_rational=True),
        _level_entry(Tag.WHITE_LEVEL, white_arr, bo, allow_rational=False),
        *_crop_entries((0, 0), (width, height), bo),
        *_noise_profile_entry(color.noise_profile, 1.0, bo),
    ]
    if table is not None:
        raw_tags.append(entry(Tag.LINEARIZATION_TABLE, TiffType.SHORT, table, bo))
    if pgtm:
        raw_tags.append(bytes_entry(Tag.PROFILE_GAIN_TABLE_MAP, pgtm, bo))

    small = _downsample(codes, preview_long_side)
    if table is not None:
        small = table.astype(np.float32)[np.clip(np.rint(small), 0, table.size - 1).astype(np.intp)]
    small = (small - black_arr[:, None, None]) / (white_arr - black_arr)[:, None, None]
    header = _sim_header(color, identity, "LinearRaw", bo)
    preview = render_preview(small.astype(np.float32), header.neutral, color.baseline_exposure_ev)
    return _write_sim_dng(
        path,
        header=header,
        preview=preview,
        storage=storage,
        read=read,
        raw_tags=raw_tags,
        color=color,
        byteorder=bo,
        overwrite=overwrite,
        threads=threads,
        progress=progress,
        cancel=cancel,
        t0=t0,
    )


__all__ = [
    "XMP_NAMESPACE",
    "DngWriteInfo",
    "DngWriteOptions",
    "camera_neutral",
    "choose_tile_size",
    "headroom_ev",
    "read_provenance",
    "write_bayer_dng",
    "write_linear_dng",
    "write_linearraw_dng",
]
