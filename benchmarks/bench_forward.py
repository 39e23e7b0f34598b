"""Timing of the forward operator F and its adjoint on a full 48MP frame (8064x6048).

Run: ``python benchmarks/bench_forward.py [--repeats N]``. Every figure is the best of N
runs, printed in ms and as a ratio to a plain copy of the same Camera48 array
(``out[...] = src`` into a preallocated buffer) measured in the same run, so the ratios
carry across machines. Target for NumPy F: at most 3x the copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cfa import CfaPattern
from core.forward import adjoint_np, adjoint_torch, forward_np, forward_torch

H48, W48 = 6048, 8064


def best_of(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time in seconds over ``repeats`` runs after one warm-up."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    cfa = CfaPattern.from_name("BGGR")
    rng = np.random.default_rng(0)
    cam = rng.random((3, H48, W48), dtype=np.float32)
    copy_buf = np.empty_like(cam)
    mosaic = np.empty((H48 // 2, W48 // 2), dtype=np.float32)
    gains_px = rng.uniform(0.8, 1.2, size=mosaic.shape).astype(np.float32)
    gains_ch = np.array([2.0, 1.0, 1.6], dtype=np.float32)
    cam_t = torch.from_numpy(cam)[None]
    mosaic_t = torch.from_numpy(rng.random(mosaic.shape, dtype=np.float32))[None, None]

    def copy() -> None:
        copy_buf[...] = cam

    t_copy = best_of(copy, args.repeats)
    t_npcopy = best_of(lambda: np.copy(cam), args.repeats)

    rows: list[tuple[str, float]] = [
        ("numpy F, out= buffer", best_of(lambda: forward_np(cam, cfa, out=mosaic), args.repeats)),
        ("numpy F, new array", best_of(lambda: forward_np(cam, cfa), args.repeats)),
        (
            "numpy F, per-channel gains",
            best_of(lambda: forward_np(cam, cfa, gains_ch, out=mosaic), args.repeats),
        ),
        (
            "numpy F, per-pixel gains",
            best_of(lambda: forward_np(cam, cfa, gains_px, out=mosaic), args.repeats),
        ),
        ("numpy F* (adjoint)", best_of(lambda: adjoint_np(mosaic, cfa), args.repeats)),
    ]
    with torch.inference_mode():
        rows.append(("torch F (CPU)", best_of(lambda: forward_torch(cam_t, cfa), args.repeats)))
        rows.append(
            ("torch F* (CPU, adjoint)", best_of(lambda: adjoint_torch(mosaic_t, cfa), args.repeats))
        )

    size_mb = cam.nbytes / 1e6
    print(f"Camera48 (3, {H48}, {W48}) float32 = {size_mb:.0f} MB -> mosaic {mosaic.shape}")
    print(
        f"cpu cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
        f"best of {args.repeats}"
    )
    print(f"{'reference: out[...] = src copy':34s} {t_copy * 1e3:8.1f} ms   1.00x")
    print(
        f"{'reference: np.copy (allocates)':34s} {t_npcopy * 1e3:8.1f} ms   "
        f"{t_npcopy / t_copy:.2f}x"
    )
    for name, t in rows:
        print(f"{name:34s} {t * 1e3:8.1f} ms   {t / t_copy:.2f}x copy")
    ratio = rows[0][1] / t_copy
    verdict = "OK" if ratio <= 3.0 else "OVER TARGET"
    print(f"numpy F / copy = {ratio:.2f} (target <= 3.00): {verdict}")


if __name__ == "__main__":
    main()
