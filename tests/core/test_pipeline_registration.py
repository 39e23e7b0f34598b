"""Registration inside ``convert``: the gate policy of core.pipeline (docs/registration.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import AlignmentGateError
from core.pipeline import ConvertOptions, convert
from core.simulate.pair import SimConfig, simulate_pair, write_pair


def _pair(tmp: Path, name: str, **kw: object):
    cfg = SimConfig(w12=256, h12=192, seed=4, ltm="blur", **kw)  # type: ignore[arg-type]
    return write_pair(simulate_pair(cfg), tmp / name)


def test_known_shift_is_registered_and_improves_the_anchor(tmp_path: Path) -> None:
    # ProRAW48 simulated 3 px right / 2 px up of the RAW12 grid: registration must find the
    # inverse warp (about -3, +2) and the registered conversion must fit the anchor better.
    p = _pair(tmp_path, "shift", scene="foliage", misregistration={"translation_px": (3.0, -2.0)})
    reg = convert(p.raw12, p.proraw48, tmp_path / "reg.dng")
    raw = convert(p.raw12, p.proraw48, tmp_path / "raw.dng", ConvertOptions(register=False))
    assert reg.registration is not None and reg.registration.status == "registered"
    tx, ty = reg.report["registration"]["translation_px"]
    assert tx == pytest.approx(-3.0, abs=0.15) and ty == pytest.approx(2.0, abs=0.15)
    assert reg.anchor.psnr_db > raw.anchor.psnr_db + 3
    assert raw.report["registration"]["status"] == "skipped"


def test_different_scenes_stop_unless_overridden(tmp_path: Path) -> None:
    a = _pair(tmp_path, "a", scene="foliage")
    b = _pair(tmp_path, "b", scene="natural_chelsea")
    out = tmp_path / "o.dng"
    with pytest.raises(AlignmentGateError, match="allow-misaligned"):
        convert(a.raw12, b.proraw48, out)
    assert not out.exists() and not out.with_suffix(".json").exists()
    result = convert(a.raw12, b.proraw48, out, ConvertOptions(allow_misaligned=True))
    assert result.decision.used == "global"
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["registration"]["status"] == "failed-overridden"
    assert report["registration"]["gate_passed"] is False
    assert report["provenance"]["registration"] == "failed-overridden"


def test_low_texture_scene_converts_unregistered_with_a_note(tmp_path: Path) -> None:
    # A smooth sky has no structure to register: the gate says so, and the pair is
    # converted unregistered, with the reason in the report (never silently).
    p = _pair(tmp_path, "sky", scene="gradient_sky")
    result = convert(p.raw12, p.proraw48, tmp_path / "o.dng")
    assert result.registration is not None
    assert result.registration.status == "unmeasured"
    assert "too little structure" in result.registration.note
    report = result.report["registration"]
    assert report["status"] == "unmeasured" and report["gate_passed"] is False
