"""Traced-graph counts and the Core ML friendly export of the two model functions."""

from __future__ import annotations

import pytest
import torch

from ios_bridge.errors import ExportToolError
from ios_bridge.graph import (
    DETAIL_INPUTS,
    DetailModel,
    GainModel,
    check_detail_ignores_guide,
    detail_example_inputs,
    export_program,
    gain_example_inputs,
    graph_stats,
    round_fp16,
)


class _Chain(torch.nn.Module):
    """conv(2->4, 3x3) -> relu -> conv(4->1, 1x1) on 8x8: every count by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.b = torch.nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)))


def test_graph_stats_counts_by_hand():
    stats = graph_stats(export_program(_Chain(), (torch.rand(1, 2, 8, 8),)))
    # MACs: conv a 4*8*8 outputs x (2*3*3) = 4608; conv b 1*8*8 x 4 = 256.
    assert stats.conv_macs == 4608 + 256
    # relu: 4*8*8 = 256 elementwise results.
    assert stats.elementwise_ops == 256
    # live FP16 bytes: conv a out (256 el) + relu out (256 el) while relu runs = 1024 B;
    # conv b's output is the graph output (not an activation).
    assert stats.peak_activation_bytes == 2 * (256 + 256)
    assert stats.input_bytes == 2 * 2 * 64 and stats.output_bytes == 2 * 64
    assert stats.parameters == (2 * 4 * 9 + 4) + (4 + 1)
    assert stats.op_counts == {"conv2d": 2, "relu": 1}


def test_detail_model_counts_and_exports_without_nan_to_num(model):
    net = model.net
    program = export_program(DetailModel(net), detail_example_inputs(net, 32))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not any("nan_to_num" in t for t in targets)
    stats = graph_stats(program)
    # Detail head MACs per pixel: convs 6->16, 16->16, 16->16, 16->3, 3x3 each:
    # (6*16 + 16*16 + 16*16 + 16*3) * 9 = (96 + 256 + 256 + 48) * 9 = 5904.
    assert stats.conv_macs == 5904 * 32 * 32
    # the traced program gives the eager module's result, NaN/inf inputs included
    ex = list(detail_example_inputs(net, 32))
    ex[0] = ex[0].clone()
    ex[0][0, 0, 0, 0] = float("nan")
    ex[0][0, 1, 3, 4] = float("inf")
    ex[1] = ex[1].clone()
    ex[1][0, 0, 5, 5] = float("-inf")
    with torch.no_grad():
        got = program.module()(*ex)
        want = DetailModel(net)(*ex)
    for g, w in zip(got, want, strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, w, atol=0, rtol=0)


def test_gain_model_is_fully_convolutional_at_grid_size(model):
    net = model.net
    ex = gain_example_inputs(net, (12, 20))
    program = export_program(GainModel(net), ex)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(*ex), net.grid_head(ex[0]))
    stats = graph_stats(program)
    assert stats.op_counts["conv2d"] == 9
    assert stats.parameters == sum(
        p.numel() for n, p in net.named_parameters() if not n.startswith("detail.")
    )


def test_detail_model_has_no_guidance_input(model, monkeypatch):
    assert DETAIL_INPUTS == ("pro", "conf", "gain_bins", "log2_global", "exposure")
    check_detail_ignores_guide(model.net)  # the shipped network's detail path ignores it
    net = model.net
    original = net.render_bins

    def reads_guide(pro, guide, conf, bins, lg, ex, grid=None):
        return original(pro + 0.01 * guide, guide, conf, bins, lg, ex, grid)

    monkeypatch.setattr(net, "render_bins", reads_guide)
    with pytest.raises(ExportToolError, match="reads the guidance"):
        check_detail_ignores_guide(net)


def test_fp16_subnormals_flush():
    x = torch.tensor([2.0**-15, 2.0**-14, -(2.0**-20), 1.0])
    assert torch.equal(round_fp16(x), x)  # subnormal float16 values survive plain rounding
    assert torch.equal(
        round_fp16(x, flush_subnormals=True), torch.tensor([0.0, 2.0**-14, 0.0, 1.0])
    )


def test_black_pixels_stay_finite_without_fp16_subnormals(model):
    # LOG_FLOOR = 2**-20 is a float16 subnormal: on hardware that flushes subnormals,
    # log2(0 + floor) is -inf; the net clamps its logs at -20, so an exact-black corner
    # stays finite (it gave NaN before the clamp).
    from ios_bridge.graph import fp16_emulation
    from ios_bridge.quant import variant_net

    net = variant_net(model.net, "fp16")
    ex = list(detail_example_inputs(net, 16))
    ex[0] = ex[0].clone()
    ex[0][:, :, :4, :4] = 0.0  # an exact-black corner
    with torch.no_grad(), fp16_emulation(flush_subnormals=True):
        output, log_gain = DetailModel(net)(*ex)
    assert torch.isfinite(output).all() and torch.isfinite(log_gain).all()
