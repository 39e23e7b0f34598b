"""The conversion pipeline end to end on simulated pairs: baselines, fallback, report, cancel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.baselines import baseline_gain_field, baseline_global, upsample_gain
from core.errors import CancelledError, OutputError
from core.evaluate import evaluate_output
from core.io.pair import load_pair
from core.io.proraw48 import read_proraw48
from core.metrics import anchor_metrics
from core.pipeline import ConvertOptions, SafetyThresholds, convert
from core.progress import CancelToken, Progress
from core.simulate.pair import SimConfig, simulate_pair, write_pair

SCENES_FOR_BASELINES = [
    "backlit",
    "bright_window",
    "mixed_lighting",
    "city_lights",
    "foliage",
    "zone_plate",
    "siemens_star",
    "stripes",
    "checkers",
]


def test_upsample_is_cell_centred() -> None:
    # A 2x1 field [1, 4] upsampled x4: centres of the two cells are at x = 1.5 and 5.5;
    # between them log2 gain ramps linearly from 0 to 2 (gain 1 -> 4), outside it clamps.
    g = upsample_gain(np.array([[1.0, 4.0]], np.float32), 4, 8)
    row = np.log2(g[0])
    np.testing.assert_allclose(row[:2], 0.0, atol=1e-6)
    np.testing.assert_allclose(row[6:], 2.0, atol=1e-6)
    np.testing.assert_allclose(row[2:6], [0.25, 0.75, 1.25, 1.75], atol=1e-6)


def test_global_baseline_recovers_a_pure_exposure_change() -> None:
    from core.cfa import CfaPattern
    from core.forward import forward_np

    rng = np.random.default_rng(0)
    truth = rng.uniform(0.05, 0.8, (3, 64, 96)).astype(np.float32)
    cfa = CfaPattern.from_name("RGGB")
    anchor = forward_np(truth, cfa)
    result = baseline_global(truth * 0.25, anchor, cfa)
    assert result.global_gain == pytest.approx(4.0, rel=1e-5)
    np.testing.assert_allclose(result.camera48, truth, rtol=1e-5)


def test_gain_field_removes_a_smooth_gain_exactly_enough() -> None:
    from core.cfa import CfaPattern
    from core.forward import forward_np

    rng = np.random.default_rng(1)
    truth = rng.uniform(0.05, 0.5, (3, 128, 192)).astype(np.float32)
    yy, xx = np.mgrid[0:128, 0:192]
    ltm = (2.0 ** (1.0 * np.sin(xx / 40.0) * np.cos(yy / 50.0))).astype(np.float32)
    cfa = CfaPattern.from_name("BGGR")
    anchor = forward_np(truth, cfa)
    a = anchor_metrics(baseline_global(truth * ltm, anchor, cfa).camera48, anchor, cfa)
    b = anchor_metrics(baseline_gain_field(truth * ltm, anchor, cfa).camera48, anchor, cfa)
    assert b.psnr_db > a.psnr_db + 10
    assert b.psnr_db > 40


@pytest.mark.slow
@pytest.mark.parametrize("scene", SCENES_FOR_BASELINES)
def test_gain_field_beats_global_on_every_scene(scene: str) -> None:
    sim = simulate_pair(SimConfig(scene=scene, w12=192, h12=128, seed=7, ltm="blur"))
    from core.cfa import CfaPattern
    from core.forward import forward_np

    cfa = CfaPattern.from_name(sim.config.cfa)
    truth = sim.truth
    anchor = forward_np(truth, cfa)  # noise-free anchor isolates the de-LTM quality
    pro = truth * sim.ltm_gain[None]
    a = anchor_metrics(baseline_global(pro, anchor, cfa).camera48, anchor, cfa)
    b = anchor_metrics(baseline_gain_field(pro, anchor, cfa).camera48, anchor, cfa)
    assert b.psnr_db > a.psnr_db, (scene, a.psnr_db, b.psnr_db)


def test_convert_writes_dng_and_report(sim_pair_dir: Path, tmp_path: Path) -> None:
    events: list[Progress] = []
    out = tmp_path / "out.dng"
    result = convert(
        sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng", out, progress=events.append
    )
    assert out.is_file() and result.report_path.is_file()
    report = json.loads(result.report_path.read_text())
    # auto = model -> gain-field -> global: the shipped model passes its checks here.
    assert report["method"]["used"] == "model"
    assert report["provenance"]["method"] == "model"
    assert report["provenance"]["model_hash"] and len(report["provenance"]["model_hash"]) == 64
    assert {c["name"] for c in report["method"]["checks"]["model"]} >= {"finite", "halo"}
    assert report["anchor_metrics"]["psnr_db"] == pytest.approx(result.anchor.psnr_db)
    assert {e.stage for e in events} >= {"read", "method", "write", "done"}
    # The written file, read back, has the anchor PSNR the report claims.
    ev = evaluate_output(sim_pair_dir / "raw12.dng", out)
    assert ev.metrics.psnr_db == pytest.approx(result.anchor.psnr_db, abs=0.3)
    back = read_proraw48(out)
    assert back.shape == (192, 256)


def test_gain_field_closer_to_truth_than_global(sim_pair_dir: Path) -> None:
    from core.metrics import truth_metrics

    pair = load_pair(sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng")
    truth = np.load(sim_pair_dir / "truth.npy")
    cfa = pair.raw12.cfa
    a = truth_metrics(baseline_global(pair.camera48, pair.anchor, cfa).camera48, truth)
    b = truth_metrics(baseline_gain_field(pair.camera48, pair.anchor, cfa).camera48, truth)
    assert b.ltm_residual_ev < a.ltm_residual_ev


def test_fallback_to_global_is_recorded(sim_pair_dir: Path, tmp_path: Path) -> None:
    strict = ConvertOptions(
        method="gain-field", thresholds=SafetyThresholds(max_abs_log2_gain=1e-3)
    )
    result = convert(
        sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng", tmp_path / "o.dng", strict
    )
    assert result.decision.used == "global"
    assert "gain-field failed gain_range" in result.decision.reason
    report = json.loads(result.report_path.read_text())
    assert report["method"]["used"] == "global"
    assert report["method"]["checks"]["gain-field"][1]["passed"] is False


def test_cancel_leaves_no_file(sim_pair_dir: Path, tmp_path: Path) -> None:
    token = CancelToken()

    def cancel_when_writing(event: Progress) -> None:
        if event.stage == "write":
            token.cancel()

    with pytest.raises(CancelledError):
        convert(
            sim_pair_dir / "raw12.dng",
            sim_pair_dir / "proraw48.dng",
            tmp_path / "o.dng",
            progress=cancel_when_writing,
            cancel=token,
        )
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_without_overwrite(sim_pair_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.dng"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        convert(
            sim_pair_dir / "raw12.dng",
            sim_pair_dir / "proraw48.dng",
            out,
            ConvertOptions(overwrite=False),
        )
    assert out.read_bytes() == b"precious"


def test_bad_input_leaves_no_output(sim_pair_dir: Path, tmp_path: Path) -> None:
    from core.errors import WrongKindError

    with pytest.raises(WrongKindError):
        convert(sim_pair_dir / "proraw48.dng", sim_pair_dir / "raw12.dng", tmp_path / "o.dng")
    assert list(tmp_path.iterdir()) == []


def test_pgtm_only_pair_needs_no_spatial_gain(tmp_path: Path) -> None:
    # LTM expressed only as a PGTM: ProRAW pixels stay linear, so the gain field is ~flat.
    sim = simulate_pair(
        SimConfig(scene="backlit", w12=128, h12=96, seed=5, ltm_mode="pgtm", ltm="grid_table")
    )
    paths = write_pair(sim, tmp_path)
    pair = load_pair(paths.raw12, paths.proraw48)
    assert pair.proraw48.pgtm is not None
    result = baseline_gain_field(pair.camera48, pair.anchor, pair.raw12.cfa)
    spread = np.log2(result.gain_lowres).std()
    assert spread < 0.1


def test_corrupt_model_checkpoint_falls_back_and_says_why(
    sim_pair_dir: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    result = convert(
        sim_pair_dir / "raw12.dng",
        sim_pair_dir / "proraw48.dng",
        tmp_path / "o.dng",
        ConvertOptions(method="model", model_path=bad),
    )
    assert result.decision.used == "gain-field"
    assert "model unavailable" in result.decision.reason
    assert result.report["provenance"]["model_hash"] is None


def test_frames_over_the_model_budget_skip_it_with_a_reason(
    sim_pair_dir: Path, tmp_path: Path
) -> None:
    result = convert(
        sim_pair_dir / "raw12.dng",
        sim_pair_dir / "proraw48.dng",
        tmp_path / "o.dng",
        ConvertOptions(model_max_pixels=1000),
    )
    assert result.decision.used == "gain-field"
    assert "model skipped" in result.decision.reason
    assert "memory budget" in result.report["method"]["reason"]


def test_large_frames_run_the_model_tile_by_tile(
    sim_pair_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Above WHOLE_IMAGE_MAX_PIXELS the pipeline switches to predict_tiled; make the small
    # simulated pair count as "large" and check the tiled path ran and gave the same output.
    import core.model.infer as infer

    whole = convert(
        sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng", tmp_path / "whole.dng"
    )
    monkeypatch.setattr(infer, "WHOLE_IMAGE_MAX_PIXELS", 1000)
    tiled = convert(
        sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng", tmp_path / "tiled.dng"
    )
    assert whole.decision.used == tiled.decision.used == "model"
    assert "tiles" in tiled.baseline.stats and "tiles" not in whole.baseline.stats
    assert float(np.abs(tiled.baseline.camera48 - whole.baseline.camera48).max()) < 1e-3


def test_tiled_model_reports_tiles_and_cancels_between_them(
    sim_pair_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tiled model (forced here on the small pair) reports every tile through convert's
    # progress and checks the cancel token before each one: cancelling while the gain grid
    # is computed stops before the first tile, and no file is left.
    import core.model.infer as infer

    monkeypatch.setattr(infer, "WHOLE_IMAGE_MAX_PIXELS", 1000)
    events: list[Progress] = []
    convert(
        sim_pair_dir / "raw12.dng",
        sim_pair_dir / "proraw48.dng",
        tmp_path / "done.dng",
        progress=events.append,
    )
    tiles = [e for e in events if e.stage == "tiles"]
    assert tiles and tiles[-1].done == tiles[-1].total

    token = CancelToken()
    seen: list[str] = []

    def cancel_at_gain_grid(event: Progress) -> None:
        seen.append(event.stage)
        if event.stage == "model" and event.message == "gain grid":
            token.cancel()

    out = tmp_path / "cancelled"
    out.mkdir()
    with pytest.raises(CancelledError):
        convert(
            sim_pair_dir / "raw12.dng",
            sim_pair_dir / "proraw48.dng",
            out / "o.dng",
            progress=cancel_at_gain_grid,
            cancel=token,
        )
    assert "model" in seen and "tiles" not in seen
    assert list(out.iterdir()) == []
