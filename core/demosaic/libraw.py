"""LibRaw's DHT and AAHD demosaicers through rawpy, kept linear (the teachers).

LibRaw only demosaics files, so the mosaic is written as a minimal uncompressed 16-bit
CFA DNG **in memory** (:mod:`core.io.tiff_writer`, nothing touches the disk) and opened
with ``rawpy.RawPy.open_buffer``. ``postprocess`` runs with everything but the
interpolation switched off: raw colour (no matrix), gamma (1, 1), no auto-brightness,
unit white balance, black 0 / white 65535 taken as they are (``adjust_maximum_thr=0``),
16-bit output. LibRaw then hands back the interpolated codes unscaled (checked by a flat
field test), and we undo our own scaling exactly.

Linearity and HDR. Both algorithms are nonlinear in level (AAHD in particular decides
directions on a perceptual scale), so a fixed code scale would make ``f(a x) != a f(x)``.
The mosaic is therefore divided by a scale that is itself positively homogeneous,
``s = min(max(x), RANGE_LIMIT * p99(x))``, before quantising to 16 bits: ``x`` and
``a x`` give LibRaw identical codes, so ``f(a x) = a f(x)`` up to one float ulp in the
quantiser. Values above 1.0 are kept: the whole range up to ``s`` is coded. Samples
above ``s`` (a light source more than ``RANGE_LIMIT`` times the 99th percentile; rare on
a RAW12 anchor, which clips at 1.0 before shading correction) would clip, so the output
within ``FALLBACK_RADIUS_PX`` of them is taken from bilinear instead (linear, unbounded,
and with positive kernels it cannot ring around a light hundreds of times brighter than
its surroundings the way Malvar's gradient correction does).
Negative inputs (read noise around black) are clipped to 0 first.

Precision: a step of ``s / 65535``; with ``s = max`` of a typical anchor (about 1-2)
that is 2-3e-5, ten times finer than RAW12's 12-bit codes.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from scipy import ndimage

from core.cfa import CfaPattern
from core.demosaic.classic import bilinear
from core.errors import Linear48Error
from core.io.tiff_writer import Ifd, ImageData, TiffType, ascii_entry, entry, write_tiff

__all__ = ["FALLBACK_RADIUS_PX", "RANGE_LIMIT", "LibRawDemosaicError", "libraw_demosaic"]

LibRawAlgorithm = Literal["DHT", "AAHD"]

#: The coded range reaches at most this many times the 99th percentile of the mosaic.
RANGE_LIMIT = 16.0
#: Output pixels this close to a sample above the coded range come from bilinear.
FALLBACK_RADIUS_PX = 4
#: Reflected border added around the mosaic (even: keeps the CFA phase) so LibRaw's own
#: cruder border interpolation falls outside the returned image.
PAD_PX = 8
#: LibRaw refuses images under 22 px a side; smaller mosaics get a wider reflected border.
MIN_SIDE_PX = 32
_CODE_MAX = 65535


class LibRawDemosaicError(Linear48Error, RuntimeError):
    """LibRaw refused or failed on the in-memory DNG (a bug or a broken rawpy install)."""


def _dng_bytes(codes: np.ndarray, cfa: CfaPattern) -> bytes:
    """A minimal uncompressed CFA DNG (one strip, little endian) holding ``codes``.

    Shapes: codes uint16 (H, W). Black 0, white 65535, identity ColorMatrix1 and a unit
    AsShotNeutral, so LibRaw neither scales nor colour-converts.
    """
    h, w = codes.shape
    bo: Literal["<"] = "<"
    entries = [
        entry(254, TiffType.LONG, 0, bo),  # NewSubfileType: main image
        entry(256, TiffType.LONG, w, bo),
        entry(257, TiffType.LONG, h, bo),
        entry(258, TiffType.SHORT, 16, bo),
        entry(259, TiffType.SHORT, 1, bo),  # uncompressed
        entry(262, TiffType.SHORT, 32803, bo),  # CFA
        ascii_entry(271, "Linear48", bo),
        ascii_entry(272, "guidance demosaic", bo),
        entry(274, TiffType.SHORT, 1, bo),
        entry(277, TiffType.SHORT, 1, bo),
        entry(278, TiffType.LONG, h, bo),
        entry(284, TiffType.SHORT, 1, bo),
        entry(33421, TiffType.SHORT, [2, 2], bo),
        entry(33422, TiffType.BYTE, cfa.as_array().ravel(), bo),
        entry(50706, TiffType.BYTE, [1, 4, 0, 0], bo),
        ascii_entry(50708, "Linear48 guidance demosaic", bo),
        entry(50710, TiffType.BYTE, [0, 1, 2], bo),
        entry(50711, TiffType.SHORT, 1, bo),
        entry(50714, TiffType.LONG, 0, bo),
        entry(50717, TiffType.LONG, _CODE_MAX, bo),
        entry(50721, TiffType.SRATIONAL, np.eye(3).ravel(), bo),
        entry(50728, TiffType.RATIONAL, [1.0, 1.0, 1.0], bo),
    ]
    data = ImageData("strips", 1, [codes.astype("<u2").tobytes()])
    buf = io.BytesIO()
    write_tiff(buf, Ifd(entries, data), byteorder=bo)
    return buf.getvalue()


def _postprocess(data: bytes, algorithm: LibRawAlgorithm) -> np.ndarray:
    """rawpy postprocess with only the interpolation switched on; (H, W, 3) uint16."""
    import rawpy

    algo = getattr(rawpy.DemosaicAlgorithm, algorithm)
    if not algo.isSupported:
        raise LibRawDemosaicError(f"this LibRaw build has no {algorithm} demosaic")
    try:
        with rawpy.RawPy() as raw:
            raw.open_buffer(io.BytesIO(data))
            raw.unpack()
            out = raw.postprocess(
                demosaic_algorithm=algo,
                output_color=rawpy.ColorSpace.raw,
                gamma=(1.0, 1.0),
                no_auto_bright=True,
                bright=1.0,
                user_wb=[1.0, 1.0, 1.0, 1.0],
                use_camera_wb=False,
                use_auto_wb=False,
                output_bps=16,
                user_black=0,
                user_sat=_CODE_MAX,
                adjust_maximum_thr=0.0,
                highlight_mode=rawpy.HighlightMode.Clip,
                half_size=False,
                four_color_rgb=False,
                user_flip=0,
            )
            return np.array(out, copy=True)
    except (rawpy.LibRawError, OSError, ValueError) as err:
        raise LibRawDemosaicError(f"LibRaw {algorithm} demosaic failed: {err}") from err


def _even_ceil(v: float) -> int:
    n = max(0, int(np.ceil(v)))
    return n + n % 2


def coded_scale(mosaic: np.ndarray) -> float:
    """The homogeneous scale ``s = min(max, RANGE_LIMIT * p99)`` of a non-negative mosaic.

    The percentile is taken on every 4th row and column (still homogeneous: ``s(a x) =
    a s(x)`` for a > 0). Returns 0.0 for an all-zero mosaic.
    """
    peak = float(mosaic.max(initial=0.0))
    if peak <= 0.0:
        return 0.0
    p99 = float(np.percentile(mosaic[::4, ::4], 99.0))
    return min(peak, RANGE_LIMIT * p99) if p99 > 0.0 else peak


def libraw_demosaic(mosaic: np.ndarray, cfa: CfaPattern, algorithm: LibRawAlgorithm) -> np.ndarray:
    """Demosaic with LibRaw's ``DHT`` or ``AAHD``, linearly (see the module docstring).

    Shapes: mosaic (H, W) float32, finite, H and W even -> (3, H, W) float32.
    Units: the mosaic's own (Mosaic12); output >= 0.
    Raises: LibRawDemosaicError if LibRaw fails or lacks the algorithm.
    """
    x = np.maximum(mosaic, 0.0, dtype=np.float32)
    scale = coded_scale(x)
    if scale <= 0.0:
        return np.zeros((3, *x.shape), np.float32)
    over = x > scale
    norm = np.minimum(x / np.float32(scale), 1.0)
    h, w = x.shape
    py, px = (max(PAD_PX, _even_ceil((MIN_SIDE_PX - n) / 2)) for n in (h, w))
    padded = np.pad(norm, ((py, py), (px, px)), mode="reflect")  # even: same CFA phase
    codes = np.rint(padded * _CODE_MAX).astype(np.uint16)
    rgb16 = _postprocess(_dng_bytes(codes, cfa), algorithm)
    if rgb16.shape != (*padded.shape, 3):
        raise LibRawDemosaicError(
            f"LibRaw returned an image of shape {rgb16.shape} for a {w}x{h} mosaic"
        )
    crop = rgb16[py : py + h, px : px + w]
    out = np.ascontiguousarray(np.moveaxis(crop, -1, 0), dtype=np.float32)
    out *= np.float32(scale / _CODE_MAX)
    if over.any():
        size = 2 * FALLBACK_RADIUS_PX + 1
        near = ndimage.maximum_filter(over, size=size, mode="nearest")
        out[:, near] = bilinear(x, cfa)[:, near]
    return out
