"""DNG opcode lists (OpcodeList1/2/3, tags 51008/51009/51022) and lens-shading gains.

Binary layout (DNG 1.7.1 spec, chapter 7 "Opcode List Processing"; Adobe DNG SDK
``dng_opcode_list::Parse``/``Spool``), always **big-endian** whatever the file's byte order::

    count                     LONG
    per opcode:  id LONG, version LONG (DNG version, e.g. 0x01030000), flags LONG,
                 byte count LONG, then that many bytes of parameters

Flags: bit 0 = optional (a reader that does not know the opcode may skip it; when clear
the opcode is *mandatory*), bit 1 = may be skipped for previews.

GainMap (id 9; SDK ``dng_opcode_GainMap`` / ``dng_gain_map`` in ``dng_gain_map.cpp``,
``dng_area_spec`` in ``dng_misc_opcodes.cpp``)::

    Top, Left, Bottom, Right  LONG (signed)   area; an empty area means the whole image
    Plane, Planes             LONG            first plane and plane count affected
    RowPitch, ColPitch        LONG            only rows Top + k*RowPitch (cols likewise)
    MapPointsV, MapPointsH    LONG
    MapSpacingV, MapSpacingH  DOUBLE          relative to image height / width
    MapOriginV, MapOriginH    DOUBLE          relative, may be negative
    MapPlanes                 LONG
    gains[V][H][MapPlanes]    FLOAT

  Pixel (row, col) samples the map at ``((row + 0.5) / H_img, (col + 0.5) / W_img)``, i.e.
  at pixel centres relative to the whole image at that stage, bilinearly, with map indices
  clamped to the map (edge values replicated). Image plane ``p`` uses map plane
  ``min(p, MapPlanes - 1)``.

FixVignetteRadial (id 3; SDK ``dng_opcode_FixVignetteRadial`` in
``dng_lens_correction.cpp``)::

    k0..k4 DOUBLE, then optical centre cx (horizontal), cy (vertical) DOUBLE, relative [0, 1]

  ``gain = 1 + k0 r^2 + k1 r^4 + k2 r^6 + k3 r^8 + k4 r^10`` where ``r`` is the distance
  from the centre ``(cx * W, cy * H)`` to the pixel centre, divided by the distance from
  the centre to the farthest image corner (so ``r <= 1``); the same gain for every plane.

Stages: OpcodeList1 works on the stored raw image (stored-image coordinates), OpcodeList2
after linearization and OpcodeList3 after demosaicing, both on the ActiveArea image.
For a CFA mosaic, list 1 and 2 images have a single plane; list 3 runs on RGB, so here a
mosaic pixel of colour ``c`` (0 R, 1 G, 2 B) is treated as plane ``c``. Applying a list-3
opcode to the mosaic rather than to the demosaiced RGB is exact for FixVignetteRadial and
per-plane GainMaps (both are per-pixel multiplications).
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.cfa import CfaPattern
from core.errors import CorruptDataError, ShadingError, ShapeError

logger = logging.getLogger(__name__)

OPCODE_LIST_TAGS: dict[int, int] = {1: 51008, 2: 51009, 3: 51022}
"""OpcodeList number -> TIFF tag."""

OPCODE_NAMES: dict[int, str] = {
    1: "WarpRectilinear",
    2: "WarpFisheye",
    3: "FixVignetteRadial",
    4: "FixBadPixelsConstant",
    5: "FixBadPixelsList",
    6: "TrimBounds",
    7: "MapTable",
    8: "MapPolynomial",
    9: "GainMap",
    10: "DeltaPerRow",
    11: "DeltaPerColumn",
    12: "ScalePerRow",
    13: "ScalePerColumn",
    14: "WarpRectilinear2",
}
"""Opcode ids of the DNG spec (SDK ``dng_opcode_id``)."""

OPCODE_GAIN_MAP = 9
OPCODE_FIX_VIGNETTE_RADIAL = 3
FLAG_OPTIONAL = 1
FLAG_SKIP_IF_PREVIEW = 2
DNG_VERSION_1_3 = 0x01030000

_AREA_BYTES = 32
_MAP_HEADER_BYTES = 44
_VIGNETTE_BYTES = 56
_OPCODE_HEADER_BYTES = 16

MAX_SHADING_GAIN = 1.0e4
"""Largest flat-field gain accepted (per map entry, vignette polynomial, and in total);
real lens shading stays within a few stops, so anything larger is a corrupt opcode."""


@dataclass(frozen=True, eq=False)
class GainMapOpcode:
    """A GainMap opcode (id 9). See the module docstring for the meaning of each field.

    ``gains`` is float32 (map_points_v, map_points_h, map_planes), multiplicative.
    Equality is identity (``eq=False``); compare serialized bytes instead.
    """

    top: int
    left: int
    bottom: int
    right: int
    plane: int
    planes: int
    row_pitch: int
    col_pitch: int
    map_points_v: int
    map_points_h: int
    map_spacing_v: float
    map_spacing_h: float
    map_origin_v: float
    map_origin_h: float
    map_planes: int
    gains: np.ndarray
    flags: int = 0
    version: int = DNG_VERSION_1_3

    def __post_init__(self) -> None:
        gains = np.ascontiguousarray(self.gains, dtype=np.float32)
        expected = (self.map_points_v, self.map_points_h, self.map_planes)
        if gains.shape != expected:
            raise ShadingError(f"GainMap gains have shape {gains.shape}, expected {expected}")
        gains.setflags(write=False)
        object.__setattr__(self, "gains", gains)
        reason = _gain_map_invalid(self)
        if reason is not None:
            raise ShadingError(f"GainMap opcode is invalid: {reason}")

    @property
    def opcode_id(self) -> int:
        return OPCODE_GAIN_MAP

    @property
    def name(self) -> str:
        return "GainMap"

    @property
    def area_is_empty(self) -> bool:
        """An empty area means the opcode covers the whole image (SDK ``dng_area_spec``)."""
        return self.top >= self.bottom or self.left >= self.right


@dataclass(frozen=True)
class FixVignetteRadialOpcode:
    """A FixVignetteRadial opcode (id 3).

    Attributes:
        k: (k0, k1, k2, k3, k4) coefficients of r^2 .. r^10.
        center_x, center_y: optical centre relative to image width / height, in [0, 1].
    """

    k: tuple[float, float, float, float, float]
    center_x: float
    center_y: float
    flags: int = 0
    version: int = DNG_VERSION_1_3

    def __post_init__(self) -> None:
        if len(self.k) != 5:
            raise ShadingError(f"FixVignetteRadial needs 5 coefficients, got {len(self.k)}")
        object.__setattr__(self, "k", tuple(float(v) for v in self.k))
        if not all(math.isfinite(v) for v in (*self.k, self.center_x, self.center_y)):
            raise ShadingError("FixVignetteRadial has non-finite coefficients or centre")
        if not (0.0 <= self.center_x <= 1.0 and 0.0 <= self.center_y <= 1.0):
            raise ShadingError(
                f"FixVignetteRadial centre ({self.center_x}, {self.center_y}) is outside the "
                "image (relative coordinates must lie in 0..1)"
            )
        if any(abs(v) > MAX_SHADING_GAIN for v in self.k):
            raise ShadingError(f"FixVignetteRadial coefficients {self.k} are implausibly large")
        r2 = np.linspace(0.0, 1.0, 1025)
        gain = np.ones_like(r2)
        for i, c in enumerate(self.k):
            gain += c * r2 ** (i + 1)
        if float(gain.min()) <= 0.0:
            raise ShadingError(
                f"FixVignetteRadial coefficients {self.k} give a gain of {float(gain.min()):.3g} "
                "inside the image; a vignetting gain must be positive"
            )

    @property
    def opcode_id(self) -> int:
        return OPCODE_FIX_VIGNETTE_RADIAL

    @property
    def name(self) -> str:
        return "FixVignetteRadial"


@dataclass(frozen=True)
class UnknownOpcode:
    """Any other opcode, kept verbatim (``data`` = its parameter bytes)."""

    opcode_id: int
    flags: int
    version: int
    data: bytes

    @property
    def name(self) -> str:
        return OPCODE_NAMES.get(self.opcode_id, f"opcode {self.opcode_id}")

    @property
    def optional(self) -> bool:
        return bool(self.flags & FLAG_OPTIONAL)


Opcode = GainMapOpcode | FixVignetteRadialOpcode | UnknownOpcode


@dataclass(frozen=True)
class OpcodeList:
    """One OpcodeList tag: ``list_id`` 1, 2 or 3 and its opcodes in file order."""

    list_id: int
    opcodes: tuple[Opcode, ...] = ()

    def __post_init__(self) -> None:
        if self.list_id not in OPCODE_LIST_TAGS:
            raise ValueError(f"list_id must be 1, 2 or 3, got {self.list_id!r}")
        object.__setattr__(self, "opcodes", tuple(self.opcodes))


def _gain_map_invalid(op: GainMapOpcode) -> str | None:
    """Why a GainMap is unusable (SDK ``dng_area_spec::GetData``, ``dng_gain_map::GetStream``)."""
    if op.planes < 1:
        return f"it affects {op.planes} planes"
    if op.row_pitch < 1 or op.col_pitch < 1:
        return f"row/column pitch {op.row_pitch}/{op.col_pitch} must be at least 1"
    if op.area_is_empty:
        if op.row_pitch != 1 or op.col_pitch != 1:
            return "an empty (whole-image) area needs pitch 1"
    elif op.row_pitch > op.bottom - op.top or op.col_pitch > op.right - op.left:
        return "its pitch is larger than its area"
    if op.map_points_v < 1 or op.map_points_h < 1 or op.map_planes < 1:
        return f"empty map ({op.map_points_v}x{op.map_points_h}x{op.map_planes})"
    for name, points, spacing, origin in (
        ("vertical", op.map_points_v, op.map_spacing_v, op.map_origin_v),
        ("horizontal", op.map_points_h, op.map_spacing_h, op.map_origin_h),
    ):
        if points == 1:  # the SDK replaces spacing/origin of a single-point axis
            continue
        if not (math.isfinite(spacing) and spacing > 0.0):
            return f"{name} map spacing {spacing!r} is not a positive number"
        if not math.isfinite(origin):
            return f"{name} map origin {origin!r} is not finite"
    if not np.all(np.isfinite(op.gains)):
        return "its gains hold NaN or infinite values"
    if op.gains.size and (op.gains.min() < 0.0 or op.gains.max() > MAX_SHADING_GAIN):
        return (
            f"its gains {op.gains.min():.4g}..{op.gains.max():.4g} are outside "
            f"0..{MAX_SHADING_GAIN:g}"
        )
    return None


# --------------------------------------------------------------------------- parse / write


def parse_opcode_list(data: bytes, list_id: int) -> OpcodeList:
    """Parse the raw value of OpcodeList``list_id`` (big-endian by specification).

    Raises:
        CorruptDataError: the list structure is broken (truncated, counts or sizes that do
            not fit, trailing bytes).
        ShadingError: a GainMap or FixVignetteRadial opcode has malformed parameters.
    """
    if list_id not in OPCODE_LIST_TAGS:
        raise ValueError(f"list_id must be 1, 2 or 3, got {list_id!r}")
    buf = bytes(data)
    name = f"OpcodeList{list_id}"
    if len(buf) < 4:
        raise CorruptDataError(f"{name} is truncated ({len(buf)} bytes)")
    (count,) = struct.unpack_from(">I", buf, 0)
    if count > (len(buf) - 4) // _OPCODE_HEADER_BYTES:
        raise CorruptDataError(f"{name} claims {count} opcodes but holds only {len(buf)} bytes")
    pos = 4
    opcodes: list[Opcode] = []
    for index in range(count):
        if len(buf) - pos < _OPCODE_HEADER_BYTES:
            raise CorruptDataError(f"{name} is truncated inside opcode {index + 1} of {count}")
        opcode_id, version, flags, size = struct.unpack_from(">IIII", buf, pos)
        pos += _OPCODE_HEADER_BYTES
        if size > len(buf) - pos:
            raise CorruptDataError(
                f"{name}: opcode {index + 1} ({OPCODE_NAMES.get(opcode_id, opcode_id)}) "
                f"declares {size} bytes but only {len(buf) - pos} remain"
            )
        payload = buf[pos : pos + size]
        pos += size
        if opcode_id == OPCODE_GAIN_MAP:
            opcodes.append(_parse_gain_map(payload, flags, version, name))
        elif opcode_id == OPCODE_FIX_VIGNETTE_RADIAL:
            opcodes.append(_parse_vignette(payload, flags, version, name))
        else:
            opcodes.append(UnknownOpcode(opcode_id, flags, version, payload))
    if pos != len(buf):
        raise CorruptDataError(f"{name} has {len(buf) - pos} unexpected bytes after its opcodes")
    return OpcodeList(list_id, tuple(opcodes))


def _parse_gain_map(payload: bytes, flags: int, version: int, list_name: str) -> GainMapOpcode:
    if len(payload) < _AREA_BYTES + _MAP_HEADER_BYTES:
        raise ShadingError(f"{list_name}: GainMap is truncated ({len(payload)} bytes)")
    top, left, bottom, right, plane, planes, row_pitch, col_pitch = struct.unpack_from(
        ">iiiiIIII", payload, 0
    )
    pv, ph, sv, sh, ov, oh, mp = struct.unpack_from(">IIddddI", payload, _AREA_BYTES)
    n_gains = pv * ph * mp
    expected = _AREA_BYTES + _MAP_HEADER_BYTES + 4 * n_gains
    if len(payload) != expected:
        raise ShadingError(
            f"{list_name}: GainMap declares a {pv}x{ph}x{mp} map ({expected} bytes) but "
            f"holds {len(payload)} bytes"
        )
    gains = np.frombuffer(
        payload, dtype=">f4", count=n_gains, offset=_AREA_BYTES + _MAP_HEADER_BYTES
    ).reshape(pv, ph, mp)
    try:
        return GainMapOpcode(
            top,
            left,
            bottom,
            right,
            plane,
            planes,
            row_pitch,
            col_pitch,
            pv,
            ph,
            sv,
            sh,
            ov,
            oh,
            mp,
            gains,
            flags=flags,
            version=version,
        )
    except ShadingError as err:
        raise ShadingError(f"{list_name}: {err.reason}") from None


def _parse_vignette(
    payload: bytes, flags: int, version: int, list_name: str
) -> FixVignetteRadialOpcode:
    if len(payload) != _VIGNETTE_BYTES:
        raise ShadingError(
            f"{list_name}: FixVignetteRadial has {len(payload)} bytes of parameters, "
            f"expected {_VIGNETTE_BYTES}"
        )
    *k, cx, cy = struct.unpack(">7d", payload)
    try:
        return FixVignetteRadialOpcode(tuple(k), cx, cy, flags=flags, version=version)
    except ShadingError as err:
        raise ShadingError(f"{list_name}: {err.reason}") from None


def serialize_opcode_list(opcode_list: OpcodeList) -> bytes:
    """Big-endian bytes of an OpcodeList tag (exact inverse of ``parse_opcode_list``)."""
    out = [struct.pack(">I", len(opcode_list.opcodes))]
    for op in opcode_list.opcodes:
        if isinstance(op, GainMapOpcode):
            payload = b"".join(
                [
                    struct.pack(
                        ">iiiiIIII",
                        op.top,
                        op.left,
                        op.bottom,
                        op.right,
                        op.plane,
                        op.planes,
                        op.row_pitch,
                        op.col_pitch,
                    ),
                    struct.pack(
                        ">IIddddI",
                        op.map_points_v,
                        op.map_points_h,
                        op.map_spacing_v,
                        op.map_spacing_h,
                        op.map_origin_v,
                        op.map_origin_h,
                        op.map_planes,
                    ),
                    op.gains.astype(">f4").tobytes(),
                ]
            )
        elif isinstance(op, FixVignetteRadialOpcode):
            payload = struct.pack(">7d", *op.k, op.center_x, op.center_y)
        else:
            payload = op.data
        out.append(struct.pack(">IIII", op.opcode_id, op.version, op.flags, len(payload)))
        out.append(payload)
    return b"".join(out)


def unsupported_mandatory(opcode_list: OpcodeList) -> list[str]:
    """Names of opcodes Linear48 does not implement whose "optional" flag is clear.

    A DNG reader must not ignore these (DNG spec, chapter 7): e.g. ``WarpRectilinear2``
    (id 14) on iPhone ultra-wide RAW12 files. Returns ``["OpcodeList3: WarpRectilinear2
    (id 14)", ...]``; empty when everything mandatory is understood.
    """
    return [
        f"OpcodeList{opcode_list.list_id}: {op.name} (id {op.opcode_id})"
        for op in opcode_list.opcodes
        if isinstance(op, UnknownOpcode) and not op.optional
    ]


# --------------------------------------------------------------------------- shading gains


def _frame(
    height: int, width: int, origin: tuple[int, int], image_size: tuple[int, int] | None
) -> tuple[int, int, int, int]:
    """(x0, y0, full_h, full_w): where the (height, width) mosaic sits in the opcode image."""
    ox, oy = int(origin[0]), int(origin[1])
    if image_size is None:
        if (ox, oy) != (0, 0):
            raise ShapeError("pass image_size (height, width) when origin is not (0, 0)")
        return 0, 0, height, width
    full_h, full_w = int(image_size[0]), int(image_size[1])
    if ox < 0 or oy < 0 or ox + width > full_w or oy + height > full_h:
        raise ShapeError(
            f"a {width}x{height} mosaic at (x={ox}, y={oy}) does not fit a {full_w}x{full_h} image"
        )
    return ox, oy, full_h, full_w


def _selected(start_px: int, count: int, lo: int, hi: int, pitch: int, whole: bool) -> slice:
    """Local slice of the pixels ``start_px + i`` an area/pitch selects (SDK ``ScaledOverlap``).

    The selected image pixels are ``lo, lo + pitch, ... < hi``: an arithmetic progression,
    so the local selection is a strided slice (possibly empty).
    """
    if whole:
        return slice(0, count, 1)
    first = max(lo, start_px)
    first += (lo - first) % pitch  # next pixel on the pitch grid
    stop = min(hi, start_px + count)
    if first >= stop:
        return slice(0, 0, 1)
    return slice(first - start_px, stop - start_px, pitch)


def _map_axis(
    points: int, spacing: float, origin: float, img_px: np.ndarray, size_px: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, frac) map indices at pixel centres (SDK ``dng_gain_map_interpolator``)."""
    if points == 1:
        zeros = np.zeros(img_px.shape, dtype=np.int64)
        return zeros, zeros, np.zeros(img_px.shape, dtype=np.float64)
    m = ((img_px + 0.5) / size_px - origin) / spacing
    m = np.clip(np.nan_to_num(m, nan=0.0), 0.0, points - 1.0)
    i0 = m.astype(np.int64)
    return i0, np.minimum(i0 + 1, points - 1), m - i0


def _gain_map_gains(
    op: GainMapOpcode,
    map_plane: int,
    rows_img: np.ndarray,
    cols_img: np.ndarray,
    full_h: int,
    full_w: int,
) -> np.ndarray:
    """Bilinear map gains (len(rows), len(cols)) for one map plane."""
    g = op.gains[:, :, map_plane].astype(np.float64)
    r0, r1, rf = _map_axis(op.map_points_v, op.map_spacing_v, op.map_origin_v, rows_img, full_h)
    c0, c1, cf = _map_axis(op.map_points_h, op.map_spacing_h, op.map_origin_h, cols_img, full_w)
    by_row = g[r0] * (1.0 - rf)[:, None] + g[r1] * rf[:, None]  # (rows, map_points_h)
    return by_row[:, c0] * (1.0 - cf)[None, :] + by_row[:, c1] * cf[None, :]


def _apply_gain_map(
    gain: np.ndarray,
    op: GainMapOpcode,
    list_id: int,
    cfa: CfaPattern,
    ox: int,
    oy: int,
    full_h: int,
    full_w: int,
) -> None:
    h, w = gain.shape
    whole = op.area_is_empty
    rs = _selected(oy, h, op.top, op.bottom, op.row_pitch, whole)
    cs = _selected(ox, w, op.left, op.right, op.col_pitch, whole)
    rows_img = np.arange(h, dtype=np.float64)[rs] + oy
    cols_img = np.arange(w, dtype=np.float64)[cs] + ox
    if rows_img.size == 0 or cols_img.size == 0:
        return
    view = gain[rs, cs]
    if list_id == 3:
        # Stage 3 is RGB: a mosaic pixel of colour c stands for plane c.
        colors = cfa.color_mask(h, w)[rs, cs]
        for c in range(3):
            if not (op.plane <= c < op.plane + op.planes):
                continue
            mask = colors == c
            if np.any(mask):
                g = _gain_map_gains(
                    op, min(c, op.map_planes - 1), rows_img, cols_img, full_h, full_w
                )
                view[mask] *= g[mask]
    elif op.plane == 0:
        # Stages 1 and 2 of a CFA image have a single plane, number 0.
        view *= _gain_map_gains(op, 0, rows_img, cols_img, full_h, full_w)


def _apply_vignette(
    gain: np.ndarray, op: FixVignetteRadialOpcode, ox: int, oy: int, full_h: int, full_w: int
) -> None:
    h, w = gain.shape
    cy, cx = op.center_y * full_h, op.center_x * full_w
    max_r = math.hypot(max(cy, full_h - cy), max(cx, full_w - cx))
    coefs = list(op.k)
    while coefs and coefs[-1] == 0.0:
        coefs.pop()
    if max_r <= 0.0 or not coefs:
        return
    dy = (np.arange(oy, oy + h, dtype=np.float64) + 0.5 - cy) / max_r
    dx = (np.arange(ox, ox + w, dtype=np.float64) + 0.5 - cx) / max_r
    r2 = np.add.outer(dy * dy, dx * dx)
    np.minimum(r2, 1.0, out=r2)
    # Horner in r^2: gain = 1 + r2 * (k0 + r2 * (k1 + r2 * (...)))
    poly = np.full_like(r2, coefs[-1])
    for coef in reversed(coefs[:-1]):
        poly *= r2
        poly += coef
    poly *= r2
    poly += 1.0
    gain *= poly


def shading_gain_map(
    opcode_lists: Sequence[OpcodeList],
    height: int,
    width: int,
    cfa: CfaPattern,
    *,
    origin: tuple[int, int] = (0, 0),
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Multiplicative flat-field gain of the lens-shading opcodes for a Bayer mosaic.

    Applies every GainMap and FixVignetteRadial opcode of ``opcode_lists`` (their gains
    multiply); other opcodes are ignored (check ``unsupported_mandatory`` first).

    Args:
        opcode_lists: parsed lists (any of 1, 2, 3), all in the same coordinate system.
        height, width: mosaic size (H, W).
        cfa: the mosaic's Bayer pattern (phase of its top-left pixel); selects the plane of
            each pixel for OpcodeList3 opcodes.
        origin: (x, y) of the mosaic's top-left pixel in the opcode image, as
            ``RawCapture.crop_origin`` (lists 2 and 3: inside the ActiveArea; list 1: the
            stored image).
        image_size: (height, width) of the opcode image (the ActiveArea for lists 2/3, the
            stored image for list 1): relative map coordinates, areas and the vignette radius
            refer to it. None means the mosaic is the whole image.

    Returns:
        float32 (H, W) gains; ``mosaic * gain`` is the flat-fielded mosaic. Unlike the SDK,
        no clipping to 1.0 is applied.
    """
    if height < 0 or width < 0:
        raise ShapeError(f"mosaic size must be non-negative, got {height}x{width}")
    ox, oy, full_h, full_w = _frame(height, width, origin, image_size)
    gain = np.ones((height, width), dtype=np.float64)
    for opcode_list in opcode_lists:
        for op in opcode_list.opcodes:
            if isinstance(op, GainMapOpcode):
                _apply_gain_map(gain, op, opcode_list.list_id, cfa, ox, oy, full_h, full_w)
            elif isinstance(op, FixVignetteRadialOpcode):
                _apply_vignette(gain, op, ox, oy, full_h, full_w)
            else:
                logger.debug(
                    "OpcodeList%d: %s is not a shading opcode; ignored",
                    opcode_list.list_id,
                    op.name,
                )
    if gain.size and not gain.max() <= MAX_SHADING_GAIN:
        raise ShadingError(
            f"the lens-shading opcodes combine to a gain of {gain.max():.3g}, which is not "
            "plausible for vignetting"
        )
    return gain.astype(np.float32)


def apply_shading(
    mosaic: np.ndarray,
    opcode_lists: Sequence[OpcodeList],
    cfa: CfaPattern,
    *,
    origin: tuple[int, int] = (0, 0),
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """``mosaic * shading_gain_map(...)``: (H, W) float32 Mosaic12 -> flat-fielded (H, W)."""
    arr = np.asarray(mosaic)
    if arr.ndim != 2:
        raise ShapeError(f"mosaic must be (H, W), got shape {arr.shape}")
    gain = shading_gain_map(
        opcode_lists, arr.shape[0], arr.shape[1], cfa, origin=origin, image_size=image_size
    )
    return (arr.astype(np.float32, copy=False) * gain).astype(np.float32, copy=False)
