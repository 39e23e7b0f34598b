"""``ios-plan``: the manifest for a frame size plus its working-set and latency report."""

from __future__ import annotations

from dataclasses import dataclass

from core.model.infer import DEFAULT_CHECKPOINT
from core.progress import Progress, ProgressCallback, no_progress
from ios_bridge.budget import BudgetReport, DeviceBudget, budget_report
from ios_bridge.executor import ReferenceExecutor, make_runners
from ios_bridge.graph import model_stats
from ios_bridge.manifest import IosManifest, build_manifest
from ios_bridge.quant import PRECISIONS, ModelSource, QuantSpec, resolve_model
from ios_bridge.scenes import load_scene

__all__ = ["PlanResult", "ios_plan"]


@dataclass(frozen=True)
class PlanResult:
    """The plan and its budget report."""

    manifest: IosManifest
    report: BudgetReport


def ios_plan(
    checkpoint: ModelSource = DEFAULT_CHECKPOINT,
    precision: str = "fp16",
    *,
    frame_hw: tuple[int, int] = (6048, 8064),
    tile_px: int = 768,
    overlap_px: int = 48,
    budget: DeviceBudget | None = None,
    sample_scene: str | None = "backlit",
    progress: ProgressCallback = no_progress,
) -> PlanResult:
    """Build the manifest for ``frame_hw`` and compare its working set and latency with
    ``budget``.

    Latency samples: the reference executor, with ``precision``'s emulated runners (w8a8
    is sampled with int8 runners: its calibration is not needed for timing), on the
    simulated ``sample_scene`` sized for 2 x 2 tiles; ``None`` skips the sampling.
    Activations are counted on the float32 network's traced graphs (the same shapes at
    every precision).

    Raises: ConfigError (sizes, precision), CheckpointError.
    """
    from core.errors import ConfigError

    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    net, model_hash = resolve_model(checkpoint)
    quant = QuantSpec.default(precision) if precision in ("int8", "w8a8") else None
    manifest = build_manifest(
        net,
        model_hash,
        precision,
        frame_hw,
        tile_px=tile_px,
        overlap_px=overlap_px,
        quantization=None if quant is None else quant.config,
        quantization_hash=None if quant is None else quant.hash,
    )
    progress(Progress("plan", 0, 3, "tracing the models"))
    gain_stats, detail_stats = model_stats(
        net, (manifest.grid_h, manifest.grid_w), manifest.tile_side_px[0]
    )
    tile_ms: list[float] | None = None
    gain_ms = None
    if sample_scene is not None:
        progress(Progress("plan", 1, 3, f"sampling tile latency on {sample_scene}"))
        side = 2 * manifest.tile_side_px[0] - overlap_px
        side -= side % 4
        scene = load_scene(sample_scene, (side // 2, side // 2), seed=0)
        small = build_manifest(
            net, model_hash, precision, scene.shape, tile_px=tile_px, overlap_px=overlap_px
        )
        runners = make_runners(net, "int8" if precision == "w8a8" else precision)
        res = ReferenceExecutor(small, runners).run(
            scene.camera48, scene.anchor, scene.cfa, scene.wb_gains, unclipped=scene.unclipped
        )
        tile_ms = list(res.tile_ms.values())
        gain_ms = None  # the sample frame's grid is not the real one; the estimate counts it
    progress(Progress("plan", 3, 3, "done"))
    report = budget_report(
        manifest, net, gain_stats, detail_stats, budget, tile_ms=tile_ms, gain_ms=gain_ms
    )
    return PlanResult(manifest, report)
