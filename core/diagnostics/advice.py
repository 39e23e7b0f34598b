"""``optimize_corrections`` and ``generate_preview``: the stable entry points (issue 7).

Input contract (see :mod:`core.diagnostics.types` for the scale): ``image`` is linear RGB
(3, H, W), any float or integer dtype, any size (a 48MP frame is fine: only an area
average is kept); non-finite values count as 0, negatives are clamped to 0. Without a
:class:`SceneInfo` it must already be white balanced and on the rendering scale; with one,
``scene.wb_gains`` and ``scene.exposure_ev`` take it there (e.g. Camera48 with RAW12's
AsShotNeutral gains and BaselineExposure).
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Literal

import numpy as np
import torch

from core.diagnostics.checkpoint import DiagnosticCheckpointError, load_diagnostic_model
from core.diagnostics.estimators import (
    Estimate,
    classical_estimate,
    grayworld_chroma,
    learned_estimate,
)
from core.diagnostics.features import (
    QUANTILES,
    STAT_NAMES,
    analysis_thumbnail,
    area_downsample,
)
from core.diagnostics.synthetic import correct
from core.diagnostics.types import (
    EXPOSURE_LABELS,
    NEUTRAL_TOLERANCE,
    SATURATION_LABELS,
    CorrectionAdvice,
    ExposureDiagnostic,
    SaturationDiagnostic,
    SceneInfo,
    WhiteBalanceDiagnostic,
    axes_from_gains,
)
from core.errors import ConfigError, ShapeError
from core.io.captures import ColorMetadata

log = logging.getLogger(__name__)

__all__ = ["MethodRequest", "generate_preview", "optimize_corrections", "white_point"]

MethodRequest = Literal["auto", "learned", "classical"]
_METHODS: tuple[str, ...] = ("auto", "learned", "classical")
_IDX = {name: i for i, name in enumerate(STAT_NAMES)}
_AXIS_WORDS_EV = 0.03  # below this an axis is not named in the cast description


def _input_transform(scene: SceneInfo | None) -> tuple[np.ndarray, float]:
    if scene is None:
        return np.ones(3), 0.0
    ev = float(scene.exposure_ev)
    if not math.isfinite(ev):
        raise ConfigError(f"scene.exposure_ev must be finite, got {scene.exposure_ev!r}")
    if scene.wb_gains is None:
        return np.ones(3), ev
    g = np.asarray(scene.wb_gains, dtype=np.float64).reshape(-1)
    if g.size != 3 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ConfigError(f"scene.wb_gains must be three positive numbers, got {scene.wb_gains}")
    return g, ev


def _cast_words(temperature_ev: float, tint_ev: float) -> str:
    """Plain words for the cast that a correction with these axes removes."""
    words = []
    if abs(temperature_ev) >= _AXIS_WORDS_EV:
        words.append("blue" if temperature_ev > 0 else "amber")
    if abs(tint_ev) >= _AXIS_WORDS_EV:
        words.append("magenta" if tint_ev > 0 else "green")
    return "-".join(words)


def white_point(color: ColorMetadata, neutral: np.ndarray) -> tuple[float, float] | None:
    """(CCT in kelvin, Duv) of a camera neutral (stored values) through the DNG colour
    matrices of ``color`` (``ColorMetadata``); None without ColorMatrix1 or when the
    conversion fails (e.g. a neutral outside the matrices' range)."""
    from core.color import neutral_xy

    if getattr(color, "color_matrix1", None) is None:
        return None
    try:
        import colour

        c = replace(color, as_shot_neutral=np.asarray(neutral, float), as_shot_white_xy=None)
        xy = neutral_xy(c)
        cct, duv = colour.temperature.uv_to_CCT_Ohno2013(colour.xy_to_UCS_uv(xy))
    except Exception as err:  # colour-science raises assorted errors on odd inputs
        log.info("white point not computed: %s", err)
        return None
    if not (math.isfinite(float(cct)) and math.isfinite(float(duv))):
        return None
    return float(cct), float(duv)


def _white_balance(
    gains: np.ndarray, scene: SceneInfo | None, input_gains: np.ndarray
) -> WhiteBalanceDiagnostic:
    g = (float(gains[0]), 1.0, float(gains[2]))
    temp, tint = axes_from_gains(g)
    neutral_dev = max(abs(g[0] - 1.0), abs(g[2] - 1.0))
    label: Literal["neutral", "cast"] = "neutral" if neutral_dev <= NEUTRAL_TOLERANCE else "cast"
    kelvin: dict[str, float | None] = {}
    if scene is not None and scene.color is not None:
        if scene.wb_gains is not None:
            as_shot = 1.0 / input_gains
        else:
            from core.color import stored_neutral

            as_shot = stored_neutral(scene.color)
        before = white_point(scene.color, as_shot / as_shot[1])
        corrected = as_shot / np.asarray(g)
        after = white_point(scene.color, corrected / corrected[1])
        if before is not None:
            kelvin["as_shot_cct_k"], kelvin["as_shot_duv"] = before
        if after is not None:
            kelvin["corrected_cct_k"], kelvin["corrected_duv"] = after
    return WhiteBalanceDiagnostic(
        gains=g,
        temperature_ev=temp,
        tint_ev=tint,
        label=label,
        cast="" if label == "neutral" else _cast_words(temp, tint),
        **kelvin,
    )


def _advice_from(
    est: Estimate,
    scene: SceneInfo | None,
    input_gains: np.ndarray,
    input_ev: float,
    *,
    method: Literal["learned", "classical"],
    requested: str,
    reason: str,
    model_hash: str | None,
) -> CorrectionAdvice:
    stats = est.stats[0]
    ep = est.exposure_probs[0]
    sp = est.saturation_probs[0]
    exposure = ExposureDiagnostic(
        label=EXPOSURE_LABELS[int(np.argmax(ep))],
        probabilities={k: float(v) for k, v in zip(EXPOSURE_LABELS, ep, strict=True)},
        correction_gamma=float(est.gamma[0]),
        key_ev=float(stats[_IDX[f"log2_lum_q{QUANTILES[4]:g}"]] * 8.0),
        p99_ev=float(stats[_IDX[f"log2_lum_q{QUANTILES[8]:g}"]] * 8.0),
        clipped_fraction=float(stats[_IDX["clipped_fraction"]]),
    )
    ident = bool(est.identifiable[0])
    saturation = SaturationDiagnostic(
        label=SATURATION_LABELS[int(np.argmax(sp))],
        probabilities={k: float(v) for k, v in zip(SATURATION_LABELS, sp, strict=True)},
        correction_factor=float(est.saturation_factor[0]),
        chroma=float(np.asarray(grayworld_chroma(est.stats))[0]),
        identifiable=ident,
    )
    notes: list[str] = []
    if not ident:
        notes.append("the image is nearly achromatic: saturation was not judged")
    if reason:
        notes.append(f"classical diagnostics used: {reason}")
    return CorrectionAdvice(
        exposure=exposure,
        white_balance=_white_balance(est.gains[0], scene, input_gains),
        saturation=saturation,
        method=method,
        method_requested=requested,
        fallback_reason=reason,
        model_hash=model_hash,
        input_gains=(float(input_gains[0]), float(input_gains[1]), float(input_gains[2])),
        input_exposure_ev=input_ev,
        notes=tuple(notes),
    )


def _finite(est: Estimate) -> bool:
    return all(
        np.all(np.isfinite(a))
        for a in (est.exposure_probs, est.gamma, est.gains, est.saturation_probs)
    ) and bool(np.all(np.isfinite(est.saturation_factor)))


def optimize_corrections(
    image: np.ndarray,
    scene: SceneInfo | None = None,
    *,
    method: MethodRequest = "auto",
    checkpoint: str | None = None,
) -> CorrectionAdvice:
    """Diagnose exposure, white balance and saturation and advise corrections.

    ``method``: ``"auto"`` runs the learned model (the shipped
    ``resources/models/diagnostic.pt`` or ``checkpoint``) and falls back to the classical
    statistics when the checkpoint is missing or damaged or the network returns non-finite
    values, recording why in ``fallback_reason``; ``"learned"`` raises instead of falling
    back; ``"classical"`` never loads a model.

    Shapes: image (3, H, W) (module doc). Units: see :mod:`core.diagnostics.types`.
    Raises:
        ShapeError: the image is not (3, H, W) real numbers or is empty.
        ConfigError: an unknown method or bad ``scene`` values.
        DiagnosticCheckpointError: ``method="learned"`` and the model cannot be loaded.
    """
    if method not in _METHODS:
        raise ConfigError(f"method must be one of {', '.join(_METHODS)}, got {method!r}")
    input_gains, input_ev = _input_transform(scene)
    thumb = analysis_thumbnail(image)
    thumb = thumb * (input_gains * 2.0**input_ev).astype(np.float32)[:, None, None]
    t = torch.from_numpy(np.ascontiguousarray(thumb, dtype=np.float32))[None]
    reason = ""
    if method != "classical":
        try:
            model = load_diagnostic_model(checkpoint)
            est = learned_estimate(model.net, t)
            if _finite(est):
                return _advice_from(
                    est,
                    scene,
                    input_gains,
                    input_ev,
                    method="learned",
                    requested=method,
                    reason="",
                    model_hash=model.hash,
                )
            reason = "the diagnostic model returned non-finite values"
            if method == "learned":
                raise DiagnosticCheckpointError(reason, model.path)
        except DiagnosticCheckpointError as err:
            if method == "learned":
                raise
            reason = str(err)
        log.warning("diagnostics fall back to the classical method: %s", reason)
    est = classical_estimate(t)
    return _advice_from(
        est,
        scene,
        input_gains,
        input_ev,
        method="classical",
        requested=method,
        reason=reason,
        model_hash=None,
    )


def generate_preview(
    image: np.ndarray, advice: CorrectionAdvice, *, max_side_px: int | None = 1024
) -> np.ndarray:
    """The image with the advised corrections applied, for a before/after view.

    The image is area-averaged so its longer side is at most ``max_side_px`` (None keeps
    the full size), brought to working space / rendering scale with the advice's
    ``input_gains`` and ``input_exposure_ev``, then corrected: white-balance gains,
    saturation factor, exposure gamma (see :mod:`core.diagnostics.types`). No display
    transform is applied (that belongs to the GUI).

    Shapes: image (3, H, W) -> float32 (3, h, w), linear, working space, 1.0 = white.
    Raises: ShapeError for a non-(3, H, W) image; ConfigError for a bad ``max_side_px``.
    """
    x = np.asarray(image)
    if x.ndim != 3 or x.shape[0] != 3 or x.shape[1] < 1 or x.shape[2] < 1:
        raise ShapeError(f"generate_preview needs a (3, H, W) RGB image, got shape {x.shape}")
    if max_side_px is not None and max_side_px < 1:
        raise ConfigError(f"max_side_px must be at least 1, got {max_side_px}")
    small = area_downsample(x, max_side_px)
    scale = np.asarray(advice.input_gains, np.float32) * np.float32(2.0**advice.input_exposure_ev)
    small *= scale[:, None, None]
    wb = advice.white_balance
    return correct(
        small, wb.gains, advice.saturation.correction_factor, advice.exposure.correction_gamma
    )
