"""Train and evaluate the diagnostic network (issue 7): ``python -m training diagnostics``.

    train     --config training/configs/diagnostics.toml [--root DIR] [--dry-run] [--ship]
    evaluate  [--checkpoint C] [--seeds N] [--out FILE.md]
    calibrate [--seeds N]          fit the classical thresholds on the training split

Data: clean linear images (simulator scenes minus ``HOLDOUT_SCENES``, dead-leaves scenes
with random palettes and lighting, photographs bundled with installed packages
(:data:`EXTRA_PHOTOS`), plus crops of the real Bayer DNG in ``../shared/data/real``
demosaiced with ``core.demosaic``), each drawn with a random crop and flip, area-averaged
to ``data.work_px``, auto-exposed with jitter, placed at the scene-referenced reference
(``data.labels``), degraded by ``core.diagnostics.synthetic`` (gamma, desaturation, colour
cast; the inverses are the labels) and reduced to the analysis thumbnail. The held-out
split is by scene type: ``HOLDOUT_SCENES`` never appear in training, nor in the
validation set (:func:`validation_samples`, training types, its own seeds) that a run
reports for model selection.

Runs are recorded in the SQLite registry (``training.tracking``) under ``ROOT/<name>``
with TensorBoard scalars; the checkpoint is ``ROOT/<name>/model.pt`` and ``--ship``
copies it to ``resources/models/diagnostic.pt`` after verifying it loads.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from core.diagnostics.checkpoint import (
    DEFAULT_DIAGNOSTIC_CHECKPOINT,
    load_diagnostic_model,
    save_diagnostic_checkpoint,
)
from core.diagnostics.estimators import (
    CLASSICAL_THRESHOLDS,
    classical_estimate,
    grayworld_chroma,
    learned_estimate,
    relative_key_ev,
)
from core.diagnostics.evaluation import HeadScores, score, thumbnails
from core.diagnostics.features import THUMB_PX, chroma, global_stats, luminance_t, net_input
from core.diagnostics.net import DiagnosticNet, DiagnosticNetConfig
from core.diagnostics.synthetic import (
    AE_JITTER_EV,
    AE_TARGET,
    HOLDOUT_SCENES,
    LABEL_DEFINITIONS,
    LabelDefinition,
    SyntheticSample,
    balance_scene,
    check_labels,
    degrade_t,
    make_samples,
    place_reference_t,
    sample_degradation,
    train_scenes,
)
from core.diagnostics.types import (
    ACHROMATIC_CHROMA,
    EXPOSURE_LABELS,
    SATURATION_LABELS,
    axes_from_gains,
)
from core.errors import ConfigError, Linear48Error
from core.io.atomic import atomic_write_text
from core.simulate.scenes import make_scene
from training.config import RUN_NAME, build_sections, read_toml
from training.tracking import DEFAULT_ROOT, Registry, RunRecord, ScalarWriter

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
REPORT_FILE = "eval.md"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL_DNG = "../shared/data/real/bayer_canon550d_magiclantern_colorchart.dng"
#: Seeds of the evaluation sets (training pool seeds are below 10000).
HELDOUT_SEED0 = 10_000
SEEN_SEED0 = 20_000
VALIDATION_SEED0 = 30_000


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class RunSection:
    """Run identity: ``name`` is ``v{major}.{minor}_{variant}``."""

    name: str = "v1.0_diag"
    seed: int = 0
    notes: str = ""


@dataclass(frozen=True)
class DataSection:
    """Training pool and batches (sizes in pixels).

    ``scene_h`` x ``scene_w``: simulator scenes (multiples of 4); ``pool_per_scene``: seeds
    per training scene type; ``crop_min``: smallest crop side as a fraction of the image;
    ``work_px``: side the crop is averaged to before it is degraded (``work_w``: its width
    when not 0; ``work_px`` x ``work_w`` = the simulator size with ``crop_min`` 1 degrades
    the scene at the evaluation images' resolution); ``real_dng``: the real
    Bayer DNG (relative to the repository; "" for none); ``real_share``: fraction of each
    batch drawn from it; ``collage``: probability that a sample is two views side by side;
    ``hue_rotation``: probability that its chroma is rotated by a random angle (greys,
    luminance and chroma magnitude kept); ``labels``: the label definition
    (``core.diagnostics.synthetic.LABEL_DEFINITIONS``), also used by the evaluation sets;
    ``procedural``: dead-leaves images added to the pool (:func:`dead_leaves`);
    ``photos``: also use the extra photographs bundled with installed packages
    (:data:`EXTRA_PHOTOS`), never the held-out ones.
    """

    pool_per_scene: int = 24
    samples: int = 12288
    scene_h: int = 144
    scene_w: int = 192
    crop_min: float = 0.6
    work_px: int = 96
    work_w: int = 0
    batch: int = 64
    real_dng: str = DEFAULT_REAL_DNG
    real_share: float = 0.08
    collage: float = 0.0
    hue_rotation: float = 0.0
    labels: str = "scene_referenced"
    procedural: int = 0
    photos: bool = False


@dataclass(frozen=True)
class OptimSection:
    """AdamW with cosine decay to 5 %; ``threads`` for torch.set_num_threads."""

    steps: int = 1500
    lr: float = 3e-3
    weight_decay: float = 1e-4
    threads: int = 1
    log_every: int = 50


@dataclass(frozen=True)
class LossSection:
    """Weights: cross-entropy of the two classifiers, smooth-L1 on the log levels, L1 on
    the white-balance axes (EV)."""

    exposure: float = 1.0
    gamma: float = 1.0
    wb: float = 8.0
    saturation: float = 1.0
    saturation_level: float = 1.0


@dataclass(frozen=True)
class EvalSection:
    """Held-out evaluation: ``seeds`` scene seeds per held-out scene type (and a quarter of
    that per training type for the unseen-seed set), images of ``size`` = "WxH"."""

    seeds: int = 40
    size: str = "128x96"
    seed: int = 7


@dataclass(frozen=True)
class DiagConfig:
    """The whole diagnostic training configuration."""

    run: RunSection = field(default_factory=RunSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    model: DiagnosticNetConfig = field(default_factory=DiagnosticNetConfig)
    eval: EvalSection = field(default_factory=EvalSection)

    def __post_init__(self) -> None:
        d, o = self.data, self.optim
        checks: dict[str, bool] = {
            "run.name": bool(RUN_NAME.match(self.run.name)),
            "data.pool_per_scene": d.pool_per_scene >= 1,
            "data.samples": d.samples >= d.batch,
            "data.scene_h": d.scene_h >= 32 and d.scene_h % 4 == 0,
            "data.scene_w": d.scene_w >= 32 and d.scene_w % 4 == 0,
            "data.crop_min": 0.1 <= d.crop_min <= 1.0,
            "data.work_px": THUMB_PX <= d.work_px <= min(d.scene_h, d.scene_w),
            "data.work_w": d.work_w == 0 or THUMB_PX <= d.work_w <= d.scene_w,
            "data.batch": d.batch >= 2,
            "data.real_share": 0.0 <= d.real_share <= 1.0,
            "data.collage": 0.0 <= d.collage <= 1.0,
            "data.hue_rotation": 0.0 <= d.hue_rotation <= 1.0,
            "data.labels": d.labels in LABEL_DEFINITIONS,
            "data.procedural": d.procedural >= 0,
            "optim.steps": o.steps >= 1,
            "optim.lr": 0 < o.lr < 1,
            "optim.weight_decay": o.weight_decay >= 0,
            "optim.threads": 1 <= o.threads <= 64,
            "optim.log_every": o.log_every >= 1,
            "eval.seeds": self.eval.seeds >= 1,
        }
        for name in ("exposure", "gamma", "wb", "saturation", "saturation_level"):
            checks[f"loss.{name}"] = getattr(self.loss, name) >= 0
        for name, ok in checks.items():
            if not ok:
                section, key = name.split(".")
                value = getattr(getattr(self, section), key)
                raise ConfigError(f"{name}: invalid value {value!r}")
        _parse_size(self.eval.size)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-able)."""
        out = asdict(self)
        out["model"] = self.model.to_dict()
        return out

    def with_overrides(self, **sections: dict[str, Any]) -> DiagConfig:
        """A copy with some fields replaced, e.g. ``optim={"steps": 2}``."""
        base = self.to_dict()
        return config_from_dict(base | {k: base[k] | v for k, v in sections.items()})


_SECTIONS: dict[str, type] = {
    "run": RunSection,
    "data": DataSection,
    "optim": OptimSection,
    "loss": LossSection,
    "eval": EvalSection,
}


def _parse_size(text: str) -> tuple[int, int]:
    """ "WxH" -> (H, W), multiples of 4, at least 32."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise ConfigError(f"eval.size: {text!r} is not WxH") from err
    if w < 32 or h < 32 or w % 4 or h % 4:
        raise ConfigError(f"eval.size: {text!r} must be multiples of 4, at least 32")
    return h, w


def config_from_dict(data: dict[str, Any]) -> DiagConfig:
    """Build and validate from a nested dict (as parsed from TOML); ConfigError names the
    field on any problem."""
    return DiagConfig(**build_sections(data, _SECTIONS, {"model": DiagnosticNetConfig.from_dict}))


def load_config(path: str | Path) -> DiagConfig:
    """Read a TOML config. Raises ConfigError naming the file/field on any problem."""
    return config_from_dict(read_toml(path))


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PoolImage:
    """A clean image in working space (not yet exposed): float32 (3, H, W)."""

    scene: str
    seed: int
    image: np.ndarray


def load_real_image(path: str | Path, block: int = 3) -> np.ndarray | None:
    """The real Bayer DNG, demosaiced (bilinear), white balanced with its AsShotNeutral and
    block-averaged by ``block``: float32 (3, H, W) in working space; None (logged) when
    the file is absent."""
    from core.color import wb_gains
    from core.demosaic import demosaic
    from core.io.raw12 import read_raw12

    p = Path(path)
    if not p.is_absolute():
        p = REPO / p
    if not p.is_file():
        log.warning("real DNG %s not found; training on simulated scenes only", p)
        return None
    raw = read_raw12(p)
    rgb = demosaic(np.maximum(raw.mosaic, 0.0), raw.cfa, "bilinear")
    rgb *= wb_gains(raw.color).astype(np.float32)[:, None, None]
    h, w = rgb.shape[1] // block, rgb.shape[2] // block
    small = rgb[:, : h * block, : w * block].reshape(3, h, block, w, block).mean(axis=(2, 4))
    return np.ascontiguousarray(small, dtype=np.float32)


#: Extra photographs shipped inside installed packages (no download): (package, path inside
#: it). None of them shows a held-out scene (the cat photo ``chelsea.png`` is held out).
EXTRA_PHOTOS: tuple[tuple[str, str], ...] = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png"),
    ("skimage", "data/motorcycle_right.png"),
)


def load_photo(package: str, rel: str, max_side_px: int = 288) -> np.ndarray | None:
    """An 8-bit sRGB photograph bundled with ``package``: linear working-space float32
    (3, H, W), block-averaged so the long side is at most ``max_side_px``; None (logged)
    when the package or file is absent."""
    import importlib

    from PIL import Image

    try:
        mod = importlib.import_module(package)
    except ImportError:
        log.warning("photo %s/%s skipped: %s not installed", package, rel, package)
        return None
    path = Path(str(mod.__file__)).parent / rel
    if not path.is_file():
        log.warning("photo %s skipped: not installed", path)
        return None
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    f = max(1, -(-max(lin.shape[:2]) // max_side_px))
    h, w = lin.shape[0] // f, lin.shape[1] // f
    small = lin[: h * f, : w * f].reshape(h, f, w, f, 3).mean(axis=(1, 3))
    return np.ascontiguousarray(np.moveaxis(small, -1, 0), dtype=np.float32) + np.float32(2e-4)


def dead_leaves(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A procedural scene with varied statistics, working space (neutral = grey).

    Occluding discs and rectangles (dead-leaves model, sizes with density ~ r**-3, so
    the spectrum is natural-image-like) with reflectances from a per-image palette: a
    random dominant hue and colourfulness (some scenes nearly grey, some strongly tinted),
    about 15 % neutral surfaces, log-uniform lightness 0.02-0.9; lit by a smooth gradient
    of 0-3 EV and a few specular highlights (neutral, 1.5-8 x white). Float32 (3, h, w).
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    hue0 = rng.uniform(0.0, 2.0 * math.pi)
    bias = rng.uniform(0.0, 0.25)
    colourful = rng.uniform(0.05, 0.6)
    img = np.full((3, h, w), rng.uniform(0.05, 0.4), np.float32)
    r_min, r_max = 2.0, 0.6 * max(h, w)
    for _ in range(int(rng.integers(150, 400))):
        u = rng.random()
        r = 1.0 / math.sqrt(u / r_min**2 + (1 - u) / r_max**2)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        if rng.random() < 0.5:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        else:
            a = rng.uniform(0.3, 1.0)
            mask = (np.abs(yy - cy) <= r * a) & (np.abs(xx - cx) <= r / a)
        light = math.exp(rng.uniform(math.log(0.02), math.log(0.9)))
        if rng.random() < 0.15:
            chroma_uv = np.zeros(2)
        else:
            hue = rng.uniform(0.0, 2.0 * math.pi)
            c = colourful * rng.uniform(0.2, 1.0)
            chroma_uv = c * np.array([math.cos(hue), math.sin(hue)]) + bias * np.array(
                [math.cos(hue0), math.sin(hue0)]
            )
        col = light * (1.0 + _CHROMA_BASIS.numpy().T @ chroma_uv)
        img[:, mask] = np.maximum(col, 0.01 * light).astype(np.float32)[:, None]
    ev = rng.uniform(0.0, 3.0)
    ang = rng.uniform(0.0, 2.0 * math.pi)
    ramp = (math.cos(ang) * xx / w + math.sin(ang) * yy / h) * ev
    img *= np.exp2(ramp - ramp.max()).astype(np.float32)[None]
    for _ in range(int(rng.integers(0, 4))):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.0, 4.0)
        spot = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) * rng.uniform(1.5, 8.0)
        img += spot.astype(np.float32)[None]
    return img


def build_pool(cfg: DiagConfig, scenes: list[str]) -> tuple[list[PoolImage], PoolImage | None]:
    """Clean training images: ``pool_per_scene`` seeds of each scene, ``data.procedural``
    dead-leaves images, the extra photographs (``data.photos``), and the real image."""
    d = cfg.data
    pool = [
        PoolImage(name, s, balance_scene(make_scene(name, d.scene_h, d.scene_w, seed=s)))
        for name in scenes
        for s in range(d.pool_per_scene)
    ]
    pool += [
        PoolImage(
            "dead_leaves", s, dead_leaves(d.scene_h, d.scene_w, np.random.default_rng([9, s]))
        )
        for s in range(d.procedural)
    ]
    if d.photos:
        for package, rel in EXTRA_PHOTOS:
            img = load_photo(package, rel)
            if img is not None:
                pool.append(PoolImage(f"photo_{Path(rel).stem}", 0, img))
    real = None
    if d.real_dng and d.real_share > 0:
        img = load_real_image(d.real_dng)
        real = None if img is None else PoolImage("real_colorchart", 0, img)
    return pool, real


@dataclass(frozen=True)
class Batch:
    """One training batch.

    Attributes:
        thumbs: (B, 3, THUMB_PX, THUMB_PX) degraded thumbnails.
        exposure: (B,) class ids; log_gamma: (B,) ln of the correction gamma.
        wb_axes: (B, 2) correction (temperature_ev, tint_ev).
        saturation: (B,) class ids; log_saturation: (B,) ln of the correction factor.
        chromatic: (B,) float, 1 where saturation is identifiable.
    """

    thumbs: Tensor
    exposure: Tensor
    log_gamma: Tensor
    wb_axes: Tensor
    saturation: Tensor
    log_saturation: Tensor
    chromatic: Tensor


def _random_view(
    img: np.ndarray, rng: np.random.Generator, crop_min: float, px: int, pw: int | None = None
) -> Tensor:
    """Random crop (sides crop_min..1 of the image) and flips, averaged to px x pw (pw
    None: px x px)."""
    pw = px if pw is None else pw
    _, h, w = img.shape
    ch = max(px // 2, round(h * rng.uniform(crop_min, 1.0)))
    cw = max(pw // 2, round(w * rng.uniform(crop_min, 1.0)))
    ch, cw = min(ch, h), min(cw, w)
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    crop = img[:, y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        crop = crop[:, :, ::-1]
    if rng.random() < 0.5:
        crop = crop[:, ::-1, :]
    t = torch.from_numpy(np.ascontiguousarray(crop))[None]
    return nnf.adaptive_avg_pool2d(t, (px, pw))[0]


#: Orthonormal basis of the chroma plane {d : 0.25 d_R + 0.5 d_G + 0.25 d_B = 0}.
_CHROMA_BASIS = torch.tensor([[1.0, 0.0, -1.0], [1.0, -1.0, 1.0]]) / torch.tensor(
    [[math.sqrt(2.0)], [math.sqrt(3.0)]]
)


def rotate_hue(view: Tensor, angle: float) -> Tensor:
    """Rotate the chroma ``x - Y`` of every pixel by ``angle`` (radians) in an orthonormal
    basis of the chroma plane: luminance, greys and chroma magnitude are unchanged (so are
    the labels), the palette changes. Negative results are clamped to 0.

    Shapes: (3, H, W) -> (3, H, W). Models unseen content colours (augmentation).
    """
    y = luminance_t(view[None])[0]
    d = view - y[None]
    uv = torch.einsum("kc,chw->khw", _CHROMA_BASIS, d)
    c, s = math.cos(angle), math.sin(angle)
    rot = torch.stack([c * uv[0] - s * uv[1], s * uv[0] + c * uv[1]])
    return (y[None] + torch.einsum("kc,khw->chw", _CHROMA_BASIS, rot)).clamp_min(0.0)


def _normalise(view: Tensor) -> Tensor:
    p99 = torch.quantile(luminance_t(view[None]).reshape(-1), 0.99).clamp_min(1e-6)
    return view * (AE_TARGET / p99)


def _collage(a: Tensor, b: Tensor, rng: np.random.Generator) -> Tensor:
    """Two views side by side or stacked (split at 30-70 %), each normalised to the same
    99th percentile first: models compositions no single training scene has."""
    a, b = _normalise(a), _normalise(b)
    px = a.shape[-1]
    cut = int(rng.integers(int(0.3 * px), int(0.7 * px) + 1))
    out = a.clone()
    if rng.random() < 0.5:
        out[:, :, cut:] = b[:, :, cut:]
    else:
        out[:, cut:, :] = b[:, cut:, :]
    return out


def sample_batch(
    pool: list[PoolImage], real: PoolImage | None, rng: np.random.Generator, cfg: DiagConfig
) -> Batch:
    """Draw a batch: scene type uniformly, then a seed; ``real_share`` from the real image."""
    d = cfg.data
    by_scene: dict[str, list[PoolImage]] = {}
    for p in pool:
        by_scene.setdefault(p.scene, []).append(p)
    names = sorted(by_scene)

    def draw() -> Tensor:
        if real is not None and rng.random() < d.real_share:
            src = real
        else:
            group = by_scene[names[int(rng.integers(len(names)))]]
            src = group[int(rng.integers(len(group)))]
        return _random_view(src.image, rng, d.crop_min, d.work_px, d.work_w or d.work_px)

    views, degr = [], []
    for _ in range(d.batch):
        view = draw()
        if rng.random() < d.collage:
            view = _collage(view, draw(), rng)
        if rng.random() < d.hue_rotation:
            view = rotate_hue(view, rng.uniform(0.0, 2.0 * math.pi))
        views.append(view)
        degr.append(sample_degradation(rng))
    clean = torch.stack(views).clamp_min(0.0)
    lum = luminance_t(clean).reshape(d.batch, -1)
    k99 = max(1, round(0.99 * lum.shape[1]))
    p99 = torch.kthvalue(lum, k99, dim=1).values.clamp_min(1e-6)
    jitter = torch.from_numpy(rng.uniform(*AE_JITTER_EV, size=d.batch)).float()
    clean = clean * (AE_TARGET * torch.exp2(jitter) / p99)[:, None, None, None]
    small = nnf.adaptive_avg_pool2d(clean, (THUMB_PX, THUMB_PX))
    mask = (small < 1.0).all(dim=1) & (luminance_t(small) > 2.0**-12)
    chromatic = (chroma(small, mask) >= ACHROMATIC_CHROMA).float()
    gamma = torch.tensor([g.gamma for g in degr])
    sat = torch.tensor([g.saturation for g in degr])
    cast = torch.tensor([g.cast for g in degr])
    if cfg.data.labels == "scene_referenced":
        clean, placed_chromatic = place_reference_t(clean, gamma)
        chromatic = placed_chromatic.float()
    degraded = degrade_t(clean, gamma, sat, cast)
    thumbs = nnf.adaptive_avg_pool2d(degraded, (THUMB_PX, THUMB_PX))
    axes = torch.tensor([axes_from_gains(g.correction_gains) for g in degr])
    return Batch(
        thumbs=thumbs.float(),
        exposure=torch.tensor([EXPOSURE_LABELS.index(g.exposure_label) for g in degr]),
        log_gamma=-torch.log(gamma).float(),
        wb_axes=axes.float(),
        saturation=torch.tensor([SATURATION_LABELS.index(g.saturation_label) for g in degr]),
        log_saturation=-torch.log(sat).float(),
        chromatic=chromatic,
    )


@dataclass(frozen=True)
class Dataset:
    """Pre-drawn training samples (a :class:`Batch` of ``data.samples`` rows) and their
    statistics vectors (N, N_STATS), computed once."""

    samples: Batch
    stats: Tensor

    def __len__(self) -> int:
        return int(self.samples.thumbs.shape[0])

    def take(self, idx: Tensor, rng: np.random.Generator) -> tuple[Batch, Tensor]:
        """Rows ``idx`` with random horizontal/vertical flips (labels and statistics are
        flip-invariant)."""
        b = self.samples
        thumbs = b.thumbs[idx]
        if rng.random() < 0.5:
            thumbs = thumbs.flip(3)
        if rng.random() < 0.5:
            thumbs = thumbs.flip(2)
        picked = Batch(
            thumbs,
            b.exposure[idx],
            b.log_gamma[idx],
            b.wb_axes[idx],
            b.saturation[idx],
            b.log_saturation[idx],
            b.chromatic[idx],
        )
        return picked, self.stats[idx]


def build_dataset(
    pool: list[PoolImage], real: PoolImage | None, cfg: DiagConfig, *, chunk: int = 256
) -> Dataset:
    """Draw ``data.samples`` training samples (deterministic for ``run.seed``)."""
    parts: list[Batch] = []
    stats: list[Tensor] = []
    chunk = min(chunk, cfg.data.samples)
    chunk_cfg = cfg.with_overrides(data={"batch": chunk})
    n_chunks = -(-cfg.data.samples // chunk)
    for i in range(n_chunks):
        rng = np.random.default_rng([cfg.run.seed, 1, i])
        b = sample_batch(pool, real, rng, chunk_cfg)
        parts.append(b)
        stats.append(global_stats(b.thumbs))
    n = cfg.data.samples

    def cat(name: str) -> Tensor:
        return torch.cat([getattr(b, name) for b in parts])[:n]

    batch = Batch(*(cat(f.name) for f in fields(Batch)))
    return Dataset(batch, torch.cat(stats)[:n])


def compute_losses(
    net: DiagnosticNet, batch: Batch, cfg: DiagConfig, stats: Tensor | None = None
) -> tuple[Tensor, dict[str, float]]:
    """Total weighted loss and its parts for one batch (``stats`` computed when None)."""
    st = global_stats(batch.thumbs) if stats is None else stats
    out = net(net_input(batch.thumbs), st)
    m = batch.chromatic
    msum = m.sum().clamp_min(1.0)
    parts = {
        "exposure": nnf.cross_entropy(out.exposure_logits, batch.exposure),
        "gamma": nnf.smooth_l1_loss(out.log_gamma, batch.log_gamma, beta=0.1),
        "wb": nnf.l1_loss(out.wb_axes, batch.wb_axes),
        "saturation": (
            nnf.cross_entropy(out.saturation_logits, batch.saturation, reduction="none") * m
        ).sum()
        / msum,
        "saturation_level": (
            nnf.smooth_l1_loss(out.log_saturation, batch.log_saturation, beta=0.1, reduction="none")
            * m
        ).sum()
        / msum,
    }
    w = asdict(cfg.loss)
    total = sum((w[k] * v for k, v in parts.items()), torch.zeros(()))
    return total, {k: float(v.detach()) for k, v in parts.items()}


def _lr(cfg: DiagConfig, step: int) -> float:
    t = step / max(1, cfg.optim.steps)
    return cfg.optim.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class EvalResult:
    """Held-out accuracies of both methods.

    Attributes:
        heldout: method -> scores on the held-out scene types.
        seen: method -> scores on unseen seeds of the training scene types.
        seconds_per_image: method -> mean wall time per image (thumbnail + estimate).
    """

    heldout: dict[str, HeadScores]
    seen: dict[str, HeadScores]
    seconds_per_image: dict[str, float]

    def summary(self) -> dict[str, float]:
        """Flat metrics for the registry."""
        out: dict[str, float] = {}
        for split, table in (("heldout", self.heldout), ("seen", self.seen)):
            for method, s in table.items():
                for head in ("exposure", "white_balance", "saturation"):
                    out[f"{split}_{method}_{head}"] = round(float(getattr(s, head)), 4)
        return out


def _labels(cfg: DiagConfig, labels: str | None) -> LabelDefinition:
    return check_labels(cfg.data.labels if labels is None else labels)


def heldout_samples(
    cfg: DiagConfig, n_seeds: int | None = None, labels: str | None = None
) -> list[SyntheticSample]:
    """The held-out set: HOLDOUT_SCENES x ``n_seeds`` seeds (default ``eval.seeds``), with
    the label definition ``labels`` (default ``data.labels``)."""
    n = cfg.eval.seeds if n_seeds is None else n_seeds
    size = _parse_size(cfg.eval.size)
    seeds = range(HELDOUT_SEED0, HELDOUT_SEED0 + n)
    return make_samples(
        HOLDOUT_SCENES, seeds, size=size, seed=cfg.eval.seed, labels=_labels(cfg, labels)
    )


def seen_samples(
    cfg: DiagConfig, n_seeds: int | None = None, labels: str | None = None
) -> list[SyntheticSample]:
    """Unseen seeds of the training scene types (a quarter of ``eval.seeds`` each)."""
    n = max(1, (cfg.eval.seeds if n_seeds is None else n_seeds) // 4)
    size = _parse_size(cfg.eval.size)
    seeds = range(SEEN_SEED0, SEEN_SEED0 + n)
    return make_samples(
        train_scenes(), seeds, size=size, seed=cfg.eval.seed + 1, labels=_labels(cfg, labels)
    )


def validation_samples(
    cfg: DiagConfig, n_seeds: int | None = None, labels: str | None = None
) -> list[SyntheticSample]:
    """Model-selection set: training scene types, seeds 30000+ (never the held-out types,
    never the seeds of the pool or of the other sets); one quarter of ``eval.seeds`` each."""
    n = max(1, (cfg.eval.seeds if n_seeds is None else n_seeds) // 4)
    size = _parse_size(cfg.eval.size)
    seeds = range(VALIDATION_SEED0, VALIDATION_SEED0 + n)
    return make_samples(
        train_scenes(), seeds, size=size, seed=cfg.eval.seed + 2, labels=_labels(cfg, labels)
    )


def evaluate_net(
    net: DiagnosticNet | None, held: list[SyntheticSample], seen: list[SyntheticSample]
) -> EvalResult:
    """Score the classical method and (when given) ``net`` on both sets."""
    res_h: dict[str, HeadScores] = {}
    res_s: dict[str, HeadScores] = {}
    per_image: dict[str, float] = {}
    methods: dict[str, Any] = {"classical": classical_estimate}
    if net is not None:
        methods["learned"] = lambda t: learned_estimate(net, t)
    for name, fn in methods.items():
        t0 = time.perf_counter()
        th = thumbnails(held)
        res_h[name] = score(fn(th), held)
        per_image[name] = (time.perf_counter() - t0) / len(held)
        res_s[name] = score(fn(thumbnails(seen)), seen)
    return EvalResult(res_h, res_s, per_image)


def report_markdown(res: EvalResult, title: str) -> str:
    """A Markdown table of per-head accuracy for each method and split."""
    lines = [f"# {title}", ""]
    for split, table, what in (
        ("held-out scene types", res.heldout, ", ".join(HOLDOUT_SCENES)),
        ("training scene types, unseen seeds", res.seen, "all other simulator scenes"),
    ):
        any_scores = next(iter(table.values()))
        lines += [
            f"## {split} ({what}; n = {any_scores.n}, saturation n = {any_scores.n_saturation})",
            "",
            "| method | exposure | white balance (±0.05) | saturation | WB mean error | "
            "mean abs ln gamma error |",
            "|---|---|---|---|---|---|",
        ]
        for method, s in table.items():
            lines.append(
                f"| {method} | {s.exposure:.1%} | {s.white_balance:.1%} | {s.saturation:.1%} | "
                f"{s.wb_error:.3f} | {s.log_gamma_error:.3f} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- training


def train(cfg: DiagConfig, *, root: Path, dry_run: bool = False) -> RunRecord:
    """Train ``cfg``, evaluate on the held-out set, record the run under ``root``.

    ``dry_run``: two steps on a two-scene pool and a tiny evaluation, recorded as
    ``<name>-dryrun`` with status WIP.
    """
    scenes = train_scenes()
    if dry_run:
        cfg = cfg.with_overrides(
            optim={"steps": 2, "log_every": 1},
            data={"pool_per_scene": 1, "samples": 8, "batch": 4, "real_share": 0.0},
            eval={"seeds": 1},
            run={"name": f"{cfg.run.name}-dryrun"},
        )
        scenes = scenes[:2]
    torch.set_num_threads(cfg.optim.threads)
    torch.manual_seed(cfg.run.seed)
    run_dir = root / cfg.run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(root)
    registry.upsert(cfg.run.name, config=cfg.to_dict(), status="WIP", notes=cfg.run.notes or None)
    t_pool = time.perf_counter()
    pool, real = build_pool(cfg, scenes)
    notes = cfg.run.notes
    if cfg.data.real_dng and cfg.data.real_share > 0 and real is None:
        notes = f"{notes} (real DNG missing: simulated scenes only)".strip()
    data = build_dataset(pool, real, cfg)
    log.info(
        "pool: %d images (+%s real), %d samples in %.1f s",
        len(pool),
        "1" if real else "0",
        len(data),
        time.perf_counter() - t_pool,
    )
    net = DiagnosticNet(cfg.model)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    writer = ScalarWriter(run_dir / "tb")
    t0 = time.perf_counter()
    parts: dict[str, float] = {}
    try:
        for step in range(cfg.optim.steps):
            rng = np.random.default_rng([cfg.run.seed, 2, step])
            idx = torch.from_numpy(rng.choice(len(data), cfg.data.batch, replace=False))
            batch, stats = data.take(idx, rng)
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step)
            net.train()
            total, parts = compute_losses(net, batch, cfg, stats)
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 2.0)
            opt.step()
            done = step + 1
            if done % cfg.optim.log_every == 0 or done == cfg.optim.steps:
                writer.add_scalar("loss/total", float(total.detach()), done)
                for k, v in parts.items():
                    writer.add_scalar(f"loss/{k}", v, done)
                writer.flush()
                log.info(
                    "%s step %d/%d loss %.4f (%s) %.0f s",
                    cfg.run.name,
                    done,
                    cfg.optim.steps,
                    float(total.detach()),
                    ", ".join(f"{k} {v:.3f}" for k, v in parts.items()),
                    time.perf_counter() - t0,
                )
    except BaseException:
        writer.close()
        registry.upsert(cfg.run.name, status="FAILED", notes=f"{notes} (interrupted)")
        raise
    writer.close()
    train_minutes = (time.perf_counter() - t0) / 60.0
    t_eval = time.perf_counter()
    res = evaluate_net(net, heldout_samples(cfg), seen_samples(cfg))
    val = validation_samples(cfg)
    val_scores = score(learned_estimate(net, thumbnails(val)), val)
    metrics: dict[str, Any] = {
        "steps": cfg.optim.steps,
        "minutes": round(train_minutes, 2),
        "eval_minutes": round((time.perf_counter() - t_eval) / 60.0, 2),
        "pool_images": len(pool) + (1 if real else 0),
    }
    metrics.update({f"final_loss_{k}": round(v, 5) for k, v in parts.items()})
    metrics.update(res.summary())
    for head in ("exposure", "white_balance", "saturation"):
        metrics[f"validation_learned_{head}"] = round(float(getattr(val_scores, head)), 4)
    ckpt = run_dir / MODEL_FILE
    digest = save_diagnostic_checkpoint(
        ckpt, net, {"run": cfg.run.name, "config": cfg.to_dict(), "metrics": metrics}
    )
    metrics["model_hash"] = digest
    atomic_write_text(run_dir / REPORT_FILE, report_markdown(res, f"Diagnostics {cfg.run.name}"))
    status = "WIP" if dry_run else "SUCCESS"
    return registry.upsert(
        cfg.run.name, status=status, checkpoint=str(ckpt), metrics=metrics, notes=notes or None
    )


def ship(checkpoint: Path, dest: Path = DEFAULT_DIAGNOSTIC_CHECKPOINT) -> Path:
    """Verify ``checkpoint`` loads, then copy it to ``dest`` (the shipped default)."""
    loaded = load_diagnostic_model(checkpoint)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    shutil.copyfile(checkpoint, tmp)
    tmp.replace(dest)
    print(f"shipped {checkpoint} ({loaded.hash[:16]}) to {dest}")
    return dest


# --------------------------------------------------------------------------- calibrate


def _best_pair(values: np.ndarray, truth: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    """Thresholds (low, high) on ``values`` maximising 3-class accuracy (0/1/2 = below,
    between, above)."""
    best = (-1.0, 0.0, 0.0)
    for i, lo in enumerate(grid):
        for hi in grid[i:]:
            pred = np.where(values < lo, 0, np.where(values > hi, 2, 1))
            acc = float(np.mean(pred == truth))
            if acc > best[0]:
                best = (acc, float(lo), float(hi))
    return best[1], best[2]


def calibrate(n_seeds: int = 4, repeats: int = 6, seed: int = 3) -> dict[str, float]:
    """Fit the classical thresholds on the training split (never the held-out scenes)."""
    samples = [
        s
        for r in range(repeats)
        for s in make_samples(train_scenes(), range(n_seeds), seed=seed + r)
    ]
    est = classical_estimate(thumbnails(samples))
    key = np.asarray(relative_key_ev(est.stats))
    chroma_gw = np.asarray(grayworld_chroma(est.stats))
    e_true = np.array([EXPOSURE_LABELS.index(s.degradation.exposure_label) for s in samples])
    s_true = np.array([SATURATION_LABELS.index(s.degradation.saturation_label) for s in samples])
    chromatic = np.array([s.chromatic for s in samples])
    under_key, over_key = _best_pair(key, e_true, np.arange(-8.0, 0.01, 0.1))
    under_c, over_c = _best_pair(
        chroma_gw[chromatic], s_true[chromatic], np.arange(0.02, 1.0, 0.01)
    )
    well = e_true == 1
    return {
        "under_key": round(under_key, 2),
        "over_key": round(over_key, 2),
        "target_key": round(float(np.median(key[well])), 2),
        "under_chroma": round(under_c, 3),
        "over_chroma": round(over_c, 3),
        "target_chroma": round(float(np.median(chroma_gw[chromatic & (s_true == 1)])), 3),
    }


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training diagnostics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the diagnostic network from a TOML config")
    t.add_argument("--config", required=True, type=Path)
    t.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="runs folder")
    t.add_argument("--dry-run", action="store_true", help="two steps, tiny data")
    t.add_argument("--threads", type=int, default=None, help="override optim.threads")
    t.add_argument("--ship", action="store_true", help="copy to resources/models/diagnostic.pt")
    e = sub.add_parser("evaluate", help="accuracy per head, learned vs classical")
    e.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped model")
    e.add_argument("--config", type=Path, default=None, help="for the [eval] section")
    e.add_argument("--seeds", type=int, default=None, help="scene seeds per held-out type")
    e.add_argument("--out", type=Path, default=None, help="also write the Markdown report")
    c = sub.add_parser("calibrate", help="fit the classical thresholds on the training split")
    c.add_argument("--seeds", type=int, default=4)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m training diagnostics``; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.command == "train":
            cfg = load_config(args.config)
            if args.threads is not None:
                cfg = cfg.with_overrides(optim={"threads": args.threads})
            rec = train(cfg, root=args.root, dry_run=args.dry_run)
            print(f"{rec.name}: {rec.status}, checkpoint {rec.checkpoint}")
            for k, v in rec.metrics.items():
                print(f"  {k}: {v}")
            if args.ship and not args.dry_run:
                ship(Path(rec.checkpoint))
        elif args.command == "evaluate":
            cfg = load_config(args.config) if args.config else DiagConfig()
            loaded = load_diagnostic_model(args.checkpoint)
            torch.set_num_threads(cfg.optim.threads)
            res = evaluate_net(
                loaded.net, heldout_samples(cfg, args.seeds), seen_samples(cfg, args.seeds)
            )
            text = report_markdown(res, f"Diagnostics {loaded.path.name} ({loaded.hash[:12]})")
            print(text, end="")
            if args.out is not None:
                atomic_write_text(args.out, text)
        elif args.command == "calibrate":
            fitted = calibrate(args.seeds)
            print("fitted on the training split; current values in core:")
            for k, v in fitted.items():
                print(f"  {k}: {v}  (now {CLASSICAL_THRESHOLDS[k]})")
    except (Linear48Error, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
