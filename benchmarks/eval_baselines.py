"""Baselines A (global) and B (gain field) on every simulated scene, through the real files.

For each scene a pair is simulated (noise, vignetting GainMap, random LTM operator baked
into ProRAW pixels, iOS 15-style white balance), written as DNGs, read back with the
project's readers and converted by both baselines. Prints a Markdown table: anchor PSNR
(F(output) vs the RAW12 mosaic, unclipped pixels) and, against the simulator's ground
truth, PSNR after one global gain fit, the LTM residual and the halo indicator (EV).

    python benchmarks/eval_baselines.py [--size 512x384] [--seed 11]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    from core.baselines import baseline_gain_field, baseline_global
    from core.io.pair import load_pair
    from core.metrics import truth_metrics
    from core.pipeline import pair_anchor_metrics
    from core.simulate.pair import SimConfig, parse_size, simulate_pair, write_pair
    from core.simulate.scenes import scene_names

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="512x384", help="RAW12 size WxH")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    w12, h12 = parse_size(args.size)
    print(f"RAW12 {w12}x{h12}, ProRAW48 {2 * w12}x{2 * h12}, seed {args.seed}\n")
    print(
        "| scene | LTM | anchor PSNR A | anchor PSNR B | truth PSNR A | truth PSNR B "
        "| LTM resid. A | LTM resid. B | halo A | halo B |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    wins = 0
    names = scene_names()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, scene in enumerate(names):
            sim = simulate_pair(SimConfig(scene=scene, w12=w12, h12=h12, seed=args.seed + i))
            paths = write_pair(sim, Path(tmp) / scene)
            pair = load_pair(paths.raw12, paths.proraw48)
            cfa = pair.raw12.cfa
            a = baseline_global(pair.camera48, pair.anchor, cfa, unclipped=pair.unclipped)
            b = baseline_gain_field(pair.camera48, pair.anchor, cfa, unclipped=pair.unclipped)
            ma, mb = pair_anchor_metrics(a.camera48, pair), pair_anchor_metrics(b.camera48, pair)
            ta, tb = truth_metrics(a.camera48, sim.truth), truth_metrics(b.camera48, sim.truth)
            wins += int(mb.psnr_db > ma.psnr_db)
            print(
                f"| {scene} | {sim.config.ltm} | {ma.psnr_db:.2f} | {mb.psnr_db:.2f} "
                f"| {ta.psnr_gain_fitted_db:.2f} | {tb.psnr_gain_fitted_db:.2f} "
                f"| {ta.ltm_residual_ev:.3f} | {tb.ltm_residual_ev:.3f} "
                f"| {ta.halo_indicator_ev:.3f} | {tb.halo_indicator_ev:.3f} |"
            )
    print(
        f"\ngain field beats global on anchor PSNR on {wins}/{len(names)} scenes "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    if wins < len(names):
        raise SystemExit(1)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
