"""training.train: dry run end to end, deterministic resume, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.model.checkpoint import load_checkpoint
from training.__main__ import main
from training.config import TrainConfig
from training.tracking import Registry
from training.train import MODEL_FILE, train

TINY = {
    "data": {
        "pool_images": 2,
        "size12_min": 96,
        "size12_max": 100,
        "crop48": 64,
        "batch": 2,
        "real_fraction": 0.0,
    },
    "optim": {"log_every": 1, "checkpoint_every": 1},
}


def _cfg(name: str, steps: int) -> TrainConfig:
    base = TrainConfig().with_overrides(run={"name": name}, **TINY)
    return base.with_overrides(optim={"steps": steps})


def test_dry_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI dry run trains two steps, evaluates one scene, records and lists the run."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[run]\nname = "v0.1_test"\n')
    assert main(["train", "--config", str(cfg), "--root", str(tmp_path), "--dry-run"]) == 0
    rec = Registry(tmp_path).get("v0.1_test-dryrun")
    assert rec is not None and rec.status == "WIP" and rec.metrics["steps"] == 2
    assert "truth_psnr_db" in rec.metrics
    load_checkpoint(rec.checkpoint)
    assert (tmp_path / "v0.1_test-dryrun" / "eval" / "report.md").is_file()
    assert list((tmp_path / "v0.1_test-dryrun" / "tb").glob("events.out.tfevents.*"))
    assert main(["runs", "--root", str(tmp_path)]) == 0
    assert "v0.1_test-dryrun" in capsys.readouterr().out
    assert (tmp_path / "runs.md").is_file()


def test_resume_equals_uninterrupted(tmp_path: Path) -> None:
    """Two steps + resume to three == three steps straight (deterministic seeds)."""
    straight = tmp_path / "a"
    train(_cfg("v0.1_straight", 3), root=straight, evaluate_at_end=False)
    split = tmp_path / "b"
    paused = train(_cfg("v0.1_split", 3), root=split, evaluate_at_end=False, stop_at=2)
    assert paused.status == "WIP"
    rec = train(_cfg("v0.1_split", 3), root=split, resume=True, evaluate_at_end=False)
    assert rec.status == "SUCCESS"
    a = load_checkpoint(straight / "v0.1_straight" / MODEL_FILE).net.state_dict()
    b = load_checkpoint(split / "v0.1_split" / MODEL_FILE).net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_bad_config_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[optim]\nsteps = -1\n")
    assert main(["train", "--config", str(cfg), "--root", str(tmp_path)]) == 2
    assert "optim.steps" in capsys.readouterr().err
