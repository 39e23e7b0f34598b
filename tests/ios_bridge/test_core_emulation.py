"""The bridge runs core's emulation: one implementation, bit-identical results.

``core.model`` holds the quantizer, the fp16/int8/w8a8 variants, the calibration and the
parity maths (the GUI's INT8 sign-off uses them); ``ios_bridge`` re-exports them and its
manifest executor calls core's step functions.
"""

from __future__ import annotations

import numpy as np
import pytest

import core.model.emulate as emulate
import core.model.parity as core_parity
import core.model.quant as core_quant
from core.model.quant import QuantSpec, make_runners
from ios_bridge import calibration, executor, graph, parity, quant, scenes
from ios_bridge.executor import ReferenceExecutor
from ios_bridge.manifest import build_manifest
from tests.ios_bridge.conftest import TINY_OVERLAP, TINY_TILE, tiny_w8a8_config


def test_bridge_names_are_cores_objects():
    for name in quant.__all__:
        assert getattr(quant, name) is getattr(core_quant, name), name
    assert graph.fp16_emulation is core_quant.fp16_emulation
    assert graph.round_fp16 is core_quant.round_fp16
    assert executor.make_runners is core_quant.make_runners
    assert calibration.calibrate_w8a8 is emulate.calibrate_w8a8
    assert scenes.load_scene is emulate.load_scene
    assert parity.TileDiff is core_parity.TileDiff
    assert parity.Comparison is core_parity.Comparison


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8", "w8a8"])
def test_executor_equals_cores_run_bit_for_bit(model, tiny_scene, precision):
    scales = None
    if precision == "w8a8":
        spec = QuantSpec.from_config(tiny_w8a8_config())
        scales = emulate.calibrate_w8a8(model.net, spec, model_hash=model.hash)
    runners = make_runners(model.net, precision, scales)
    s = tiny_scene
    manifest = build_manifest(
        model.net, model.hash, "fp32", s.shape, tile_px=TINY_TILE, overlap_px=TINY_OVERLAP
    )
    got = ReferenceExecutor(manifest, runners, keep_tiles=True).run(
        s.camera48, s.anchor, s.cfa, s.wb_gains, unclipped=s.unclipped
    )
    want = emulate.run_emulated(runners, s, tile_px=TINY_TILE, overlap_px=TINY_OVERLAP)
    np.testing.assert_array_equal(got.camera48, want.camera48)
    np.testing.assert_array_equal(got.log_gain, want.log_gain)
    np.testing.assert_array_equal(got.grid, want.grid)
    assert got.origins == want.origins and sorted(got.tiles) == sorted(want.tiles)
    for i in got.tiles:
        np.testing.assert_array_equal(got.tiles[i], want.tiles[i])
    assert (got.exposure, got.log2_global) == (want.exposure, want.log2_global)
