"""Qt-free parts of the app: state signals, pairing, sign-off records, QA export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.pairing import PairEntry, find_pairs, name_key
from app.state import AppState
from core.errors import CorruptDataError
from core.signoff import (
    SceneVerdict,
    gate_accepts,
    make_record,
    read_record,
    write_record,
)


def test_state_modules_import_without_qt():
    code = (
        "import sys; import app.state, app.pairing, app.analysis, app.display, app.qa, "
        "core.signoff, app.experiments; "
        "assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_state_signals_fire_on_change_only():
    state = AppState()
    views, selections = [], []
    state.view_changed.connect(views.append)
    state.current_changed.connect(selections.append)
    state.set_view(hist_scale="ev")
    state.set_view(hist_scale="ev")  # no change, no signal
    state.set_view(roi=(4, 2, 0, 8))  # empty region becomes the whole frame
    assert [v.hist_scale for v in views] == ["ev"]
    assert state.view.roi is None
    state.set_pairs([PairEntry("a", Path("a/raw12.dng"), Path("a/proraw48.dng"))])
    state.select(0)
    assert selections == [0] and state.current_entry.name == "a"
    with pytest.raises(IndexError):
        state.select(3)


def test_broken_slot_does_not_break_the_state():
    state = AppState()
    seen = []

    def broken(_):
        raise RuntimeError("panel bug")

    state.busy_changed.connect(broken)
    state.busy_changed.connect(seen.append)
    state.set_busy(None)
    assert seen == [None]


def test_pairs_matched_by_name(sim_pair_dir: Path):
    pairs, problems = find_pairs([sim_pair_dir])
    assert problems == []
    assert len(pairs) == 1 and pairs[0].matched_by == "name"
    assert pairs[0].raw12.name == "raw12.dng" and pairs[0].proraw48.name == "proraw48.dng"
    assert name_key(Path("x/IMG_7_raw12.dng")) == name_key(Path("x/IMG_7_proraw48.dng"))


def test_signoff_record_round_trips_and_gates(tmp_path: Path):
    quant = {"mode": "w8a8", "calibration": "QA set"}
    scenes = ["backlit", "foliage"]
    record = make_record(
        "Reviewer",
        "sha256:0123456789abcdef",
        quant,
        [SceneVerdict("backlit", "approved", {}, "ok"), SceneVerdict("foliage", "approved")],
    )
    path = write_record(record, tmp_path)
    back = read_record(path)
    assert back == record
    assert gate_accepts(back, "sha256:0123456789abcdef", quant, scenes) == (True, [])
    ok, why = gate_accepts(back, "sha256:0123456789abcdef", {"mode": "int8"}, scenes)
    assert not ok and "quantization" in why[0]
    ok, why = gate_accepts(back, "sha256:0123456789abcdef", quant, [*scenes, "city_lights"])
    assert not ok and why == ["city_lights: not reviewed"]
    obj = json.loads(path.read_text())
    obj["quantization"]["mode"] = "int4"  # edited config no longer matches its hash
    path.write_text(json.dumps(obj))
    with pytest.raises(CorruptDataError, match="quantization_hash"):
        read_record(path)
    with pytest.raises(ValueError, match="reviewer"):
        make_record(" ", "h", quant, [SceneVerdict("backlit", "approved")])


def test_screenshot_of_an_unknown_tab_is_a_readable_option_error(capsys):
    from app.main import EXIT_CONFIG, SCREENSHOT_TABS, run_gui

    assert run_gui(screenshot=Path("x.png"), tab="diagnostics") == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith("error: tab 'diagnostics' is not one of ")
    assert all(t in err for t in SCREENSHOT_TABS)
