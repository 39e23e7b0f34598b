"""The int8 quantizer matches coremltools bit for bit; variants and calibration behave."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import ConfigError
from core.signoff import default_quantization, quantization_hash
from ios_bridge.graph import fp16_emulation, round_fp16
from ios_bridge.quant import (
    QuantSpec,
    W8A8Conv2d,
    collect_activation_ranges,
    conv_layers,
    dequantize_int8,
    quantize_weight_int8,
    scales_from_ranges,
    variant_net,
)


def test_int8_golden_channel():
    # One output channel, values exact in float16: max |w| = 1.0, so scale = 2 / 254 =
    # 0.007874 (float16: 0.007874 -> 0.0078735). q = round(w / scale):
    # 1.0 -> 127, -0.5 -> -63.5 (float16 quotient -63.5) -> -64 (half to even),
    # 0.25 -> 31.75 -> 32, 0 -> 0.
    w = np.array([[1.0, -0.5, 0.25, 0.0]], dtype=np.float32)
    q, scale = quantize_weight_int8(w)
    assert scale.dtype == np.float16 and q.dtype == np.int8
    assert float(scale[0]) == float(np.float16(2.0) / np.float16(254.0))
    np.testing.assert_array_equal(q, [[127, -64, 32, 0]])


@pytest.mark.coreml
def test_int8_quantizer_equals_coremltools_own_function():
    from coremltools.converters.mil.mil import types
    from coremltools.optimize._utils import quantize_weight_by_dtype

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((16, 23, 3, 3)) * rng.uniform(0.01, 1, (16, 1, 1, 1))).astype(
        np.float32
    )
    q, scale = quantize_weight_int8(w)
    cq, cscale, zp = quantize_weight_by_dtype(
        w.astype(np.float16), (1, 2, 3), types.int8, "LINEAR_SYMMETRIC"
    )
    assert zp is None
    np.testing.assert_array_equal(q, cq.astype(np.int8))
    np.testing.assert_array_equal(scale, cscale)


def test_dequantized_weights_are_within_half_a_step():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    q, scale = quantize_weight_int8(w)
    err = np.abs(dequantize_int8(q, scale).astype(np.float32) - w).max(axis=(1, 2, 3))
    bound = scale.astype(np.float32) / 2 + np.abs(w).max(axis=(1, 2, 3)) * 2.0**-10
    assert np.all(err <= bound)
    assert np.all(err > 0)  # random weights are not on the int8 grid


def test_variants_carry_their_weights(model):
    net = model.net
    assert variant_net(net, "fp32") is net
    fp16 = variant_net(net, "fp16")
    int8 = variant_net(net, "int8")
    for (name, c32), (_, c16), (_, c8) in zip(
        conv_layers(net), conv_layers(fp16), conv_layers(int8), strict=True
    ):
        w = c32.weight.detach()
        assert torch.equal(c16.weight, w.half().float()), name
        q, s = quantize_weight_int8(w.numpy())
        assert torch.equal(c8.weight, torch.from_numpy(dequantize_int8(q, s).astype(np.float32)))
    # the copies do not touch the reference
    assert not torch.equal(conv_layers(net)[0][1].weight, conv_layers(int8)[0][1].weight)


def test_w8a8_needs_a_scale_for_every_conv(model):
    with pytest.raises(ConfigError, match="no activation scale"):
        variant_net(model.net, "w8a8", {"enc1.0": 0.01})
    with pytest.raises(ConfigError, match="precision"):
        variant_net(model.net, "int4")


def test_w8a8_conv_quantizes_its_input():
    conv = torch.nn.Conv2d(2, 3, 3, padding=1)
    q = W8A8Conv2d(conv, act_scale=0.05)
    x = torch.linspace(-3, 3, 2 * 5 * 5).reshape(1, 2, 5, 5)
    # activation: round(x / 0.05) clamped to [-128, 127] -> saturates at -6.4 / 6.35
    xq = torch.clamp(torch.round(x / q.act_scale), -128, 127) * q.act_scale
    wq, ws = quantize_weight_int8(conv.weight.detach().numpy())
    # outside fp16_emulation the module dequantizes in float32 (q * scale, not rounded)
    w = torch.from_numpy(wq.astype(np.float32) * ws.astype(np.float32).reshape(-1, 1, 1, 1))
    want = torch.nn.functional.conv2d(xq, w, q.bias, padding=1)
    torch.testing.assert_close(q(x), want, atol=1e-5, rtol=1e-5)


def test_fp16_emulation_rounds_every_op():
    x = torch.tensor([1.0 / 3.0, 1000.1, 1e-3])
    with fp16_emulation():
        y = x * 3.0 + 0.1
    want = round_fp16(round_fp16(x * 3.0) + 0.1)
    assert torch.equal(y, want)
    assert not torch.equal(y, x * 3.0 + 0.1)


def test_quant_spec_validates_and_hashes_like_core():
    spec = QuantSpec.default("w8a8")
    assert spec.hash == quantization_hash(default_quantization("w8a8"))
    assert spec.calibration is not None and "backlit" in spec.calibration.scenes
    assert QuantSpec.default("int8").calibration is None
    bad = default_quantization("int8")
    bad["weights"]["granularity"] = "per_tensor"
    with pytest.raises(ConfigError, match=r"weights\.granularity"):
        QuantSpec.from_config(bad)
    bad = default_quantization("w8a8")
    del bad["activations"]["calibration"]
    with pytest.raises(ConfigError, match="calibration"):
        QuantSpec.from_config(bad)
    with pytest.raises(ConfigError, match="int8, w8a8"):
        QuantSpec.default("fp16")


def test_activation_ranges_and_scales(model):
    net = model.net

    def run() -> None:
        with torch.inference_mode():
            x = torch.ones(1, 3, 32, 32) * 0.5
            net(x, x, torch.ones(1, 1, 32, 32))

    ranges = collect_activation_ranges(net, run)
    assert set(ranges) == {n for n, _ in conv_layers(net)}
    scales = scales_from_ranges(ranges)
    for name, (lo, hi) in ranges.items():
        assert scales[name] == float(np.float16(max(abs(lo), abs(hi), 1e-4) / 127))
    # hooks are gone afterwards
    assert all(not c._forward_pre_hooks for _, c in conv_layers(net))
    with pytest.raises(ConfigError, match="never reached"):
        collect_activation_ranges(net, lambda: None)
