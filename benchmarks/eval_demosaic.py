"""Guidance demosaic methods compared: quality on held-out truth and patterns, speed.

    python benchmarks/eval_demosaic.py [--size 256x192] [--per-scene 1] [--time-size 4032x3024]
        [--repeats 2] [--downstream N] [--markdown OUT.md]

Quality (:mod:`core.demosaic.evaluation`): natural simulator scenes at held-out seeds
(>= 9,000,000; the learned model never saw them), all four CFA phases, 12MP truth =
the 2x2-binned scene clipped at 1.0; PSNR (peak 1.0) and SSIM noise-free, PSNR from a
noisy anchor (RAW12-like shot + read noise) against the clean truth; PSNR on the pattern
scenes (zone plate, Siemens star, stripes, checkers, gradient sky, slanted edges, 1/f
fractal, white noise); the periodic-artifact score (dB of 2 px-period energy in the
log error, :func:`core.demosaic.periodic_artifact_db`), mean over the images.

Speed: each method on one natural mosaic of ``--time-size`` (default 4032x3024, a whole
RAW12 frame: per-MP costs are not constant, small images favour the light methods),
median of ``--repeats`` runs after one warm-up, in seconds per megapixel and as a ratio to
bilinear measured in the same run (the machine is shared, absolute times vary).

``--downstream N``: the shipped de-LTM model (trained with bilinear guidance) run on N
held-out simulated pairs with each guidance demosaic; truth PSNR after a global gain fit
and LTM residual. A better-looking guide is no use if the model was not trained on it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.demosaic import METHODS, demosaic, mosaic_from_rgb
from core.demosaic.evaluation import (
    HELDOUT_SEED,
    MethodScores,
    evaluation_cases,
    score_method,
    truth12,
)
from core.simulate.scenes import make_scene

ORDER = ("bilinear", "malvar", "dht", "aahd", "learned")


def parse_size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def quality(size: tuple[int, int], per_scene: int) -> dict[str, dict[str, MethodScores]]:
    out: dict[str, dict[str, MethodScores]] = {}
    for kind in ("natural", "pattern"):
        cases = evaluation_cases([kind], size12=size, per_scene=per_scene)
        out[kind] = {
            m: score_method(lambda x, p, m=m: demosaic(x, p, m), cases, noisy=kind == "natural")
            for m in ORDER
        }
    return out


def timing(size: tuple[int, int], repeats: int) -> dict[str, float]:
    """Seconds per megapixel of each method on one natural mosaic (median of repeats)."""
    w, h = size
    truth = truth12(make_scene("foliage", 2 * h, 2 * w, seed=HELDOUT_SEED))
    mosaic = mosaic_from_rgb(truth, "BGGR")
    mp = mosaic.size / 1e6
    out = {}
    for m in ORDER:
        demosaic(mosaic, "BGGR", m)  # warm-up: imports, model load, caches
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            demosaic(mosaic, "BGGR", m)
            runs.append(time.perf_counter() - t0)
        out[m] = statistics.median(runs) / mp
    return out


def downstream(n: int) -> dict[str, tuple[float, float]]:
    """(truth PSNR gain-fitted dB, LTM residual EV) of the shipped model per guidance."""
    from core.metrics import truth_metrics
    from core.model.infer import load_default_model, predict
    from core.simulate.pair import SimConfig, simulate_pair
    from core.simulate.scenes import scene_names
    from training.data import decode_simulated

    model = load_default_model()
    names = scene_names("natural")
    pairs = []
    for i in range(n):
        cfg = SimConfig(scene=names[i % len(names)], w12=256, h12=192, seed=HELDOUT_SEED + 500 + i)
        pairs.append(decode_simulated(simulate_pair(cfg)))
    res: dict[str, tuple[float, float]] = {}
    for m in ORDER:
        ps, lt = [], []
        for img in pairs:
            out = predict(
                model,
                img.pro,
                img.anchor,
                img.cfa,
                img.wb,
                unclipped=img.unclipped,
                demosaic_method=m,
            ).camera48
            tm = truth_metrics(out, img.truth)
            ps.append(tm.psnr_gain_fitted_db)
            lt.append(tm.ltm_residual_ev)
        res[m] = (float(np.nanmean(ps)), float(np.nanmean(lt)))
    return res


def table(q: dict[str, dict[str, MethodScores]], t: dict[str, float]) -> str:
    lines = [
        "| method | natural PSNR (dB) | natural SSIM | natural PSNR, noisy (dB) | "
        "pattern PSNR (dB) | artifact, natural (dB) | artifact, pattern (dB) | "
        "s/MP | x bilinear |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in ORDER:
        n, p = q["natural"][m], q["pattern"][m]
        lines.append(
            f"| {m} | {n.psnr_db:.2f} | {n.ssim:.4f} | {n.psnr_noisy_db:.2f} | "
            f"{p.psnr_db:.2f} | {n.artifact_db:.1f} | {p.artifact_db:.1f} | "
            f"{t[m]:.3f} | {t[m] / t['bilinear']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", default="256x192", help="12MP size of each evaluation image")
    p.add_argument("--per-scene", type=int, default=1)
    p.add_argument("--time-size", default="4032x3024", help="WxH of the timed mosaic")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--downstream", type=int, default=0, help="simulated pairs for the model")
    p.add_argument("--markdown", type=Path, default=None)
    args = p.parse_args(argv)
    assert set(ORDER) == set(METHODS), "a method is missing from the benchmark"
    t0 = time.perf_counter()
    t = timing(parse_size(args.time_size), args.repeats)
    q = quality(parse_size(args.size), args.per_scene)
    text = table(q, t)
    n_nat = len(next(iter(q["natural"].values())).per_case)
    n_pat = len(next(iter(q["pattern"].values())).per_case)
    text += (
        f"\n{n_nat} natural + {n_pat} pattern images of {args.size} (12MP grid), held-out "
        f"seeds; timing on one {args.time_size} mosaic, median of {args.repeats}; "
        f"bilinear {t['bilinear'] * 1000:.0f} ms/MP in this run.\n"
    )
    print(text, end="", flush=True)
    text_main, text = text, ""
    if args.downstream:
        d = downstream(args.downstream)
        text += (
            "\n| guidance | model truth PSNR, gain-fitted (dB) | LTM residual (EV) |\n"
            "|---|---|---|\n"
        )
        text += "".join(f"| {m} | {d[m][0]:.2f} | {d[m][1]:.3f} |\n" for m in ORDER)
        text += f"\n{args.downstream} simulated pairs (RAW12 256x192), shipped default.pt.\n"
    text += f"\ntotal {time.perf_counter() - t0:.0f} s\n"
    print(text, end="")
    if args.markdown:
        args.markdown.write_text(text_main + text)
    return 0 if all(math.isfinite(v) for v in t.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
