"""The reference executor follows the manifest and equals core's tiled inference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.errors import ConfigError, ShapeError
from core.model.infer import predict_tiled
from ios_bridge.executor import ReferenceExecutor, make_runners
from ios_bridge.manifest import build_manifest
from tests.ios_bridge.conftest import TINY_OVERLAP, TINY_TILE


def _manifest(model, scene, **kw):
    return build_manifest(
        model.net, model.hash, "fp32", scene.shape, tile_px=TINY_TILE, overlap_px=TINY_OVERLAP, **kw
    )


def _run(model, scene, manifest, precision="fp32", **kw):
    ex = ReferenceExecutor(manifest, make_runners(model.net, precision), **kw)
    return ex.run(
        scene.camera48, scene.anchor, scene.cfa, scene.wb_gains, unclipped=scene.unclipped
    )


def test_reference_executor_equals_predict_tiled(model, tiny_scene):
    s = tiny_scene
    manifest = _manifest(model, s, band_rows=32)  # 4 bands: exposure and splat stream
    result = _run(model, s, manifest, keep_tiles=True)
    want = predict_tiled(
        model,
        s.camera48,
        s.anchor,
        s.cfa,
        s.wb_gains,
        unclipped=s.unclipped,
        refine=False,
        tile_px=TINY_TILE,
        overlap_px=TINY_OVERLAP,
    )
    assert want.stats["tiles"] == len(manifest.plan) == 12
    assert float(np.abs(result.camera48 - want.camera48).max()) < 1e-3
    assert float(np.abs(result.camera48).max()) > 0.1  # a real image, not zeros
    assert set(result.tiles) == set(range(12))
    assert result.origins[5] == (manifest.plan.tiles[5].y0, manifest.plan.tiles[5].x0)
    assert result.grid.shape == (8, manifest.grid_h, manifest.grid_w)


def test_latency_is_sampled_per_tile(model, tiny_scene):
    result = _run(model, tiny_scene, _manifest(model, tiny_scene), sample_every=5)
    assert sorted(result.tile_ms) == [0, 5, 10]
    assert all(ms > 0 for ms in result.tile_ms.values()) and result.gain_ms > 0


def test_emulated_fp16_is_close_but_not_equal(model, tiny_scene):
    m = _manifest(model, tiny_scene)
    ref = _run(model, tiny_scene, m)
    fp16 = _run(model, tiny_scene, m, "fp16")
    err = float(np.abs(fp16.camera48 - ref.camera48).max())
    assert 0 < err < 0.05


def test_manifest_order_is_enforced(model, tiny_scene):
    m = _manifest(model, tiny_scene)
    swapped = dataclasses.replace(
        m, operations=(m.operations[1], m.operations[0], *m.operations[2:])
    )
    with pytest.raises(ConfigError, match="before its input"):
        _run(model, tiny_scene, swapped)
    unknown = dataclasses.replace(m, operations=({"op": "sharpen", "inputs": []},))
    with pytest.raises(ConfigError, match="sharpen"):
        _run(model, tiny_scene, unknown)
    no_blend = dict(m.operations[-1])
    no_blend["body"] = no_blend["body"][:-1]
    with pytest.raises(ConfigError, match="blend"):
        _run(model, tiny_scene, dataclasses.replace(m, operations=(*m.operations[:-1], no_blend)))


def test_frame_size_must_match_the_manifest(model, tiny_scene):
    m = build_manifest(model.net, model.hash, "fp32", (128, 256), tile_px=64, overlap_px=16)
    with pytest.raises(ShapeError, match="manifest plans 256x128"):
        _run(model, tiny_scene, m)
