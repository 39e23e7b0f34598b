"""Parity: emulated FP16/INT8/w8a8 differ from FP32 by reported, bounded amounts, per tile."""

from __future__ import annotations

import json
import math

import pytest

from core.errors import ConfigError
from ios_bridge.parity import parity_report, signoff_metrics_from_dict
from tests.ios_bridge.conftest import TINY_OVERLAP, TINY_RAW12, TINY_TILE, tiny_w8a8_config


@pytest.fixture(scope="module")
def report(model):
    return parity_report(
        model,
        ["backlit"],
        ["fp16", "int8", "w8a8"],
        TINY_TILE,
        TINY_OVERLAP,
        raw12_size=TINY_RAW12,
        seed=4,
        quantization={"w8a8": tiny_w8a8_config()},
    )


def test_every_comparison_is_reported_per_tile(report):
    labels = [c.label for c in report.comparisons]
    assert labels == [
        "fp16 vs fp32",
        "int8 vs fp32",
        "int8 vs fp16",
        "w8a8 vs fp32",
        "w8a8 vs fp16",
    ]
    for c in report.comparisons:
        assert len(c.tiles) == 12
        # the worst tile is a real tile of the plan, named by its origin
        assert c.worst.max_abs == max(t.max_abs for t in c.tiles)
        assert (c.worst.y0, c.worst.x0) in {(t.y0, t.x0) for t in c.tiles}
        assert c.worst.h == c.worst.w == TINY_TILE


def test_quantized_outputs_differ_by_bounded_amounts(report):
    by = {c.label: c for c in report.comparisons}
    fp16, int8, w8a8 = by["fp16 vs fp32"], by["int8 vs fp32"], by["w8a8 vs fp32"]
    for c in (fp16, int8, w8a8):
        assert 0 < c.max_abs < 0.25, c.label  # linear units, HDR values up to ~8
        assert 35 < c.psnr_db < 120, c.label
        assert 0 < c.grid_max_abs < 0.5
    # coarser arithmetic, larger error
    assert fp16.rms < int8.rms < w8a8.rms


def test_text_and_json(report):
    text = report.text()
    assert "backlit" in text and "worst tile overall" in text and "w8a8 vs fp16" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["comparisons"][0]["worst_tile"]["index"] == report.comparisons[0].worst.index
    metrics = report.signoff_metrics("int8")
    assert set(metrics) == {"backlit"}
    assert {"max_abs_vs_fp16", "psnr_db_vs_fp32", "worst_tile_max_abs_vs_fp16"} <= set(
        metrics["backlit"]
    )
    assert all(math.isfinite(v) for v in metrics["backlit"].values())
    assert signoff_metrics_from_dict(data, "int8") == metrics
    with pytest.raises(ConfigError, match="parity JSON"):
        signoff_metrics_from_dict({"nothing": 1}, "int8")


def test_bad_precision(model):
    with pytest.raises(ConfigError, match="precisions"):
        parity_report(model, ["backlit"], ["int4"])
