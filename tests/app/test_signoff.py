"""The INT8 sign-off tab: FP16 vs INT8 views from core's emulation, worst tiles, records.

Small and fast: QA scenes at RAW12 64x48 (128x96 frames, 64 px tiles, 16 px overlap) and
a w8a8 config calibrated on one 64x48 scene (the canonical one runs 8 scenes at 256x192).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QRectF

from app.display import render_rgb
from app.panels.signoff import SignoffPanel, figures_text
from app.state import AppState
from core.model.emulate import calibrate_w8a8, load_scene, run_emulated
from core.model.infer import LoadedModel
from core.model.parity import SceneComparison, compare_scene
from core.model.quant import QuantSpec, make_runners
from core.signoff import (
    find_accepting_record,
    gate_accepts,
    read_record,
)
from tests.conftest import tiny_w8a8_config

pytestmark = pytest.mark.gui
TIMEOUT_MS = 120_000
RAW12, SEED, TILE, OVERLAP = (64, 48), 0, 64, 16


@pytest.fixture(scope="module")
def expected(model: LoadedModel) -> SceneComparison:
    """core's comparison of the first QA scene, called directly."""
    return compare_scene(
        model,
        tiny_w8a8_config(),
        "backlit",
        raw12_size=RAW12,
        seed=SEED,
        tile_px=TILE,
        overlap_px=OVERLAP,
    )


@pytest.fixture
def panel(qtbot, tmp_path: Path) -> SignoffPanel:
    p = SignoffPanel(
        AppState(),
        tmp_path / "signoff",
        raw12_size=RAW12,
        seed=SEED,
        tile_px=TILE,
        overlap_px=OVERLAP,
    )
    p.quant.setPlainText(json.dumps(tiny_w8a8_config(), indent=1))
    qtbot.addWidget(p)
    p.resize(1500, 900)
    p.show()  # the tab on screen: the selected scene (backlit) is compared
    qtbot.waitUntil(lambda: p.idle() and p.shown is not None, timeout=TIMEOUT_MS)
    return p


def test_views_show_cores_fp16_and_int8_outputs_and_their_difference(panel, expected, qtbot):
    shown = panel.shown
    assert shown is not None and shown.scene == "backlit" and shown.candidate == "w8a8"
    ref, cand, diff = (panel.views[k] for k in ("reference", "candidate", "difference"))
    np.testing.assert_array_equal(ref.source, expected.reference_camera48)
    np.testing.assert_array_equal(cand.source, expected.candidate_camera48)
    assert np.abs(cand.source - ref.source).max() > 0  # INT8 is not FP16
    # the difference view: candidate - reference, per pixel the channel largest in size
    d = cand.source - ref.source
    pick = np.take_along_axis(d, np.abs(d).argmax(axis=0)[None], axis=0)[0]
    np.testing.assert_array_equal(diff.source, pick)
    assert np.isclose(np.abs(diff.source).max(), expected.comparison.max_abs, rtol=1e-6)
    # the image items hold the global render of those arrays (whole 128x96 frame, level 0)
    panel.fit()
    qtbot.wait(50)
    for pane in (ref, cand):
        pane.redraw()
        assert pane.last_crop_level == 0
        view = panel.state.view
        want = render_rgb(
            pane.source,
            panel.to_srgb,
            exposure_ev=view.exposure_ev,
            soft_highlights=view.soft_highlights,
        )
        np.testing.assert_array_equal(pane.image.image, want)


def test_worst_tile_is_the_argmax_of_cores_per_tile_difference(panel, model, expected):
    # per-tile max |INT8 - FP16| of each tile's own output, from core's runs directly
    spec = QuantSpec.from_config(tiny_w8a8_config())
    scales = calibrate_w8a8(model.net, spec, model_hash=model.hash)
    scene = load_scene("backlit", RAW12, SEED)
    runs = {
        p: run_emulated(
            make_runners(model.net, p, scales if p == "w8a8" else None),
            scene,
            tile_px=TILE,
            overlap_px=OVERLAP,
        )
        for p in ("fp16", "w8a8")
    }
    np.testing.assert_array_equal(panel.views["candidate"].source, runs["w8a8"].camera48)
    per_tile = {
        i: float(np.abs(runs["w8a8"].tiles[i].astype(np.float64) - runs["fp16"].tiles[i]).max())
        for i in runs["fp16"].tiles
    }
    top = max(per_tile.values())
    worst = panel.worst_tiles()[0]
    assert per_tile[worst.index] == top
    assert worst == expected.comparison.worst
    # outlined (worst first) on every view, and listed first with its figures
    rect = QRectF(worst.x0, worst.y0, worst.w, worst.h)
    for key in ("reference", "candidate", "difference"):
        assert panel.tile_outlines[key][0].rect() == rect
    assert panel.worst.item(0, 1).text() == f"#{worst.index}"
    assert panel.worst.item(0, 3).text() == f"{worst.max_abs:.3e}"
    assert len(panel.worst_tiles()) == min(5, len(expected.comparison.tiles))
    # the scene's figures in the verdict table
    row = panel.scenes.index("backlit")
    assert panel.table.item(row, 2).text() == figures_text(expected)


def test_switching_scenes_computes_once_per_scene(panel, qtbot):
    submitted: list[str] = []
    submit = panel.workers.submit

    def counting(name, fn, **kw):
        submitted.append(name)
        return submit(name, fn, **kw)

    panel.workers.submit = counting  # type: ignore[method-assign]
    progress: list[str] = []
    on_progress = panel._on_progress
    panel._on_progress = lambda scene, mode, event: (  # type: ignore[method-assign]
        progress.append(event.stage),
        on_progress(scene, mode, event),
    )
    first = panel.shown
    panel.select_scene("checkers")
    assert panel.task is not None  # runs in the background; the window goes on
    qtbot.waitUntil(lambda: panel.idle() and panel.shown is not None, timeout=TIMEOUT_MS)
    assert panel.shown.scene == "checkers" and submitted == ["signoff checkers"]
    assert "fp16" in progress and "w8a8" in progress  # per-tile progress of both runs
    panel.select_scene("backlit")
    assert panel.shown is first and panel.task is None  # cached: shown at once
    panel.select_scene("checkers")
    assert panel.shown.scene == "checkers" and submitted == ["signoff checkers"]


def test_approve_all_writes_the_figures_and_the_export_gate_accepts(panel, model, expected):
    assert panel.model_hash.text() == f"sha256:{model.hash}"  # filled from the checkpoint
    panel.reviewer.setText("QA Reviewer")
    for scene in panel.scenes:
        panel.set_verdict(scene, "approved", f"{scene} ok")
    assert panel.sign_button.isEnabled()
    panel.sign_button.click()
    path = panel.last_path
    assert path is not None
    record = read_record(path)
    metrics = {s.scene: s.metrics for s in record.scenes}
    assert metrics["backlit"] == pytest.approx(expected.figures, rel=0, abs=0)
    assert set(metrics["backlit"]) == {
        "max_abs_vs_fp16",
        "rms_vs_fp16",
        "psnr_db_vs_fp16",
        "worst_tile_max_abs_vs_fp16",
        "worst_tile_psnr_db_vs_fp16",
    }
    assert all(m == {} for s, m in metrics.items() if s != "backlit")  # not compared
    quant = tiny_w8a8_config()
    ok, why = gate_accepts(record, f"sha256:{model.hash}", quant, panel.scenes)
    assert ok, why
    found, reasons = find_accepting_record(path.parent, model.hash, quant)
    assert found is not None and found[0] == path, reasons
    assert "figures for 1 of 10 scenes" in panel.status.text()


def test_a_record_for_another_hash_carries_no_figures(panel):
    panel.model_hash.setText("sha256:feedbeef")
    assert "not this checkpoint" in panel.model_line.text()
    panel.reviewer.setText("R")
    for scene in panel.scenes:
        panel.set_verdict(scene, "approved")
    record = read_record(panel.sign())
    assert all(s.metrics == {} for s in record.scenes)


def test_errors_are_one_readable_line(panel, qtbot, tmp_path):
    panel.checkpoint.setText(str(tmp_path / "missing.pt"))
    qtbot.waitUntil(lambda: "not found" in panel.message.text(), timeout=TIMEOUT_MS)
    assert panel.idle() and panel.shown is None
    assert "missing.pt: model checkpoint not found" in panel.message.text()
    assert "Traceback" not in panel.message.text()
    panel.quant.setPlainText('{"mode": "w4"}')
    qtbot.waitUntil(lambda: "Cannot compare" in panel.message.text(), timeout=5_000)
    assert panel.idle()
