"""The two exported functions of the network, their traced graphs, and FP16 emulation.

``Linear48Net`` is split for devices (``core/model/net.py``):

- **gain model** = ``net.grid_head``: the splatted low-resolution grid
  (1, 2*bins + 7, Hg, Wg) -> natural-log gains per intensity bin (1, bins, Hg, Wg).
  One call per frame, fixed size (Hg, Wg) = ceil(H / pool_px), ceil(W / pool_px).
- **detail model** = ``net.render_bins`` on one tile: ``pro`` (1, 3, T, T), ``conf``
  (1, 1, T, T), ``gain_bins`` (1, bins, T, T) (``net.upsample_grid`` cropped at the
  tile's origin), ``log2_global``, ``exposure`` (1, 1, 1, 1) EV -> ``output`` (1, 3, T, T)
  L in working space and ``log_gain`` (1, 1, T, T) natural log. The detail path reads no
  guidance (``render_bins`` ignores ``guide``), so the package has no ``guide`` input and
  the device needs no guidance tiles; :func:`check_detail_ignores_guide` proves it for a
  network before export.

:func:`export_program` traces either with ``torch.export`` at a fixed shape (the form
coremltools converts), replacing ``nan_to_num`` by ``where``/``eq`` (coremltools lowers it
to a data-dependent ``non_zero``/``scatter_nd`` chain that no accelerator runs well).
:func:`graph_stats` counts conv multiply-adds and the peak of live activations from the
traced graph. :func:`fp16_emulation` (``core.model.quant``, re-exported here) rounds every
tensor a torch function returns to float16 (values kept in float32), the emulation of an
FP16 Core ML program on any machine.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from core.model.net import Linear48Net
from core.model.quant import FP16_MIN_NORMAL, fp16_emulation, round_fp16
from ios_bridge.errors import ExportToolError

__all__ = [
    "DETAIL_INPUTS",
    "DETAIL_OUTPUTS",
    "FP16_MIN_NORMAL",
    "GAIN_INPUTS",
    "GAIN_OUTPUTS",
    "DetailModel",
    "GainModel",
    "GraphStats",
    "check_detail_ignores_guide",
    "detail_example_inputs",
    "export_program",
    "fp16_emulation",
    "gain_example_inputs",
    "graph_stats",
    "model_stats",
    "quiet_third_party",
    "round_fp16",
]

GAIN_INPUTS: tuple[str, ...] = ("grid_in",)
GAIN_OUTPUTS: tuple[str, ...] = ("log_gain_bins",)
DETAIL_INPUTS: tuple[str, ...] = ("pro", "conf", "gain_bins", "log2_global", "exposure")
DETAIL_OUTPUTS: tuple[str, ...] = ("output", "log_gain")


class GainModel(nn.Module):
    """``net.grid_head`` as a module: (1, 2*bins + 7, Hg, Wg) -> (1, bins, Hg, Wg) log gains."""

    def __init__(self, net: Linear48Net) -> None:
        super().__init__()
        self.net = net

    def forward(self, grid_in: Tensor) -> Tensor:
        """Shapes: (N, 2*bins + 7, Hg, Wg) -> (N, bins, Hg, Wg); natural log, bounded."""
        return self.net.grid_head(grid_in)


class DetailModel(nn.Module):
    """``net.render_bins`` on one tile, returning (output, log_gain); no guidance input."""

    def __init__(self, net: Linear48Net) -> None:
        super().__init__()
        self.net = net

    def forward(
        self,
        pro: Tensor,
        conf: Tensor,
        gain_bins: Tensor,
        log2_global: Tensor,
        exposure: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Shapes: pro (N, 3, T, T); conf (N, 1, T, T); gain_bins (N, bins, T, T);
        log2_global, exposure (N, 1, 1, 1) EV -> output (N, 3, T, T) working space,
        log_gain (N, 1, T, T) natural log. ``render_bins`` does not read its ``guide``
        argument (:func:`check_detail_ignores_guide`); ``pro`` stands in for its shape."""
        res = self.net.render_bins(pro, pro, conf, gain_bins, log2_global, exposure)
        return res.output, res.log_gain


def check_detail_ignores_guide(net: Linear48Net, tile_px: int = 16) -> None:
    """Raise ExportToolError if ``net.render_bins`` depends on its ``guide`` argument
    (then the detail package would need a guidance input): two random guides on the
    same tile must give bit-identical outputs."""
    gen = torch.Generator().manual_seed(1)
    t, k = tile_px, net.config.bins
    pro = torch.rand(1, 3, t, t, generator=gen) * 2.0
    conf = (torch.rand(1, 1, t, t, generator=gen) > 0.2).float()
    bins = 0.3 * torch.randn(1, k, t, t, generator=gen)
    lg, ex = torch.full((1, 1, 1, 1), 0.4), torch.full((1, 1, 1, 1), -2.5)
    with torch.no_grad():
        outs = [
            net.render_bins(pro, torch.rand(1, 3, t, t, generator=gen) * 4.0, conf, bins, lg, ex)
            for _ in range(2)
        ]
    if not all(torch.equal(a, b) for a, b in zip(outs[0][:2], outs[1][:2], strict=True)):
        raise ExportToolError(
            "the detail head reads the guidance: ios_bridge exports it without a guide "
            "input; add one to DetailModel and the manifest before exporting this model"
        )


def gain_example_inputs(net: Linear48Net, grid_hw: tuple[int, int]) -> tuple[Tensor]:
    """A deterministic gain-model input of the export shape (1, 2*bins + 7, Hg, Wg)."""
    gen = torch.Generator().manual_seed(0)
    c = 2 * net.config.bins + 7
    return (torch.rand(1, c, grid_hw[0], grid_hw[1], generator=gen),)


def detail_example_inputs(net: Linear48Net, tile_px: int) -> tuple[Tensor, ...]:
    """Deterministic detail-model inputs of one (tile_px x tile_px) tile, in
    :data:`DETAIL_INPUTS` order."""
    gen = torch.Generator().manual_seed(0)
    t, k = tile_px, net.config.bins
    return (
        torch.rand(1, 3, t, t, generator=gen),
        torch.rand(1, 1, t, t, generator=gen),
        0.1 * torch.randn(1, k, t, t, generator=gen),
        torch.zeros(1, 1, 1, 1),
        torch.full((1, 1, 1, 1), -3.0),
    )


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    """Silence torch.export's and coremltools' own deprecation/resource warnings (their
    internals, not ours) for the duration of a trace or conversion."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning, ResourceWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


def _nan_to_num(
    x: Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None
) -> Tensor:
    """``torch.nan_to_num`` from elementwise compares and selects (Core ML friendly)."""
    info = torch.finfo(x.dtype)
    hi = info.max if posinf is None else posinf
    lo = info.min if neginf is None else neginf
    x = torch.where(x == float("inf"), torch.full_like(x, hi), x)
    x = torch.where(x == float("-inf"), torch.full_like(x, lo), x)
    return torch.where(x != x, torch.full_like(x, nan), x)


def export_program(module: nn.Module, example: tuple[Tensor, ...]) -> torch.export.ExportedProgram:
    """``torch.export`` ``module`` at the example's fixed shapes, ``nan_to_num`` decomposed.

    Raises:
        ExportToolError: torch.export failed (one line naming the module).
    """
    module.eval()
    table: dict[Any, Callable[..., Tensor]] = {torch.ops.aten.nan_to_num.default: _nan_to_num}
    try:
        with quiet_third_party(), torch.no_grad():
            return torch.export.export(module, example).run_decompositions(table)
    except Exception as err:  # torch.export raises many types; translate at the boundary
        raise ExportToolError(
            f"torch.export failed on {type(module).__name__}: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from err


@dataclass(frozen=True)
class GraphStats:
    """Cost of one call of a traced function, counted on its graph.

    Attributes:
        conv_macs: multiply-adds of every convolution.
        elementwise_ops: output elements of every other op (~1 FLOP each).
        activation_traffic_bytes: every intermediate tensor written once and read once
            (2 x its FP16 bytes): the memory traffic of one call without fusion.
        peak_activation_bytes: largest sum of live intermediate tensors while running
            the graph node by node (a tensor lives from its op to its last user; views
            are counted as copies, no fusion), at 2 bytes per float (FP16), 1 per
            int8/bool element; inputs and outputs excluded.
        input_bytes, output_bytes: the function's inputs and outputs at FP16.
        parameters: elements of the weights and buffers the graph uses.
        op_counts: aten op name -> count.
    """

    conv_macs: int
    elementwise_ops: int
    activation_traffic_bytes: int
    peak_activation_bytes: int
    input_bytes: int
    output_bytes: int
    parameters: int
    op_counts: dict[str, int]

    @property
    def flops(self) -> float:
        """2 x conv multiply-adds + elementwise ops."""
        return 2.0 * self.conv_macs + self.elementwise_ops


def _nbytes(val: Any) -> int:
    """FP16-equivalent bytes of a traced value (tensor or tuple of tensors)."""
    if isinstance(val, torch.Tensor):
        per = 1 if val.dtype in (torch.bool, torch.int8, torch.uint8) else 2
        return int(val.numel()) * per
    if isinstance(val, (tuple, list)):
        return sum(_nbytes(v) for v in val)
    return 0


def graph_stats(program: torch.export.ExportedProgram) -> GraphStats:
    """Count conv MACs, elementwise work and peak live activations (see :class:`GraphStats`)."""
    graph = program.graph
    nodes = list(graph.nodes)
    order = {n: i for i, n in enumerate(nodes)}
    user_inputs = set(program.graph_signature.user_inputs)
    out_node = next(n for n in nodes if n.op == "output")
    outputs = {a for a in out_node.all_input_nodes}
    last_use = {n: max((order[u] for u in n.users), default=order[n]) for n in nodes}
    frees: dict[int, list[Any]] = {}
    for n in nodes:
        if n.op == "call_function" and n not in outputs:
            frees.setdefault(last_use[n], []).append(n)
    live = peak = traffic = 0
    macs = elementwise = 0
    counts: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if n.op != "call_function":
            continue
        val = n.meta.get("val")
        name = str(n.target).removeprefix("aten.").split(".")[0]
        counts[name] = counts.get(name, 0) + 1
        if n.target is torch.ops.aten.conv2d.default:
            w = n.args[1].meta["val"]
            # weight (Cout, Cin / groups, kh, kw): MACs per output element = its last 3 dims
            macs += int(val.numel()) * int(w.shape[1]) * int(w.shape[2]) * int(w.shape[3])
        elif isinstance(val, torch.Tensor):
            elementwise += int(val.numel())
        if n not in outputs:
            live += _nbytes(val)
            peak = max(peak, live)
            traffic += 2 * _nbytes(val)
        for dead in frees.get(i, []):
            live -= _nbytes(dead.meta.get("val"))
    inputs = sum(
        _nbytes(n.meta.get("val")) for n in nodes if n.op == "placeholder" and n.name in user_inputs
    )
    sig = program.graph_signature
    weights = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
    params = sum(
        int(n.meta["val"].numel())
        for n in nodes
        if n.op == "placeholder" and n.name in weights and n.users
    )
    return GraphStats(
        conv_macs=macs,
        elementwise_ops=elementwise,
        activation_traffic_bytes=traffic,
        peak_activation_bytes=peak,
        input_bytes=inputs,
        output_bytes=sum(_nbytes(n.meta.get("val")) for n in outputs),
        parameters=params,
        op_counts=dict(sorted(counts.items())),
    )


_STATS_CACHE: dict[tuple[int, str, tuple[int, ...]], GraphStats] = {}


def model_stats(
    net: Linear48Net, grid_hw: tuple[int, int], tile_px: int
) -> tuple[GraphStats, GraphStats]:
    """(gain model stats at ``grid_hw``, detail model stats on a ``tile_px`` tile), traced
    once per (network, size) in this process (a trace takes seconds)."""
    gkey = (id(net), "gain", tuple(grid_hw))
    dkey = (id(net), "detail", (tile_px,))
    if gkey not in _STATS_CACHE:
        _STATS_CACHE[gkey] = graph_stats(
            export_program(GainModel(net), gain_example_inputs(net, grid_hw))
        )
    if dkey not in _STATS_CACHE:
        _STATS_CACHE[dkey] = graph_stats(
            export_program(DetailModel(net), detail_example_inputs(net, tile_px))
        )
    return _STATS_CACHE[gkey], _STATS_CACHE[dkey]
