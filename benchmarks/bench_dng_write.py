"""Benchmark: write a 48MP (8064x6048) Linear48 DNG in each storage format.

Prints wall time, throughput (MB/s of uncompressed uint16 RGB, 290 MB per image) and the
ratio to a reference measured in the same run and folder: ``np.save`` of the same uint16
(H, W, 3) array (a plain sequential write of the same bytes, fsync'ed like the DNG).

    python benchmarks/bench_dng_write.py [--height 6048 --width 8064] [--threads 0]
                                         [--dir /tmp] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.io.captures import CameraIdentity, ColorMetadata
from core.io.dng_writer import DngWriteOptions, write_linear_dng


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random-ish smooth Camera48 (3, H, W) float32: low-res noise upsampled + fine grain."""
    rng = np.random.default_rng(seed)
    small = rng.random((3, height // 64 + 2, width // 64 + 2), dtype=np.float32)
    ys = np.linspace(0, small.shape[1] - 1.001, height, dtype=np.float32)
    xs = np.linspace(0, small.shape[2] - 1.001, width, dtype=np.float32)
    y0, x0 = ys.astype(np.intp), xs.astype(np.intp)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    out = np.empty((3, height, width), np.float32)
    for c in range(3):  # bilinear upsample, one plane at a time
        s = small[c]
        top = s[y0][:, x0] * (1 - fx) + s[y0][:, x0 + 1] * fx
        bot = s[y0 + 1][:, x0] * (1 - fx) + s[y0 + 1][:, x0 + 1] * fx
        out[c] = top * (1 - fy) + bot * fy
    out *= np.float32(0.6)
    out += rng.standard_normal(size=out.shape, dtype=np.float32) * np.float32(0.002)
    np.clip(out, 0, None, out=out)
    return out


def reference_seconds(codes: np.ndarray, folder: Path) -> float:
    """np.save of the uint16 array + fsync: the plain cost of writing these bytes."""
    path = folder / "bench_ref.npy"
    t0 = time.perf_counter()
    with open(path, "wb") as fh:
        np.save(fh, codes)
        fh.flush()
        os.fsync(fh.fileno())
    dt = time.perf_counter() - t0
    path.unlink()
    return dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=6048)
    parser.add_argument("--width", type=int, default=8064)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    color = ColorMetadata(
        color_matrix1=np.eye(3),
        color_matrix2=np.eye(3),
        calibration_illuminant1=17,
        calibration_illuminant2=21,
        as_shot_neutral=np.array([0.45, 1.0, 0.55]),
    )
    identity = CameraIdentity(
        make="Apple", model="iPhone 15 Pro", unique_camera_model="iPhone16,1 back camera"
    )
    t0 = time.perf_counter()
    img = smooth_image(args.height, args.width)
    print(
        f"image {args.width}x{args.height}, built in {time.perf_counter() - t0:.1f} s; "
        f"threads={args.threads or os.cpu_count()}"
    )
    codes = np.rint(np.clip(img, 0, 1) * 65535).astype(np.uint16).transpose(1, 2, 0).copy()
    mb = codes.nbytes / 1e6

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        ref = min(reference_seconds(codes, folder) for _ in range(args.repeat))
        print(
            f"{'reference np.save':<22} {ref:7.2f} s {mb / ref:8.0f} MB/s   1.00x "
            f"{codes.nbytes / 1e6:8.0f} MB"
        )
        cases = {
            "uint16 ljpeg-tiles": DngWriteOptions(threads=args.threads),
            "uint16 strips": DngWriteOptions(layout="strips", threads=args.threads),
            "float32 deflate-tiles": DngWriteOptions(sample_format="float32", threads=args.threads),
            "float16 deflate-tiles": DngWriteOptions(sample_format="float16", threads=args.threads),
        }
        for name, options in cases.items():
            best = None
            for _ in range(args.repeat):
                info = write_linear_dng(
                    folder / "bench.dng", img, color=color, identity=identity, options=options
                )
                best = info if best is None or info.encode_seconds < best.encode_seconds else best
            assert best is not None
            dt = best.encode_seconds
            print(
                f"{name:<22} {dt:7.2f} s {mb / dt:8.0f} MB/s {dt / ref:6.2f}x "
                f"{best.bytes_written / 1e6:8.0f} MB  (tile {best.tile_size})"
            )


if __name__ == "__main__":
    main()
