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

**Label definitions** (:data:`LABEL_DEFINITIONS`). With ``"as_rendered"`` (the first
definition) the clean image is the auto-exposed scene as the simulator renders it. Its
exposure and saturation labels are not identifiable on unseen content: a gamma scales
every log2 luminance relative to white by exactly ``gamma`` (the log histogram keeps its
shape) and the saturation step scales the chroma statistic by exactly ``s``, while the
clean scenes' own relative key (``q50 - q99`` of log2 luminance) ranges from -0.7 EV
(charts) to -9 EV (night city) and their chroma from 0.08 to 0.65, ranges far wider than
the class margins (1.1 vs 1.5 in gamma, 0.95 vs 0.9 in chroma). A well-exposed dim room
(-7.6 EV) is the same picture as a normal room (-3.8 EV) under a gamma of 2.

``"scene_referenced"`` (the default) first places the clean image at a reference
rendering of the scene itself (:func:`place_reference_t`): a tone gamma about its 99th
percentile brings its relative key to :data:`REFERENCE_KEY_EV`, and a chroma factor brings
the gray-world-balanced chroma of the *exposed* image (after step 1) to
:data:`REFERENCE_CHROMA` (chromatic scenes only). Gray-world balancing removes any channel
gains exactly, so this chroma does not depend on the colour cast drawn in step 3: the
saturation label is not entangled with the white-balance one. "Well exposed" then means
mid-tones at the standard place below the highlights and "well saturated" a standard
colourfulness of the image as shown, so the labels follow from the image; a deliberately
low-key or pastel picture is judged against the same standard. White balance keeps its
physical meaning (the cast on top of the daylight-balanced scene) under both definitions.

Convention: (3, H, W) or batched (N, 3, H, W) linear RGB, working space, 1.0 = white.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from core.diagnostics.features import (
    LOG_FLOOR_EV,
    STAT_NAMES,
    THUMB_PX,
    chroma,
    global_stats,
    luminance_t,
)
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
    "DEFAULT_LABELS",
    "HOLDOUT_SCENES",
    "LABEL_DEFINITIONS",
    "REFERENCE_CHROMA",
    "REFERENCE_KEY_EV",
    "Degradation",
    "LabelDefinition",
    "SyntheticSample",
    "auto_expose",
    "check_labels",
    "correct",
    "correct_t",
    "degrade",
    "degrade_t",
    "exposure_class",
    "make_samples",
    "place_reference",
    "place_reference_t",
    "relative_key_t",
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

LabelDefinition = Literal["scene_referenced", "as_rendered"]
#: What "well exposed / well saturated" means for a clean image (module doc).
LABEL_DEFINITIONS: dict[LabelDefinition, str] = {
    "scene_referenced": "clean image placed at the reference key and chroma first",
    "as_rendered": "clean image as the simulator renders it, auto-exposed (first definition)",
}
DEFAULT_LABELS: LabelDefinition = "scene_referenced"
#: Reference relative key, q50 - q99 of log2 luminance of the analysis thumbnail (EV).
REFERENCE_KEY_EV = -2.7
#: Reference chroma: the ``chroma_grayworld`` statistic (``features.global_stats``) of the
#: exposed thumbnail.
REFERENCE_CHROMA = 0.25
#: Fixed-point iterations of the placement and the limits of its gamma / chroma factor.
_PLACEMENT_STEPS = 6
_PLACEMENT_ROUNDS = 3
_TONE_LIMITS = (0.2, 5.0)
_CHROMA_LIMITS = (0.05, 5.0)
_GW_CHROMA = STAT_NAMES.index("chroma_grayworld")
#: Relative keys above this (EV) are flat images: no tone placement.
_FLAT_KEY_EV = -0.05


def train_scenes() -> list[str]:
    """Simulator scenes used for training: natural and pattern ones but
    :data:`HOLDOUT_SCENES` (the low-texture kind is registration's test material)."""
    names = scene_names("natural") + scene_names("pattern")
    return [s for s in names if s not in HOLDOUT_SCENES]


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


def check_labels(labels: str) -> LabelDefinition:
    """``labels`` as a :data:`LabelDefinition`; ConfigError naming the valid ones."""
    for name in LABEL_DEFINITIONS:
        if labels == name:
            return name
    raise ConfigError(f"unknown label definition {labels!r}; valid: {', '.join(LABEL_DEFINITIONS)}")


def _thumb_t(x: Tensor) -> Tensor:
    return nnf.adaptive_avg_pool2d(x, (THUMB_PX, THUMB_PX))


def _usable_t(t: Tensor) -> Tensor:
    return (t < 1.0).all(dim=1) & (luminance_t(t) > 2.0**-12)


def relative_key_t(x: Tensor) -> Tensor:
    """Relative key ``q50 - q99`` of log2 luminance of the ``THUMB_PX`` area average (EV).

    Shapes: (N, 3, H, W) -> (N,). Units: EV (0 = flat image).
    """
    t = _thumb_t(x.clamp_min(0.0))
    ly = torch.log2(luminance_t(t).reshape(t.shape[0], -1).clamp_min(2.0**LOG_FLOOR_EV))
    q = torch.quantile(ly, torch.tensor([0.5, 0.99], dtype=ly.dtype), dim=1)
    return q[0] - q[1]


def _p99_t(x: Tensor) -> Tensor:
    lum = luminance_t(x).reshape(x.shape[0], -1)
    return torch.quantile(lum, 0.99, dim=1).clamp_min(1e-6)


def _resaturate_t(x: Tensor, k: Tensor) -> Tensor:
    lum = luminance_t(x)[:, None]
    return (lum + k[:, None, None, None] * (x - lum)).clamp_min(0.0)


def _place_once(x: Tensor, gamma: Tensor) -> tuple[Tensor, Tensor]:
    n = x.shape[0]
    p99 = _p99_t(x)[:, None, None, None]
    rel = x / p99
    high = rel > 1.0

    def tone(g: Tensor) -> Tensor:
        return p99 * torch.where(high, rel, rel.pow(g[:, None, None, None]))

    flat = relative_key_t(x) > _FLAT_KEY_EV
    g0 = torch.ones(n)
    for _ in range(_PLACEMENT_STEPS):
        key = relative_key_t(tone(g0))
        target = REFERENCE_KEY_EV / key.clamp_max(-1e-3)
        step = torch.where(flat | (key > _FLAT_KEY_EV), 1.0, target)
        g0 = (g0 * step).clamp(*_TONE_LIMITS)
    x = tone(g0)
    g = gamma.float()[:, None, None, None]
    chromatic = global_stats(_thumb_t(x.pow(g)))[:, _GW_CHROMA] >= ACHROMATIC_CHROMA
    k0 = torch.ones(n)
    for _ in range(_PLACEMENT_STEPS):
        t = _thumb_t(_resaturate_t(x, k0).pow(g))
        c = global_stats(t)[:, _GW_CHROMA]
        step = torch.where(chromatic, REFERENCE_CHROMA / c.clamp_min(1e-6), 1.0)
        k0 = (k0 * step).clamp(*_CHROMA_LIMITS)
    return _resaturate_t(x, k0), chromatic


def place_reference_t(clean: Tensor, gamma: Tensor) -> tuple[Tensor, Tensor]:
    """The scene-referenced clean image (module doc) for exposure gammas ``gamma``.

    1. tone: ``x -> p99 * (x / p99) ** g0`` below p99 (the 99th percentile of luminance,
       kept), values above it unchanged (highlights keep their ratios), g0 chosen so
       :func:`relative_key_t` is ``REFERENCE_KEY_EV`` (a gamma about p99 scales the key by
       exactly g0 at full resolution; a few fixed-point steps absorb the thumbnail's
       averaging); flat images (key above -0.05 EV) are left alone;
    2. chroma: ``x -> Y + k0 (x - Y)`` (clamped at 0), k0 chosen so the gray-world-balanced
       chroma (``chroma_grayworld``) of ``x ** gamma`` (the image after the exposure step)
       is ``REFERENCE_CHROMA``; images whose gray-world-balanced chroma is below
       ``ACHROMATIC_CHROMA`` (grey charts, single-colour images) are left alone.

    g0 is limited to [0.2, 5], k0 to [0.05, 5]; the two steps run three times (clamping in
    step 2 moves the key a little).

    Shapes: clean (N, 3, H, W) >= 0, gamma (N,) -> (reference (N, 3, H, W) float32,
    chromatic (N,) bool: saturation is judged on this image). Deterministic.
    """
    x = clean.float().clamp_min(0.0)
    chromatic = torch.ones(x.shape[0], dtype=torch.bool)
    for _ in range(_PLACEMENT_ROUNDS):
        x, chromatic = _place_once(x, gamma)
    return x, chromatic


def place_reference(clean: np.ndarray, gamma: float) -> tuple[np.ndarray, bool]:
    """:func:`place_reference_t` for one (3, H, W) image -> (float32 (3, H, W), chromatic)."""
    t = torch.from_numpy(np.ascontiguousarray(np.maximum(_check_image(clean), 0.0)))[None]
    ref, chromatic = place_reference_t(t, torch.tensor([float(gamma)]))
    return ref[0].numpy(), bool(chromatic[0])


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
    labels: LabelDefinition = DEFAULT_LABELS,
) -> list[SyntheticSample]:
    """One degraded sample per (scene, scene seed), deterministic for ``seed``; ``labels``
    picks the clean reference (module doc). Both definitions draw the same degradations.

    Shapes: ``size`` = (H, W), multiples of 4 (the simulator's requirement).
    Raises: ConfigError for an unknown scene or label definition; ShapeError for a bad size.
    """
    check_labels(labels)
    out = []
    for i, name in enumerate(scenes):
        for s in seeds:
            rng = np.random.default_rng([seed, i, int(s)])
            clean = auto_expose(balance_scene(make_scene(name, size[0], size[1], seed=int(s))), rng)
            d = sample_degradation(rng)
            if labels == "scene_referenced":
                clean, chromatic = place_reference(clean, d.gamma)
            else:
                chromatic = is_chromatic(clean)
            out.append(SyntheticSample(name, int(s), degrade(clean, d), d, chromatic))
    return out
