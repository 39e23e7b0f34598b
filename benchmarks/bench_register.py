"""Time registration of a full 8064x6048 pair on this machine (issue 3: under 15 s).

The pair is synthetic but full size: a natural scene (``core.simulate.scenes``) as the
truth, the RAW12 anchor ``F(truth)`` with shot noise, and Camera48 = the truth times a
local tone mapping gain, warped by a known misregistration (translation, zoom, radial
k1) with ``core.geometry.warp``. ``--ltm smooth`` (default) is a smooth gain field;
``--ltm bilateral`` (or ``blur``, ``grid_table``, ``exposure_fusion``) runs that operator of
``core.simulate.ltm`` at full resolution (edge-aware: the gain follows each pixel).
Prints the registration time (and its stages), the time of ``apply_registration`` (one
banded grid_sample of the frame), and their ratio to references measured in the same
run: one ``F(camera48)`` (``forward_np``) and one full-frame grid_sample. Also prints the
true remaining misalignment (RMS, 48MP px) and the gate's figures.

Run: ``python benchmarks/bench_register.py [--scene natural_coffee] [--size 8064x6048]
[--ltm smooth|blur|bilateral|grid_table|exposure_fusion] [--no-edge-bias] [--no-gain-mesh]``
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from core.cfa import CfaPattern
from core.forward import forward_np
from core.geometry import refine, registration
from core.geometry.registration import apply_registration, register
from core.geometry.warp import WarpParams, source_coords, warp
from core.simulate import ltm
from core.simulate.scenes import make_scene


def true_rms(sim: WarpParams, est: WarpParams, h: int, w: int) -> float:
    """RMS over the frame of |W_sim(W_est(q)) - q| (48MP px): 0 for a perfect inverse."""
    x = torch.arange(0, w, 16, dtype=torch.float64)[None, :]
    y = torch.arange(0, h, 16, dtype=torch.float64)[:, None]
    sx, sy = source_coords(est, x, y, frame_h=h, frame_w=w)
    tx, ty = source_coords(sim, sx, sy, frame_h=h, frame_w=w)
    return float(torch.sqrt(((tx - x) ** 2 + (ty - y) ** 2).mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default="natural_coffee")
    ap.add_argument("--size", default="8064x6048")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ltm", default="smooth", choices=["smooth", *ltm.LTM_OPERATORS])
    ap.add_argument(
        "--no-edge-bias",
        action="store_true",
        help="ablation: no edge-polarity term in the pixel-stage fit",
    )
    ap.add_argument(
        "--no-gain-mesh",
        action="store_true",
        help="ablation: no per-patch gain mesh in the pixel stage",
    )
    args = ap.parse_args()
    if args.no_edge_bias:
        registration._EDGE_BIAS = False
    if args.no_gain_mesh:
        refine._OPTIONS = dataclasses.replace(refine.options(), gain_mesh=False)
    w48, h48 = (int(v) for v in args.size.split("x"))
    rng = np.random.default_rng(args.seed)
    cfa = CfaPattern.from_name("BGGR")

    t = time.perf_counter()
    truth = make_scene(args.scene, h48, w48, seed=args.seed)
    truth *= np.float32(0.3 / max(float(np.median(truth[1, ::16, ::16])), 1e-6))
    anchor = forward_np(truth, cfa)
    anchor += np.sqrt(np.maximum(anchor, 0) / 1500.0).astype(np.float32) * rng.standard_normal(
        anchor.shape, dtype=np.float32
    )
    unclipped = anchor < 0.97
    anchor = np.minimum(anchor, 1.0)
    if args.ltm == "smooth":
        yy, xx = np.mgrid[0:h48:64, 0:w48:64].astype(np.float32)
        gain_lo = np.exp(0.6 * np.sin(xx / w48 * 5.0) * np.cos(yy / h48 * 4.0)).astype(np.float32)
        gain = torch.nn.functional.interpolate(
            torch.from_numpy(gain_lo)[None, None],
            size=(h48, w48),
            mode="bilinear",
            align_corners=True,
        )[0, 0].numpy()
    else:
        _, gain = ltm.apply_ltm(truth, args.ltm, strength=1.0, rng=rng)
    truth *= gain[None]
    sim = WarpParams(translation_px=(5.3, -7.6), zoom=1.002, radial=(0.01, 0.0, 0.0))
    camera48 = warp(truth, sim)
    del truth, gain
    print(f"built a {w48}x{h48} pair in {time.perf_counter() - t:.1f} s")

    t = time.perf_counter()
    forward_np(camera48, cfa)
    t_f = time.perf_counter() - t
    t = time.perf_counter()
    warp(camera48, WarpParams(translation_px=(0.5, 0.5)))
    t_gs = time.perf_counter() - t

    t = time.perf_counter()
    result = register(camera48, anchor, cfa, unclipped=unclipped)
    t_reg = time.perf_counter() - t
    t = time.perf_counter()
    apply_registration(camera48, result)
    t_apply = time.perf_counter() - t

    print(f"torch threads: {torch.get_num_threads()}")
    print(f"reference F(camera48) (forward_np):    {t_f:6.2f} s")
    print(f"reference full-frame grid_sample warp: {t_gs:6.2f} s")
    print(
        f"register():            {t_reg:6.2f} s  = {t_reg / t_f:5.1f} x F, "
        f"{t_reg / t_gs:5.1f} x grid_sample  (budget 15 s)"
    )
    print(f"apply_registration():  {t_apply:6.2f} s  = {t_apply / t_gs:5.2f} x grid_sample")
    print(f"true residual: {true_rms(sim, result.params, h48, w48):.3f} px RMS (48MP)")
    print(f"estimated residual: {result.residual_rms_px:.3f} px; gate passed: {result.gate.passed}")
    print(f"params: {result.params}")
    flow = None if result.flow is None else result.flow.shape
    st = result.stats
    cells = st.get("seconds_pyramid_fit", 0.0)
    pixels = st.get("seconds_flow", 0.0)
    print(
        f"stages (s): prepare {st.get('seconds_prepare', 0.0):.2f}, cell levels "
        f"{cells - st.get('seconds_prepare', 0.0):.2f}, pixel stage {pixels - cells:.2f}, "
        f"gate {result.seconds - pixels:.2f}"
    )
    print(f"edge-polarity bias: {st.get('edge_bias_px', 'not fitted')}")
    print(f"gain mesh: {'on' if st.get('gain_mesh') else 'off'}")
    print(f"residual flow: {flow}; gate figures: {result.gate.figures}")


if __name__ == "__main__":
    main()
