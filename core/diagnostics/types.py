"""The public result types of :mod:`core.diagnostics` (stable interface, issue 7).

Units and conventions shared by every field:

- **Image scale.** Diagnostics look at a linear RGB image in *working space* (white
  balanced: a neutral surface has R = G = B) on the *rendering scale*: 1.0 is the level a
  DNG reader shows as white before its tone curve (for a Linear48 output: stored value x
  2**BaselineExposure; for Camera48 inside the pipeline: Camera48 x 2**BaselineExposure
  (RAW12) x white-balance gains).
- **Corrections** are what to apply to that image to fix it, in this order (the exact
  inverse of :func:`core.diagnostics.synthetic.degrade`):

  1. white balance: ``z = image * gains`` per channel (green = 1);
  2. saturation: ``z = Y + k * (z - Y)`` with ``Y = 0.25 R + 0.5 G + 0.25 B`` (the
     project's fixed luminance, which this step leaves unchanged), clamped at 0;
  3. exposure: ``z = z ** gamma`` (1.0 stays 1.0; gamma < 1 brightens mid-tones).

- **White balance axes** in EV (log2 of the correction gains ``g_R``, ``g_B``):
  ``temperature_ev = (log2 g_R - log2 g_B) / 2`` (> 0: the correction warms the image, so
  the image has a blue cast) and ``tint_ev = -(log2 g_R + log2 g_B) / 2`` (> 0: the
  correction adds green, so the image has a magenta cast). Inversely
  ``log2 g_R = temperature - tint`` and ``log2 g_B = -temperature - tint``.

Every dataclass is frozen and has ``to_dict()`` with plain JSON values (NaN -> None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from core.io.captures import ColorMetadata
from core.jsonutil import to_jsonable

__all__ = [
    "EXPOSURE_LABELS",
    "SATURATION_LABELS",
    "CorrectionAdvice",
    "DiagnosticMethod",
    "ExposureDiagnostic",
    "ExposureLabel",
    "SaturationDiagnostic",
    "SaturationLabel",
    "SceneInfo",
    "WhiteBalanceDiagnostic",
    "axes_from_gains",
    "gains_from_axes",
]

ExposureLabel = Literal["under", "well", "over"]
SaturationLabel = Literal["under", "well", "over"]
#: Class order of the exposure head (index = class id).
EXPOSURE_LABELS: tuple[ExposureLabel, ...] = ("under", "well", "over")
#: Class order of the saturation head (index = class id).
SATURATION_LABELS: tuple[SaturationLabel, ...] = ("under", "well", "over")
#: Which estimator produced an advice ("auto" is only ever a request).
DiagnosticMethod = Literal["learned", "classical"]


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        """Field name -> plain JSON value (NaN/inf -> None)."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


def gains_from_axes(temperature_ev: float, tint_ev: float) -> tuple[float, float, float]:
    """Correction gains (R, G, B), green = 1, from the temperature/tint axes (EV)."""
    return (2.0 ** (temperature_ev - tint_ev), 1.0, 2.0 ** (-temperature_ev - tint_ev))


def axes_from_gains(gains: tuple[float, float, float]) -> tuple[float, float]:
    """(temperature_ev, tint_ev) of correction gains (R, G, B); normalised to green = 1.

    Raises: ValueError if a gain is not positive and finite.
    """
    r, g, b = (float(v) for v in gains)
    if not all(math.isfinite(v) and v > 0 for v in (r, g, b)):
        raise ValueError(f"white-balance gains must be positive and finite, got {gains}")
    lr, lb = math.log2(r / g), math.log2(b / g)
    return (lr - lb) / 2.0, -(lr + lb) / 2.0


@dataclass(frozen=True)
class SceneInfo:
    """Optional context for :func:`core.diagnostics.optimize_corrections`.

    Attributes:
        wb_gains: when given, the image is *not* white balanced (e.g. Camera48) and is
            multiplied by these (R, G, B) gains (green = 1) to reach working space.
        exposure_ev: the image is multiplied by ``2**exposure_ev`` to reach the rendering
            scale (e.g. the DNG's BaselineExposure).
        color: the DNG colour tags, used only to give the white-balance correction in
            kelvin; ``None`` leaves kelvin out.
        name: free text shown in reports.
    """

    wb_gains: tuple[float, float, float] | None = None
    exposure_ev: float = 0.0
    color: ColorMetadata | None = None
    name: str = ""


@dataclass(frozen=True)
class ExposureDiagnostic(_ToDict):
    """Is the image's tonal placement plausible?

    Attributes:
        label: ``"under"`` (mid-tones crushed, e.g. an extra gamma of 1.5-2.5),
            ``"well"`` or ``"over"`` (mid-tones lifted, gamma 1/2.5-1/1.5).
        probabilities: label -> probability (classical: a soft score, sums to 1).
        correction_gamma: exponent that fixes it (``z ** gamma``); 1.0 = leave as is.
        key_ev: median log2 luminance of the image (EV, 0 = rendering white).
        p99_ev: 99th percentile of log2 luminance (EV).
        clipped_fraction: fraction of thumbnail pixels with a channel at or above 1.0.
    """

    label: ExposureLabel
    probabilities: dict[str, float]
    correction_gamma: float
    key_ev: float
    p99_ev: float
    clipped_fraction: float


@dataclass(frozen=True)
class WhiteBalanceDiagnostic(_ToDict):
    """Residual colour cast of the (white-balanced) image and the gains that remove it.

    Attributes:
        gains: correction gains (R, G, B), green = 1 (multiply the image by them).
        temperature_ev, tint_ev: the same correction on the two axes (see module doc).
        label: ``"neutral"`` when both gains are within :data:`NEUTRAL_TOLERANCE` of 1,
            else ``"cast"``.
        cast: plain words for the cast the gains remove (``"blue"``, ``"magenta"``,
            ``"blue-green"``... or ``""`` when neutral).
        as_shot_cct_k, as_shot_duv: the file's as-shot white point (kelvin, Duv), when
            colour metadata was given.
        corrected_cct_k, corrected_duv: the white point after the correction.
    """

    gains: tuple[float, float, float]
    temperature_ev: float
    tint_ev: float
    label: Literal["neutral", "cast"]
    cast: str
    as_shot_cct_k: float | None = None
    as_shot_duv: float | None = None
    corrected_cct_k: float | None = None
    corrected_duv: float | None = None


@dataclass(frozen=True)
class SaturationDiagnostic(_ToDict):
    """Is the colourfulness plausible?

    Attributes:
        label: ``"under"`` (washed out, e.g. chroma x 0.6-0.9), ``"well"`` or ``"over"``.
        probabilities: label -> probability.
        correction_factor: k of the saturation step (chroma x k); 1.0 = leave as is.
        chroma: mean relative chroma ``|x - Y| / Y`` of the white-balanced thumbnail
            (luminance-weighted; 0 for a grey image).
        identifiable: False when the image is nearly achromatic (chroma below
            :data:`ACHROMATIC_CHROMA`): saturation cannot be judged, label is ``"well"``.
    """

    label: SaturationLabel
    probabilities: dict[str, float]
    correction_factor: float
    chroma: float
    identifiable: bool


#: |gain - 1| below which a white balance is called neutral.
NEUTRAL_TOLERANCE = 0.05
#: Chroma below which saturation is not judged (a grey chart has chroma 0).
ACHROMATIC_CHROMA = 0.04


@dataclass(frozen=True)
class CorrectionAdvice(_ToDict):
    """Everything :func:`core.diagnostics.optimize_corrections` found.

    Attributes:
        exposure, white_balance, saturation: the three diagnostics.
        method: the estimator that actually ran (``"learned"`` or ``"classical"``).
        method_requested: what the caller asked for (``"auto"``, ``"learned"``,
            ``"classical"``).
        fallback_reason: why the learned model did not run ("" when it did or was not
            asked for).
        model_hash: SHA-256 of the diagnostic checkpoint used (None for classical).
        input_gains: (R, G, B) gains applied to the caller's image to reach working space
            ((1, 1, 1) when it already was).
        input_exposure_ev: EV applied to reach the rendering scale.
        notes: plain-language remarks.
    """

    exposure: ExposureDiagnostic
    white_balance: WhiteBalanceDiagnostic
    saturation: SaturationDiagnostic
    method: DiagnosticMethod
    method_requested: str
    fallback_reason: str = ""
    model_hash: str | None = None
    input_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    input_exposure_ev: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)
