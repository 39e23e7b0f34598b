"""Per-region white-balance / chroma stability of an output against its RAW12 anchor.

A conversion can match the anchor's PSNR and still carry a colour cast in one corner. The
map compares colour like with like, per 2x2 Bayer cell of the RAW12 grid: the output goes
through the forward operator F (DESIGN §3) and both F(output) and the anchor mosaic are
reduced to one (R, mean of Gr and Gb, B) triple per Bayer cell, shape (3, H12/2, W12/2).
No demosaic is involved, so an exact output shows no deviation at all and demosaicing
errors at edges cannot pose as casts. Both sides are Camera48-scale and not white
balanced; the comparison is a ratio, so white-balance gains cancel. The statistic is
:func:`core.metrics.chroma_stability` (per grid cell, the median of
``log2((X/G)_out / (X/G)_ref)`` for X = R, B, minus the global median): a global white
balance difference is allowed, a local one is not.

Noise: the per-cell triples are block-averaged so the longer side has about
``TARGET_SIDE`` values (a 12MP anchor: 8x8 Bayer cells per value; a linear step, so an exact
output still shows nothing), and values below ``floor`` (default 2**-8 of the clip, eight
stops down, where a phone RAW's colour is mostly noise) are left out, as are blocks with a
clipped anchor pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.cfa import CfaPattern
from core.errors import PairMismatchError, ShapeError
from core.forward import cfa_planes, forward_np
from core.io.captures import ProRawCapture, RawCapture
from core.metrics import ChromaStability, chroma_stability
from core.progress import CancelToken, Progress, ProgressCallback, no_progress

__all__ = [
    "DEFAULT_GRID",
    "LOCAL_CAST_EV",
    "WbStabilityReport",
    "bayer_cell_rgb",
    "wb_stability_captures",
    "wb_stability_files",
    "wb_stability_map",
]

#: Grid rows x columns of the map (4:3 frames give near-square cells).
DEFAULT_GRID: tuple[int, int] = (6, 8)
#: A cell whose R/G or B/G deviates by more than this (EV) is flagged as a local cast.
LOCAL_CAST_EV = 0.1
#: Anchor values at or above this fraction of the clip are clipped (as core.io.pair).
_CLIP = 0.97
#: Colour below this level (Mosaic12 units, 8 EV below the clip) is not judged.
STABILITY_FLOOR = 2.0**-8
#: The Bayer-cell image is block-averaged to about this many values on its longer side.
TARGET_SIDE = 256


@dataclass(frozen=True)
class WbStabilityReport:
    """The stability map and its verdict.

    Attributes:
        stability: the metric (deviation map (gv, gh, 2) in EV, worst cell...).
        threshold_ev: the local-cast threshold used.
        flagged: cells beyond it, as (row, col, "R/G" or "B/G", deviation EV), in grid
            order. Deviations are relative to the global median, so one cast region
            also shifts the others the opposite way (a quarter of the frame at +0.3 EV
            reads as about +0.2 EV there and -0.1 EV elsewhere).
        stable: True when no cell is flagged.
        valid_fraction: fraction of (block-averaged) Bayer cells without clipping.
    """

    stability: ChromaStability
    threshold_ev: float
    flagged: tuple[tuple[int, int, str, float], ...]
    stable: bool
    valid_fraction: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (the map as nested lists, NaN -> None)."""
        return {
            "stability": self.stability.to_dict(),
            "threshold_ev": self.threshold_ev,
            "flagged": [list(f) for f in self.flagged],
            "stable": self.stable,
            "valid_fraction": self.valid_fraction,
        }


def bayer_cell_rgb(mosaic12: np.ndarray, cfa: CfaPattern) -> np.ndarray:
    """(R, (Gr + Gb) / 2, B) per 2x2 Bayer cell: (H12, W12) -> float32 (3, H12/2, W12/2).

    An odd last row or column is dropped.
    """
    h, w = mosaic12.shape[0] // 2 * 2, mosaic12.shape[1] // 2 * 2
    p = cfa_planes(np.asarray(mosaic12, np.float32)[:h, :w], cfa)
    return np.stack([p["R"], (p["Gr"] + p["Gb"]) * np.float32(0.5), p["B"]])


def _block_mean(x: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of (C, H, W); a partial last block is dropped (f = 1: as is)."""
    if f == 1:
        return x
    c, h, w = x.shape[0], x.shape[1] // f, x.shape[2] // f
    return x[:, : h * f, : w * f].reshape(c, h, f, w, f).mean(axis=(2, 4))


def wb_stability_map(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    grid: tuple[int, int] = DEFAULT_GRID,
    threshold_ev: float = LOCAL_CAST_EV,
    unclipped: np.ndarray | None = None,
    floor: float = STABILITY_FLOOR,
) -> WbStabilityReport:
    """Chroma stability of ``camera48`` against the RAW12 ``anchor`` (module doc).

    Shapes: camera48 (3, H48, W48); anchor and unclipped (H48/2, W48/2) bool; map
        (grid[0], grid[1], 2) over the Bayer-cell image (3, H48/4, W48/4).
    Units: Mosaic12 / Camera48 scale in (1.0 = sensor clip); deviations in EV.
    Raises: ShapeError when the anchor is not exactly half of camera48 in each axis, or the
        grid does not fit.
    """
    cam = np.asarray(camera48)
    a = np.asarray(anchor, dtype=np.float32)
    if cam.ndim != 3 or cam.shape[0] != 3:
        raise ShapeError(f"camera48 must be (3, H48, W48), got shape {cam.shape}")
    h48, w48 = cam.shape[1:]
    if a.ndim != 2 or h48 % 2 or w48 % 2 or a.shape != (h48 // 2, w48 // 2):
        raise ShapeError(
            f"anchor is {a.shape[::-1]} (WxH) but Camera48 {(w48, h48)} needs an anchor of "
            "exactly half its size in each axis"
        )
    unclip = (a < _CLIP) if unclipped is None else np.asarray(unclipped, bool)
    if unclip.shape != a.shape:
        raise ShapeError(f"unclipped must have shape {a.shape}, got {unclip.shape}")
    reference = bayer_cell_rgb(a, cfa)
    predicted = bayer_cell_rgb(forward_np(cam, cfa), cfa)
    support = bayer_cell_rgb(unclip.astype(np.float32), cfa).min(axis=0)
    block = max(1, round(max(reference.shape[1:]) / TARGET_SIDE))
    reference, predicted = _block_mean(reference, block), _block_mean(predicted, block)
    support_ok = _block_mean(support[None], block)[0] >= 1.0
    stab = chroma_stability(predicted, reference, grid=grid, mask=support_ok, floor=floor)
    flagged = []
    dev = stab.deviation_map
    for i in range(dev.shape[0]):
        for j in range(dev.shape[1]):
            for k, ratio in enumerate(("R/G", "B/G")):
                v = float(dev[i, j, k])
                if np.isfinite(v) and abs(v) > threshold_ev:
                    flagged.append((i, j, ratio, round(v, 4)))
    return WbStabilityReport(
        stability=stab,
        threshold_ev=float(threshold_ev),
        flagged=tuple(flagged),
        stable=not flagged,
        valid_fraction=float(np.mean(support_ok)),
    )


def wb_stability_captures(
    output: ProRawCapture,
    raw12: RawCapture,
    *,
    grid: tuple[int, int] = DEFAULT_GRID,
    threshold_ev: float = LOCAL_CAST_EV,
) -> WbStabilityReport:
    """:func:`wb_stability_map` of a decoded output DNG against its decoded RAW12.

    The output is brought back to Camera48 (its headroom, BaselineExposure(output) -
    BaselineExposure(RAW12), undone) and the anchor gets RAW12's lens-shading opcodes
    applied, as ``main.py eval`` does.

    Raises: PairMismatchError when the output is not exactly twice RAW12's size.
    """
    from core.io.pair import CLIP_FRACTION, shading_for

    h12, w12 = raw12.shape
    h48, w48 = output.shape
    if (h48, w48) != (2 * h12, 2 * w12):
        raise PairMismatchError(
            f"output is {w48}x{h48} but RAW12 is {w12}x{h12}; "
            "the output must be exactly twice the RAW in each axis",
            output.path,
            expected=(2 * w12, 2 * h12),
            actual=(w48, h48),
        )
    headroom = output.color.baseline_exposure_ev - raw12.color.baseline_exposure_ev
    camera48 = output.image * np.float32(2.0**headroom)
    gain, _, _ = shading_for(raw12)
    anchor = raw12.mosaic if gain is None else raw12.mosaic * gain
    return wb_stability_map(
        camera48,
        anchor,
        raw12.cfa,
        grid=grid,
        threshold_ev=threshold_ev,
        unclipped=raw12.mosaic < CLIP_FRACTION,
    )


def wb_stability_files(
    output_path: str | Path,
    raw12_path: str | Path,
    *,
    grid: tuple[int, int] = DEFAULT_GRID,
    threshold_ev: float = LOCAL_CAST_EV,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> WbStabilityReport:
    """:func:`wb_stability_captures` of an output DNG file and its RAW12 file.

    Raises: the readers' InputFileError subclasses (a Bayer file as output, a LinearRaw
        file as RAW12...); PairMismatchError when the sizes do not pair; CancelledError
        when ``cancel`` fires between stages.
    """
    from core.io.proraw48 import read_proraw48
    from core.io.raw12 import read_raw12

    report = progress or no_progress
    token = cancel or CancelToken()
    report(Progress("stability", 0, 3, "reading RAW12"))
    raw12 = read_raw12(raw12_path)
    token.raise_if_cancelled()
    report(Progress("stability", 1, 3, "reading the output"))
    output = read_proraw48(output_path)
    token.raise_if_cancelled()
    report(Progress("stability", 2, 3, "comparing colour per region"))
    result = wb_stability_captures(output, raw12, grid=grid, threshold_ev=threshold_ev)
    report(Progress("stability", 3, 3, "done"))
    return result
