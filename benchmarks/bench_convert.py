"""Full-size conversion benchmark: an 8064x6048 simulated pair through ``convert``.

Prints wall time and peak RSS of the conversion (run in a child process so its peak RSS
is its own: VmHWM of the child), per stage, and the ratio to a reference measured in the
same run: decoding the ProRAW48 alone (the unavoidable part of any conversion).

    python benchmarks/bench_convert.py [--method gain-field] [--size 4032x3024] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
mode, raw12, proraw48, out, method = sys.argv[1:6]
t0 = time.perf_counter()
if mode == "reference":
    from core.io.proraw48 import read_proraw48
    read_proraw48(proraw48)
    stages = {{}}
else:
    from core.pipeline import ConvertOptions, convert
    result = convert(raw12, proraw48, out, ConvertOptions(method=method))
    stages = result.report["timings_s"]
    stages["psnr_db"] = result.anchor.psnr_db
    stages["method"] = result.decision.used
    stages["tiles"] = result.report["method"]["baseline_stats"].get("tiles", 0)
wall = time.perf_counter() - t0
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec from the (large) parent.
with open("/proc/self/status") as status:
    hwm = [line for line in status if line.startswith("VmHWM:")]
rss_mib = (int(hwm[0].split()[1]) / 1024 if hwm
           else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps({{"wall_s": wall, "peak_rss_mib": rss_mib, **stages}}))
"""


def run_child(mode: str, raw12: Path, proraw48: Path, out: Path, method: str) -> dict:
    code = CHILD.format(repo=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", code, mode, str(raw12), str(proraw48), str(out), method],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--method", default="gain-field")
    parser.add_argument("--size", default="4032x3024", help="RAW12 size WxH")
    parser.add_argument("--scene", default="backlit")
    parser.add_argument("--keep", type=Path, help="keep the pair and output in this folder")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the pair already in --keep (no simulation)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from core.simulate.pair import SimConfig, parse_size, simulate_pair, write_pair

    w12, h12 = parse_size(args.size)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="l48bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.reuse and (folder / "raw12.dng").is_file() and (folder / "proraw48.dng").is_file():
        paths = SimpleNamespace(raw12=folder / "raw12.dng", proraw48=folder / "proraw48.dng")
        print(f"reusing the pair in {folder}")
    else:
        sim = simulate_pair(SimConfig(scene=args.scene, w12=w12, h12=h12, seed=0))
        paths = write_pair(sim, folder)
        print(f"simulated {2 * w12}x{2 * h12} pair in {time.perf_counter() - t0:.1f} s -> {folder}")
    ref = run_child("reference", paths.raw12, paths.proraw48, folder / "out.dng", args.method)
    conv = run_child("convert", paths.raw12, paths.proraw48, folder / "out.dng", args.method)
    print(
        f"reference (decode ProRAW48 only): {ref['wall_s']:.2f} s, "
        f"peak RSS {ref['peak_rss_mib']:.0f} MiB"
    )
    print(
        f"convert --method {args.method}: {conv['wall_s']:.2f} s, "
        f"peak RSS {conv['peak_rss_mib']:.0f} MiB, anchor PSNR {conv['psnr_db']:.2f} dB, "
        f"method used: {conv['method']}"
    )
    print(
        "  stages: "
        + ", ".join(f"{k} {v:.2f}" for k, v in conv.items() if k.endswith("_s") and k != "wall_s")
    )
    print(
        f"ratio convert / decode-only: time {conv['wall_s'] / ref['wall_s']:.2f}x, "
        f"peak RSS {conv['peak_rss_mib'] / ref['peak_rss_mib']:.2f}x"
    )
    print(
        f"targets (issue 2): < 60 s and < 6144 MiB on 2 cores -> "
        f"{'met' if conv['wall_s'] < 60 and conv['peak_rss_mib'] < 6144 else 'NOT met'}"
    )
    if args.method in ("auto", "model"):
        n_tiles = conv.get("tiles")
        if n_tiles:
            print(
                f"model tiles: {n_tiles:.0f}, "
                f"{n_tiles / conv['method_s']:.2f} tiles/s (method stage)"
            )
        print(
            f"targets (issue 5, default model): < 90 s and < 3072 MiB on 2 cores -> "
            f"{'met' if conv['wall_s'] < 90 and conv['peak_rss_mib'] < 3072 else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
