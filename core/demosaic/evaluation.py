"""Held-out evaluation of guidance demosaicers on simulated truth and pattern scenes.

Truth (what RAW12 would see with a full-colour sensor): a Camera48 scene from
:mod:`core.simulate.scenes`, 2x2 box-binned to the 12MP grid (DESIGN §3: the RAW12 mosaic
is the mosaic of that binned image), auto-exposed like the simulator (99th percentile at
0.8 of the clip) and clipped per channel at 1.0 like the sensor. The anchor is
:func:`core.demosaic.mosaic_from_rgb` of it, optionally with RAW12-like shot and read
noise (6000 e- full well per 12MP pixel = four 1500 e- photosites, 1 e- read noise).

Sets:

- ``natural``: every natural scene of the simulator at seeds >= :data:`HELDOUT_SEED`
  (training uses seeds below :data:`TRAIN_SEED_LIMIT`), the four CFA phases in turn;
- ``pattern``: the simulator's torture charts (zone plate = circles, Siemens star,
  stripes, checkers, gradient sky) plus three drawn here: slanted colour ``edges``, a
  ``fractal`` (1/f, colour) and white ``noise``. Evaluation only: never a training set.

Metrics (a 4 px border is left out): PSNR (peak 1.0) and SSIM (mean over R, G, B, data
range 1.0) against truth, and :func:`core.demosaic.periodic_artifact_db` against truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.cfa import CfaPattern
from core.demosaic._common import mosaic_from_rgb
from core.demosaic.artifacts import periodic_artifact_db
from core.errors import ConfigError
from core.metrics import psnr, ssim
from core.simulate.scenes import make_scene, scene_names

__all__ = [
    "BORDER_PX",
    "EXTRA_PATTERNS",
    "HELDOUT_SEED",
    "TRAIN_SEED_LIMIT",
    "EvalCase",
    "MethodScores",
    "add_raw_noise",
    "evaluation_cases",
    "score_method",
    "truth12",
]

HELDOUT_SEED = 9_000_000
TRAIN_SEED_LIMIT = 9_000_000
BORDER_PX = 4
FULL_WELL_12_E = 6000.0
READ_NOISE_12_E = 1.0

SetKind = Literal["natural", "pattern"]
Demosaicer = Callable[[np.ndarray, CfaPattern], np.ndarray]


def truth12(scene: np.ndarray, *, exposure: float = 0.8, clip: bool = True) -> np.ndarray:
    """12MP truth from a Camera48 scene: 2x2 box mean, auto-exposure, per-channel clip.

    Shapes: scene (3, H48, W48), even sides -> (3, H48/2, W48/2) float32.
    Units: the 99th percentile of the green plane lands at ``exposure`` (of the clip);
        values clipped at 1.0 (the sensor) when ``clip``.
    """
    c, h, w = scene.shape
    t = scene.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4), dtype=np.float32)
    level = float(np.percentile(t[1, ::2, ::2], 99.0))
    t *= np.float32(exposure / level) if level > 0 else np.float32(1.0)
    if clip:
        np.minimum(t, 1.0, out=t)
    return np.ascontiguousarray(t, dtype=np.float32)


def add_raw_noise(
    mosaic: np.ndarray,
    rng: np.random.Generator,
    *,
    full_well_e: float = FULL_WELL_12_E,
    read_noise_e: float = READ_NOISE_12_E,
) -> np.ndarray:
    """Gaussian approximation of shot + read noise on a Mosaic12 (1.0 = full well).

    Variance ``max(m, 0) / full_well_e + (read_noise_e / full_well_e)**2``; float32 out.
    """
    var = np.maximum(mosaic, 0.0) / np.float32(full_well_e) + np.float32(
        (read_noise_e / full_well_e) ** 2
    )
    noise = rng.standard_normal(mosaic.shape, dtype=np.float32) * np.sqrt(var, dtype=np.float32)
    return (mosaic + noise).astype(np.float32)


# ----------------------------------------------------------------------- extra patterns


def _day() -> np.ndarray:
    from core.simulate.scenes import DAYLIGHT_CAMERA_RGB

    return np.asarray(DAYLIGHT_CAMERA_RGB, np.float32)[:, None, None]


def _edges(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Random slanted half-planes of saturated colours over a grey card: sharp colour edges
    at every angle (false colour and zipper show there)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.ones((3, h, w), np.float32) * np.float32(0.3)
    for _ in range(12):
        angle = rng.uniform(0, np.pi)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        d = (xx - cx) * np.float32(np.cos(angle)) + (yy - cy) * np.float32(np.sin(angle))
        band = (d > 0) & (d < rng.uniform(0.05, 0.3) * min(h, w))
        img[:, band] = rng.uniform(0.02, 1.0, 3).astype(np.float32)[:, None]
    return img * _day()


def _fractal(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Colour 1/f noise (power spectrum ~ 1/f^2 per channel, partly correlated): detail at
    every scale, like a fractal landscape."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    f[0, 0] = 1.0
    amp = 1.0 / f
    amp[0, 0] = 0.0
    common = rng.standard_normal((h, w // 2 + 1)) + 1j * rng.standard_normal((h, w // 2 + 1))
    planes = []
    for _ in range(3):
        own = rng.standard_normal((h, w // 2 + 1)) + 1j * rng.standard_normal((h, w // 2 + 1))
        field = np.fft.irfft2((0.7 * common + 0.3 * own) * amp, s=(h, w))
        field = (field - field.mean()) / (field.std() + 1e-12)
        planes.append(np.exp(0.8 * field))
    img = np.stack(planes).astype(np.float32)
    return img / np.float32(np.percentile(img, 99.0)) * _day()


def _white_noise(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Independent uniform colour noise per 48MP pixel: no structure a demosaicer can use."""
    return rng.uniform(0.05, 1.0, (3, h, w)).astype(np.float32) * _day()


EXTRA_PATTERNS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "edges": _edges,
    "fractal": _fractal,
    "noise": _white_noise,
}


# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class EvalCase:
    """One held-out image.

    Attributes:
        name: scene name with seed and pattern, e.g. ``foliage@9000001/BGGR``.
        kind: ``"natural"`` or ``"pattern"``.
        truth: (3, H, W) float32 12MP truth (clipped at 1.0).
        cfa: the mosaic's pattern.
        mosaic: (H, W) noise-free anchor.
        noisy: (H, W) anchor with RAW12-like noise.
    """

    name: str
    kind: SetKind
    truth: np.ndarray
    cfa: CfaPattern
    mosaic: np.ndarray
    noisy: np.ndarray


def _scene48(name: str, h48: int, w48: int, seed: int) -> np.ndarray:
    if name in EXTRA_PATTERNS:
        return EXTRA_PATTERNS[name](h48, w48, np.random.default_rng(seed))
    return make_scene(name, h48, w48, seed=seed)


def evaluation_cases(
    kinds: Sequence[SetKind] = ("natural", "pattern"),
    *,
    size12: tuple[int, int] = (256, 192),
    seed: int = HELDOUT_SEED,
    per_scene: int = 1,
    scenes: Sequence[str] | None = None,
) -> list[EvalCase]:
    """Build the held-out cases (module docstring), deterministic for ``seed``.

    Args:
        kinds: which sets.
        size12: (width, height) of each 12MP image, multiples of 2 (48MP multiples of 4).
        seed: first seed; must be >= TRAIN_SEED_LIMIT so nothing overlaps training.
        per_scene: images per scene (consecutive seeds; the CFA phase cycles).
        scenes: restrict to these names (None: all of the kinds).
    Raises: ConfigError on a seed inside the training range, an unknown kind or scene.
    """
    if seed < TRAIN_SEED_LIMIT:
        raise ConfigError(f"seed: held-out seeds start at {TRAIN_SEED_LIMIT}, got {seed}")
    w12, h12 = size12
    names: list[tuple[str, SetKind]] = []
    for kind in kinds:
        if kind not in ("natural", "pattern"):
            raise ConfigError(f"kind: {kind!r} is not natural or pattern")
        names += [(n, kind) for n in scene_names(kind)]
        if kind == "pattern":
            names += [(n, "pattern") for n in EXTRA_PATTERNS]
    if scenes is not None:
        known = {n for n, _ in names}
        bad = [s for s in scenes if s not in known]
        if bad:
            raise ConfigError(f"scene: unknown {bad[0]!r}; valid: {', '.join(sorted(known))}")
        names = [(n, k) for n, k in names if n in scenes]
    cases = []
    for i, (name, kind) in enumerate(names):
        for j in range(per_scene):
            s = seed + 1000 * i + j
            cfa = CfaPattern.from_name(("BGGR", "RGGB", "GRBG", "GBRG")[(i + j) % 4])
            t = truth12(_scene48(name, 2 * h12, 2 * w12, s))
            m = mosaic_from_rgb(t, cfa)
            noisy = add_raw_noise(m, np.random.default_rng([s, 1]))
            cases.append(EvalCase(f"{name}@{s}/{cfa.name}", kind, t, cfa, m, noisy))
    return cases


@dataclass(frozen=True)
class MethodScores:
    """Mean scores of one method over a set of cases.

    Attributes:
        psnr_db: PSNR vs truth, noise-free anchors (dB, peak 1.0).
        ssim: SSIM vs truth, noise-free anchors (mean over channels).
        psnr_noisy_db: PSNR vs (clean) truth from noisy anchors.
        artifact_db: mean :func:`periodic_artifact_db` vs truth (noise-free).
        artifact_max_db: its maximum over the cases.
        seconds: total wall time of the noise-free calls.
        megapixels: total mosaic size of those calls.
        per_case: {case name: PSNR dB}.
    """

    psnr_db: float
    ssim: float
    psnr_noisy_db: float
    artifact_db: float
    artifact_max_db: float
    seconds: float
    megapixels: float
    per_case: dict[str, float]

    @property
    def seconds_per_mp(self) -> float:
        """Wall time per megapixel of mosaic."""
        return self.seconds / self.megapixels if self.megapixels else float("nan")


def _ssim3(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([ssim(a[c], b[c], data_range=1.0) for c in range(3)]))


def score_method(
    method: Demosaicer, cases: Sequence[EvalCase], *, noisy: bool = True
) -> MethodScores:
    """Run ``method`` on every case and average the metrics (module docstring).

    ``method(mosaic, cfa) -> (3, H, W)``, e.g. ``lambda m, p: demosaic(m, p, "dht")``.
    """
    b = BORDER_PX
    crop = (slice(None), slice(b, -b), slice(b, -b))
    ps, ss, pn, arts, per = [], [], [], [], {}
    seconds = mp = 0.0
    for case in cases:
        t0 = time.perf_counter()
        out = method(case.mosaic, case.cfa)
        seconds += time.perf_counter() - t0
        mp += case.mosaic.size / 1e6
        ps.append(psnr(out[crop], case.truth[crop]))
        ss.append(_ssim3(out[crop], case.truth[crop]))
        arts.append(periodic_artifact_db(out[crop], case.truth[crop]))
        per[case.name] = ps[-1]
        if noisy:
            pn.append(psnr(method(case.noisy, case.cfa)[crop], case.truth[crop]))
    return MethodScores(
        psnr_db=float(np.mean(ps)),
        ssim=float(np.mean(ss)),
        psnr_noisy_db=float(np.mean(pn)) if pn else float("nan"),
        artifact_db=float(np.mean(arts)),
        artifact_max_db=float(np.max(arts)),
        seconds=seconds,
        megapixels=mp,
        per_case=per,
    )
