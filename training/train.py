"""The training loop: deterministic, resumable, tracked (``python -m training train``)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.model.checkpoint import save_checkpoint
from core.model.net import Linear48Net
from training import losses
from training.config import TrainConfig
from training.data import Batch, build_pool, sample_batch
from training.tracking import Registry, RunRecord, ScalarWriter

log = logging.getLogger(__name__)

STATE_FILE = "train_state.pt"
MODEL_FILE = "model.pt"


def loss_weights(cfg: TrainConfig, step: int) -> dict[str, float]:
    """Schedule: anchor-heavy during the warm-up, then detail and truth ramp in linearly
    over the next warm-up length."""
    lw = cfg.loss
    warm = max(1.0, lw.warmup_fraction * cfg.optim.steps)
    ramp = min(1.0, max(0.0, (step - warm) / warm))
    return {
        "anchor": lw.anchor * (2.0 - ramp),
        "detail": lw.detail * ramp,
        "tv": lw.tv,
        "range": lw.range,
        "truth": lw.truth * (0.3 + 0.7 * ramp),
        "histogram": lw.histogram * ramp,
    }


def compute_losses(
    net: Linear48Net, batch: Batch, weights: dict[str, float], anchor_pool: int = 1
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total weighted loss and its parts (floats) for one batch."""
    res = net(batch.pro, batch.guide, batch.conf)
    parts = {
        "anchor": losses.anchor_loss(
            res.output, batch.anchor, batch.unclipped, batch.wb, batch.cfa, anchor_pool
        ),
        "detail": losses.detail_loss(res.output, batch.pro),
        "tv": losses.tv_loss(res.grid.log_gain),
        "range": losses.range_loss(res.grid.log_gain),
        "truth": losses.truth_loss(res.output, batch.truth),
        "histogram": losses.histogram_loss(res.output, batch.truth),
    }
    total = sum((weights[k] * v for k, v in parts.items() if weights[k] > 0), torch.zeros(()))
    return total, {k: float(v.detach()) for k, v in parts.items()}


def _lr(cfg: TrainConfig, step: int) -> float:
    t = step / max(1, cfg.optim.steps)
    return cfg.optim.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train(
    cfg: TrainConfig,
    *,
    root: Path,
    resume: bool = False,
    dry_run: bool = False,
    evaluate_at_end: bool = True,
    stop_at: int | None = None,
) -> RunRecord:
    """Train ``cfg`` and record it in the registry under ``root``.

    ``dry_run``: two steps on a two-image pool and a one-scene evaluation, recorded as
    ``<name>-dryrun`` with status WIP.
    ``resume``: continue from ``<root>/<name>/train_state.pt`` (same config), bit-exact
    with an uninterrupted run because batches are drawn from ``rng(seed, step)``.
    ``stop_at``: pause after that many steps (state saved, status WIP; resume later).
    """
    if dry_run:
        cfg = cfg.with_overrides(
            optim={"steps": 2, "log_every": 1, "checkpoint_every": 1},
            data={"pool_images": 2, "size12_min": 96, "size12_max": 112, "crop48": 64, "batch": 2},
            eval={"size12": "64x48"},
            run={"name": f"{cfg.run.name}-dryrun"},
        )
    torch.set_num_threads(cfg.optim.threads)
    torch.manual_seed(cfg.run.seed)
    run_dir = root / cfg.run.name
    run_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(root)
    record = registry.upsert(
        cfg.run.name, config=cfg.to_dict(), status="WIP", notes=cfg.run.notes or None
    )
    net = Linear48Net(cfg.model)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    start = 0
    elapsed_before = 0.0
    state_path = run_dir / STATE_FILE
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"nothing to resume: {state_path} does not exist")
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        start = int(state["step"])
        elapsed_before = float(state.get("seconds", 0.0))
        log.info("resuming %s at step %d", cfg.run.name, start)
    t_pool = time.perf_counter()
    pool = build_pool(
        cfg.data.pool_images,
        seed=cfg.run.seed,
        size12=(cfg.data.size12_min, cfg.data.size12_max),
        real_fraction=cfg.data.real_fraction,
    )
    log.info("pool of %d images built in %.1f s", len(pool), time.perf_counter() - t_pool)
    writer = ScalarWriter(run_dir / "tb")
    t0 = time.perf_counter() - elapsed_before
    parts: dict[str, float] = {}
    try:
        end = cfg.optim.steps if stop_at is None else min(stop_at, cfg.optim.steps)
        for step in range(start, end):
            rng = np.random.default_rng([cfg.run.seed, step])
            batch = sample_batch(pool, rng, cfg.data.batch, cfg.data.crop48)
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, step)
            net.train()
            total, parts = compute_losses(net, batch, loss_weights(cfg, step), cfg.loss.anchor_pool)
            opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            done = step + 1
            if done % cfg.optim.log_every == 0 or done == cfg.optim.steps:
                writer.add_scalar("loss/total", float(total.detach()), done)
                for k, v in parts.items():
                    writer.add_scalar(f"loss/{k}", v, done)
                writer.add_scalar("model/scale", float(net.scale.detach()), done)
                writer.flush()
                log.info(
                    "%s step %d/%d loss %.4f (%s) %.0f s",
                    cfg.run.name,
                    done,
                    cfg.optim.steps,
                    float(total.detach()),
                    ", ".join(f"{k} {v:.4f}" for k, v in parts.items()),
                    time.perf_counter() - t0,
                )
            if done % cfg.optim.checkpoint_every == 0 or done in (cfg.optim.steps, end):
                _save_state(net, opt, done, time.perf_counter() - t0, run_dir, cfg)
    except BaseException:
        writer.close()
        registry.upsert(cfg.run.name, status="FAILED", notes=f"{cfg.run.notes} (interrupted)")
        raise
    writer.close()
    if end < cfg.optim.steps:
        return registry.upsert(
            cfg.run.name, status="WIP", checkpoint=str(run_dir / MODEL_FILE), metrics={"steps": end}
        )
    minutes = (time.perf_counter() - t0) / 60.0
    metrics: dict[str, Any] = {"steps": cfg.optim.steps, "minutes": round(minutes, 2)}
    metrics.update({f"final_loss_{k}": v for k, v in parts.items()})
    ckpt = run_dir / MODEL_FILE
    registry.upsert(cfg.run.name, checkpoint=str(ckpt), metrics=metrics)
    if evaluate_at_end:
        from training.evaluate import evaluate_checkpoint

        report = evaluate_checkpoint(
            ckpt,
            run_dir / "eval",
            size12=cfg.eval.size12,
            seed=cfg.eval.seed,
            scenes=["backlit"] if dry_run else None,
        )
        metrics.update(report.summary)
    status = "WIP" if dry_run else "SUCCESS"
    record = registry.upsert(cfg.run.name, status=status, metrics=metrics)
    return record


def _save_state(
    net: Linear48Net,
    opt: torch.optim.Optimizer,
    step: int,
    seconds: float,
    run_dir: Path,
    cfg: TrainConfig,
) -> None:
    meta = {"run": cfg.run.name, "step": step, "config": cfg.to_dict()}
    save_checkpoint(run_dir / MODEL_FILE, net, meta)
    tmp = run_dir / (STATE_FILE + ".part")
    torch.save(
        {"model": net.state_dict(), "optim": opt.state_dict(), "step": step, "seconds": seconds},
        tmp,
    )
    tmp.replace(run_dir / STATE_FILE)


def with_name(cfg: TrainConfig, name: str) -> TrainConfig:
    """A copy of ``cfg`` with another run name."""
    return replace(cfg, run=replace(cfg.run, name=name))
