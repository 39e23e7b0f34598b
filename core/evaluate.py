"""Evaluate a written linear DNG against its RAW12 anchor (``main.py eval``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import PairMismatchError
from core.io.pair import CLIP_FRACTION, shading_for
from core.io.proraw48 import read_proraw48
from core.io.raw12 import read_raw12
from core.metrics import AnchorMetrics, anchor_metrics


@dataclass(frozen=True)
class OutputEvaluation:
    """Anchor metrics of an output DNG.

    Attributes:
        metrics: anchor metrics of F(output) vs the shading-corrected RAW12 mosaic.
        headroom_ev: BaselineExposure(output) - BaselineExposure(RAW12), the scale the
            output's stored values were divided by (DESIGN §7).
    """

    metrics: AnchorMetrics
    headroom_ev: float


def load_output_camera48(
    output_path: str | Path, raw12_baseline_ev: float
) -> tuple[np.ndarray, float]:
    """Read a Linear48 output DNG back to Camera48 (3, H48, W48) and its headroom in EV."""
    out = read_proraw48(output_path)
    headroom = out.color.baseline_exposure_ev - raw12_baseline_ev
    return out.image * np.float32(2.0**headroom), headroom


def evaluate_output(raw12_path: str | Path, output_path: str | Path) -> OutputEvaluation:
    """Anchor metrics for ``output_path`` against ``raw12_path``.

    Raises:
        InputFileError subclasses for unreadable files; PairMismatchError when the output
        is not exactly twice the RAW12 size.
    """
    raw12 = read_raw12(raw12_path)
    camera48, headroom = load_output_camera48(output_path, raw12.color.baseline_exposure_ev)
    h12, w12 = raw12.shape
    if camera48.shape[1:] != (2 * h12, 2 * w12):
        raise PairMismatchError(
            f"output is {camera48.shape[2]}x{camera48.shape[1]} but RAW12 is {w12}x{h12}; "
            "the output must be exactly twice the RAW in each axis",
            output_path,
            expected=(2 * w12, 2 * h12),
            actual=(camera48.shape[2], camera48.shape[1]),
        )
    gain, _, _ = shading_for(raw12)
    anchor = raw12.mosaic if gain is None else raw12.mosaic * gain
    unclipped = raw12.mosaic < CLIP_FRACTION
    metrics = anchor_metrics(camera48, anchor, raw12.cfa, mask=unclipped, clip=float("inf"))
    return OutputEvaluation(metrics, headroom)
