"""Core ML bridge figures: model cost, export, package sizes, reference executor, budget.

    python benchmarks/bench_ios.py [--frame 8064x6048] [--tile-px 768] [--overlap-px 48]
        [--scene backlit] [--scene-size 744x744] [--w8a8] [--threads 2]

Prints:
- parameters of the gain and detail packages and FLOPs per megapixel, counted from the
  traced modules (conv MACs x 2 + elementwise ops; gain model per frame pixel at 1/64
  resolution, detail model per tile pixel, plus the tile overlap overhead of the plan);
- export wall time per precision (fp16, int8 and with --w8a8 w8a8, which includes its
  8-scene calibration) at the plan's sizes, as ratios to the fp16 export of the same run;
  INT8 exports are forced into a temporary folder (no sign-off needed for a benchmark);
- package sizes (fp16 vs int8 vs w8a8);
- reference-executor tiles/s on a simulated scene (RAW12 --scene-size, 2 x 2 tiles of
  --tile-px by default) for fp32 and the fp16/int8 emulations, as ratios to
  ``core.model.infer.predict_tiled(refine=False)`` on the same frame in the same run;
- the working-set estimate of the 48MP plan against the default 1.5 GB budget.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def _tree_kib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame", default="8064x6048")
    ap.add_argument("--tile-px", type=int, default=768)
    ap.add_argument("--overlap-px", type=int, default=48)
    ap.add_argument("--scene", default="backlit")
    ap.add_argument("--scene-size", default="744x744", help="RAW12 WxH of the executor scene")
    ap.add_argument("--w8a8", action="store_true", help="also export w8a8 (calibrates 8 scenes)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.ERROR)

    from core.model.infer import load_default_model, predict_tiled
    from ios_bridge.executor import ReferenceExecutor, make_runners
    from ios_bridge.export import export_coreml
    from ios_bridge.graph import model_stats
    from ios_bridge.manifest import build_manifest
    from ios_bridge.plan import ios_plan
    from ios_bridge.scenes import load_scene

    fw, fh = _size(args.frame)
    model = load_default_model()
    net = model.net
    plan = build_manifest(
        net, model.hash, "fp16", (fh, fw), tile_px=args.tile_px, overlap_px=args.overlap_px
    )
    gain_stats, detail_stats = model_stats(net, (plan.grid_h, plan.grid_w), plan.tile_side_px[0])
    n_tiles = len(plan.tile_origins_y) * len(plan.tile_origins_x)
    t = plan.tile_side_px[0]
    mp = fh * fw / 1e6
    print(
        f"model {model.hash[:12]}: frame {fw}x{fh} ({mp:.1f} MP), {n_tiles} tiles of {t} px "
        f"(overlap {args.overlap_px}), gain grid {plan.grid_w}x{plan.grid_h}"
    )
    print(
        f"parameters: gain package {gain_stats.parameters:,}, detail package "
        f"{detail_stats.parameters:,} (network {net.n_parameters():,})"
    )
    detail_per_px = detail_stats.flops / (t * t)
    gain_per_frame_px = gain_stats.flops / (fh * fw)
    overhead = n_tiles * t * t / (fh * fw)
    print(
        f"FLOPs per megapixel: detail {detail_per_px * 1e6 / 1e9:.2f} GFLOP/MP per tile pixel "
        f"(conv MACs {detail_stats.conv_macs / (t * t):.0f}/px), "
        f"gain {gain_per_frame_px * 1e6 / 1e9:.3f} "
        f"GFLOP/MP; plan overlap x{overhead:.3f} -> "
        f"{(detail_per_px * overhead + gain_per_frame_px) * 1e6 / 1e9:.2f} GFLOP per output MP"
    )

    precisions = ["fp16", "int8"] + (["w8a8"] if args.w8a8 else [])
    times: dict[str, float] = {}
    sizes: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ios-") as tmp:
        for p in precisions:
            t0 = time.perf_counter()
            res = export_coreml(
                model,
                Path(tmp) / p,
                p,
                signoff_dir=Path(tmp) / "no-records",
                force=p != "fp16",
                tile_px=args.tile_px,
                overlap_px=args.overlap_px,
                frame_hw=(fh, fw),
            )
            times[p] = time.perf_counter() - t0
            sizes[p] = (_tree_kib(res.packages["gain"]), _tree_kib(res.packages["detail"]))
            assert all(c.ok for c in res.checks.values())
    print("export (torch.export + coremltools + verification), wall time:")
    for p in precisions:
        print(f"  {p:>5}: {times[p]:6.1f} s = {times[p] / times['fp16']:.2f}x fp16")
    print("package sizes (KiB): gain / detail")
    for p in precisions:
        g, d = sizes[p]
        print(f"  {p:>5}: {g:8.1f} / {d:8.1f}  ({(g + d) / sum(sizes['fp16']):.2f}x fp16)")

    sw, sh = _size(args.scene_size)
    scene = load_scene(args.scene, (sw, sh), seed=0)
    small = build_manifest(
        net, model.hash, "fp32", scene.shape, tile_px=args.tile_px, overlap_px=args.overlap_px
    )
    n_small = len(small.tile_origins_y) * len(small.tile_origins_x)
    inputs = (scene.camera48, scene.anchor, scene.cfa, scene.wb_gains)
    # warm-up on a 128 px crop (first-call allocations, oneDNN kernels) before timing
    crop = (scene.camera48[:, :128, :128], scene.anchor[:64, :64], scene.cfa, scene.wb_gains)
    tiny = build_manifest(net, model.hash, "fp32", (128, 128), tile_px=64, overlap_px=16)
    predict_tiled(model, *crop, refine=False, tile_px=64, overlap_px=16)
    for p in ("fp32", "fp16", "int8"):
        ReferenceExecutor(tiny, make_runners(net, p)).run(*crop)
    t0 = time.perf_counter()
    predict_tiled(
        model,
        *inputs,
        unclipped=scene.unclipped,
        refine=False,
        tile_px=args.tile_px,
        overlap_px=args.overlap_px,
    )
    ref = time.perf_counter() - t0
    print(
        f"reference executor on {args.scene} {scene.shape[1]}x{scene.shape[0]} ({n_small} tiles), "
        f"vs core predict_tiled(refine=False) {ref:.2f} s = {n_small / ref:.2f} tiles/s:"
    )
    tile_ms = []
    for p in ("fp32", "fp16", "int8"):
        ex = ReferenceExecutor(small, make_runners(net, p))
        t0 = time.perf_counter()
        r = ex.run(*inputs, unclipped=scene.unclipped)
        dt = time.perf_counter() - t0
        med = sorted(r.tile_ms.values())[len(r.tile_ms) // 2]
        if p == "fp32":
            tile_ms = list(r.tile_ms.values())
        print(
            f"  {p:>5}: {dt:6.2f} s = {n_small / dt:.2f} tiles/s = {dt / ref:.2f}x predict_tiled; "
            f"detail model median {med:.0f} ms/tile"
        )

    result = ios_plan(
        model,
        "fp16",
        frame_hw=(fh, fw),
        tile_px=args.tile_px,
        overlap_px=args.overlap_px,
        sample_scene=None,
    )
    from ios_bridge.budget import budget_report

    report = budget_report(result.manifest, net, gain_stats, detail_stats, tile_ms=tile_ms)
    print(report.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
