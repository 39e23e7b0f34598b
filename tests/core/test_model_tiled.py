"""Tiled model inference equals whole-image inference (DESIGN §6, issue 5).

Simulated pairs (RAW12 512x384 -> 1024x768 frames, 2x3 tiles of 512 px with 48 px
overlap) for a smooth sky (seams show there first), a backlit scene and a fine pattern;
the shipped default model, without the anchor refinement so only the network is compared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.cfa import CfaPattern
from core.forward import forward_np
from core.io.pair import load_pair
from core.model.infer import (
    _WindowInputs,
    load_default_model,
    predict,
    predict_tiled,
    prepare_inputs,
    streaming_gain_grid,
)
from core.model.net import upsample_guidance
from core.simulate.pair import SimConfig, simulate_pair, write_pair
from core.simulate.scenes import scene_names


@pytest.mark.parametrize("scene", ["gradient_sky", "backlit", "zone_plate"])
def test_tiled_equals_whole_image(scene: str, tmp_path) -> None:
    paths = write_pair(simulate_pair(SimConfig(scene=scene, w12=512, h12=384, seed=2)), tmp_path)
    pair = load_pair(paths.raw12, paths.proraw48)
    model = load_default_model()
    args = (model, pair.camera48, pair.anchor, pair.raw12.cfa, pair.wb_gains)
    whole = predict(*args, unclipped=pair.unclipped, refine=False)
    tiled = predict_tiled(*args, unclipped=pair.unclipped, refine=False, tile_px=512, overlap_px=48)
    assert tiled.stats["tiles"] == 6
    assert float(np.abs(tiled.camera48 - whole.camera48).max()) < 1e-3
    np.testing.assert_allclose(tiled.gain_lowres, whole.gain_lowres, rtol=1e-4)


@pytest.mark.parametrize("scene", scene_names())
def test_tiled_equals_whole_image_on_every_scene(scene: str) -> None:
    """Every simulated scene (natural and pattern) at a small size: 384-row frames span two
    256-row grid bands and 2x3 tiles of 256 px with 32 px overlap."""
    sim = simulate_pair(SimConfig(scene=scene, w12=256, h12=192, seed=5))
    cfa = CfaPattern.from_name(sim.config.cfa)
    # ProRAW-like input: the truth with the simulated LTM gain baked in; anchor: F(truth).
    camera48 = np.ascontiguousarray(sim.truth * sim.ltm_gain[None], dtype=np.float32)
    anchor = forward_np(sim.truth, cfa)
    model = load_default_model()
    wb = np.array([2.0, 1.0, 1.6], np.float32)
    whole = predict(model, camera48, anchor, cfa, wb, refine=False)
    tiled = predict_tiled(
        model, camera48, anchor, cfa, wb, refine=False, tile_px=256, overlap_px=32
    )
    assert tiled.stats["tiles"] == 6
    assert float(np.abs(tiled.camera48 - whole.camera48).max()) < 1e-3


def _random_inputs(h12: int, w12: int) -> tuple[np.ndarray, np.ndarray, CfaPattern, np.ndarray]:
    """Random positive Camera48 (3, 2*h12, 2*w12) and anchor with ~5 % clipped pixels."""
    rng = np.random.default_rng(1)
    camera48 = rng.uniform(0.0, 1.5, (3, 2 * h12, 2 * w12)).astype(np.float32)
    anchor = rng.uniform(0.0, 1.02, (h12, w12)).astype(np.float32)
    return camera48, anchor, CfaPattern.from_name("GRBG"), np.array([1.9, 1.0, 1.4], np.float32)


@pytest.mark.parametrize(
    "box", [(0, 64, 0, 96), (2, 31, 6, 45), (100, 172, 130, 200), (0, 172, 0, 200)]
)
def test_window_inputs_equal_cropped_whole_frame_inputs(box) -> None:
    """Streamed windows (odd ends, frame edges, whole frame) equal the whole-frame tensors
    (the 12MP guidance upsampled in one piece) cropped: the 12MP margin makes the 2x
    upsampling exact."""
    camera48, anchor, cfa, wb = _random_inputs(86, 100)
    inputs = _WindowInputs(camera48, anchor, cfa, wb, None, "bilinear")
    whole = (
        torch.from_numpy(camera48 * wb.reshape(3, 1, 1))[None],
        upsample_guidance(inputs.guide12),
        upsample_guidance(inputs.conf12),
    )
    win = inputs.window(*box)
    y0, y1, x0, x1 = box
    for a, b in zip(whole, win, strict=True):
        np.testing.assert_allclose(b.numpy(), a[..., y0:y1, x0:x1].numpy(), rtol=0, atol=1e-6)


def test_streaming_gain_grid_equals_whole_frame_grid(monkeypatch) -> None:
    """Bands of 16 rows over a 172-row frame (not a multiple of the 8 px cell): same grid,
    exposure and global ratio as the whole-frame gain head."""
    import core.model.infer as infer

    monkeypatch.setattr(infer, "GRID_BAND_ROWS", 16)
    camera48, anchor, cfa, wb = _random_inputs(86, 100)
    net = load_default_model().net
    with torch.inference_mode():
        ref = net.gain_grid(*prepare_inputs(camera48, anchor, cfa, wb))
    got = streaming_gain_grid(net, _WindowInputs(camera48, anchor, cfa, wb, None, "bilinear"))
    np.testing.assert_allclose(got.exposure.numpy(), ref.exposure.numpy(), rtol=1e-5)
    np.testing.assert_allclose(got.log2_global.numpy(), ref.log2_global.numpy(), rtol=1e-5)
    np.testing.assert_allclose(got.log_gain.numpy(), ref.log_gain.numpy(), atol=1e-5)
