"""The iOS manifest round-trips and every bad file is a one-line CoreMLPackageError."""

from __future__ import annotations

import json

import pytest

from core.errors import ConfigError
from core.inference.tiling import plan_tiles
from ios_bridge.errors import CoreMLPackageError
from ios_bridge.manifest import (
    OPERATIONS,
    IosManifest,
    build_manifest,
    grid_shape,
    read_manifest,
    write_manifest,
)


def test_48mp_plan_follows_core_tiling(model):
    m = build_manifest(model.net, model.hash, "fp16", (6048, 8064), tile_px=768, overlap_px=48)
    plan = plan_tiles(6048, 8064, tile_px=768, overlap_px=48)
    assert (m.tile_origins_y, m.tile_origins_x) == (plan.ys, plan.xs)
    assert m.plan == plan
    assert (m.grid_h, m.grid_w) == (756, 1008) == grid_shape((6048, 8064), 8)
    d = m.to_dict()
    assert d["tiling"]["n_tiles"] == len(plan) == 108
    assert [op["op"] for op in d["operations"]] == [
        "prepare_inputs",
        "exposure_sums",
        "splat",
        "gain_model",
        "for_each_tile",
    ]
    assert [op["op"] for op in d["operations"][-1]["body"]] == [
        "upsample_grid",
        "detail_model",
        "to_camera48",
        "blend",
    ]


def test_round_trip_through_json(model, tmp_path):
    m = build_manifest(
        model.net, model.hash, "int8", (384, 512), tile_px=256, overlap_px=48, warning="x"
    )
    path = write_manifest(m, tmp_path / "m.json")
    back = read_manifest(path)
    assert back == m
    assert back.operations == OPERATIONS


def test_band_rows_must_fit_the_grid(model):
    with pytest.raises(ConfigError, match="band_rows"):
        build_manifest(model.net, model.hash, "fp16", (384, 512), band_rows=100)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not readable JSON"),
        (b'{"schema": "linear48.ios-manifest/1"', "not readable JSON"),  # truncated
        (b"\xff\xfe\x00garbage", "not readable JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'{"schema": "something-else"}', "schema"),
        (b'{"schema": "linear48.ios-manifest/1", "precision": "fp16"}', "missing"),
    ],
)
def test_bad_manifests(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(CoreMLPackageError, match=match) as info:
        read_manifest(path)
    assert "\n" not in str(info.value) and "bad.json" in str(info.value)


def test_inconsistent_manifests(model, tmp_path):
    good = build_manifest(model.net, model.hash, "fp16", (384, 512), tile_px=256).to_dict()
    for edit, match in (
        (lambda d: d["gain_grid"].update(height=47), "gain_grid.size"),
        (lambda d: d["tiling"].update(tile_origins_x=[0, 100]), "tile origins"),
        (lambda d: d["streaming"].update(band_rows=12), "band_rows"),
    ):
        d = json.loads(json.dumps(good))
        edit(d)
        (tmp_path / "m.json").write_text(json.dumps(d))
        with pytest.raises(CoreMLPackageError, match=match):
            read_manifest(tmp_path / "m.json")


def test_missing_and_absurd_manifests(tmp_path):
    with pytest.raises(CoreMLPackageError, match="cannot read"):
        read_manifest(tmp_path / "nope.json")
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(5 * 1024 * 1024)
    with pytest.raises(CoreMLPackageError, match="MiB"):
        read_manifest(big)
    with pytest.raises(CoreMLPackageError):
        IosManifest.from_dict({"schema": "linear48.ios-manifest/1", "frame": 3})
