"""Working-set and latency estimate of the iOS plan for one frame, against a device budget.

Counted, not guessed, where it can be: activations come from the traced graphs
(``ios_bridge.graph.graph_stats``: peak of live tensors at FP16, node by node, no fusion),
buffers from the manifest's shapes, weights from the network at the package precision.
What cannot be measured here is an explicit, labelled assumption (Core ML runtime
overhead, the device's effective FP16 throughput and memory bandwidth).

Device-side buffers the plan assumes (DESIGN §6: memory bounded by the tile, not the frame,
for everything the network computes):

- the working-space inputs ``pro`` and ``conf`` resident for the frame at FP16 (three
  passes read them: exposure sums, splat, tiles); ``guide`` only until the splat pass is
  done (the detail model does not read it);
- the splat grid and the gain grid at FP16;
- per tile in flight: the detail model's inputs and outputs at FP16 and its activations;
- the output streamed by tile rows: an accumulator of (tile + overlap) rows x 4 channels
  float32 (Camera48 + log gain), rows written out as the next tile row completes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median

from core.errors import ConfigError
from core.model.net import Linear48Net
from ios_bridge.graph import GraphStats
from ios_bridge.manifest import IosManifest
from ios_bridge.quant import conv_layers

__all__ = [
    "BudgetReport",
    "DeviceBudget",
    "LatencyEstimate",
    "WorkingSet",
    "WorkingSetItem",
    "budget_report",
    "estimate_latency",
    "estimate_working_set",
    "weight_bytes",
]

MIB = 1024 * 1024


@dataclass(frozen=True)
class DeviceBudget:
    """A device's limits and the assumptions behind the estimate.

    Attributes:
        working_set_bytes: memory the app may hold while converting (default 1.5 GB).
        latency_s: wall time allowed for one frame.
        in_flight_tiles: tiles whose buffers exist at once (double buffering = 2).
        runtime_overhead_bytes: assumed Core ML runtime + compiled-model overhead.
        device_tflops: assumed effective FP16 throughput of the Neural Engine / GPU.
        device_bandwidth_gbs: assumed effective memory bandwidth.
    """

    working_set_bytes: int = 1_500_000_000
    latency_s: float = 10.0
    in_flight_tiles: int = 2
    runtime_overhead_bytes: int = 128 * MIB
    device_tflops: float = 2.0
    device_bandwidth_gbs: float = 50.0

    def __post_init__(self) -> None:
        checks = {
            "working_set_bytes": self.working_set_bytes > 0,
            "latency_s": self.latency_s > 0,
            "in_flight_tiles": self.in_flight_tiles >= 1,
            "runtime_overhead_bytes": self.runtime_overhead_bytes >= 0,
            "device_tflops": self.device_tflops > 0,
            "device_bandwidth_gbs": self.device_bandwidth_gbs > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"budget.{name}: invalid value {getattr(self, name)!r}")


@dataclass(frozen=True)
class WorkingSetItem:
    """One buffer class: its bytes, the stages it is alive in and how it was counted."""

    name: str
    bytes: int
    stages: tuple[str, ...]
    note: str


@dataclass(frozen=True)
class WorkingSet:
    """Per-stage totals of the items; the peak is the largest stage.

    Attributes:
        items: every buffer class.
        stage_bytes: stage -> sum of the items alive in it.
        peak_bytes, peak_stage: the largest stage.
    """

    items: tuple[WorkingSetItem, ...]
    stage_bytes: dict[str, int]
    peak_bytes: int
    peak_stage: str


#: prepare = input preparation + exposure sums + splat; gain = the gain model; tiles = the
#: tile loop.
STAGES = ("prepare", "gain", "tiles")


def weight_bytes(net: Linear48Net, precision: str) -> int:
    """Stored weight bytes at ``precision``: conv weights 4/2/1 bytes per element for
    fp32/fp16/int8 (+ a float16 scale per output channel), everything else float16
    (float32 for fp32)."""
    conv_w = {id(c.weight) for _, c in conv_layers(net)}
    total = 0
    for p in net.parameters():
        n = p.numel()
        if precision == "fp32":
            total += 4 * n
        elif id(p) in conv_w and precision in ("int8", "w8a8"):
            total += n + 2 * p.shape[0]
        else:
            total += 2 * n
    return total


def estimate_working_set(
    manifest: IosManifest,
    net: Linear48Net,
    gain_stats: GraphStats,
    detail_stats: GraphStats,
    budget: DeviceBudget | None = None,
) -> WorkingSet:
    """Working set of ``manifest``'s frame (see the module docstring for the buffers).

    Args:
        manifest: the plan (frame, tiles, grid).
        net: the network (weights; the manifest's precision sets their size).
        gain_stats, detail_stats: graph counts of the gain model at the grid size and the
            detail model at the tile size.
        budget: in-flight tiles and runtime overhead.
    """
    b = budget or DeviceBudget()
    h, w = manifest.frame_h, manifest.frame_w
    th, tw = manifest.tile_side_px
    k = manifest.bins
    hw = h * w
    per_tile_io = detail_stats.input_bytes + detail_stats.output_bytes
    band_rows = min(h, th + manifest.overlap_px)
    items = (
        WorkingSetItem(
            "weights",
            weight_bytes(net, manifest.precision),
            STAGES,
            f"both packages, {manifest.precision}",
        ),
        WorkingSetItem(
            "Core ML runtime",
            b.runtime_overhead_bytes,
            STAGES,
            "assumption (not measured here)",
        ),
        WorkingSetItem("pro (ProRAW48, FP16)", 3 * hw * 2, STAGES, f"3 x {w}x{h}"),
        WorkingSetItem("conf (FP16)", hw * 2, STAGES, f"1 x {w}x{h}"),
        WorkingSetItem(
            "guide (FP16)",
            3 * hw * 2,
            ("prepare",),
            f"3 x {w}x{h}; read by exposure sums and splat only, freed before the gain model",
        ),
        WorkingSetItem(
            "anchor + demosaic scratch",
            (hw // 4) * (4 + 1) + 3 * (hw // 4) * 4,
            ("prepare",),
            f"{w // 2}x{h // 2} float32 mosaic + mask and RGB demosaic",
        ),
        WorkingSetItem(
            "splat grid (FP16)",
            (2 * k + 7) * manifest.grid_h * manifest.grid_w * 2,
            ("prepare", "gain"),
            f"{2 * k + 7} x {manifest.grid_w}x{manifest.grid_h}",
        ),
        WorkingSetItem(
            "gain model activations",
            gain_stats.peak_activation_bytes,
            ("gain",),
            "peak live tensors of the traced graph, FP16",
        ),
        WorkingSetItem(
            "gain grid (FP16)",
            k * manifest.grid_h * manifest.grid_w * 2,
            ("gain", "tiles"),
            f"{k} x {manifest.grid_w}x{manifest.grid_h}",
        ),
        WorkingSetItem(
            "tile inputs + outputs",
            per_tile_io * b.in_flight_tiles,
            ("tiles",),
            f"{b.in_flight_tiles} tiles of {tw}x{th}: {per_tile_io / MIB:.1f} MiB each, FP16",
        ),
        WorkingSetItem(
            "detail model activations",
            detail_stats.peak_activation_bytes * b.in_flight_tiles,
            ("tiles",),
            f"{b.in_flight_tiles} x {detail_stats.peak_activation_bytes / MIB:.1f} MiB peak of "
            "the traced graph, FP16",
        ),
        WorkingSetItem(
            "output accumulator",
            4 * band_rows * w * 4,
            ("tiles",),
            f"{band_rows} rows x {w} x 4 channels float32, streamed by tile rows",
        ),
    )
    stage_bytes = {s: sum(i.bytes for i in items if s in i.stages) for s in STAGES}
    peak_stage = max(stage_bytes, key=lambda s: stage_bytes[s])
    return WorkingSet(items, stage_bytes, stage_bytes[peak_stage], peak_stage)


@dataclass(frozen=True)
class LatencyEstimate:
    """Frame latency: a device estimate from counted work and, for scale, the desktop.

    Attributes:
        frame_flops: gain model + every tile's detail model, FLOPs.
        frame_traffic_bytes: their activation memory traffic.
        device_s: max(compute time, memory time) under the budget's assumptions.
        tile_ms_samples: measured reference-executor detail-model calls (desktop CPU).
        desktop_frame_s: median tile ms x tiles + gain ms (desktop CPU, None unmeasured).
    """

    frame_flops: float
    frame_traffic_bytes: float
    device_s: float
    tile_ms_samples: tuple[float, ...] = ()
    gain_ms: float | None = None
    desktop_frame_s: float | None = None


def estimate_latency(
    manifest: IosManifest,
    gain_stats: GraphStats,
    detail_stats: GraphStats,
    budget: DeviceBudget | None = None,
    *,
    tile_ms: list[float] | None = None,
    gain_ms: float | None = None,
) -> LatencyEstimate:
    """Roofline-style device estimate plus the measured desktop extrapolation."""
    b = budget or DeviceBudget()
    n_tiles = len(manifest.tile_origins_y) * len(manifest.tile_origins_x)
    flops = gain_stats.flops + n_tiles * detail_stats.flops
    traffic = float(
        gain_stats.activation_traffic_bytes + n_tiles * detail_stats.activation_traffic_bytes
    )
    device_s = max(flops / (b.device_tflops * 1e12), traffic / (b.device_bandwidth_gbs * 1e9))
    desktop = None
    if tile_ms:
        desktop = (median(tile_ms) * n_tiles + (gain_ms or 0.0)) / 1000.0
    return LatencyEstimate(flops, traffic, device_s, tuple(tile_ms or ()), gain_ms, desktop)


@dataclass(frozen=True)
class BudgetReport:
    """Working set and latency against a budget, with pass/fail."""

    manifest: IosManifest
    working_set: WorkingSet
    latency: LatencyEstimate
    budget: DeviceBudget
    memory_ok: bool = field(init=False)
    latency_ok: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "memory_ok", self.working_set.peak_bytes <= self.budget.working_set_bytes
        )
        object.__setattr__(self, "latency_ok", self.latency.device_s <= self.budget.latency_s)

    @property
    def ok(self) -> bool:
        """Both within budget."""
        return self.memory_ok and self.latency_ok

    def text(self) -> str:
        """The printed report."""
        m, ws, lat, b = self.manifest, self.working_set, self.latency, self.budget
        n_tiles = len(m.tile_origins_y) * len(m.tile_origins_x)
        lines = [
            f"iOS plan: {m.frame_w}x{m.frame_h} frame, {n_tiles} tiles of {m.tile_px} px "
            f"(overlap {m.overlap_px}), gain grid {m.grid_w}x{m.grid_h}, {m.precision}",
            "working set (MiB):            " + "  ".join(f"{s:>8}" for s in STAGES),
        ]
        for item in ws.items:
            cols = "  ".join(
                f"{item.bytes / MIB:8.1f}" if s in item.stages else f"{'':8}" for s in STAGES
            )
            lines.append(f"  {item.name:<28}{cols}   {item.note}")
        lines.append(
            "  total                       "
            + "  ".join(f"{ws.stage_bytes[s] / MIB:8.1f}" for s in STAGES)
        )
        verdict = "PASS" if self.memory_ok else "FAIL"
        lines.append(
            f"peak {ws.peak_bytes / 1e9:.3f} GB ({ws.peak_stage}) vs budget "
            f"{b.working_set_bytes / 1e9:.3f} GB: {verdict}"
        )
        lines.append(
            f"latency: {lat.frame_flops / 1e9:.0f} GFLOP, {lat.frame_traffic_bytes / 1e9:.1f} GB "
            f"activation traffic per frame -> {lat.device_s:.2f} s at the assumed "
            f"{b.device_tflops:g} TFLOP/s, {b.device_bandwidth_gbs:g} GB/s vs budget "
            f"{b.latency_s:g} s: {'PASS' if self.latency_ok else 'FAIL'}"
        )
        if lat.tile_ms_samples:
            s = sorted(lat.tile_ms_samples)
            lines.append(
                f"desktop reference executor ({len(s)} tile samples, this CPU, not a device): "
                f"median {median(s):.0f} ms/tile, max {s[-1]:.0f} ms"
                + (f", gain model {lat.gain_ms:.0f} ms" if lat.gain_ms is not None else "")
                + (
                    f" -> {lat.desktop_frame_s:.1f} s per frame"
                    if lat.desktop_frame_s is not None
                    else ""
                )
            )
        lines.append(f"overall: {'PASS' if self.ok else 'FAIL'}")
        return "\n".join(lines)


def budget_report(
    manifest: IosManifest,
    net: Linear48Net,
    gain_stats: GraphStats,
    detail_stats: GraphStats,
    budget: DeviceBudget | None = None,
    *,
    tile_ms: list[float] | None = None,
    gain_ms: float | None = None,
) -> BudgetReport:
    """Working set + latency of ``manifest`` against ``budget`` (see the module docstring)."""
    b = budget or DeviceBudget()
    ws = estimate_working_set(manifest, net, gain_stats, detail_stats, b)
    lat = estimate_latency(manifest, gain_stats, detail_stats, b, tile_ms=tile_ms, gain_ms=gain_ms)
    return BudgetReport(manifest, ws, lat, b)
