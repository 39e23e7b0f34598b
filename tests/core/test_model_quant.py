"""core's emulation of the device plan, w8a8 calibration and precision parity maths.

The quantizer and the variants themselves are tested through their ``ios_bridge``
re-export (tests/ios_bridge/test_quant.py, against coremltools where installed); here:
the tiled emulated run, calibration, the per-tile comparison (hand-checked numbers),
the GUI's scene comparison, and that the executor of ``ios_bridge`` runs the same code.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from core.errors import CancelledError, ConfigError
from core.model.emulate import (
    SceneInputs,
    TiledRun,
    calibrate_w8a8,
    load_scene,
    run_emulated,
)
from core.model.infer import LoadedModel, predict_tiled
from core.model.parity import (
    compare_runs,
    compare_scene,
    comparison_figures,
    signed_difference,
)
from core.model.quant import QuantSpec, fp16_emulation, make_runners, round_fp16
from core.progress import CancelToken
from core.signoff import default_quantization
from tests.conftest import tiny_w8a8_config

#: RAW12 96x64 -> 192x128 frame in 64 px tiles with 16 px overlap: 12 tiles.
RAW12, TILE, OVERLAP = (96, 64), 64, 16


@pytest.fixture(scope="module")
def scene() -> SceneInputs:
    """Backlit (strong LTM, clipped sky), RAW12 96x64, seed 4, read back from real DNGs."""
    return load_scene("backlit", RAW12, seed=4)


def _run(model: LoadedModel, scene: SceneInputs, precision: str, scales=None) -> TiledRun:
    runners = make_runners(model.net, precision, scales)
    return run_emulated(runners, scene, tile_px=TILE, overlap_px=OVERLAP, band_rows=32)


def test_fp32_run_equals_predict_tiled(model, scene):
    run = _run(model, scene, "fp32")
    want = predict_tiled(
        model,
        scene.camera48,
        scene.anchor,
        scene.cfa,
        scene.wb_gains,
        unclipped=scene.unclipped,
        refine=False,
        tile_px=TILE,
        overlap_px=OVERLAP,
    )
    assert float(np.abs(run.camera48 - want.camera48).max()) < 1e-3
    assert float(np.abs(run.camera48).max()) > 0.1  # a real image
    assert sorted(run.tiles) == list(range(12)) and run.origins[0] == (0, 0)
    assert scene.color is not None  # previews can render it


def test_emulated_precisions_differ_by_bounded_amounts(model, scene):
    spec = QuantSpec.from_config(tiny_w8a8_config())
    scales = calibrate_w8a8(model.net, spec, model_hash=model.hash)
    runs = {p: _run(model, scene, p, scales if p == "w8a8" else None) for p in ("fp16", "w8a8")}
    c = compare_runs("backlit", "w8a8", "fp16", runs["w8a8"], runs["fp16"])
    assert 0 < c.max_abs < 0.1 and 35 < c.psnr_db < 80
    assert len(c.tiles) == 12 and c.worst.max_abs == max(t.max_abs for t in c.tiles)
    assert c.grid_max_abs > 0  # the gain model's grid moved too


def test_calibration_is_deterministic_cached_and_float16(model):
    spec = QuantSpec.from_config(tiny_w8a8_config())
    first = calibrate_w8a8(model.net, spec)  # no hash: not cached, computed
    again = calibrate_w8a8(model.net, spec, model_hash=model.hash)
    assert first == again
    assert all(v == float(np.float16(v)) and v > 0 for v in first.values())
    cached = calibrate_w8a8(model.net, spec, model_hash=model.hash, cancel=_cancelled())
    assert cached == first  # from the cache: no scene is run (cancel not reached)
    with pytest.raises(CancelledError):
        calibrate_w8a8(model.net, spec, cancel=_cancelled())
    with pytest.raises(ConfigError, match="no activation calibration"):
        calibrate_w8a8(model.net, QuantSpec.default("int8"))


def _cancelled() -> CancelToken:
    token = CancelToken()
    token.cancel()
    return token


def test_compare_runs_golden():
    # Two 2x2 tiles of 3 channels, reference all zeros. Tile 0 differs by +0.5 in one
    # element: max 0.5, MSE 0.25 / 12, RMS 0.1443, PSNR 10 log10(12 / 0.25) = 16.812 dB.
    # Tile 1 by -0.25 in one element: PSNR 10 log10(12 / 0.0625) = 22.833 dB.
    z = np.zeros((3, 2, 2), np.float32)
    t0, t1 = z.copy(), z.copy()
    t0[1, 0, 1] = 0.5
    t1[2, 1, 1] = -0.25
    frame = np.zeros((3, 2, 4), np.float32)
    grid = np.zeros((8, 1, 1), np.float32)
    origins = {0: (0, 0), 1: (0, 2)}
    a = TiledRun(frame, frame[0], grid + 0.125, 0.0, 0.0, {0: t0, 1: t1}, origins)
    b = TiledRun(frame, frame[0], grid, 0.0, 0.0, {0: z, 1: z}, origins)
    c = compare_runs("golden", "int8", "fp16", a, b)
    t = c.worst
    assert (t.index, t.y0, t.x0, t.h, t.w) == (0, 0, 0, 2, 2)
    assert t.max_abs == 0.5 and math.isclose(t.rms, math.sqrt(0.25 / 12))
    assert math.isclose(t.psnr_db, 16.812, abs_tol=1e-3)
    assert math.isclose(c.tiles[1].psnr_db, 22.833, abs_tol=1e-3)
    assert [x.index for x in c.worst_tiles(5)] == [0, 1]
    assert c.grid_max_abs == 0.125 and c.label == "int8 vs fp16"
    # identical frames: infinite PSNR and zero figures; the infinite one is not a metric
    figures = comparison_figures(c)
    assert figures["worst_tile_max_abs_vs_fp16"] == 0.5 and figures["max_abs_vs_fp16"] == 0
    assert "psnr_db_vs_fp16" not in figures and c.psnr_db == math.inf


def test_signed_difference_keeps_the_largest_channel_and_its_sign():
    ref = np.zeros((3, 1, 2), np.float32)
    cand = np.array([[[0.1, -0.3]], [[-0.2, 0.1]], [[0.05, 0.25]]], np.float32)
    out = signed_difference(cand, ref)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.array([[-0.2, -0.3]], np.float32))


def test_compare_scene_for_a_weight_only_config(model):
    config = default_quantization("int8")
    result = compare_scene(
        model, config, "checkers", raw12_size=(64, 48), tile_px=64, overlap_px=16
    )
    assert (result.reference, result.candidate) == ("fp16", "int8")
    assert result.model_hash == model.hash and result.activation_scales_hash is None
    assert result.quantization_hash == QuantSpec.from_config(config).hash
    assert result.reference_camera48.shape == (3, 96, 128)
    np.testing.assert_array_equal(
        result.difference,
        signed_difference(result.candidate_camera48, result.reference_camera48),
    )
    c = result.comparison
    assert (c.scene, c.candidate, c.reference) == ("checkers", "int8", "fp16")
    assert np.isclose(np.abs(result.difference).max(), c.max_abs, rtol=1e-6)
    assert set(result.figures) >= {"max_abs_vs_fp16", "worst_tile_psnr_db_vs_fp16"}
    with pytest.raises(ConfigError):
        compare_scene(model, {"mode": "int4"}, "checkers", raw12_size=(64, 48))


def test_fp16_emulation_is_per_thread():
    # The GUI runs the emulation on a worker thread: the GUI thread's ops stay float32.
    inside, release = threading.Event(), threading.Event()
    seen: list[torch.Tensor] = []

    def worker() -> None:
        with fp16_emulation():
            seen.append(torch.tensor([1.0]) / 3.0)
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(10)
    here = torch.tensor([1.0]) / 3.0
    release.set()
    thread.join(10)
    assert torch.equal(seen[0], round_fp16(here)) and not torch.equal(here, seen[0])
