"""training.demosaic: CFA-safe augmentation, config, loss, data, dry run end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.cfa import CfaName, CfaPattern
from core.demosaic import mosaic_from_rgb
from core.demosaic.checkpoint import load_demosaic_checkpoint
from core.demosaic.evaluation import TRAIN_SEED_LIMIT
from core.errors import ConfigError, ShapeError
from core.simulate.scenes import scene_names
from training.demosaic import (
    DataSection,
    DemosaicTrainConfig,
    LossSection,
    augment,
    build_pool,
    config_from_dict,
    demosaic_loss,
    load_config,
    main,
    make_sample,
)
from training.tracking import Registry

REPO = Path(__file__).resolve().parents[2]
PHASES = [n.value for n in CfaName]


@pytest.mark.parametrize("name", PHASES)
def test_augment_keeps_mosaic_and_target_aligned(name: str) -> None:
    """Random RGB (every pixel different, so any misalignment shows) mosaicked with each
    phase: after flips, transposes and crops the mosaic is exactly the RGGB mosaic of the
    target, for many draws covering every flip/transpose combination."""
    rng = np.random.default_rng(0)
    rgb = rng.random((3, 30, 34)).astype(np.float32)
    cfa = CfaPattern.from_name(name)
    m = mosaic_from_rgb(rgb, cfa)
    for k in range(40):
        mo, to = augment(m, rgb, cfa, np.random.default_rng(k), 16)
        assert mo.shape == (16, 16) and to.shape == (3, 16, 16)
        np.testing.assert_array_equal(mo, mosaic_from_rgb(to, "RGGB"))


def test_the_alignment_check_can_fail() -> None:
    """A crop at an odd offset without re-phasing breaks the check the test above uses."""
    rgb = np.random.default_rng(1).random((3, 20, 20)).astype(np.float32)
    m = mosaic_from_rgb(rgb, "RGGB")
    assert not np.array_equal(m[1:17, 0:16], mosaic_from_rgb(rgb[:, 1:17, 0:16], "RGGB"))
    assert not np.array_equal(m[::-1][:16, :16], mosaic_from_rgb(rgb[:, ::-1][:, :16, :16], "RGGB"))


def test_augment_rejects_bad_sizes() -> None:
    with pytest.raises(ShapeError):
        augment(
            np.zeros((17, 20)),
            np.zeros((3, 17, 20)),
            CfaPattern.from_name("RGGB"),
            np.random.default_rng(0),
            8,
        )
    with pytest.raises(ShapeError):
        augment(
            np.zeros((10, 10)),
            np.zeros((3, 10, 10)),
            CfaPattern.from_name("RGGB"),
            np.random.default_rng(0),
            10,
        )


def test_shipped_config_loads_and_trains_on_natural_scenes_only() -> None:
    cfg = load_config(REPO / "training" / "configs" / "demosaic.toml")
    assert cfg.run.name == "v1.0_demosaic"
    assert cfg.data.pattern_fraction == 0.0 and cfg.data.target == "truth"
    assert (cfg.loss.l1, cfg.loss.gradient, cfg.loss.chroma) == (1.0, 0.1, 0.05)


def test_config_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.pattern_fraction"):
        config_from_dict({"data": {"pattern_fraction": 1.0}})  # a pattern-only fine-tune
    with pytest.raises(ConfigError, match=r"eval\.seed"):
        config_from_dict({"eval": {"seed": 5}})
    with pytest.raises(ConfigError, match=r"run\.name"):
        config_from_dict({"run": {"name": "demosaic"}})
    with pytest.raises(ConfigError, match=r"data\.crop: expected int"):
        config_from_dict({"data": {"crop": "big"}})
    with pytest.raises(ConfigError, match=r"data\.wrong: unknown field"):
        config_from_dict({"data": {"wrong": 1}})
    with pytest.raises(ConfigError, match=r"data\.target"):
        config_from_dict({"data": {"target": "ahd"}})
    with pytest.raises(ConfigError, match="exposure_ev"):
        config_from_dict({"data": {"exposure_ev": [1.0]}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    assert main(["train", "--config", str(bad), "--root", str(tmp_path)]) == 2


def test_pool_is_natural_and_below_heldout_seeds() -> None:
    pool = build_pool(DataSection(images_per_scene=1, size12=32, crop=16), seed=3)
    natural = set(scene_names("natural"))
    assert {p.name.split("@")[0] for p in pool} == natural
    assert all(int(p.name.split("@")[1]) < TRAIN_SEED_LIMIT for p in pool)
    assert {p.cfa.name for p in pool} == set(PHASES)


@pytest.mark.parametrize("target", ["truth", "dht"])
def test_samples_are_rggb_and_consistent(target: str) -> None:
    """Without noise, a sample's mosaic is the RGGB mosaic of the clipped truth target;
    with a teacher, the target is the teacher's demosaic of that mosaic."""
    cfg = DataSection(
        images_per_scene=1, size12=48, crop=24, noise_fraction=0.0, clip_fraction=1.0, target=target
    )
    pool = build_pool(cfg, seed=0)
    rng = np.random.default_rng(0)
    for img in pool[:4]:
        m, t = make_sample(img, cfg, rng)
        assert m.shape == (24, 24) and t.shape == (3, 24, 24) and t.dtype == np.float32
        if target == "truth":
            np.testing.assert_array_equal(m, mosaic_from_rgb(t, "RGGB"))
            assert t.max() <= 1.0
        else:
            from core.demosaic import demosaic

            np.testing.assert_array_equal(t, demosaic(m, "RGGB", "dht"))


def test_loss_terms() -> None:
    """Zero on a perfect prediction; L1 sees any error, gradient sees a blur, chroma sees
    a colour shift that leaves green alone."""
    torch.manual_seed(0)
    target = torch.rand(2, 3, 20, 20)
    w = LossSection()
    total, parts = demosaic_loss(target, target, w)
    assert float(total) == 0.0 and all(v == 0.0 for v in parts.values())
    blurred = (target + target.roll(1, -1) + target.roll(1, -2)) / 3
    _, p_blur = demosaic_loss(blurred, target, w)
    assert p_blur["gradient"] > p_blur["l1"] > 0
    shifted = target.clone()
    shifted[:, 0] *= 1.2
    _, p_col = demosaic_loss(shifted, target, w)
    assert p_col["chroma"] > 0 and p_col["chroma"] == pytest.approx(p_col["l1"] * 3 / 2, rel=1e-5)
    total, parts = demosaic_loss(shifted, target, LossSection(l1=1.0, gradient=0.1, chroma=0.05))
    expected = parts["l1"] + 0.1 * parts["gradient"] + 0.05 * parts["chroma"]
    assert float(total) == pytest.approx(expected, rel=1e-6)


def test_dry_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI dry run trains two steps, evaluates two held-out scenes, records the run
    (WIP) in the registry with its held-out figures, and writes a loadable checkpoint."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[run]\nname = "v0.1_demosaictest"\n[model]\nchannels = 8\ndepth = 3\n')
    assert main(["train", "--config", str(cfg), "--root", str(tmp_path), "--dry-run"]) == 0
    rec = Registry(tmp_path).get("v0.1_demosaictest-dryrun")
    assert rec is not None and rec.status == "WIP" and rec.metrics["steps"] == 2
    assert "natural_psnr_db_learned" in rec.metrics and "natural_psnr_db_bilinear" in rec.metrics
    loaded = load_demosaic_checkpoint(rec.checkpoint)
    assert loaded.config.channels == 8 and loaded.meta["run"] == "v0.1_demosaictest-dryrun"
    assert list((tmp_path / "v0.1_demosaictest-dryrun" / "tb").glob("events.out.tfevents.*"))
    out = capsys.readouterr().out
    assert "v0.1_demosaictest-dryrun: WIP" in out
    # evaluate the dry-run checkpoint from the CLI
    assert main(["evaluate", "--checkpoint", rec.checkpoint, "--size", "64x48"]) == 0
    assert "| learned |" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt")]) == 2


def test_default_config_is_valid() -> None:
    assert DemosaicTrainConfig().data.pattern_fraction == 0.0


def test_training_is_deterministic(tmp_path: Path) -> None:
    """Two runs of the same config give bit-identical weights (batches from rng(seed,
    step), torch seeded), so the shipped model is reproducible from its config."""
    from training.demosaic import train

    base = config_from_dict(
        {
            "run": {"name": "v0.1_det"},
            "data": {"images_per_scene": 1, "size12": 48, "crop": 24, "batch": 2},
            "optim": {"steps": 3, "log_every": 1, "threads": 1},
            "model": {"channels": 8, "depth": 3},
        }
    )
    weights = []
    for sub in ("a", "b"):
        rec = train(base, root=tmp_path / sub, evaluate_at_end=False)
        weights.append(load_demosaic_checkpoint(rec.checkpoint))
    assert weights[0].hash == weights[1].hash
