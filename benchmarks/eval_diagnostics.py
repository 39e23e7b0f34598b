"""Diagnostics: accuracy per head, learned vs classical, and time per image (issue 7).

    python benchmarks/eval_diagnostics.py [--checkpoint C] [--seeds 40] [--threads 1]
                                          [--labels scene_referenced|as_rendered|both]

Sets (``training.diagnostics``, the same ones the training run reports):

- held-out scene types (``HOLDOUT_SCENES``: never seen in training), ``--seeds`` scene
  seeds each, one random degradation per image (128x96);
- training scene types with unseen seeds (a quarter of ``--seeds`` each).

Accuracy (``core.diagnostics.evaluation``): exposure = class (under/well/over) correct;
white balance = both correction gains within +-0.05 of the truth; saturation = class
correct, on chromatic images only (grey charts cannot show saturation).

Labels (``core.diagnostics.synthetic.LABEL_DEFINITIONS``): ``scene_referenced`` (the
default: each clean image placed at the reference key and chroma before it is degraded)
and ``as_rendered`` (the first definition, whose exposure and saturation labels are not
identifiable on unseen scene types); ``both`` prints the tables for each, on the same
scenes and degradations.

Time per image: ``optimize_corrections`` end to end on a held-out 128x96 image and on a
4032x3024 (12 MP) image, as ratios to one ``np.mean`` pass over the same 12 MP image
measured in the same run (times on this shared machine vary by up to 2x).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.diagnostics import load_diagnostic_model, optimize_corrections
from core.diagnostics.synthetic import HOLDOUT_SCENES, LABEL_DEFINITIONS
from training.diagnostics import (
    DiagConfig,
    evaluate_net,
    heldout_samples,
    seen_samples,
)


def _best_of(fn: object, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped model")
    p.add_argument("--seeds", type=int, default=40)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--labels", choices=[*LABEL_DEFINITIONS, "both"], default="both", help="label definition"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = load_diagnostic_model(args.checkpoint)
    cfg = DiagConfig()
    print(f"model {model.path.name} {model.hash[:16]}, torch threads {args.threads}")
    defs = list(LABEL_DEFINITIONS) if args.labels == "both" else [args.labels]
    held = []
    for labels in defs:
        held = heldout_samples(cfg, args.seeds, labels)
        seen = seen_samples(cfg, args.seeds, labels)
        res = evaluate_net(model.net, held, seen)
        for title, table, n in (
            (f"held-out scene types ({', '.join(HOLDOUT_SCENES)})", res.heldout, len(held)),
            ("training scene types, unseen seeds", res.seen, len(seen)),
        ):
            n_sat = next(iter(table.values())).n_saturation
            print(f"\n[{labels}] {title}: n = {n} (saturation: {n_sat} chromatic)")
            print(
                f"{'method':10s} {'exposure':>9s} {'WB +-0.05':>10s} {'saturation':>11s} "
                f"{'WB err':>7s} {'|ln g| err':>10s}"
            )
            for method, s in table.items():
                print(
                    f"{method:10s} {s.exposure:9.1%} {s.white_balance:10.1%} "
                    f"{s.saturation:11.1%} {s.wb_error:7.3f} {s.log_gamma_error:10.3f}"
                )
    small = held[0].image
    rng = np.random.default_rng(0)
    big = rng.uniform(0.0, 1.0, (3, 3024, 4032)).astype(np.float32)
    ref = _best_of(lambda: float(np.mean(big)), 3)
    print(f"\ntime per image (best of 3); reference np.mean over 12 MP = {ref * 1e3:.1f} ms")
    for method in ("classical", "learned"):
        t_small = _best_of(lambda m=method: optimize_corrections(small, method=m), 5)
        t_big = _best_of(lambda m=method: optimize_corrections(big, method=m), 3)
        print(
            f"{method:10s} 128x96: {t_small * 1e3:6.1f} ms ({t_small / ref:5.2f}x ref)   "
            f"12 MP: {t_big * 1e3:7.1f} ms ({t_big / ref:5.2f}x ref)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
