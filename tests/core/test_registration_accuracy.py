"""Issue 3 accuracy criteria on simulated pairs (small frames; the full table is
``benchmarks/eval_register.py``).

Each pair is simulated by ``core.simulate`` (384x288 RAW12, 768x576 48MP), written as real
DNGs and read back with ``load_pair``: strong local tone mapping (the operator the seed
draws), RAW12 shot/read noise, ProRAW fusion noise, denoise and sharpening, clipped
highlights, and a known misregistration ``W_sim`` (translation up to 8 px with sub-pixel
parts, zoom, radial k1 = +-0.02, tangential). The TRUE residual is ``RMS |W_sim(W(q)) - q|``
over the whole 48MP frame. The cases are the ones the cell-luminance estimator got wrong
(0.14-0.66 px) because of edge-aware or multi-scale tone mapping.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from core.geometry.registration import RegistrationResult, register
from core.geometry.warp import WarpParams, flow_at, source_coords
from core.io.captures import CapturePair
from core.io.pair import load_pair
from core.simulate.pair import SimConfig, simulate_pair, write_pair

# Same misregistrations as benchmarks/eval_register.py.
MIS = {
    1: {
        "translation_px": (5.3, -7.6),
        "zoom": 1.003,
        "radial": (0.02, 0.0, 0.0),
        "tangential": (0.0005, -0.0003),
    },
    2: {"translation_px": (-7.75, 3.4), "zoom": 0.998, "radial": (-0.02, 0.0, 0.0)},
    3: {
        "translation_px": (-4.995882107701865, -3.8927070364988463),
        "zoom": 0.9999680759631331,
        "radial": (0.0064316622993674105, 0.0, 0.0),
        "tangential": (0.0002521128616760768, 0.0002230978681396768),
    },
}


def _pair(tmp: Path, scene: str, seed: int, mis: dict) -> CapturePair:
    cfg = SimConfig(scene=scene, w12=384, h12=288, seed=seed, misregistration=mis)
    paths = write_pair(simulate_pair(cfg), tmp / f"{scene}_{seed}")
    return load_pair(paths.raw12, paths.proraw48)


def _true_rms(mis: dict, res: RegistrationResult, h48: int, w48: int) -> float:
    x = torch.arange(0, w48, 4, dtype=torch.float64)[None, :]
    y = torch.arange(0, h48, 4, dtype=torch.float64)[:, None]
    x, y = torch.broadcast_tensors(x, y)
    qx, qy = x, y
    if res.flow is not None:
        fx, fy = flow_at(res.flow, x, y, frame_h=h48, frame_w=w48)
        qx, qy = x + fx, y + fy
    sx, sy = source_coords(res.params, qx, qy, frame_h=h48, frame_w=w48)
    tx, ty = source_coords(WarpParams(**mis), sx, sy, frame_h=h48, frame_w=w48)
    return float(torch.sqrt(((tx - x) ** 2 + (ty - y) ** 2).mean()))


@pytest.mark.parametrize(
    ("scene", "seed", "operator"),
    [
        ("natural_chelsea", 1, "bilateral"),  # was 0.14 px
        ("natural_coffee", 2, "bilateral"),  # was 0.20 px
        ("mixed_lighting", 2, "bilateral"),  # was 0.27 px: a colour chart, coloured edges
        ("city_lights", 2, "exposure_fusion"),  # was 0.66 px: halos around point lights
        ("backlit", 3, "exposure_fusion"),  # smooth sky patches must not outvote the rest
    ],
)
def test_textured_scene_under_strong_ltm_is_registered_below_0_1_px(
    tmp_path: Path, scene: str, seed: int, operator: str
) -> None:
    mis = MIS[seed]
    p = _pair(tmp_path, scene, seed, mis)
    res = register(p.camera48, p.anchor, p.raw12.cfa, unclipped=p.unclipped)
    h48, w48 = p.camera48.shape[1:]
    true = _true_rms(mis, res, h48, w48)
    assert true < 0.1, f"{scene} seed {seed} ({operator}): {true:.3f} px"
    assert res.gate.passed, res.gate.reasons
    # The gate's figure is honest: it does not claim much better than the truth.
    assert res.residual_rms_px >= 0.5 * true
    assert res.residual_rms_px < res.gate.thresholds["max_residual_rms_px"]


def test_low_texture_sky_is_reported_as_unmeasured_not_as_registered(tmp_path: Path) -> None:
    # Issue 3 asks < 0.25 px on low-texture scenes; NOT met under the simulator's strong
    # local tone mapping (docs/registration.md). What is pinned here is honesty: the
    # estimate is off by pixels, and the gate must say it cannot measure it.
    mis = MIS[1]
    p = _pair(tmp_path, "gradient_sky", 1, mis)
    res = register(p.camera48, p.anchor, p.raw12.cfa, unclipped=p.unclipped)
    assert not res.gate.passed
    assert not math.isfinite(res.residual_rms_px) or res.residual_rms_px >= 0.25
    assert any("too little" in r for r in res.gate.reasons)


def test_periodic_stripes_are_not_registered_a_period_off(tmp_path: Path) -> None:
    # Gratings finer than RAW12's colour sampling match themselves a period away; before
    # periodic patches were held back the warp was 1.5 px off and the gate passed.
    p = _pair(tmp_path, "stripes", 0, {})
    res = register(p.camera48, p.anchor, p.raw12.cfa, unclipped=p.unclipped)
    h48, w48 = p.camera48.shape[1:]
    true = _true_rms({}, res, h48, w48)
    assert true < 0.1, (true, res.gate.figures)
    assert res.stats["periodic_patches"] > 0
    assert res.gate.passed is False or res.residual_rms_px >= 0.5 * true


def test_aliased_zone_plate_does_not_pass_with_a_false_claim(tmp_path: Path) -> None:
    # A zone plate reaching the 48MP Nyquist aliases in RAW12's colour planes: the pixel
    # stage locks onto aliases that the check patches share. Either the warp is right or
    # the gate fails (coarse and fine alignment disagree).
    p = _pair(tmp_path, "zone_plate", 0, {})
    res = register(p.camera48, p.anchor, p.raw12.cfa, unclipped=p.unclipped)
    h48, w48 = p.camera48.shape[1:]
    true = _true_rms({}, res, h48, w48)
    assert res.gate.passed is False or true < 0.1, (true, res.gate.figures)
    assert np.isfinite(res.gate.figures["coarse_fine_px"])


@pytest.mark.parametrize("seed", [1, 2])
def test_siemens_star_extrapolated_to_the_corners_is_not_passed(tmp_path: Path, seed: int) -> None:
    # Structure only in a central disc whose wedges cannot see a radial remap: the fitted
    # zoom/k1/k2 are extrapolated to the corners, 0.72 / 2.03 px RMS off (4-9 px at the
    # corners). The gate used to pass with figures 0.065 / 0.149 px; it must not pass,
    # and it reports the misalignment as unmeasured (converted unregistered, warned).
    mis = MIS[seed]
    p = _pair(tmp_path, "siemens_star", seed, mis)
    res = register(p.camera48, p.anchor, p.raw12.cfa, unclipped=p.unclipped)
    h48, w48 = p.camera48.shape[1:]
    true = _true_rms(mis, res, h48, w48)
    figures = res.gate.figures
    assert true > res.gate.thresholds["max_residual_rms_px"], true  # the case still arises
    assert not res.gate.passed, (true, figures)
    assert not math.isfinite(res.residual_rms_px)
    assert figures["warp_error_max_px"] > res.gate.thresholds["max_frame_error_px"]
    assert res.gate.reasons and "whole frame" in res.gate.reasons[0]
    report = json.loads(json.dumps(res.to_json(), allow_nan=False))
    assert report["gate"]["thresholds"]["max_frame_error_px"] > 0
    assert report["gate"]["figures"]["residual_rms_px"] is None
