"""The Inspect view's diagnostics panel, driven in the real main window on a small
simulated pair: what it shows is core.diagnostics' result on the output on screen."""

from __future__ import annotations

import numpy as np
import pytest

from app.pairing import PairEntry
from core.diagnostics import SceneInfo, generate_preview, optimize_corrections, wb_stability_map
from core.diagnostics.features import area_downsample
from core.io.pair import load_pair
from core.pipeline import ConvertOptions, choose_method, register_pair

pytestmark = pytest.mark.gui
TIMEOUT_MS = 30_000


def _core(pair, camera48, method: str = "auto"):
    """core.diagnostics on an output as a DNG reader renders it (RAW12's white balance and
    BaselineExposure), the stability map against the RAW12 anchor and the preview."""
    scene = SceneInfo(
        wb_gains=tuple(float(g) for g in pair.wb_gains),
        exposure_ev=pair.raw12.color.baseline_exposure_ev,
        color=pair.raw12.color,
    )
    advice = optimize_corrections(camera48, scene, method=method)
    stability = wb_stability_map(camera48, pair.anchor, pair.raw12.cfa, unclipped=pair.unclipped)
    return advice, stability, generate_preview(camera48, advice, max_side_px=512)


def _wait(qtbot, panel) -> None:
    qtbot.waitUntil(lambda: panel.ready() and panel.data is not None, timeout=TIMEOUT_MS)


def test_panel_shows_cores_diagnostics_of_the_output_on_screen(qtbot, window, sim_pair_dir):
    entry = PairEntry("sim", sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng")
    window.open_entry(entry)
    qtbot.waitUntil(window.ready, timeout=TIMEOUT_MS)
    panel = window.diagnostics
    assert panel.data is None and not panel.ready()  # hidden: nothing computed yet
    window.show_diagnostics()
    _wait(qtbot, panel)
    # the output on screen is the pipeline's (as convert runs it)
    options = ConvertOptions(allow_misaligned=True)
    pair, _ = register_pair(load_pair(entry.raw12, entry.proraw48), options)
    base, _, _ = choose_method(pair, options)
    output = window.state.loaded.analysis.output
    np.testing.assert_array_equal(output, base.camera48)
    advice, stability, preview = _core(pair, output)
    data = panel.data
    assert data.advice == advice and advice.method == "learned"
    np.testing.assert_array_equal(
        data.stability.stability.deviation_map, stability.stability.deviation_map
    )
    assert data.stability.flagged == stability.flagged
    np.testing.assert_array_equal(data.preview, preview)
    scale = np.asarray(advice.input_gains, np.float32) * np.float32(2.0**advice.input_exposure_ev)
    np.testing.assert_array_equal(data.before, area_downsample(output, 512) * scale[:, None, None])
    # what is drawn: the map at the chosen ratio, both previews, the verdicts in words
    np.testing.assert_array_equal(panel.map_values, stability.stability.deviation_map[..., 0])
    assert panel.map_image.image.shape[:2] == stability.stability.deviation_map.shape[:2]
    lo, hi = panel.colorbar.levels()
    assert lo == -hi and hi >= stability.stability.max_abs_dev_ev
    panel.ratio.setCurrentIndex(1)
    np.testing.assert_array_equal(panel.map_values, stability.stability.deviation_map[..., 1])
    for image, arr in ((panel.before_image, data.before), (panel.after_image, data.preview)):
        assert image.image.dtype == np.uint8 and image.image.shape == (*arr.shape[1:], 3)
    assert "exposed" in panel.verdicts["exposure"].text()
    assert panel.advice["white balance"].text().startswith("Advice: ")
    assert f"{advice.white_balance.gains[0]:.3f}" in panel.figures["white balance"].text()
    assert "model " + advice.model_hash[:12] in panel.status.text()


def test_method_selector_and_convert_recompute(qtbot, window, sim_pair_dir, tmp_path):
    entry = PairEntry("sim", sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng")
    window.show_diagnostics()
    window.open_entry(entry)
    qtbot.waitUntil(window.ready, timeout=TIMEOUT_MS)
    panel = window.diagnostics
    _wait(qtbot, panel)
    panel.method.setCurrentIndex(panel.method.findData("classical"))
    assert window.state.view.diagnostics_method == "classical"
    _wait(qtbot, panel)
    pair = window.state.loaded.pair
    advice, _, preview = _core(pair, window.state.loaded.analysis.output, "classical")
    assert panel.data.advice == advice and advice.method == "classical"
    np.testing.assert_array_equal(panel.data.preview, preview)
    assert "classical" in panel.status.text()
    # after convert the panel diagnoses the written output
    window.start_convert(tmp_path / "out.dng")
    qtbot.waitUntil(lambda: window.state.result is not None, timeout=TIMEOUT_MS)
    _wait(qtbot, panel)
    converted = window.state.result.baseline.camera48
    assert window.state.loaded.analysis.output is converted
    advice, stability, _ = _core(pair, converted, "classical")
    assert panel.data.advice == advice
    np.testing.assert_array_equal(
        panel.data.stability.stability.deviation_map, stability.stability.deviation_map
    )
