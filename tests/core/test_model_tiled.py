"""Tiled model inference equals whole-image inference (DESIGN §6, issue 5).

Simulated pairs (RAW12 512x384 -> 1024x768 frames, 2x3 tiles of 512 px with 48 px
overlap) for a smooth sky (seams show there first), a backlit scene and a fine pattern;
the shipped default model, without the anchor refinement so only the network is compared.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.io.pair import load_pair
from core.model.infer import load_default_model, predict, predict_tiled
from core.simulate.pair import SimConfig, simulate_pair, write_pair


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
