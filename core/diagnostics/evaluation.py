"""Accuracy of the diagnostic estimators on labelled synthetic samples (issue 7).

Accuracy per head (each a fraction in [0, 1]):

- **exposure**: predicted class (argmax of the probabilities) equals the truth class of the
  applied gamma (:func:`core.diagnostics.synthetic.exposure_class`);
- **white balance**: both predicted correction gains are within ``WB_TOLERANCE`` = 0.05 of
  the truth, ``max(|g_R - t_R|, |g_B - t_B|) <= 0.05`` (green = 1 on both sides);
- **saturation**: predicted class equals the truth class, over *chromatic* samples only
  (a grey chart's saturation cannot be seen; those are counted in ``n`` but not in
  ``n_saturation``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.diagnostics.estimators import Estimate
from core.diagnostics.features import analysis_thumbnail
from core.diagnostics.synthetic import SyntheticSample
from core.diagnostics.types import EXPOSURE_LABELS, SATURATION_LABELS
from core.errors import ShapeError

__all__ = ["WB_TOLERANCE", "HeadScores", "score", "thumbnails"]

#: White balance counts as correct when both gains are within this of the truth.
WB_TOLERANCE = 0.05


@dataclass(frozen=True)
class HeadScores:
    """Per-head accuracy and error figures.

    Attributes:
        exposure, white_balance, saturation: accuracies in [0, 1] (module doc).
        n: samples; n_saturation: chromatic samples scored for saturation.
        wb_error: mean of ``max(|g_R - t_R|, |g_B - t_B|)`` (gain units).
        log_gamma_error: mean |ln(predicted gamma) - ln(truth gamma)|.
        exposure_confusion: (3, 3) counts, rows truth, columns predicted (under, well,
            over); saturation_confusion likewise (chromatic samples).
    """

    exposure: float
    white_balance: float
    saturation: float
    n: int
    n_saturation: int
    wb_error: float
    log_gamma_error: float
    exposure_confusion: np.ndarray
    saturation_confusion: np.ndarray

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able dict."""
        return {
            "exposure": self.exposure,
            "white_balance": self.white_balance,
            "saturation": self.saturation,
            "n": self.n,
            "n_saturation": self.n_saturation,
            "wb_error": self.wb_error,
            "log_gamma_error": self.log_gamma_error,
            "exposure_confusion": self.exposure_confusion.tolist(),
            "saturation_confusion": self.saturation_confusion.tolist(),
        }


def thumbnails(samples: Sequence[SyntheticSample]) -> Tensor:
    """Analysis thumbnails of the samples' images, (N, 3, THUMB_PX, THUMB_PX) float32."""
    return torch.from_numpy(np.stack([analysis_thumbnail(s.image) for s in samples]))


def _confusion(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    m = np.zeros((3, 3), np.int64)
    np.add.at(m, (truth, pred), 1)
    return m


def score(est: Estimate, samples: Sequence[SyntheticSample]) -> HeadScores:
    """Accuracy of ``est`` (for the samples in order) against their truth.

    Raises: ShapeError when the estimate and the samples differ in length or are empty.
    """
    n = len(samples)
    if n == 0 or est.gamma.shape[0] != n:
        raise ShapeError(f"estimate has {est.gamma.shape[0]} rows for {n} samples")
    e_true = np.array([EXPOSURE_LABELS.index(s.degradation.exposure_label) for s in samples])
    s_true = np.array([SATURATION_LABELS.index(s.degradation.saturation_label) for s in samples])
    g_true = np.array([s.degradation.correction_gains for s in samples])
    gamma_true = np.array([1.0 / s.degradation.gamma for s in samples])
    chromatic = np.array([s.chromatic for s in samples])
    e_pred = est.exposure_probs.argmax(axis=1)
    s_pred = est.saturation_probs.argmax(axis=1)
    wb_err = np.abs(est.gains[:, [0, 2]] - g_true[:, [0, 2]]).max(axis=1)
    n_sat = int(chromatic.sum())
    return HeadScores(
        exposure=float(np.mean(e_pred == e_true)),
        white_balance=float(np.mean(wb_err <= WB_TOLERANCE)),
        saturation=float(np.mean(s_pred[chromatic] == s_true[chromatic]))
        if n_sat
        else float("nan"),
        n=n,
        n_saturation=n_sat,
        wb_error=float(wb_err.mean()),
        log_gamma_error=float(np.mean(np.abs(np.log(est.gamma) - np.log(gamma_true)))),
        exposure_confusion=_confusion(e_true, e_pred),
        saturation_confusion=_confusion(s_true[chromatic], s_pred[chromatic]),
    )
