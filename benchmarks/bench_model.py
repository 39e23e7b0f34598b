"""Model cost: parameters, FLOPs per megapixel, CPU inference time per MP and peak memory.

Times whole-image ``core.model.infer.predict`` (demosaic + network + RAW-consistency
refinement) and the network alone on a simulated frame, against baseline B
(``core.baselines.baseline_gain_field``) on the same frame in the same run.

    python benchmarks/bench_model.py [--size 1008x756] [--threads 2] [--repeat 3]

--size is the RAW12 size (the ProRAW48 frame is twice that: 1008x756 -> 2016x1512).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def conv_flops(net: torch.nn.Module, h48: int, w48: int) -> tuple[float, float]:
    """(gain-head FLOPs, detail-head FLOPs) of one forward pass on an h48 x w48 frame,
    counting 2 FLOPs per multiply-add of every Conv2d (elementwise ops are negligible)."""
    from core.model.net import Linear48Net

    assert isinstance(net, Linear48Net)
    counts = {"gain": 0.0, "detail": 0.0}
    detail_convs = {id(m) for m in net.detail.modules()}

    def hook(mod: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        assert isinstance(mod, torch.nn.Conv2d)
        k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
        key = "detail" if id(mod) in detail_convs else "gain"
        counts[key] += 2.0 * out.numel() * k

    handles = [
        m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.inference_mode():
        x = torch.rand(1, 3, h48, w48)
        net(x, x, torch.ones(1, 1, h48, w48))
    for h in handles:
        h.remove()
    return counts["gain"], counts["detail"]


def _best(fn: object, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    from core.baselines import baseline_gain_field
    from core.model.infer import (
        DEFAULT_CHECKPOINT,
        load_default_model,
        load_model,
        predict,
        prepare_inputs,
    )
    from core.model.net import Linear48Net
    from core.simulate.pair import SimConfig, parse_size, simulate_pair
    from training.data import decode_simulated

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="1008x756", help="RAW12 size WxH")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    w12, h12 = parse_size(args.size)
    if args.checkpoint:
        model = load_model(args.checkpoint)
    elif DEFAULT_CHECKPOINT.is_file():
        model = load_default_model()
    else:
        model = None
    net = model.net if model else Linear48Net().eval()
    img = decode_simulated(simulate_pair(SimConfig(scene="backlit", w12=w12, h12=h12, seed=1)))
    h48, w48 = img.pro.shape[1:]
    mp = h48 * w48 / 1e6
    gain_f, detail_f = conv_flops(net, 256, 256)
    per_mp = 1e6 / (256 * 256)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def run_predict() -> None:
        predict(net, img.pro, img.anchor, img.cfa, img.wb, unclipped=img.unclipped)

    pro, guide, conf = prepare_inputs(img.pro, img.anchor, img.cfa, img.wb, unclipped=img.unclipped)

    def run_net() -> None:
        with torch.inference_mode():
            net(pro, guide, conf)

    def run_b() -> None:
        baseline_gain_field(img.pro, img.anchor, img.cfa, unclipped=img.unclipped)

    t_pred, t_net, t_b = (_best(f, args.repeat) for f in (run_predict, run_net, run_b))
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model: {model.path.name if model else 'untrained'} {model.hash[:16] if model else ''}")
    print(f"parameters: {net.n_parameters():,}")
    print(
        f"FLOPs per 48MP megapixel: {(gain_f + detail_f) * per_mp / 1e9:.2f} GFLOP "
        f"(gain head {gain_f * per_mp / 1e9:.3f}, detail head {detail_f * per_mp / 1e9:.2f})"
    )
    print(f"frame {w48}x{h48} ({mp:.2f} MP), {args.threads} threads, best of {args.repeat}")
    print("| step | s | s/MP | x baseline B |\n|---|---|---|---|")
    for name, t in (
        ("predict (demosaic+net+refine)", t_pred),
        ("network only", t_net),
        ("baseline B (reference)", t_b),
    ):
        print(f"| {name} | {t:.3f} | {t / mp:.3f} | {t / t_b:.2f} |")
    print(f"peak RSS {rss1:.0f} MiB (before timing {rss0:.0f} MiB)")
    np.seterr(all="ignore")


if __name__ == "__main__":
    main()
