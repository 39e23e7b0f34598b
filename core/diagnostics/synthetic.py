"""The synthetic degradation model behind the diagnostics' labels (issue 7).

A *clean* image is a simulated scene (``core.simulate.scenes``) or a real demosaiced raw,
white balanced (divided by its illuminant's camera RGB) and auto-exposed like the
simulator's camera (99th percentile of luminance at 80 % of white, times an exposure
jitter of 2**U(-0.75, 0.25), which still counts as well exposed). It is then degraded,
in this order (:func:`degrade`):

1. exposure: ``y = x ** gamma``; under: gamma ~ U(1.5, 2.5), over: 1 / U(1.5, 2.5),
   well: exp(U(-ln 1.1, ln 1.1));
2. saturation: ``y = Y + s (y - Y)`` (Y the fixed luminance, unchanged by this step),
   clamped at 0; under: s ~ U(0.6, 0.9), over: 1 / U(0.6, 0.9), well: U(0.95, 1.05);
3. colour cast: ``y = y * (c_R, 1, c_B)`` with c_R, c_B ~ U(0.8, 1.2) (20 % of samples
   have no cast).

The labels are the inverses: correction gamma ``1 / gamma``, saturation factor ``1 / s``,
white-balance gains ``(1 / c_R, 1, 1 / c_B)``; :func:`correct` applies them in reverse
order and restores the clean image exactly wherever no clamping happened.

Convention: (3, H, W) or batched (N, 3, H, W) linear RGB, working space, 1.0 = white.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from core.diagnostics.features import chroma, luminance_t
from core.diagnostics.types import (
    ACHROMATIC_CHROMA,
    EXPOSURE_LABELS,
    SATURATION_LABELS,
    ExposureLabel,
    SaturationLabel,
)
from core.errors import ConfigError, ShapeError
from core.simulate.scenes import DAYLIGHT_CAMERA_RGB, make_scene, scene_names

__all__ = [
    "AE_TARGET",
    "HOLDOUT_SCENES",
    "Degradation",
    "SyntheticSample",
    "auto_expose",
    "correct",
    "correct_t",
    "degrade",
    "degrade_t",
    "exposure_class",
    "make_samples",
    "sample_degradation",
    "saturation_class",
    "train_scenes",
]

#: Auto-exposure target: 99th percentile of luminance at this fraction of white.
AE_TARGET = 0.8
#: Exposure jitter (EV) that still counts as well exposed.
AE_JITTER_EV = (-0.75, 0.25)
GAMMA_RANGE = (1.5, 2.5)
WELL_GAMMA = 1.1
CAST_RANGE = (0.8, 1.2)
NO_CAST_PROBABILITY = 0.2
DESATURATION_RANGE = (0.6, 0.9)
WELL_SATURATION = (0.95, 1.05)
#: Class boundaries: gamma above this is "under", below its inverse "over".
GAMMA_CLASS_EDGE = 1.25
#: Saturation factor below this is "under", above its inverse "over".
SATURATION_CLASS_EDGE = 0.93
#: Scene types never used in training: the held-out split is by scene, one procedural
#: natural scene, one photograph and one test chart.
HOLDOUT_SCENES: tuple[str, ...] = ("bright_window", "natural_chelsea", "siemens_star")
_LUMA = np.array([0.25, 0.5, 0.25], np.float32)


def train_scenes() -> list[str]:
    """Simulator scenes used for training: all but :data:`HOLDOUT_SCENES`."""
    return [s for s in scene_names() if s not in HOLDOUT_SCENES]


def exposure_class(gamma: float) -> ExposureLabel:
    """Label of an applied exposure gamma (``"under"`` above 1.25, ``"over"`` below 0.8)."""
    if gamma > GAMMA_CLASS_EDGE:
        return "under"
    if gamma < 1.0 / GAMMA_CLASS_EDGE:
        return "over"
    return "well"


def saturation_class(s: float) -> SaturationLabel:
    """Label of an applied saturation factor (``"under"`` below 0.93, ``"over"`` above)."""
    if s < SATURATION_CLASS_EDGE:
        return "under"
    if s > 1.0 / SATURATION_CLASS_EDGE:
        return "over"
    return "well"


@dataclass(frozen=True)
class Degradation:
    """One draw of the degradation model.

    Attributes:
        gamma: exposure exponent applied (``x ** gamma``).
        saturation: chroma factor applied.
        cast: channel gains applied (R, 1, B).
    """

    gamma: float
    saturation: float
    cast: tuple[float, float, float]

    @property
    def exposure_label(self) -> ExposureLabel:
        """Truth exposure class."""
        return exposure_class(self.gamma)

    @property
    def saturation_label(self) -> SaturationLabel:
        """Truth saturation class."""
        return saturation_class(self.saturation)

    @property
    def correction_gains(self) -> tuple[float, float, float]:
        """Truth white-balance correction (R, G, B), green = 1."""
        return (1.0 / self.cast[0], 1.0, 1.0 / self.cast[2])


def sample_degradation(rng: np.random.Generator) -> Degradation:
    """Draw exposure and saturation classes uniformly, then their parameters (module doc)."""
    e = int(rng.integers(3))
    if EXPOSURE_LABELS[e] == "under":
        gamma = rng.uniform(*GAMMA_RANGE)
    elif EXPOSURE_LABELS[e] == "over":
        gamma = 1.0 / rng.uniform(*GAMMA_RANGE)
    else:
        gamma = math.exp(rng.uniform(-math.log(WELL_GAMMA), math.log(WELL_GAMMA)))
    s_cls = SATURATION_LABELS[int(rng.integers(3))]
    if s_cls == "under":
        sat = rng.uniform(*DESATURATION_RANGE)
    elif s_cls == "over":
        sat = 1.0 / rng.uniform(*DESATURATION_RANGE)
    else:
        sat = rng.uniform(*WELL_SATURATION)
    cast_r, cast_b = rng.uniform(*CAST_RANGE, size=2)
    if rng.random() < NO_CAST_PROBABILITY:
        cast_r = cast_b = 1.0
    return Degradation(float(gamma), float(sat), (float(cast_r), 1.0, float(cast_b)))


def _check_image(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim != 3 or a.shape[0] != 3:
        raise ShapeError(f"expected a (3, H, W) image, got shape {a.shape}")
    return a


def _resaturate(x: np.ndarray, k: float) -> np.ndarray:
    y = np.tensordot(_LUMA, x, axes=1)[None]
    out = y + np.float32(k) * (x - y)
    return np.maximum(out, 0.0, out=out)


def degrade(clean: np.ndarray, d: Degradation) -> np.ndarray:
    """Apply ``d`` to a clean image (module doc). (3, H, W) -> float32 (3, H, W)."""
    x = np.maximum(_check_image(clean), 0.0)
    y = np.power(x, np.float32(d.gamma))
    y = _resaturate(y, d.saturation)
    return (y * np.asarray(d.cast, np.float32)[:, None, None]).astype(np.float32)


def correct(
    image: np.ndarray,
    gains: Sequence[float],
    saturation_factor: float,
    gamma: float,
) -> np.ndarray:
    """The corrections of a :class:`~core.diagnostics.types.CorrectionAdvice`, in order:
    white-balance ``gains``, chroma x ``saturation_factor``, then ``** gamma``.

    Shapes: (3, H, W) -> float32 (3, H, W). Units: linear, 1.0 = white (a fixed point).
    Raises: ShapeError for a non-(3, H, W) image; ConfigError for non-positive factors.
    """
    g = np.asarray(gains, dtype=np.float32).reshape(-1)
    if g.size != 3 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ConfigError(f"gains must be three positive numbers, got {list(gains)}")
    for name, v in (("saturation_factor", saturation_factor), ("gamma", gamma)):
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"{name} must be a positive number, got {v!r}")
    x = np.maximum(_check_image(image), 0.0) * g[:, None, None]
    x = _resaturate(x, saturation_factor)
    return np.power(x, np.float32(gamma)).astype(np.float32)


def degrade_t(x: Tensor, gamma: Tensor, saturation: Tensor, cast: Tensor) -> Tensor:
    """Batched :func:`degrade`: x (N, 3, H, W); gamma, saturation (N,); cast (N, 3)."""
    y = x.clamp_min(0.0).pow(gamma[:, None, None, None])
    lum = luminance_t(y)[:, None]
    y = (lum + saturation[:, None, None, None] * (y - lum)).clamp_min(0.0)
    return y * cast[:, :, None, None]


def correct_t(x: Tensor, gains: Tensor, saturation_factor: Tensor, gamma: Tensor) -> Tensor:
    """Batched :func:`correct`: x (N, 3, H, W); gains (N, 3); the factors (N,)."""
    z = x.clamp_min(0.0) * gains[:, :, None, None]
    lum = luminance_t(z)[:, None]
    z = (lum + saturation_factor[:, None, None, None] * (z - lum)).clamp_min(0.0)
    return z.pow(gamma[:, None, None, None])


def auto_expose(x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Scale so the 99th percentile of luminance sits at ``AE_TARGET`` x 2**jitter.

    ``rng`` None means no jitter. Shapes: (3, H, W) -> float32 (3, H, W).
    """
    a = np.maximum(_check_image(x), 0.0)
    p99 = max(float(np.percentile(np.tensordot(_LUMA, a, axes=1), 99.0)), 1e-6)
    ev = 0.0 if rng is None else rng.uniform(*AE_JITTER_EV)
    return (a * np.float32(AE_TARGET * 2.0**ev / p99)).astype(np.float32)


def balance_scene(camera: np.ndarray) -> np.ndarray:
    """Simulator Camera48 (daylight camera colour) -> working space (neutral = grey)."""
    day = np.asarray(DAYLIGHT_CAMERA_RGB, np.float32)[:, None, None]
    return (_check_image(camera) / day).astype(np.float32)


def is_chromatic(clean: np.ndarray) -> bool:
    """True when saturation can be judged on this clean image (chroma >= ACHROMATIC_CHROMA)."""
    t = torch.from_numpy(np.ascontiguousarray(np.maximum(_check_image(clean), 0.0)))[None]
    mask = (t < 1.0).all(dim=1) & (luminance_t(t) > 2.0**-12)
    return float(chroma(t, mask)[0]) >= ACHROMATIC_CHROMA


@dataclass(frozen=True)
class SyntheticSample:
    """One labelled synthetic image.

    Attributes:
        scene: scene name; seed: its generator seed.
        image: float32 (3, H, W) degraded image (what a method sees).
        degradation: the truth.
        chromatic: False for an (almost) grey scene, whose saturation cannot be judged.
    """

    scene: str
    seed: int
    image: np.ndarray
    degradation: Degradation
    chromatic: bool


def make_samples(
    scenes: Sequence[str],
    seeds: Sequence[int],
    *,
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
) -> list[SyntheticSample]:
    """One degraded sample per (scene, scene seed), deterministic for ``seed``.

    Shapes: ``size`` = (H, W), multiples of 4 (the simulator's requirement).
    Raises: ConfigError for an unknown scene; ShapeError for a bad size.
    """
    out = []
    for i, name in enumerate(scenes):
        for s in seeds:
            rng = np.random.default_rng([seed, i, int(s)])
            clean = auto_expose(balance_scene(make_scene(name, size[0], size[1], seed=int(s))), rng)
            d = sample_degradation(rng)
            out.append(SyntheticSample(name, int(s), degrade(clean, d), d, is_chromatic(clean)))
    return out
