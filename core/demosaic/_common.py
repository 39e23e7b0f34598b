"""Shared pieces of the guidance demosaic: input checks, CFA sampling, phase helpers.

Convention: a mosaic is Mosaic12 (H12, W12) float, 1.0 = sensor clip, not white
balanced; the pattern is the 2x2 Bayer pattern at the mosaic's top-left pixel; RGB
images are (3, H, W) on the same scale and grid (pixel centres at integers).
"""

from __future__ import annotations

import numpy as np

from core.cfa import CfaName, CfaPattern
from core.errors import Linear48Error, ShapeError

__all__ = [
    "RGGB",
    "NonFiniteMosaicError",
    "as_pattern",
    "check_mosaic",
    "mosaic_from_rgb",
    "phase_offset_to_rggb",
]

RGGB = CfaPattern.from_name(CfaName.RGGB)
#: Largest mosaic side accepted (a 48MP frame binned is 4032x3024; 16384 leaves room).
MAX_SIDE_PX = 16384


class NonFiniteMosaicError(Linear48Error, ValueError):
    """The mosaic to demosaic holds NaN or infinite values.

    Attributes:
        count: how many values are not finite.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(
            f"the RAW mosaic holds {count} non-finite value(s) (NaN or infinity); "
            "it cannot be demosaiced"
        )


def as_pattern(cfa: CfaPattern | str) -> CfaPattern:
    """A :class:`CfaPattern` from a pattern or its name (``"BGGR"``).

    Raises: ShapeError naming the valid patterns on an unknown name.
    """
    return cfa if isinstance(cfa, CfaPattern) else CfaPattern.from_name(cfa)


def check_mosaic(mosaic12: object) -> np.ndarray:
    """Validate a Mosaic12 array and return it as C-contiguous float32.

    Shapes: (H12, W12), both even, 2 <= side <= MAX_SIDE_PX.
    Raises: ShapeError on a non-numeric, non-2-D, odd, empty or absurdly large array;
        NonFiniteMosaicError when any value is NaN or infinite.
    """
    m = np.asarray(mosaic12)
    if not (np.issubdtype(m.dtype, np.floating) or np.issubdtype(m.dtype, np.integer)):
        raise ShapeError(f"mosaic12 must hold real numbers, got dtype {m.dtype}")
    if m.ndim != 2:
        raise ShapeError(f"mosaic12 must be (H12, W12), got shape {m.shape}")
    h, w = m.shape
    if h < 2 or w < 2 or h % 2 or w % 2:
        raise ShapeError(f"mosaic12 is {w}x{h}; both sides must be even and at least 2")
    if h > MAX_SIDE_PX or w > MAX_SIDE_PX:
        raise ShapeError(f"mosaic12 is {w}x{h}; sides above {MAX_SIDE_PX} px are not a RAW12")
    out = np.ascontiguousarray(m, dtype=np.float32)
    finite = np.isfinite(out)
    if not finite.all():
        raise NonFiniteMosaicError(int(out.size - np.count_nonzero(finite)))
    return out


def mosaic_from_rgb(rgb: np.ndarray, cfa: CfaPattern | str) -> np.ndarray:
    """Sample an RGB image with a Bayer pattern: ``m[y, x] = rgb[P[y % 2][x % 2], y, x]``.

    This is how RAW12 sees the 2x2-binned scene (DESIGN §3: F of a Camera48 image equals
    the mosaic of its 2x2 box mean), so ``mosaic_from_rgb(truth12, P)`` is the simulated
    anchor of ``truth12``.

    Shapes: rgb (3, H, W) -> (H, W) of the same dtype.
    Raises: ShapeError when rgb is not (3, H, W).
    """
    x = np.asarray(rgb)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ShapeError(f"rgb must be (3, H, W), got shape {x.shape}")
    idx = as_pattern(cfa).color_mask(x.shape[1], x.shape[2])
    return np.take_along_axis(x, idx[None], axis=0)[0]


def phase_offset_to_rggb(cfa: CfaPattern | str) -> tuple[int, int]:
    """(dy, dx) in {0, 1}: the crop/pad offset at which ``cfa`` reads as RGGB.

    ``cfa.shifted(dy, dx) == RGGB``. Because the pattern has period 2, reflecting a mosaic
    (numpy ``mode="reflect"``) by ``dy`` rows and ``dx`` columns also starts it on red.
    """
    p = as_pattern(cfa)
    for dy in (0, 1):
        for dx in (0, 1):
            if p.shifted(dy, dx) == RGGB:
                return dy, dx
    raise ShapeError(f"pattern {p.name} has no RGGB phase")  # unreachable for a Bayer pattern
