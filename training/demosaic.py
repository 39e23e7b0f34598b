"""Train and evaluate the learned guidance demosaicer (``core.demosaic``, method ``learned``).

    python -m training demosaic train --config training/configs/demosaic.toml [--dry-run]
        [--ship] [--root DIR] [--threads N]
    python -m training demosaic evaluate [--checkpoint C] [--size WxH] [--per-scene N]

(``python -m training.demosaic ...`` runs the same :func:`main`.)

Data (all in memory, nothing downloaded): the simulator's *natural* scenes
(:mod:`core.simulate.scenes`) at training seeds (below
:data:`core.demosaic.evaluation.TRAIN_SEED_LIMIT`), each 2x2-binned to its 12MP truth
(:func:`core.demosaic.evaluation.truth12`). Pattern scenes are never trained on (they
are the evaluation's torture set); ``data.pattern_fraction`` can mix some in, but a
pattern-only fine-tune is refused by the config check. Every sample: a random exposure
(so some crops clip at 1.0) and white balance (illuminant colour), the mosaic in the
image's own CFA phase, half of them clipped at 1.0 like the sensor and half kept HDR,
RAW12-like noise at a random ISO, then :func:`augment`: flips, a
transpose and a crop that keep the CFA consistent and re-phase it to RGGB (tested).
Target: the clean truth (default) or a teacher's output (``data.target = "dht"`` or
``"aahd"``, LibRaw on the clean mosaic).

Loss: ``L1 + 0.1 * gradient + 0.05 * chroma`` (weights in ``[loss]``) on values divided by
each sample's mean target level (the network is scale-equivariant, so this only balances
dark and bright crops), over the crop minus a 4 px border.

Runs go to the SQLite registry and TensorBoard files of :mod:`training.tracking` under
``out/training/`` (names like ``v1.0_demosaic``); ``--ship`` copies the checkpoint to
``resources/models/demosaic.pt`` and writes ``resources/models/demosaic.md``.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from core.cfa import CfaPattern
from core.demosaic import demosaic, mosaic_from_rgb, phase_offset_to_rggb
from core.demosaic.checkpoint import (
    DEFAULT_DEMOSAIC_CHECKPOINT,
    load_demosaic_checkpoint,
    save_demosaic_checkpoint,
)
from core.demosaic.evaluation import (
    HELDOUT_SEED,
    TRAIN_SEED_LIMIT,
    MethodScores,
    add_raw_noise,
    evaluation_cases,
    score_method,
    truth12,
)
from core.demosaic.learned import learned_demosaic
from core.demosaic.net import DemosaicNet, DemosaicNetConfig
from core.errors import ConfigError, Linear48Error, ShapeError
from core.io.atomic import atomic_write_text
from core.simulate.scenes import make_scene, scene_names
from training.config import RUN_NAME, build_sections, read_toml
from training.tracking import DEFAULT_ROOT, Registry, RunRecord, ScalarWriter

log = logging.getLogger(__name__)

RGGB = CfaPattern.from_name("RGGB")
MODEL_FILE = "demosaic.pt"
RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "models"
LOSS_BORDER_PX = 4
TARGETS = ("truth", "dht", "aahd")
COMPARED = ("bilinear", "malvar", "dht", "aahd")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class RunSection:
    """Run identity: ``name`` is ``v{major}.{minor}_{variant}``."""

    name: str = "v1.0_demosaic"
    seed: int = 0
    notes: str = ""


@dataclass(frozen=True)
class DataSection:
    """Training pool and samples.

    Attributes:
        images_per_scene: pool images per natural scene (different seeds).
        size12: side of each square pool image on the 12MP grid (even).
        pattern_fraction: share of pool images drawn from pattern scenes (default 0:
            patterns are for evaluation).
        crop: training crop side in mosaic pixels (even; the loss skips a 4 px border).
        batch: crops per step.
        exposure_ev: (min, max) of the random exposure around auto-exposure, in EV.
        wb_spread: per-channel white-balance gains drawn in [1 / (1 + s), 1 + s].
        clip_fraction: share of samples clipped at 1.0 like the sensor; the others keep
            their HDR range (lamps, sun): the network is scale-equivariant, so they teach
            it strong local contrast in colour, what highlights above 1.0 look like.
        noise_fraction: share of samples with RAW-like noise.
        iso_ev_max: noise from base ISO up to this many EV above it.
        target: ``"truth"`` or a teacher, ``"dht"`` / ``"aahd"``.
    """

    images_per_scene: int = 6
    size12: int = 192
    pattern_fraction: float = 0.0
    crop: int = 64
    batch: int = 16
    exposure_ev: tuple[float, float] = (-2.0, 0.7)
    wb_spread: float = 0.4
    clip_fraction: float = 0.5
    noise_fraction: float = 0.75
    iso_ev_max: float = 3.0
    target: str = "truth"


@dataclass(frozen=True)
class OptimSection:
    """Adam with cosine decay to 10 % of ``lr``; ``threads`` for torch.set_num_threads."""

    steps: int = 1000
    lr: float = 2e-3
    threads: int = 2
    log_every: int = 50
    checkpoint_every: int = 500


@dataclass(frozen=True)
class LossSection:
    """Weights of the three loss terms."""

    l1: float = 1.0
    gradient: float = 0.1
    chroma: float = 0.05


@dataclass(frozen=True)
class EvalSection:
    """Held-out evaluation at the end of a run (12MP size ``WxH``, seeds from ``seed``)."""

    size12: str = "256x192"
    seed: int = HELDOUT_SEED
    per_scene: int = 1


@dataclass(frozen=True)
class DemosaicTrainConfig:
    """The whole configuration (TOML sections ``run``, ``data``, ``optim``, ``loss``,
    ``model`` (:class:`core.demosaic.net.DemosaicNetConfig`) and ``eval``)."""

    run: RunSection = field(default_factory=RunSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    model: DemosaicNetConfig = field(default_factory=DemosaicNetConfig)
    eval: EvalSection = field(default_factory=EvalSection)

    def __post_init__(self) -> None:
        d, o = self.data, self.optim
        checks: dict[str, bool] = {
            "run.name": bool(RUN_NAME.match(self.run.name)),
            "run.seed": 0 <= self.run.seed < 1000,
            "data.images_per_scene": 1 <= d.images_per_scene <= 1000,
            "data.size12": d.size12 % 2 == 0 and 32 <= d.size12 <= 2048,
            "data.pattern_fraction": 0.0 <= d.pattern_fraction < 1.0,
            "data.crop": d.crop % 2 == 0 and 2 * LOSS_BORDER_PX + 8 <= d.crop <= d.size12 - 4,
            "data.batch": d.batch >= 1,
            "data.exposure_ev": len(d.exposure_ev) == 2 and d.exposure_ev[0] <= d.exposure_ev[1],
            "data.wb_spread": 0.0 <= d.wb_spread <= 2.0,
            "data.clip_fraction": 0.0 <= d.clip_fraction <= 1.0,
            "data.noise_fraction": 0.0 <= d.noise_fraction <= 1.0,
            "data.iso_ev_max": 0.0 <= d.iso_ev_max <= 8.0,
            "data.target": d.target in TARGETS,
            "optim.steps": o.steps >= 1,
            "optim.lr": 0 < o.lr < 1,
            "optim.threads": 1 <= o.threads <= 64,
            "optim.log_every": o.log_every >= 1,
            "optim.checkpoint_every": o.checkpoint_every >= 1,
            "loss.l1": self.loss.l1 >= 0,
            "loss.gradient": self.loss.gradient >= 0,
            "loss.chroma": self.loss.chroma >= 0,
            "eval.seed": self.eval.seed >= TRAIN_SEED_LIMIT,
            "eval.per_scene": self.eval.per_scene >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                section, key = name.split(".")
                value = getattr(getattr(self, section), key)
                hint = " (want v{major}.{minor}_{variant})" if name == "run.name" else ""
                raise ConfigError(f"{name}: invalid value {value!r}{hint}")
        parse_size(self.eval.size12)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-able)."""
        return asdict(self)

    def with_overrides(self, **sections: dict[str, Any]) -> DemosaicTrainConfig:
        """A copy with some fields replaced, e.g. ``optim={"steps": 2}``."""
        base = self.to_dict()
        return config_from_dict(base | {k: base[k] | v for k, v in sections.items()})


_SECTIONS: dict[str, type] = {
    "run": RunSection,
    "data": DataSection,
    "optim": OptimSection,
    "loss": LossSection,
    "model": DemosaicNetConfig,
    "eval": EvalSection,
}


def config_from_dict(data: dict[str, Any]) -> DemosaicTrainConfig:
    """Build and validate from a nested dict (as parsed from TOML); ConfigError names the
    offending section/field."""
    return DemosaicTrainConfig(**build_sections(data, _SECTIONS))


def load_config(path: str | Path) -> DemosaicTrainConfig:
    """Read a TOML config; ConfigError names the file or the field on any problem."""
    return config_from_dict(read_toml(path))


def parse_size(text: str) -> tuple[int, int]:
    """``"256x192"`` -> (256, 192) (width, height), both even and >= 32."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise ConfigError(f"size: {text!r} is not WIDTHxHEIGHT, e.g. 256x192") from err
    if w < 32 or h < 32 or w % 2 or h % 2:
        raise ConfigError(f"size: {text!r} must be even and at least 32x32")
    return w, h


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class PoolImage:
    """One training image: 12MP truth at auto-exposure (unclipped) and its CFA phase.

    Attributes:
        name: scene and seed.
        truth: (3, S, S) float32, 99th percentile of green at 0.8, not clipped.
        cfa: the phase its mosaic is taken in (cycles through all four).
    """

    name: str
    truth: np.ndarray
    cfa: CfaPattern


def build_pool(cfg: DataSection, seed: int) -> list[PoolImage]:
    """Natural scenes (and ``pattern_fraction`` of pattern scenes) at training seeds
    ``seed * 10_000 + k`` (always below TRAIN_SEED_LIMIT)."""
    natural = scene_names("natural")
    n_natural = cfg.images_per_scene * len(natural)
    n_pattern = round(n_natural * cfg.pattern_fraction / (1.0 - cfg.pattern_fraction))
    names = [n for n in natural for _ in range(cfg.images_per_scene)]
    patterns = scene_names("pattern")
    names += [patterns[k % len(patterns)] for k in range(n_pattern)]
    phases = ("RGGB", "BGGR", "GRBG", "GBRG")
    pool = []
    for k, name in enumerate(names):
        s = seed * 10_000 + k
        if s >= TRAIN_SEED_LIMIT:
            raise ConfigError(f"run.seed: training seed {s} reaches the held-out range")
        side48 = 2 * cfg.size12
        t = truth12(make_scene(name, side48, side48, seed=s), clip=False)
        pool.append(PoolImage(f"{name}@{s}", t, CfaPattern.from_name(phases[k % 4])))
    return pool


def augment(
    mosaic: np.ndarray,
    target: np.ndarray,
    cfa: CfaPattern,
    rng: np.random.Generator,
    crop: int,
) -> tuple[np.ndarray, np.ndarray]:
    """CFA-safe augmentation: random flips and transpose, then a crop re-phased to RGGB.

    A flip of an even-sized mosaic mirrors its pattern, a transpose transposes it; the
    crop's top-left is then chosen at the parity that makes the crop's pattern RGGB. So
    ``mosaic_out == mosaic_from_rgb(target_out, RGGB)`` whenever ``mosaic ==
    mosaic_from_rgb(target, cfa)`` (noise aside): the mosaic and its target stay aligned.

    Shapes: mosaic (H, W), target (C, H, W), H and W even and >= crop + 2
        -> (crop, crop), (C, crop, crop), C-contiguous copies.
    Raises: ShapeError on odd or too small inputs.
    """
    h, w = mosaic.shape
    if h % 2 or w % 2 or crop % 2 or min(h, w) < crop + 2 or target.shape[1:] != (h, w):
        raise ShapeError(
            f"cannot take a {crop} px CFA-safe crop of {mosaic.shape} / {target.shape}"
        )
    arr = cfa.as_array()
    if rng.random() < 0.5:  # vertical flip
        mosaic, target, arr = mosaic[::-1], target[:, ::-1], arr[::-1]
    if rng.random() < 0.5:  # horizontal flip
        mosaic, target, arr = mosaic[:, ::-1], target[:, :, ::-1], arr[:, ::-1]
    if rng.random() < 0.5:  # transpose
        mosaic, target, arr = mosaic.T, target.transpose(0, 2, 1), arr.T
    h, w = mosaic.shape
    dy, dx = phase_offset_to_rggb(CfaPattern.from_array(arr))
    y0 = dy + 2 * int(rng.integers(0, (h - crop - dy) // 2 + 1))
    x0 = dx + 2 * int(rng.integers(0, (w - crop - dx) // 2 + 1))
    return (
        np.ascontiguousarray(mosaic[y0 : y0 + crop, x0 : x0 + crop]),
        np.ascontiguousarray(target[:, y0 : y0 + crop, x0 : x0 + crop]),
    )


def make_sample(
    img: PoolImage, cfg: DataSection, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One (mosaic, target) training pair, both RGGB-phased: (crop, crop), (3, crop, crop).

    Exposure and white balance are drawn, the truth clipped at 1.0 (the sensor) or not
    (``clip_fraction``), the mosaic taken in the image's phase (re-phased for the
    region's offset), noise added, then :func:`augment`; a teacher target is computed on
    the clean mosaic crop.
    """
    side = cfg.crop + 2
    _, h, w = img.truth.shape
    ry = int(rng.integers(0, h - side + 1))
    rx = int(rng.integers(0, w - side + 1))
    region = img.truth[:, ry : ry + side, rx : rx + side]
    gain = 2.0 ** rng.uniform(*cfg.exposure_ev)
    wb = np.exp(rng.uniform(-1.0, 1.0, 3) * math.log1p(cfg.wb_spread))
    wb /= wb[1]
    truth = region * (gain * wb).astype(np.float32)[:, None, None]
    if rng.random() < cfg.clip_fraction:
        truth = np.minimum(truth, 1.0)
    cfa = img.cfa.shifted(ry % 2, rx % 2)
    clean = mosaic_from_rgb(truth, cfa)
    mosaic = clean
    if rng.random() < cfg.noise_fraction:
        iso = 2.0 ** rng.uniform(0.0, cfg.iso_ev_max)
        mosaic = add_raw_noise(clean, rng, full_well_e=6000.0 / iso)
    if cfg.target == "truth":
        m, t = augment(mosaic, truth, cfa, rng, cfg.crop)
        return m, t.astype(np.float32)
    both = np.concatenate([truth, clean[None]], 0)
    m, t = augment(mosaic, both, cfa, rng, cfg.crop)
    teacher = demosaic(t[3], RGGB, cfg.target)
    return m, teacher


def sample_batch(
    pool: list[PoolImage], cfg: DataSection, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """A batch: mosaics (N, 1, crop, crop) and targets (N, 3, crop, crop), float32."""
    ms, ts = [], []
    for _ in range(cfg.batch):
        m, t = make_sample(pool[int(rng.integers(0, len(pool)))], cfg, rng)
        ms.append(m)
        ts.append(t)
    return torch.from_numpy(np.stack(ms))[:, None], torch.from_numpy(np.stack(ts))


# ----------------------------------------------------------------------------- loss


def demosaic_loss(
    pred: Tensor, target: Tensor, weights: LossSection, border: int = LOSS_BORDER_PX
) -> tuple[Tensor, dict[str, float]]:
    """``l1 * L1 + gradient * L1(finite differences) + chroma * L1(R - G, B - G)``.

    Each sample is divided by its mean target level (+ 0.02) first, and a ``border`` is
    left out. Shapes: pred, target (N, 3, H, W). Returns the total and its parts.
    """
    if border:
        pred = pred[..., border:-border, border:-border]
        target = target[..., border:-border, border:-border]
    norm = target.mean(dim=(1, 2, 3), keepdim=True) + 0.02
    p, t = pred / norm, target / norm
    l1 = (p - t).abs().mean()
    grad = ((p.diff(dim=-1) - t.diff(dim=-1)).abs().mean()) + (
        (p.diff(dim=-2) - t.diff(dim=-2)).abs().mean()
    )
    chroma_p = torch.stack([p[:, 0] - p[:, 1], p[:, 2] - p[:, 1]], 1)
    chroma_t = torch.stack([t[:, 0] - t[:, 1], t[:, 2] - t[:, 1]], 1)
    chroma = (chroma_p - chroma_t).abs().mean()
    total = weights.l1 * l1 + weights.gradient * grad + weights.chroma * chroma
    parts = {
        "l1": float(l1.detach()),
        "gradient": float(grad.detach()),
        "chroma": float(chroma.detach()),
    }
    return total, parts


# ------------------------------------------------------------------------- evaluate


def _classic(method: str) -> Callable[[np.ndarray, CfaPattern], np.ndarray]:
    def run(m: np.ndarray, p: CfaPattern) -> np.ndarray:
        return demosaic(m, p, method)

    return run


def evaluate(
    model: DemosaicNet | str | Path | None = None,
    *,
    size12: str = "256x192",
    seed: int = HELDOUT_SEED,
    per_scene: int = 1,
    methods: tuple[str, ...] = COMPARED,
    scenes: list[str] | None = None,
) -> dict[str, dict[str, MethodScores]]:
    """Held-out scores ({set: {method: MethodScores}}) of the learned model and the
    classical methods on :func:`core.demosaic.evaluation.evaluation_cases`."""
    w, h = parse_size(size12)
    net: DemosaicNet = (
        model
        if isinstance(model, DemosaicNet)
        else load_demosaic_checkpoint(model or DEFAULT_DEMOSAIC_CHECKPOINT).net
    )

    def run_learned(m: np.ndarray, p: CfaPattern) -> np.ndarray:
        return np.maximum(learned_demosaic(m, p, model=net), 0.0)

    out: dict[str, dict[str, MethodScores]] = {}
    for kind in ("natural", "pattern"):
        cases = evaluation_cases([kind], size12=(w, h), seed=seed, per_scene=per_scene)
        if scenes is not None:
            cases = [c for c in cases if c.name.split("@")[0] in scenes]
        if not cases:
            continue
        scores = {"learned": score_method(run_learned, cases)}
        for name in methods:
            scores[name] = score_method(_classic(name), cases)
        out[kind] = scores
    return out


def scores_markdown(scores: dict[str, dict[str, MethodScores]]) -> str:
    """The evaluation as a Markdown table (one row per method)."""
    lines = [
        "| method | natural PSNR (dB) | natural SSIM | natural PSNR, noisy (dB) | "
        "pattern PSNR (dB) | artifact vs truth, natural (dB) | artifact, pattern (dB) |",
        "|---|---|---|---|---|---|---|",
    ]
    nat, pat = scores.get("natural", {}), scores.get("pattern", {})
    for name in nat or pat:
        n, p = nat.get(name), pat.get(name)
        lines.append(
            f"| {name} | {n.psnr_db if n else math.nan:.2f} | {n.ssim if n else math.nan:.4f} | "
            f"{n.psnr_noisy_db if n else math.nan:.2f} | {p.psnr_db if p else math.nan:.2f} | "
            f"{n.artifact_db if n else math.nan:.1f} | {p.artifact_db if p else math.nan:.1f} |"
        )
    return "\n".join(lines) + "\n"


def _summary(scores: dict[str, dict[str, MethodScores]]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for kind, per in scores.items():
        for name, s in per.items():
            flat[f"{kind}_psnr_db_{name}"] = round(s.psnr_db, 3)
            flat[f"{kind}_artifact_db_{name}"] = round(s.artifact_db, 2)
            if kind == "natural":
                flat[f"natural_ssim_{name}"] = round(s.ssim, 4)
                flat[f"natural_psnr_noisy_db_{name}"] = round(s.psnr_noisy_db, 3)
    if "natural_psnr_db_learned" in flat:
        flat["truth_psnr_db"] = flat["natural_psnr_db_learned"]  # the dashboard's column
    return flat


# ---------------------------------------------------------------------------- train


def _lr(cfg: DemosaicTrainConfig, step: int) -> float:
    t = step / max(1, cfg.optim.steps)
    return cfg.optim.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train(
    cfg: DemosaicTrainConfig,
    *,
    root: Path = DEFAULT_ROOT,
    dry_run: bool = False,
    evaluate_at_end: bool = True,
) -> RunRecord:
    """Train ``cfg`` and record it in the registry under ``root``.

    Deterministic: batches come from ``rng(seed, step)`` and torch is seeded.
    ``dry_run``: two steps on a tiny pool, a two-scene evaluation, recorded as
    ``<name>-dryrun`` with status WIP. The checkpoint is ``<root>/<name>/demosaic.pt``.
    """
    if dry_run:
        cfg = cfg.with_overrides(
            run={"name": f"{cfg.run.name}-dryrun"},
            data={"images_per_scene": 1, "size12": 64, "crop": 40, "batch": 2},
            optim={"steps": 2, "log_every": 1, "checkpoint_every": 1},
            eval={"size12": "64x48"},
        )
    torch.set_num_threads(cfg.optim.threads)
    torch.manual_seed(cfg.run.seed)
    run_dir = root / cfg.run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(root)
    registry.upsert(cfg.run.name, config=cfg.to_dict(), status="WIP", notes=cfg.run.notes or None)
    t0 = time.perf_counter()
    pool = build_pool(cfg.data, cfg.run.seed)
    log.info("demosaic pool: %d images in %.1f s", len(pool), time.perf_counter() - t0)
    net = DemosaicNet(cfg.model)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.optim.lr)
    writer = ScalarWriter(run_dir / "tb")
    ckpt = run_dir / MODEL_FILE
    parts: dict[str, float] = {}
    running: dict[str, list[float]] = {}
    try:
        for step in range(cfg.optim.steps):
            rng = np.random.default_rng([cfg.run.seed, step])
            mosaic, target = sample_batch(pool, cfg.data, rng)
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step)
            net.train()
            total, parts = demosaic_loss(net(mosaic), target, cfg.loss)
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            done = step + 1
            for k, v in (parts | {"total": float(total.detach())}).items():
                running.setdefault(k, []).append(v)
            if done % cfg.optim.log_every == 0 or done == cfg.optim.steps:
                means = {k: float(np.mean(v)) for k, v in running.items()}  # over the interval
                running.clear()
                for k, v in means.items():
                    writer.add_scalar(f"loss/{k}", v, done)
                writer.flush()
                log.info(
                    "%s step %d/%d loss %s %.0f s",
                    cfg.run.name,
                    done,
                    cfg.optim.steps,
                    ", ".join(f"{k} {v:.4f}" for k, v in means.items()),
                    time.perf_counter() - t0,
                )
            if done % cfg.optim.checkpoint_every == 0 or done == cfg.optim.steps:
                meta = {"run": cfg.run.name, "step": done, "config": cfg.to_dict()}
                save_demosaic_checkpoint(ckpt, net, meta)
    except BaseException:
        writer.close()
        registry.upsert(cfg.run.name, status="FAILED", notes=f"{cfg.run.notes} (interrupted)")
        raise
    writer.close()
    minutes = (time.perf_counter() - t0) / 60.0
    metrics: dict[str, Any] = {"steps": cfg.optim.steps, "minutes": round(minutes, 2)}
    metrics.update({f"final_loss_{k}": v for k, v in parts.items()})
    net.eval()
    if evaluate_at_end:
        scores = evaluate(
            net,
            size12=cfg.eval.size12,
            seed=cfg.eval.seed,
            per_scene=cfg.eval.per_scene,
            methods=("bilinear", "malvar") if dry_run else COMPARED,
            scenes=["foliage", "checkers"] if dry_run else None,
        )
        metrics.update(_summary(scores))
        table = scores_markdown(scores)
        atomic_write_text(run_dir / "eval.md", table)
        log.info("held-out evaluation:\n%s", table)
        meta = {"run": cfg.run.name, "step": cfg.optim.steps, "config": cfg.to_dict()}
        meta["heldout"] = _summary(scores)
        save_demosaic_checkpoint(ckpt, net, meta)
    metrics["minutes_total"] = round((time.perf_counter() - t0) / 60.0, 2)
    return registry.upsert(
        cfg.run.name,
        status="WIP" if dry_run else "SUCCESS",
        checkpoint=str(ckpt),
        metrics=metrics,
    )


def ship(run_dir: Path, dest: Path = RESOURCES) -> Path:
    """Verify ``run_dir``'s checkpoint and copy it to ``dest/demosaic.pt``, with its
    evaluation table as ``dest/demosaic.md``."""
    ck = load_demosaic_checkpoint(run_dir / MODEL_FILE)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run_dir / MODEL_FILE, dest / MODEL_FILE)
    table = (run_dir / "eval.md").read_text() if (run_dir / "eval.md").is_file() else ""
    params = sum(p.numel() for p in ck.net.parameters())
    text = (
        "# Learned guidance demosaicer (`demosaic.pt`)\n\n"
        f"- run: `{ck.meta.get('run', run_dir.name)}`, {ck.meta.get('step', '?')} steps; "
        f"content hash `{ck.hash[:16]}`\n"
        f"- architecture: {ck.config.depth} bias-free 3x3 convolutions, {ck.config.channels} "
        f"channels, on the packed RGGB planes, residual over bilinear; {params} parameters\n"
        "- trained by `python -m training.demosaic train --config "
        "training/configs/demosaic.toml --ship` on the simulator's natural scenes\n"
        "- held-out (seeds >= 9000000, never trained on; pattern scenes never trained on):\n\n"
        + table
    )
    atomic_write_text(dest / "demosaic.md", text)
    print(f"shipped {run_dir.name} ({ck.hash[:16]}) to {dest / MODEL_FILE}")
    return dest / MODEL_FILE


# ------------------------------------------------------------------------------ CLI


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.demosaic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the learned demosaicer from a TOML config")
    t.add_argument("--config", required=True, type=Path)
    t.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="runs folder")
    t.add_argument("--dry-run", action="store_true", help="two steps, tiny data")
    t.add_argument("--threads", type=int, default=None, help="override optim.threads")
    t.add_argument("--ship", action="store_true", help="copy the result to resources/models")
    e = sub.add_parser("evaluate", help="held-out table of the learned and classical methods")
    e.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped one")
    e.add_argument("--size", default="256x192", help="12MP size WxH")
    e.add_argument("--per-scene", type=int, default=1)
    e.add_argument("--seed", type=int, default=HELDOUT_SEED)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 on a bad config or checkpoint)."""
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
                ship(args.root / rec.name)
        else:
            if args.seed < TRAIN_SEED_LIMIT:
                raise ConfigError(f"--seed must be >= {TRAIN_SEED_LIMIT} (held-out range)")
            scores = evaluate(
                args.checkpoint, size12=args.size, seed=args.seed, per_scene=args.per_scene
            )
            print(scores_markdown(scores), end="")
    except Linear48Error as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


__all__ = [
    "DemosaicTrainConfig",
    "augment",
    "build_pool",
    "config_from_dict",
    "demosaic_loss",
    "evaluate",
    "load_config",
    "main",
    "make_sample",
    "sample_batch",
    "ship",
    "train",
]

if __name__ == "__main__":
    sys.exit(main())
