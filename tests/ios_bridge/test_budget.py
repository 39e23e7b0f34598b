"""Working-set and latency estimate against a device budget."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from ios_bridge.budget import (
    MIB,
    DeviceBudget,
    budget_report,
    estimate_working_set,
    weight_bytes,
)
from ios_bridge.graph import GraphStats
from ios_bridge.manifest import build_manifest
from ios_bridge.quant import conv_layers


def _stats(peak: int, io: int, macs: int = 1000, traffic: int = 0) -> GraphStats:
    return GraphStats(macs, 10, traffic, peak, io, io, 0, {})


def test_weight_bytes(model):
    net = model.net
    n = sum(p.numel() for p in net.parameters())
    assert weight_bytes(net, "fp32") == 4 * n
    assert weight_bytes(net, "fp16") == 2 * n
    conv_w = sum(c.weight.numel() for _, c in conv_layers(net))
    channels = sum(c.weight.shape[0] for _, c in conv_layers(net))
    assert weight_bytes(net, "int8") == 2 * (n - conv_w) + conv_w + 2 * channels


def test_working_set_adds_up_per_stage(model):
    m = build_manifest(model.net, model.hash, "fp16", (6048, 8064), tile_px=768)
    ws = estimate_working_set(m, model.net, _stats(100 * MIB, MIB), _stats(40 * MIB, 20 * MIB))
    hw = 6048 * 8064
    items = {i.name: i for i in ws.items}
    assert items["pro (ProRAW48, FP16)"].bytes == 3 * hw * 2
    assert items["detail model activations"].bytes == 2 * 40 * MIB
    assert items["gain model activations"].bytes == 100 * MIB
    assert items["output accumulator"].bytes == 4 * (768 + 48) * 8064 * 4
    for stage, total in ws.stage_bytes.items():
        assert total == sum(i.bytes for i in ws.items if stage in i.stages)
    assert ws.peak_bytes == max(ws.stage_bytes.values())


def test_pass_and_fail(model):
    m = build_manifest(model.net, model.hash, "fp16", (6048, 8064), tile_px=768)
    gain, detail = _stats(100 * MIB, MIB, 10**9), _stats(40 * MIB, 20 * MIB, 10**9)
    ok = budget_report(m, model.net, gain, detail, tile_ms=[10.0, 30.0, 20.0], gain_ms=5.0)
    assert ok.ok and "overall: PASS" in ok.text()
    # 108 tiles x 20 ms median + 5 ms gain
    assert ok.latency.desktop_frame_s == pytest.approx((108 * 20 + 5) / 1000)
    # 2 FLOPs per MAC: (1 + 108) * 2e9 + elementwise, at 2 TFLOP/s
    assert ok.latency.device_s == pytest.approx(((1 + 108) * (2e9 + 10)) / 2e12)
    # memory-bound: 1 GB of activation traffic per tile at 50 GB/s dominates
    heavy = _stats(40 * MIB, 20 * MIB, 10**9, traffic=10**9)
    bound = budget_report(m, model.net, gain, heavy)
    assert bound.latency.device_s == pytest.approx(108 * 1e9 / 50e9)
    tight = budget_report(m, model.net, gain, detail, DeviceBudget(working_set_bytes=10**8))
    assert not tight.memory_ok and "FAIL" in tight.text()
    slow = budget_report(m, model.net, gain, detail, DeviceBudget(latency_s=0.01))
    assert slow.memory_ok and not slow.latency_ok and not slow.ok
    with pytest.raises(ConfigError, match="in_flight_tiles"):
        DeviceBudget(in_flight_tiles=0)
