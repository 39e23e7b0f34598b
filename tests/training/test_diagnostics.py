"""training.diagnostics: config, batches and their labels, augmentations, the dry run end
to end through the CLI (registry, checkpoint, report), evaluate and calibrate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.diagnostics.checkpoint import clear_cache, load_diagnostic_model
from core.diagnostics.features import THUMB_PX, chroma, luminance_t
from core.diagnostics.types import EXPOSURE_LABELS, SATURATION_LABELS, gains_from_axes
from core.errors import ConfigError
from tests.conftest import REPO, real_file
from training.diagnostics import (
    DiagConfig,
    PoolImage,
    _best_pair,
    config_from_dict,
    dead_leaves,
    load_config,
    load_real_image,
    main,
    rotate_hue,
    sample_batch,
)
from training.tracking import Registry

SHIPPED_CONFIG = REPO / "training" / "configs" / "diagnostics.toml"


def test_shipped_config_loads() -> None:
    cfg = load_config(SHIPPED_CONFIG)
    assert cfg.run.name == "v2.2_diag" and cfg.model.stats_skip
    assert cfg.data.labels == "scene_referenced" and cfg.data.work_w == 128
    assert cfg.data.procedural > 0 and cfg.data.photos
    assert cfg.data.work_px >= THUMB_PX and cfg.optim.threads >= 1


def test_dead_leaves_is_deterministic_and_varied() -> None:
    """Procedural content: finite, non-negative, deterministic for the generator state,
    and different images differ in mean colour and key."""
    a = dead_leaves(48, 64, np.random.default_rng(1))
    assert a.shape == (3, 48, 64) and a.dtype == np.float32
    assert np.isfinite(a).all() and a.min() >= 0.0
    np.testing.assert_array_equal(a, dead_leaves(48, 64, np.random.default_rng(1)))
    means = np.array(
        [dead_leaves(48, 64, np.random.default_rng(s)).mean(axis=(1, 2)) for s in range(6)]
    )
    assert np.ptp(means[:, 0] / means[:, 1]) > 0.05


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"run": {"name": "diag"}}, "run.name"),
        ({"data": {"batch": 1}}, "data.batch"),
        ({"data": {"crop_min": "big"}}, "data.crop_min"),
        ({"data": {"bogus": 1}}, "data.bogus"),
        ({"data": {"labels": "absolute"}}, "data.labels"),
        ({"data": {"procedural": -1}}, "data.procedural"),
        ({"eval": {"size": "10x10"}}, "eval.size"),
        ({"model": {"widths": [4, 4]}}, "model.widths"),
        ({"extra": {}}, "extra"),
    ],
)
def test_bad_config_names_the_field(data: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config_from_dict(data)


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[run\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def _pool() -> list[PoolImage]:
    """Two flat images: a grey card and a saturated red card (working space). Models the
    simplest scenes whose labels can be checked by hand."""
    grey = np.full((3, 48, 64), 0.2, np.float32)
    red = np.stack([np.full((48, 64), v, np.float32) for v in (0.4, 0.1, 0.1)])
    return [PoolImage("grey", 0, grey), PoolImage("red", 0, red)]


def test_batch_labels_match_their_degradations() -> None:
    cfg = DiagConfig().with_overrides(data={"batch": 16, "work_px": 32, "real_share": 0.0})
    b = sample_batch(_pool(), None, np.random.default_rng(5), cfg)
    assert b.thumbs.shape == (16, 3, THUMB_PX, THUMB_PX) and torch.isfinite(b.thumbs).all()
    assert set(b.exposure.tolist()) <= {0, 1, 2} and set(b.saturation.tolist()) <= {0, 1, 2}
    for i in range(16):
        # The label gamma is consistent with the class: under <=> correction gamma < 1.
        gamma = math.exp(float(b.log_gamma[i]))
        label = EXPOSURE_LABELS[int(b.exposure[i])]
        assert (gamma < 0.8) == (label == "under") and (gamma > 1.25) == (label == "over")
        factor = math.exp(float(b.log_saturation[i]))
        s_label = SATURATION_LABELS[int(b.saturation[i])]
        assert (factor > 1.07) == (s_label == "under")
    # On a grey card the thumbnail shows the cast exactly: the label gains make it neutral
    # again, and the card is flagged achromatic (its saturation labels are not used).
    grey = sample_batch(_pool()[:1], None, np.random.default_rng(6), cfg)
    for i in range(16):
        g = torch.tensor(gains_from_axes(*grey.wb_axes[i].tolist()))
        fixed = grey.thumbs[i : i + 1] * g[None, :, None, None]
        assert float(chroma(fixed)[0]) < 1e-4 and not grey.chromatic[i]
    # Deterministic for the generator state.
    again = sample_batch(_pool(), None, np.random.default_rng(5), cfg)
    assert torch.equal(b.thumbs, again.thumbs) and torch.equal(b.wb_axes, again.wb_axes)


def test_views_at_the_evaluation_resolution() -> None:
    """``work_w``: views of work_px x work_w (the simulator's 96x128 with crop_min 1 is the
    evaluation image itself), still reduced to square thumbnails; scene-referenced
    labels flag the grey card achromatic."""
    cfg = DiagConfig().with_overrides(
        data={"batch": 8, "work_px": 48, "work_w": 64, "crop_min": 1.0, "real_share": 0.0}
    )
    b = sample_batch(_pool(), None, np.random.default_rng(2), cfg)
    assert b.thumbs.shape == (8, 3, THUMB_PX, THUMB_PX) and torch.isfinite(b.thumbs).all()
    grey = sample_batch(_pool()[:1], None, np.random.default_rng(3), cfg)
    assert not grey.chromatic.any()


def test_hue_rotation_keeps_greys_luminance_and_chroma() -> None:
    img = torch.from_numpy(_pool()[1].image.copy())
    img[:, :, :32] = 0.3  # half grey
    rot = rotate_hue(img, 2.0)
    torch.testing.assert_close(luminance_t(rot[None]), luminance_t(img[None]))
    torch.testing.assert_close(rot[:, :, :32], img[:, :, :32])
    assert float(chroma(rot[None])[0]) == pytest.approx(float(chroma(img[None])[0]), rel=1e-5)
    assert not torch.allclose(rot[:, :, 32:], img[:, :, 32:])
    torch.testing.assert_close(rotate_hue(img, 2.0 * math.pi), img, atol=1e-6, rtol=1e-5)


def test_threshold_fit_finds_separable_classes() -> None:
    values = np.array([-5.0, -4.5, -2.0, -1.9, 0.5, 1.0])
    truth = np.array([0, 0, 1, 1, 2, 2])
    lo, hi = _best_pair(values, truth, np.arange(-6.0, 2.0, 0.5))
    pred = np.where(values < lo, 0, np.where(values > hi, 2, 1))
    assert np.array_equal(pred, truth)


def test_dry_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI dry run trains two steps, evaluates, records the run, writes a loadable
    checkpoint and a report; ``evaluate`` then scores that checkpoint."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[run]\nname = "v0.1_diagtest"\n[eval]\nsize = "64x48"\n')
    assert main(["train", "--config", str(cfg), "--root", str(tmp_path), "--dry-run"]) == 0
    rec = Registry(tmp_path).get("v0.1_diagtest-dryrun")
    assert rec is not None and rec.status == "WIP" and rec.metrics["steps"] == 2
    assert 0.0 <= rec.metrics["heldout_learned_exposure"] <= 1.0
    assert "heldout_classical_white_balance" in rec.metrics
    clear_cache()
    loaded = load_diagnostic_model(rec.checkpoint)
    assert loaded.hash == rec.metrics["model_hash"]
    assert (tmp_path / "v0.1_diagtest-dryrun" / "eval.md").read_text().startswith("# ")
    assert list((tmp_path / "v0.1_diagtest-dryrun" / "tb").glob("events.out.tfevents.*"))
    capsys.readouterr()
    report = tmp_path / "r.md"
    args = ["evaluate", "--checkpoint", rec.checkpoint, "--config", str(cfg), "--seeds", "1"]
    assert main([*args, "--out", str(report)]) == 0
    out = capsys.readouterr().out
    assert "| learned |" in out and "| classical |" in out
    assert report.read_text() == out


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    bad = tmp_path / "c.toml"
    bad.write_text('[optim]\nsteps = "many"\n')
    assert main(["train", "--config", str(bad), "--root", str(tmp_path)]) == 2
    assert "optim.steps" in capsys.readouterr().err


@pytest.mark.real_data
def test_real_dng_becomes_a_balanced_working_image() -> None:
    """The Canon 550D colour chart, demosaiced and balanced with its AsShotNeutral: a
    finite, non-negative image whose gray-world balance is near neutral."""
    path = real_file("bayer_canon550d_magiclantern_colorchart.dng")
    img = load_real_image(path)
    assert img is not None and img.shape[0] == 3 and img.shape[1] > 100
    assert np.all(np.isfinite(img)) and img.min() >= 0.0
    means = img.reshape(3, -1).mean(axis=1)
    assert np.all(np.abs(np.log2(means / means[1])) < 0.5)


def test_missing_real_dng_is_skipped_not_fatal(tmp_path: Path) -> None:
    assert load_real_image(tmp_path / "none.dng") is None
