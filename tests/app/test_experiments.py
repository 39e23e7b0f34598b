"""Experiments tab: runs written by the real trainer's tracking code, read by the app."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.experiments import SCALARS_FILE, read_curves, read_runs, scalars_path, smooth
from training.tracking import SCALARS_FILE as TRAINING_SCALARS_FILE
from training.tracking import Registry, ScalarWriter


def _registry(tmp_path: Path) -> Path:
    """A registry with two runs, as ``python -m training`` leaves them.

    v1.0_old: trained before scalars.jsonl existed (event files only, no curves).
    v1.1_new: loss/total, loss/anchor and loss/range (always 0, as the range term is when
    nothing leaves the allowed gain range) over steps 10, 20, 30, plus model/scale.
    """
    reg = Registry(tmp_path)
    reg.upsert("v1.0_old", status="SUCCESS", metrics={"steps": 5}, commit="aaa")
    old = ScalarWriter(tmp_path / "v1.0_old" / "tb")
    old.add_scalar("loss/total", 1.0, 5)
    old.close()
    (old.folder / SCALARS_FILE).unlink()
    reg.upsert(
        "v1.1_new",
        status="WIP",
        config={"optim": {"steps": 30}},
        metrics={"steps": 30, "truth_psnr_db": 31.25},
        commit="bbb",
    )
    w = ScalarWriter(tmp_path / "v1.1_new" / "tb")
    for step, total in ((10, 0.5), (20, 0.25), (30, 0.125)):
        w.add_scalar("loss/total", total, step)
        w.add_scalar("loss/anchor", total / 2, step)
        w.add_scalar("loss/range", 0.0, step)
        w.add_scalar("model/scale", 1.0 + step / 100, step)
    w.close()
    return reg.path


def test_app_reads_the_file_training_writes(tmp_path):
    assert SCALARS_FILE == TRAINING_SCALARS_FILE
    path = _registry(tmp_path)
    runs = read_runs(path)
    assert [r["name"] for r in runs.rows] == ["v1.0_old", "v1.1_new"]
    rc = read_curves(path, "v1.1_new")
    assert rc.note == ""
    assert list(rc.curves) == ["loss/total", "loss/anchor", "loss/range", "model/scale"]
    np.testing.assert_array_equal(rc.curves["loss/total"].steps, [10, 20, 30])
    np.testing.assert_array_equal(rc.curves["loss/total"].values, [0.5, 0.25, 0.125])
    np.testing.assert_allclose(rc.curves["model/scale"].values, [1.1, 1.2, 1.3], rtol=1e-6)
    assert {g: [c.name for c in cs] for g, cs in rc.groups().items()} == {
        "loss": ["total", "anchor", "range"],
        "model": ["scale"],
    }
    old = read_curves(path, "v1.0_old")
    assert old.curves == {} and old.note.startswith("no curves recorded for v1.0_old")


def test_bad_lines_are_skipped_and_a_resumed_step_keeps_its_last_value(tmp_path):
    path = _registry(tmp_path)
    jsonl = scalars_path(path, "v1.1_new")
    with jsonl.open("a") as f:
        f.write(json.dumps({"tag": "loss/total", "step": 20, "value": 0.3}) + "\n")
        f.write(json.dumps({"tag": "loss/total", "step": 40, "value": None}) + "\n")
        f.write('{"tag": "loss/total", "step": 50, "val')  # the trainer is mid-write
        f.write("\n" + json.dumps({"tag": "loss/total", "step": "x", "value": 1}) + "\n")
    rc = read_curves(path, "v1.1_new")
    total = rc.curves["loss/total"]
    np.testing.assert_array_equal(total.steps, [10, 20, 30, 40])
    np.testing.assert_array_equal(total.values[:3], [0.5, 0.3, 0.125])
    assert np.isnan(total.values[3])
    assert rc.note == f"2 unreadable lines in {SCALARS_FILE} skipped"
    jsonl.write_bytes(b"\xff\xfe not json at all\n")
    broken = read_curves(path, "v1.1_new")
    assert broken.curves == {} and "holds no scalars" in broken.note


def test_smoothing_is_tensorboards_debiased_ema():
    # w = 0.5: m1 = 0.5*2 = 1 -> 1/(1-0.5) = 2; m2 = 0.5*1 + 0.5*4 = 2.5 -> 2.5/0.75 = 10/3;
    # NaN skipped; m3 = 0.5*2.5 + 0.5*1 = 1.75 -> 1.75/0.875 = 2
    out = smooth(np.array([2.0, 4.0, np.nan, 1.0]), 0.5)
    np.testing.assert_allclose(out[[0, 1, 3]], [2.0, 10 / 3, 2.0])
    assert np.isnan(out[2])
    np.testing.assert_array_equal(smooth(np.array([3.0, 1.0]), 0.0), [3.0, 1.0])
    with pytest.raises(ValueError, match="smoothing weight"):
        smooth(np.ones(2), 1.0)


@pytest.mark.gui
def test_panel_plots_the_selected_runs_curves(qtbot, tmp_path):
    from app.panels.experiments import ExperimentsPanel

    panel = ExperimentsPanel(_registry(tmp_path))
    qtbot.addWidget(panel)
    panel.resize(1200, 800)
    panel.show()
    headers = [panel.table.horizontalHeaderItem(c).text() for c in range(panel.table.columnCount())]
    assert "name" in headers and "metrics" not in headers and "config" not in headers
    # the newest run is selected on load and its curves drawn, one plot per tag group
    assert panel.run_curves is not None and panel.run_curves.run == "v1.1_new"
    assert set(panel.plots) == {"loss", "model"}
    x, y = panel.raw_lines["loss/total"].getOriginalDataset()
    np.testing.assert_array_equal(x, [10, 20, 30])
    np.testing.assert_array_equal(y, [0.5, 0.25, 0.125])
    _, smoothed = panel.lines["loss/total"].getOriginalDataset()
    np.testing.assert_allclose(smoothed, smooth(y, panel.smoothing.value()))
    assert panel.plots["loss"].ctrl.logYCheck.isChecked()  # losses on a log axis
    assert not panel.plots["model"].ctrl.logYCheck.isChecked()  # the gain scale is not
    assert "truth_psnr_db = 31.25" in panel.details.toPlainText()
    assert not panel.curves_note.isVisible() and panel.glw.isVisible()
    assert not panel.grab().isNull()  # paints log axes over an all-zero curve without warnings
    # an older run: a clear note instead of empty plots
    panel.select_run(0)
    assert panel.run_curves.run == "v1.0_old"
    assert panel.curves_note.isVisible() and not panel.glw.isVisible()
    assert "no curves recorded" in panel.curves_note.text()
    assert panel.plots == {}
    panel.select_run(1)
    panel.smoothing.setValue(0.0)  # raw values only
    assert panel.raw_lines == {}
    np.testing.assert_array_equal(panel.lines["loss/total"].getOriginalDataset()[1], y)
    panel.log_y.setChecked(False)  # zeros (loss/range) are drawn on a linear axis only
    assert not panel.plots["loss"].ctrl.logYCheck.isChecked()
    np.testing.assert_array_equal(panel.lines["loss/range"].getOriginalDataset()[1], [0, 0, 0])
    assert not panel.grab().isNull()


@pytest.mark.gui
def test_panel_without_registry_says_why(qtbot, tmp_path):
    from app.panels.experiments import ExperimentsPanel

    panel = ExperimentsPanel(tmp_path / "missing.sqlite")
    qtbot.addWidget(panel)
    panel.show()
    assert panel.empty.isVisible() and "no experiment registry" in panel.empty.text()
    assert not panel.body.isVisible()
