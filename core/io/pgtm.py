"""DNG ProfileGainTableMap (tag 52525, DNG 1.6) and ProfileGainTableMap2 (tag 52544, DNG 1.7).

A PGTM is a coarse 2D grid of 1D gain tables. At every pixel the renderer forms a scalar
"table input" from the pixel's colour, looks it up in the tables around the pixel and
multiplies the pixel's RGB by the resulting gain. Apple ProRAW stores its local tone
mapping this way (DESIGN §1).

Byte layout (DNG 1.7.1 spec, "ProfileGainTableMap" / "ProfileGainTableMap2"; Adobe DNG SDK
``dng_gain_table_map::GetStream``/``PutStream`` in ``dng_gain_map.cpp``), in the byte order
of the file that holds the tag (the tag has type UNDEFINED)::

    MapPointsV  LONG      MapPointsH  LONG
    MapSpacingV DOUBLE    MapSpacingH DOUBLE
    MapOriginV  DOUBLE    MapOriginH  DOUBLE
    MapPointsN  LONG      MapInputWeights FLOAT x 5  (R, G, B, min, max)   -> 64 bytes
    [version 2 only: DataType LONG, Gamma FLOAT, GainMin FLOAT, GainMax FLOAT] -> 80 bytes
    gains[MapPointsV][MapPointsH][MapPointsN]  (FLOAT32; version 2: by DataType
        0 = uint8, 1 = uint16, 2 = float16, 3 = float32)

Evaluation (spec text and SDK ``RefBaselineProfileGainTableMap`` in ``dng_reference.cpp``,
called from ``dng_render_task::ProcessArea`` in ``dng_render.cpp``):

- Position: pixel centres, ``u = (x + 0.5) / W``, ``v = (y + 0.5) / H`` relative to the
  stage-3 image (the ActiveArea; *not* the DefaultCrop). Map coordinates
  ``(u - MapOriginH) / MapSpacingH`` are clamped to ``[0, MapPointsH - 1]`` (edge tables
  replicated outside the map), same vertically.
- Table input: ``t = clamp(2**BaselineExposure * (R, G, B, min, max) . MapInputWeights, 0, 1)``
  and, for version 2, ``t = t ** Gamma``. The SDK applies the map before its exposure ramp and
  therefore scales the weighted sum by ``2**TotalBaselineExposure`` (= applying the map after
  BaselineExposure, as the spec requires).
- Table index: ``t * MapPointsN`` (not ``MapPointsN - 1``): ``i0 = min(floor, N - 1)``,
  ``i1 = min(i0 + 1, N - 1)``; so table entry ``i`` sits at input ``i / N`` and the last entry
  covers ``[(N - 1) / N, 1]``.
- Interpolation: trilinear over the 8 surrounding entries, in the SDK's order (table axis,
  then columns, then rows). Because every neighbouring table is read at the same index,
  "blend the 4 tables spatially, then look up" and "look up in each of the 4 tables, then
  blend" are the same function; the SDK computes the latter.
- The SDK (and the spec) says the RGB is linear RIMM (ProPhoto primaries) after white balance
  and BaselineExposure, 1.0 = white level. The functions below are colour-space agnostic:
  pass values in the space you want the map evaluated in.
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import CorruptDataError, ShapeError

logger = logging.getLogger(__name__)

TAG_PROFILE_GAIN_TABLE_MAP = 52525
TAG_PROFILE_GAIN_TABLE_MAP2 = 52544

HEADER_BYTES: dict[int, int] = {1: 64, 2: 80}
"""Header size per PGTM version (DNG 1.7.1 spec; SDK ``headerByteCount``)."""

DATA_TYPES: dict[int, tuple[str, int]] = {
    0: ("uint8", 1),
    1: ("uint16", 2),
    2: ("float16", 2),
    3: ("float32", 4),
}
"""ProfileGainTableMap2 DataType -> (storage type, bytes per gain)."""

MAX_TABLE_SAMPLES = 16_777_216
"""SDK ``kMaxProfileGainTableMapPoints``: V * H * N must stay below this."""

MIN_GAIN = 2.0**-12
MAX_GAIN = 4096.0
"""SDK ``kProfileGainTableMap_Min/MaxGainValue``: every decoded gain must lie in this range."""

MIN_GAMMA = 0.125
MAX_GAMMA = 8.0
"""SDK ``kProfileGainTableMap_Min/MaxGamma`` (the 1.7.1 spec text says 0.25..4.0; readers
accept the SDK's wider range, so we do too)."""

_BLOCK_PIXELS = 1 << 20  # pixels per processing block: bounds temporaries to ~100 MB


@dataclass(frozen=True, eq=False)
class ProfileGainTableMap:
    """A parsed ProfileGainTableMap (version 1) or ProfileGainTableMap2 (version 2).

    Attributes:
        points_v, points_h: number of gain tables vertically / horizontally (>= 1).
        spacing_v, spacing_h: table spacing, relative to image height / width (> 0 when more
            than one point on that axis; ignored when a single point).
        origin_v, origin_h: position of table (0, 0), relative to image height / width; may be
            negative.
        points_n: entries per gain table (>= 1); entry ``i`` is the gain at input ``i / N``.
        input_weights: (R, G, B, min, max) weights of the table input.
        table: float32 (points_v, points_h, points_n) decoded gains (multipliers, >0).
        gamma: exponent applied to the clamped table input (version 2 only; 1.0 otherwise).
        version: 1 = tag 52525 (DNG 1.6), 2 = ProfileGainTableMap2 tag 52544 (DNG 1.7).
        data_type: version 2 storage of the gains: 0 uint8, 1 uint16, 2 float16, 3 float32.
        gain_min, gain_max: version 2 gains represented by integer code 0 and by the largest
            code (DataType 0 and 1 only; stored verbatim otherwise).

    Equality is identity (``eq=False``): compare fields, or ``serialize_pgtm`` outputs.
    """

    points_v: int
    points_h: int
    spacing_v: float
    spacing_h: float
    origin_v: float
    origin_h: float
    points_n: int
    input_weights: tuple[float, float, float, float, float]
    table: np.ndarray
    gamma: float = 1.0
    version: int = 1
    data_type: int = 3
    gain_min: float = 1.0
    gain_max: float = 1.0

    def __post_init__(self) -> None:
        table = np.ascontiguousarray(self.table, dtype=np.float32)
        expected = (self.points_v, self.points_h, self.points_n)
        if table.shape != expected:
            raise ShapeError(
                f"ProfileGainTableMap table has shape {table.shape}, expected {expected}"
            )
        if len(self.input_weights) != 5:
            raise ShapeError(
                f"ProfileGainTableMap needs 5 input weights, got {len(self.input_weights)}"
            )
        table.setflags(write=False)
        object.__setattr__(self, "table", table)
        object.__setattr__(self, "input_weights", tuple(float(w) for w in self.input_weights))
        reason = _invalid_reason(self)
        if reason is not None:
            raise CorruptDataError(f"invalid ProfileGainTableMap: {reason}")

    @property
    def gain_range(self) -> tuple[float, float]:
        """(min, max) gain over the whole table."""
        return float(self.table.min()), float(self.table.max())


def _invalid_reason(p: ProfileGainTableMap) -> str | None:
    """Why ``p`` is not a valid PGTM (SDK ``GetStream`` rules), or None when it is."""
    if p.version not in HEADER_BYTES:
        return f"version {p.version} is not 1 or 2"
    if p.points_v < 1 or p.points_h < 1 or p.points_n < 1:
        return f"empty map ({p.points_v}x{p.points_h}x{p.points_n} points)"
    if p.points_v * p.points_h * p.points_n >= MAX_TABLE_SAMPLES:
        return (
            f"{p.points_v}x{p.points_h}x{p.points_n} gain entries is absurdly many "
            f"(limit {MAX_TABLE_SAMPLES - 1})"
        )
    # The SDK forces spacing 1 and origin 0 on an axis with a single point, then checks.
    for name, points, spacing, origin in (
        ("vertical", p.points_v, p.spacing_v, p.origin_v),
        ("horizontal", p.points_h, p.spacing_h, p.origin_h),
    ):
        if points == 1:
            continue
        if not (math.isfinite(spacing) and spacing > 0.0):
            return f"{name} map spacing {spacing!r} is not a positive number"
        if not math.isfinite(origin):
            return f"{name} map origin {origin!r} is not finite"
    if not all(math.isfinite(w) for w in p.input_weights):
        return f"input weights {p.input_weights} are not finite"
    if p.data_type not in DATA_TYPES:
        return f"DataType {p.data_type} is not one of {sorted(DATA_TYPES)}"
    if p.version == 1 and (p.data_type != 3 or p.gamma != 1.0):
        return "a version-1 map must have float32 gains and gamma 1"
    if not (math.isfinite(p.gamma) and MIN_GAMMA <= p.gamma <= MAX_GAMMA):
        return f"gamma {p.gamma!r} outside {MIN_GAMMA}..{MAX_GAMMA}"
    if p.version == 2:
        if not (math.isfinite(p.gain_min) and p.gain_min >= MIN_GAIN):
            return f"GainMin {p.gain_min!r} below {MIN_GAIN}"
        if not (math.isfinite(p.gain_max) and p.gain_max <= MAX_GAIN):
            return f"GainMax {p.gain_max!r} above {MAX_GAIN}"
    if not np.all(np.isfinite(p.table)):
        return "the gain table holds NaN or infinite values"
    lo, hi = float(p.table.min()), float(p.table.max())
    if lo < MIN_GAIN or hi > MAX_GAIN:
        return f"gains {lo:.6g}..{hi:.6g} outside {MIN_GAIN}..{MAX_GAIN}"
    return None


# --------------------------------------------------------------------------- parse / write


def parse_pgtm(
    data: bytes, *, byteorder: Literal[">", "<"] = ">", version: int = 1
) -> ProfileGainTableMap:
    """Parse the raw value of tag 52525 (``version=1``) or 52544 (``version=2``).

    Args:
        data: the tag's bytes exactly as stored.
        byteorder: byte order of the file holding the tag (``">"`` for ``MM``).
        version: 1 for ProfileGainTableMap, 2 for ProfileGainTableMap2.

    Returns:
        The map, ``table`` decoded to float32 gains.

    Raises:
        CorruptDataError: truncated data, counts that do not match the byte length, absurd
            dimensions, non-positive spacing, NaN/inf or out-of-range gains, bad gamma.
            Trailing bytes after the declared table are ignored (as the SDK does), with a
            log warning; they are not written back by ``serialize_pgtm``.
    """
    if byteorder not in (">", "<"):
        raise ValueError(f"byteorder must be '>' or '<', got {byteorder!r}")
    if version not in HEADER_BYTES:
        raise ValueError(f"version must be 1 or 2, got {version!r}")
    buf = bytes(data)
    header = HEADER_BYTES[version]
    name = "ProfileGainTableMap" if version == 1 else "ProfileGainTableMap2"
    if len(buf) < header:
        raise CorruptDataError(
            f"{name} is truncated: {len(buf)} bytes, the header alone needs {header}"
        )
    pv, ph, sv, sh, ov, oh, pn = struct.unpack_from(byteorder + "IIddddI", buf, 0)
    weights = struct.unpack_from(byteorder + "5f", buf, 44)
    data_type, gamma, gain_min, gain_max = 3, 1.0, 1.0, 1.0
    if version == 2:
        data_type, gamma, gain_min, gain_max = struct.unpack_from(byteorder + "Ifff", buf, 64)
    if data_type not in DATA_TYPES:
        raise CorruptDataError(f"{name} has unsupported DataType {data_type}")
    if pv < 1 or ph < 1 or pn < 1:
        raise CorruptDataError(f"{name} declares an empty map ({pv}x{ph}x{pn} points)")
    n_samples = pv * ph * pn
    if n_samples >= MAX_TABLE_SAMPLES:
        raise CorruptDataError(
            f"{name} declares {pv}x{ph}x{pn} gain entries, which is absurdly many"
        )
    storage, entry_bytes = DATA_TYPES[data_type]
    needed = header + n_samples * entry_bytes
    if len(buf) < needed:
        raise CorruptDataError(
            f"{name} declares {pv}x{ph}x{pn} gains ({needed} bytes) but holds only {len(buf)} bytes"
        )
    if len(buf) > needed:
        logger.warning("%s has %d trailing bytes after its table; ignored", name, len(buf) - needed)
    raw = np.frombuffer(
        buf, dtype=np.dtype(storage).newbyteorder(byteorder), count=n_samples, offset=header
    )
    table = _decode_gains(raw, data_type, gain_min, gain_max).reshape(pv, ph, pn)
    try:
        return ProfileGainTableMap(
            points_v=pv,
            points_h=ph,
            spacing_v=sv,
            spacing_h=sh,
            origin_v=ov,
            origin_h=oh,
            points_n=pn,
            input_weights=weights,
            table=table,
            gamma=gamma,
            version=version,
            data_type=data_type,
            gain_min=gain_min,
            gain_max=gain_max,
        )
    except CorruptDataError as err:
        raise CorruptDataError(err.reason.replace("ProfileGainTableMap", name)) from None


def serialize_pgtm(pgtm: ProfileGainTableMap, *, byteorder: Literal[">", "<"] = ">") -> bytes:
    """Bytes of the tag value for ``pgtm`` (exact inverse of ``parse_pgtm``).

    Version 2 integer tables are re-encoded with the SDK's rule
    ``round(clamp((g - GainMin) / (GainMax - GainMin), 0, 1) * MaxInt)``, which returns the
    stored codes exactly for tables that came from ``parse_pgtm``.
    """
    if byteorder not in (">", "<"):
        raise ValueError(f"byteorder must be '>' or '<', got {byteorder!r}")
    out = [
        struct.pack(
            byteorder + "IIddddI",
            pgtm.points_v,
            pgtm.points_h,
            pgtm.spacing_v,
            pgtm.spacing_h,
            pgtm.origin_v,
            pgtm.origin_h,
            pgtm.points_n,
        ),
        struct.pack(byteorder + "5f", *pgtm.input_weights),
    ]
    if pgtm.version == 2:
        out.append(
            struct.pack(
                byteorder + "Ifff", pgtm.data_type, pgtm.gamma, pgtm.gain_min, pgtm.gain_max
            )
        )
    storage, _ = DATA_TYPES[pgtm.data_type]
    codes = _encode_gains(pgtm.table.reshape(-1), pgtm.data_type, pgtm.gain_min, pgtm.gain_max)
    out.append(codes.astype(np.dtype(storage).newbyteorder(byteorder)).tobytes())
    return b"".join(out)


def _decode_gains(raw: np.ndarray, data_type: int, gain_min: float, gain_max: float) -> np.ndarray:
    """Stored gain codes -> float32 gains (SDK: ``gainMin + (x * 1/MaxInt) * (max - min)``)."""
    if data_type in (2, 3):
        return raw.astype(np.float32)
    scale = np.float32(1.0 / (255.0 if data_type == 0 else 65535.0))
    gmin, gmax = np.float32(gain_min), np.float32(gain_max)
    return (gmin + (raw.astype(np.float32) * scale) * (gmax - gmin)).astype(np.float32)


def _encode_gains(
    gains: np.ndarray, data_type: int, gain_min: float, gain_max: float
) -> np.ndarray:
    """float32 gains -> stored codes (SDK ``dng_gain_table_map::PutStream``)."""
    if data_type in (2, 3):
        return gains
    max_int = 255.0 if data_type == 0 else 65535.0
    if gain_max == gain_min:
        return np.zeros(gains.shape, dtype=np.int64)
    x = (gains.astype(np.float64) - gain_min) / (gain_max - gain_min)
    return np.rint(np.clip(x, 0.0, 1.0) * max_int).astype(np.int64)


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Axis:
    """Per-pixel map indices along one image axis (SDK clamping and half-pixel rule)."""

    i0: np.ndarray  # int64 (n,)
    i1: np.ndarray  # int64 (n,)
    frac: np.ndarray  # float (n,)


def _axis(
    points: int,
    spacing: float,
    origin: float,
    start_px: int,
    count: int,
    size_px: int,
    dtype: np.dtype,
) -> _Axis:
    """Map indices for pixels ``start_px .. start_px + count - 1`` of an axis ``size_px`` long."""
    if points == 1:  # SDK forces spacing 1 / origin 0; the clamp pins every pixel to 0
        zeros = np.zeros(count, dtype=np.int64)
        return _Axis(zeros, zeros, np.zeros(count, dtype=dtype))
    pos = (np.arange(start_px, start_px + count, dtype=np.float64) + 0.5) / size_px
    m = np.clip((pos - origin) / spacing, 0.0, points - 1.0)
    i0 = m.astype(np.int64)
    i1 = np.minimum(i0 + 1, points - 1)
    return _Axis(i0, i1, (m - i0).astype(dtype))


def _check_rgb(rgb: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[0] != 3:
        raise ShapeError(f"{what} must be (3, H, W), got shape {arr.shape}")
    return arr


def _work_dtype(arr: np.ndarray) -> np.dtype:
    return np.dtype(np.float64) if arr.dtype == np.float64 else np.dtype(np.float32)


def _frame(
    shape_hw: tuple[int, int], origin: tuple[int, int], image_size: tuple[int, int] | None
) -> tuple[int, int, int, int]:
    """(x0, y0, full_h, full_w) of a (H, W) tile placed at ``origin`` (x, y) in the image."""
    h, w = shape_hw
    ox, oy = int(origin[0]), int(origin[1])
    if image_size is None:
        if (ox, oy) != (0, 0):
            raise ShapeError("pass image_size (height, width) when origin is not (0, 0)")
        return 0, 0, h, w
    full_h, full_w = int(image_size[0]), int(image_size[1])
    if ox < 0 or oy < 0 or ox + w > full_w or oy + h > full_h:
        raise ShapeError(
            f"a {w}x{h} tile at (x={ox}, y={oy}) does not fit a {full_w}x{full_h} image"
        )
    return ox, oy, full_h, full_w


def _table_input(
    rgb: np.ndarray, pgtm: ProfileGainTableMap, exposure_gain: float, dtype: np.dtype
) -> np.ndarray:
    """Unclamped table input ``2**EV * (R, G, B, min, max) . weights`` of (3, ...) values."""
    r, g, b = (rgb[i].astype(dtype, copy=False) for i in range(3))
    w = [dtype.type(x) for x in pgtm.input_weights]
    s = w[0] * r + w[1] * g + w[2] * b
    if w[3] != 0:
        s = s + w[3] * np.minimum(np.minimum(r, g), b)
    if w[4] != 0:
        s = s + w[4] * np.maximum(np.maximum(r, g), b)
    return s * dtype.type(exposure_gain)


def _row_tables(pgtm: ProfileGainTableMap, ys: _Axis, rows: slice, dtype: np.dtype) -> np.ndarray:
    """Gain tables blended vertically for each image row: (rows, points_h, points_n)."""
    t3 = pgtm.table.astype(dtype, copy=False)
    top, bottom = t3[ys.i0[rows]], t3[ys.i1[rows]]
    yf = ys.frac[rows, None, None]
    return top + yf * (bottom - top)


@dataclass(frozen=True)
class _Cols:
    """Flat offsets into a row-blended table block for a set of pixels, and column weights."""

    b0: np.ndarray  # offset of (row, x0, 0)
    b1: np.ndarray  # offset of (row, x1, 0)
    xf: np.ndarray

    @classmethod
    def for_block(cls, n_rows: int, ph: int, n: int, xs: _Axis) -> _Cols:
        rbase = (np.arange(n_rows, dtype=np.int64) * (ph * n))[:, None]
        return cls(rbase + (xs.i0 * n)[None, :], rbase + (xs.i1 * n)[None, :], xs.frac[None, :])

    def subset(self, mask: np.ndarray) -> _Cols:
        shape = mask.shape
        return _Cols(
            np.broadcast_to(self.b0, shape)[mask],
            np.broadcast_to(self.b1, shape)[mask],
            np.broadcast_to(self.xf, shape)[mask],
        )

    def gain_at(self, flat: np.ndarray, n: int, i: np.ndarray | np.integer) -> np.ndarray:
        """Gain at integer table index ``i`` (clamped to N - 1)."""
        k = np.minimum(i, n - 1)
        g0 = np.take(flat, self.b0 + k)
        return g0 + self.xf * (np.take(flat, self.b1 + k) - g0)

    def gain(self, flat: np.ndarray, n: int, t: np.ndarray) -> np.ndarray:
        """Gain at clamped, gamma-mapped table input ``t`` (SDK index rule ``t * N``)."""
        ws = t * t.dtype.type(n)
        w0 = np.minimum(ws.astype(np.int64), n - 1)
        w1 = np.minimum(w0 + 1, n - 1)
        wf = ws - w0
        a0 = np.take(flat, self.b0 + w0)
        g0 = a0 + wf * (np.take(flat, self.b0 + w1) - a0)
        a1 = np.take(flat, self.b1 + w0)
        g1 = a1 + wf * (np.take(flat, self.b1 + w1) - a1)
        return g0 + self.xf * (g1 - g0)


def _clamped_input(s: np.ndarray, gamma: float) -> np.ndarray:
    """clamp(s, 0, 1) ** gamma with NaN -> 0 (never an out-of-range table index)."""
    t = np.clip(np.nan_to_num(s, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    if gamma != 1.0:
        t = t ** t.dtype.type(gamma)
    return t


def pgtm_gain(
    rgb: np.ndarray,
    pgtm: ProfileGainTableMap,
    *,
    baseline_exposure_ev: float = 0.0,
    origin: tuple[int, int] = (0, 0),
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Per-pixel PGTM gain, exactly as the Adobe DNG SDK computes it.

    Args:
        rgb: (3, H, W) linear RGB, 1.0 = white level, before BaselineExposure is applied
            (the spec evaluates the map in RIMM; pass whichever space you want it applied in).
        pgtm: the map.
        baseline_exposure_ev: total BaselineExposure (+ BaselineExposureOffset) in EV; the
            weighted input is scaled by ``2**baseline_exposure_ev`` before clamping.
        origin: (x, y) of ``rgb``'s top-left pixel inside the stage-3 image (for tiles).
        image_size: (height, width) of the stage-3 image (ActiveArea) the map's relative
            coordinates refer to; None means ``rgb`` is the whole image.

    Returns:
        float32 (H, W) gains (float64 when ``rgb`` is float64). Multiply RGB by it.
    """
    arr = _check_rgb(rgb, "rgb")
    dtype = _work_dtype(arr)
    h, w = arr.shape[1], arr.shape[2]
    ox, oy, full_h, full_w = _frame((h, w), origin, image_size)
    ys = _axis(pgtm.points_v, pgtm.spacing_v, pgtm.origin_v, oy, h, full_h, dtype)
    xs = _axis(pgtm.points_h, pgtm.spacing_h, pgtm.origin_h, ox, w, full_w, dtype)
    exposure_gain = 2.0 ** float(baseline_exposure_ev)
    out = np.empty((h, w), dtype=dtype)
    step = _block_rows(w, pgtm)
    for r0 in range(0, h, step):
        rows = slice(r0, min(h, r0 + step))
        flat = _row_tables(pgtm, ys, rows, dtype).reshape(-1)
        cols = _Cols.for_block(rows.stop - rows.start, pgtm.points_h, pgtm.points_n, xs)
        s = _table_input(arr[:, rows], pgtm, exposure_gain, dtype)
        out[rows] = cols.gain(flat, pgtm.points_n, _clamped_input(s, pgtm.gamma))
    return out


def _block_rows(width: int, pgtm: ProfileGainTableMap) -> int:
    """Rows per block: ~1 Mpixel, and row-blended tables of at most ~8 MB."""
    per_row_table = pgtm.points_h * pgtm.points_n
    return max(1, min(_BLOCK_PIXELS // max(width, 1), (1 << 21) // per_row_table))


def apply_pgtm(
    rgb: np.ndarray,
    pgtm: ProfileGainTableMap,
    *,
    baseline_exposure_ev: float = 0.0,
    origin: tuple[int, int] = (0, 0),
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """``rgb * pgtm_gain(rgb)``: (3, H, W) -> (3, H, W), no clipping (spec: keep overrange).

    The SDK clips the result to [0, 1] only for SDR profiles; do that downstream if needed.
    """
    gain = pgtm_gain(
        rgb, pgtm, baseline_exposure_ev=baseline_exposure_ev, origin=origin, image_size=image_size
    )
    arr = np.asarray(rgb)
    return (arr.astype(gain.dtype, copy=False) * gain[None]).astype(gain.dtype, copy=False)


def pgtm_monotone(pgtm: ProfileGainTableMap) -> bool:
    """True when ``apply_pgtm`` is exactly invertible everywhere.

    ``apply_pgtm`` scales the table input itself: the output's input is
    ``u = f(t) = t * g(t)`` with ``t`` the input's. Since every pixel's table is a convex
    blend of the stored tables, ``f`` is strictly increasing for every pixel iff it is for
    every stored table. Between two table entries ``f'`` is linear in ``t**gamma``, so
    checking it at both ends of every segment is exact. (Outside [0, 1] the gain is constant
    and ``f`` is linear and increasing.)
    """
    n = pgtm.points_n
    g = pgtm.table.astype(np.float64)
    if n == 1:
        return True
    dg = np.diff(g, axis=-1)
    tc_lo = np.arange(n - 1) / n
    tc_hi = np.arange(1, n) / n
    # f(t) = t * (Ga + (N t^gamma - i) dG); f'(t) = g(t^gamma) + gamma * N * dG * t^gamma
    d_lo = g[..., :-1] + pgtm.gamma * n * dg * tc_lo
    d_hi = g[..., :-1] + (n * tc_hi - np.arange(n - 1)) * dg + pgtm.gamma * n * dg * tc_hi
    return bool(np.all(d_lo > 0) and np.all(d_hi > 0))


def invert_pgtm(
    rendered: np.ndarray,
    pgtm: ProfileGainTableMap,
    *,
    baseline_exposure_ev: float = 0.0,
    iterations: int = 8,
    origin: tuple[int, int] = (0, 0),
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Recover ``rgb`` from ``rendered = apply_pgtm(rgb)`` by per-pixel monotone inversion.

    Method: the gain depends on ``rgb`` only through the scalar table input ``t``, and
    ``apply_pgtm`` multiplies that input by the gain, so the rendered pixel's weighted input
    is ``u = f(t) = t * g(t)`` (positive gains commute with min/max). Per pixel we solve
    ``f(t) = u``: a binary search over the table segments (``ceil(log2 N)`` steps), then the
    closed-form root of the quadratic ``t (A + B t) = u`` inside the segment (gamma 1), or
    ``iterations`` safeguarded Newton steps (gamma != 1). Finally ``rgb = rendered / g(t)``.

    Exactness: the result is exact (to floating-point rounding) wherever ``f`` is strictly
    increasing, i.e. everywhere when ``pgtm_monotone(pgtm)`` is True, and for inputs outside
    ``0 <= t <= 1``. Where ``f`` is flat or decreasing (several inputs render to the same
    output) it returns one of the preimages, so ``apply_pgtm(invert_pgtm(y)) == y`` still
    holds but the original input is not identifiable. Conditioning: relative error in ``t``
    is the output's relative error times ``f / (t f')``; pass float64 for near-flat maps.

    Args:
        rendered: (3, H, W) output of ``apply_pgtm`` (same space, before BaselineExposure).
        pgtm, baseline_exposure_ev, origin, image_size: as given to ``apply_pgtm``.
        iterations: Newton steps inside a segment when gamma != 1 (unused for gamma 1).

    Returns:
        (3, H, W) float32 (float64 for float64 input) estimate of the original ``rgb``.
    """
    arr = _check_rgb(rendered, "rendered")
    dtype = _work_dtype(arr)
    h, w = arr.shape[1], arr.shape[2]
    ox, oy, full_h, full_w = _frame((h, w), origin, image_size)
    f64 = np.dtype(np.float64)
    ys = _axis(pgtm.points_v, pgtm.spacing_v, pgtm.origin_v, oy, h, full_h, f64)
    xs = _axis(pgtm.points_h, pgtm.spacing_h, pgtm.origin_h, ox, w, full_w, f64)
    n, gamma = pgtm.points_n, float(pgtm.gamma)
    exposure_gain = 2.0 ** float(baseline_exposure_ev)
    out = np.empty(arr.shape, dtype=dtype)
    step = _block_rows(w, pgtm)
    for r0 in range(0, h, step):
        rows = slice(r0, min(h, r0 + step))
        flat = _row_tables(pgtm, ys, rows, f64).reshape(-1)
        cols = _Cols.for_block(rows.stop - rows.start, pgtm.points_h, n, xs)
        block = arr[:, rows].astype(np.float64)
        u = np.nan_to_num(_table_input(block, pgtm, exposure_gain, f64))
        t = _solve_input(flat, n, gamma, cols, u, iterations)
        g = cols.gain(flat, n, _clamped_input(t, gamma))
        out[:, rows] = block / g[None]
    return out


def _solve_input(
    flat: np.ndarray, n: int, gamma: float, cols: _Cols, u: np.ndarray, iterations: int
) -> np.ndarray:
    """Per-pixel ``t`` with ``t * g(clamp(t)**gamma) = u`` (see ``invert_pgtm``), float64."""
    shape = u.shape

    def t_at(i: np.ndarray) -> np.ndarray:
        """Input at which the lookup lands exactly on table index ``i``: (i / N)**(1/gamma)."""
        tc = i / n
        return tc if gamma == 1.0 else tc ** (1.0 / gamma)

    g_first = np.broadcast_to(cols.gain_at(flat, n, np.int64(0)), shape)
    g_last = np.broadcast_to(cols.gain_at(flat, n, np.int64(n - 1)), shape)
    # Below the table (t <= 0) and above it (t >= 1) the gain is constant: f is linear.
    t = np.where(u <= 0.0, u / g_first, u / g_last)
    mid = (u > 0.0) & (u < g_last)
    if not np.any(mid) or n == 1:
        return t
    um = u[mid]
    c = cols.subset(mid)
    # Binary search for the segment: F(lo) <= u < F(hi), F(i) = t_i * g(i), F(N) = g(N - 1).
    lo = np.zeros(um.shape, dtype=np.int64)
    hi = np.full(um.shape, n, dtype=np.int64)
    for _ in range(max(1, math.ceil(math.log2(n)))):
        m = (lo + hi) // 2
        below = t_at(m) * c.gain_at(flat, n, m) <= um
        lo = np.where(below, m, lo)
        hi = np.where(below, hi, m)
    ga, gb = c.gain_at(flat, n, lo), c.gain_at(flat, n, lo + 1)
    last = lo >= n - 1
    dg = np.where(last, 0.0, gb - ga)
    t_lo, t_hi = t_at(lo), t_at(np.minimum(lo + 1, n))
    if gamma == 1.0:
        # f(t) = t (A + B t) on the segment; stable root with f' = sqrt(D) > 0.
        a = ga - lo * dg
        b = n * dg
        disc = np.sqrt(np.maximum(a * a + 4.0 * b * um, 0.0))
        den = a + disc
        with np.errstate(divide="ignore", invalid="ignore"):
            root = np.where(den > 0.0, 2.0 * um / den, t_lo)
        ts = np.clip(root, t_lo, t_hi)
    else:
        f_lo, f_hi = t_lo * ga, t_hi * np.where(last, ga, gb)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(f_hi > f_lo, (um - f_lo) / (f_hi - f_lo), 0.0)
        ts = t_lo + np.clip(frac, 0.0, 1.0) * (t_hi - t_lo)
        for _ in range(max(0, iterations)):
            tc = ts**gamma
            g = ga + (n * tc - lo) * dg
            fval = ts * g - um
            dfdt = g + gamma * n * dg * tc
            with np.errstate(divide="ignore", invalid="ignore"):
                nxt = np.where(dfdt > 0.0, ts - fval / dfdt, ts)
            ts = np.clip(nxt, t_lo, t_hi)
    t[mid] = ts
    return t
