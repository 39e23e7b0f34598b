"""core.geometry.registration: recovery of known warps on simulated pairs, gate, presets.

Fixtures are simulated capture pairs (``core.simulate``) written as real DNGs and read back
with ``load_pair``: strong local tone mapping (the simulator's random operator), noise,
denoise/sharpening and a known misregistration applied to ProRAW48 (``W_sim``).
Registration must find ``W ~= W_sim^-1``; the true residual is measured densely as
``|W_sim(W(q)) - q|`` over the whole 48MP frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import CancelledError, ConfigError, ShapeError
from core.geometry.registration import (
    GateThresholds,
    RegistrationError,
    apply_registration,
    load_presets,
    register,
)
from core.geometry.warp import WarpParams, source_coords, warp
from core.io.captures import CapturePair
from core.io.pair import load_pair
from core.progress import CancelToken, Progress
from core.simulate.pair import SimConfig, simulate_pair, write_pair


def _pair(
    tmp: Path, scene: str, seed: int, mis: dict, w12: int = 256, h12: int = 192
) -> CapturePair:
    cfg = SimConfig(scene=scene, w12=w12, h12=h12, seed=seed, misregistration=mis)
    paths = write_pair(simulate_pair(cfg), tmp / f"{scene}_{seed}")
    return load_pair(paths.raw12, paths.proraw48)


def _true_rms(mis: dict, est: WarpParams, h48: int, w48: int) -> float:
    x = torch.arange(0, w48, 4, dtype=torch.float64)[None, :]
    y = torch.arange(0, h48, 4, dtype=torch.float64)[:, None]
    sx, sy = source_coords(est, x, y, frame_h=h48, frame_w=w48)
    tx, ty = source_coords(WarpParams(**mis), sx, sy, frame_h=h48, frame_w=w48)
    return float(torch.sqrt(((tx - x) ** 2 + (ty - y) ** 2).mean()))


TRANSLATION = {"translation_px": (3.4, -5.7)}
FULL = {
    "translation_px": (5.3, -7.6),
    "zoom": 1.003,
    "radial": (0.02, 0.0, 0.0),
    "tangential": (0.0005, -0.0003),
}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CapturePair]:
    tmp = tmp_path_factory.mktemp("reg")
    return {
        "translation": _pair(tmp, "foliage", 3, TRANSLATION, w12=384, h12=288),
        "full": _pair(tmp, "foliage", 1, FULL, w12=384, h12=288),
        "other": _pair(tmp, "natural_coffee", 2, {}, w12=384, h12=288),
    }


def test_pure_translation_is_recovered_with_the_opposite_sign(pairs):
    p = pairs["translation"]
    res = register(p.camera48, p.anchor, p.raw12.cfa, unclipped=p.unclipped)
    tx, ty = res.params.translation_px
    # The simulator shows ProRAW at pro(q + t); undoing it samples at q - t.
    assert tx == pytest.approx(-3.4, abs=0.15)
    assert ty == pytest.approx(5.7, abs=0.15)
    h48, w48 = p.camera48.shape[1:]
    assert _true_rms(TRANSLATION, res.params, h48, w48) < 0.1
    assert res.gate.passed, res.gate.reasons


def test_translation_zoom_radial_tangential_under_strong_ltm(pairs):
    p = pairs["full"]
    res = register(p.camera48, p.anchor, p.raw12.cfa, unclipped=p.unclipped)
    h48, w48 = p.camera48.shape[1:]
    assert _true_rms(FULL, res.params, h48, w48) < 0.1
    assert res.params.radial[0] == pytest.approx(-0.02, abs=0.003)  # W ~ W_sim^-1
    assert res.gate.passed, res.gate.reasons
    assert res.residual_rms_px < 0.2


def test_gate_fails_on_two_different_scenes(pairs):
    a, b = pairs["translation"], pairs["other"]
    res = register(b.camera48, a.anchor, a.raw12.cfa, unclipped=a.unclipped)
    assert not res.gate.passed
    assert res.gate.reasons
    assert res.gate.figures["edge_agreement"] < res.gate.thresholds["min_edge_agreement"]


@pytest.fixture(scope="module")
def walls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CapturePair]:
    """Low-texture pairs: the simulator's plain_wall (paint grain of +-2.5 % near the
    RAW12 noise, no edge) with the FULL misregistration, and another wall (other seed)."""
    tmp = tmp_path_factory.mktemp("walls")
    return {
        "wall": _pair(tmp, "plain_wall", 3, FULL, w12=384, h12=288),
        "other_wall": _pair(tmp, "plain_wall", 15, {}, w12=384, h12=288),
    }


def test_low_texture_wall_is_registered_and_measured_on_pooled_blocks(walls):
    # No check patch is confident alone (each shift is noisier than 0.25 px), so the gate
    # measures on blocks of them; before it, this pair was "unmeasured" and failed.
    p = walls["wall"]
    res = register(p.camera48, p.anchor, p.raw12.cfa, unclipped=p.unclipped)
    h48, w48 = p.camera48.shape[1:]
    assert _true_rms(FULL, res.params, h48, w48) < 0.25
    figures = res.gate.figures
    assert figures["confident_patches"] < 5
    assert figures["pooled_side"] > 1
    assert res.gate.passed, res.gate.reasons
    assert res.residual_rms_px < 0.5


def test_gate_fails_on_two_different_walls(walls):
    # Same lighting, same kind of grain, different grain: the smooth shading agrees, so
    # the edge figure alone would not tell them apart; the pooled blocks must not match.
    a, b = walls["wall"], walls["other_wall"]
    res = register(b.camera48, a.anchor, a.raw12.cfa, unclipped=a.unclipped)
    figures = res.gate.figures
    assert figures["edge_agreement"] >= res.gate.thresholds["min_edge_agreement"]  # 0.51
    assert not res.gate.passed
    assert not np.isfinite(res.residual_rms_px)
    assert "pooled_side" not in figures  # no block size made the patches agree


def test_json_has_the_issue_fields_and_is_strict_json(pairs):
    p = pairs["translation"]
    res = register(p.camera48, p.anchor, p.raw12.cfa, unclipped=p.unclipped)
    obj = res.to_json()
    for key in (
        "translation_px",
        "zoom",
        "radial",
        "tangential",
        "principal_point_px",
        "residual_rms_px",
        "gate_passed",
        "gate",
    ):
        assert key in obj
    assert len(obj["translation_px"]) == 2 and len(obj["radial"]) == 3
    h48, w48 = p.camera48.shape[1:]
    assert obj["principal_point_px"] == [(w48 - 1) / 2, (h48 - 1) / 2]
    assert set(obj["gate"]) >= {"passed", "thresholds", "figures", "reasons"}
    json.dumps(obj, allow_nan=False)


def test_apply_registration_is_the_warp(pairs):
    p = pairs["translation"]
    res = register(p.camera48, p.anchor, p.raw12.cfa, unclipped=p.unclipped)
    out = apply_registration(p.camera48, res)
    assert out.shape == p.camera48.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, warp(p.camera48, res.params, res.flow))
    with pytest.raises(ShapeError):
        apply_registration(p.camera48[:, :-4], res)


def test_progress_and_cancel(pairs):
    p = pairs["translation"]
    events: list[Progress] = []
    register(p.camera48, p.anchor, p.raw12.cfa, progress=events.append)
    assert events and all(e.stage == "register" for e in events)
    assert events[-1].done == events[-1].total
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        register(p.camera48, p.anchor, p.raw12.cfa, cancel=token)


def test_bad_inputs():
    cam = np.zeros((3, 200, 240), np.float32)
    with pytest.raises(ShapeError, match="twice"):
        register(cam, np.zeros((100, 121), np.float32), _cfa())
    with pytest.raises(RegistrationError, match="too small"):
        register(np.zeros((3, 64, 64), np.float32), np.zeros((32, 32), np.float32), _cfa())
    with pytest.raises(ConfigError, match="valid: default"):
        register(cam, np.zeros((100, 120), np.float32), _cfa(), preset="nope")


def _cfa():
    from core.cfa import CfaPattern

    return CfaPattern.from_name("RGGB")


def test_presets_load_and_validate_with_field_names(tmp_path):
    presets = load_presets()
    assert {"default", "iphone-main-48mp", "simulator"} <= set(presets)
    d = presets["default"]
    lo, hi = d.bounds()
    assert lo.shape == hi.shape == (8,) and np.all(lo <= hi)
    raw = json.loads(Path("resources/registration_presets.json").read_text())
    raw["presets"]["default"]["bounds"]["zoom"] = [1.1, 0.9]
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"presets\.default\.bounds\.zoom"):
        load_presets(bad)
    raw["presets"]["default"]["bounds"]["zoom"] = [0.9, 1.1]
    raw["presets"]["default"]["residual_flow"] = "sometimes"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="residual_flow"):
        load_presets(bad)
    raw["presets"]["default"]["residual_flow"] = "auto"
    for side in (-1, 2.5, True, "big"):
        raw["presets"]["default"]["gain_mesh_min_side_px"] = side
        bad.write_text(json.dumps(raw))
        with pytest.raises(ConfigError, match=r"presets\.default\.gain_mesh_min_side_px"):
            load_presets(bad)
    raw["presets"]["default"]["gain_mesh_min_side_px"] = 0
    bad.write_text(json.dumps(raw))
    assert load_presets(bad)["default"].gain_mesh_min_side_px == 0
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"p\.json"):
        load_presets(bad)


def test_every_preset_states_every_gate_threshold():
    # The presets file is the data the gate's report cites: no threshold may come from a
    # code default silently (max_frame_error_px once did).
    raw = json.loads(Path("resources/registration_presets.json").read_text())
    fields = set(GateThresholds().as_dict())
    for name, preset in raw["presets"].items():
        assert set(preset["gate"]) == fields, name
    for name, preset in load_presets().items():
        assert preset.gate.as_dict() == {k: raw["presets"][name]["gate"][k] for k in fields}
