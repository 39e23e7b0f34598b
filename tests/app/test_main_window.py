"""Behavioural GUI tests: the real main window driven offscreen on a small simulated pair."""

from __future__ import annotations

import contextlib
import gc
import shutil
import subprocess
import sys
import types
import weakref
from pathlib import Path

import numpy as np
import pytest

from app.analysis import reference_render
from app.pairing import PairEntry
from core.baselines import upsample_gain
from core.io.pair import load_pair
from core.metrics import cfa_error_histograms, halo_map
from core.pipeline import ConvertOptions, choose_method, register_pair

pytestmark = pytest.mark.gui
TIMEOUT_MS = 30_000


def _entry(folder: Path) -> PairEntry:
    return PairEntry(folder.name, folder / "raw12.dng", folder / "proraw48.dng")


def _open(qtbot, win, entry: PairEntry) -> None:
    win.open_entry(entry)
    qtbot.waitUntil(win.ready, timeout=TIMEOUT_MS)


def test_open_pair_every_pane_shows_cores_arrays(qtbot, window, sim_pair_dir):
    _open(qtbot, window, _entry(sim_pair_dir))
    loaded = load_pair(sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng")
    options = ConvertOptions(allow_misaligned=True)
    pair, _ = register_pair(loaded, options)  # the GUI registers like convert does
    base, metrics, decision = choose_method(pair, options)
    panes = window.panes.panes
    np.testing.assert_array_equal(panes["output"].source, base.camera48)
    reference, _ = reference_render(pair, base.global_gain, use_pgtm=True)
    np.testing.assert_array_equal(panes["proraw"].source, reference)
    h48, w48 = pair.camera48.shape[1:]
    gain = np.log2(upsample_gain(base.gain_lowres, h48, w48))
    np.testing.assert_allclose(panes["gain"].source, gain, rtol=1e-6)
    np.testing.assert_array_equal(panes["halo"].source, halo_map(base.camera48, reference))
    assert np.isfinite(panes["diff"].source).any()
    for key in ("proraw", "output", "gain", "diff", "halo"):
        img = panes[key].image.image
        assert img is not None and img.dtype == np.uint8 and img.ndim == 3
    # the registration pane shows either core's overlay or an explicit empty state
    reg = window.state.loaded.analysis.registration
    assert reg.available or "registration" in panes["registration"].message.toPlainText()
    if reg.available:  # a short verdict line, every figure and threshold on hover
        info = panes["registration"].info_label
        assert info.text().startswith("gate passed" if reg.gate_passed else "gate FAILED")
        assert all(f"{k} = " in info.toolTip() for k in (*reg.figures, *reg.thresholds))
    core_h = cfa_error_histograms(
        base.camera48,
        pair.anchor,
        pair.raw12.cfa,
        bins=2048,
        mask=pair.unclipped,
        clip=float("inf"),
    )
    for plane, h in window.histograms.data.items():
        np.testing.assert_array_equal(h.counts, core_h[plane][0].reshape(128, 16).sum(axis=1))
    assert window.state.loaded.analysis.anchor_metrics.psnr_db == pytest.approx(metrics.psnr_db)
    assert window.state.pair_metrics[0]["method"] == decision.used


def test_pane_header_elides_instead_of_clipping(qtbot):
    from app.panels.image_views import ImagePane

    pane = ImagePane("k", "A pane title long enough not to fit a narrow pane")
    qtbot.addWidget(pane)
    pane.resize(200, 150)
    pane.show()
    pane.set_info("figures that do not fit either", "every figure, in full")
    title, info = pane.title_label, pane.info_label
    assert title.shown_text().endswith("…") and info.shown_text().endswith("…")
    assert title.width() + info.width() <= pane.header.width()  # side by side, no overlap
    assert info.toolTip() == "every figure, in full"
    pane.resize(1200, 150)
    qtbot.waitUntil(lambda: pane.header.width() > 1000)
    assert title.shown_text() == title.text() and info.shown_text() == info.text()


def test_linked_zoom_moves_all_panes(qtbot, window, sim_pair_dir):
    from PySide6.QtCore import QRectF

    _open(qtbot, window, _entry(sim_pair_dir))
    panes = window.panes.panes
    panes["halo"].view.setRange(QRectF(40, 30, 64, 48), padding=0)
    qtbot.wait(50)
    target = panes["halo"].view.viewRect()
    for pane in panes.values():
        r = pane.view.viewRect()
        assert r.left() == pytest.approx(target.left(), abs=0.5)
        assert r.top() == pytest.approx(target.top(), abs=0.5)
        assert r.width() == pytest.approx(target.width(), abs=0.5)
    window.panes.fit()
    qtbot.wait(50)
    rects = [p.view.viewRect() for p in panes.values()]
    for r in rects:  # one pixel of layout rounding between panes, at most
        assert r.center().x() == pytest.approx(rects[0].center().x(), abs=2.0)
        assert r.width() == pytest.approx(rects[0].width(), rel=0.02)


def test_region_updates_histograms_and_panes(qtbot, window, sim_pair_dir):
    _open(qtbot, window, _entry(sim_pair_dir))
    whole = {k: v.n for k, v in window.histograms.data.items()}
    roi = (10, 40, 20, 70)
    window.state.set_view(roi=roi)
    qtbot.waitUntil(lambda: window.histograms.data_key[2] == roi, timeout=TIMEOUT_MS)
    part = {k: v.n for k, v in window.histograms.data.items()}
    assert all(0 < part[k] < whole[k] for k in whole)
    assert sum(part.values()) <= (roi[1] - roi[0]) * (roi[3] - roi[2])
    for pane in window.panes.panes.values():
        assert pane.roi_outline.isVisible()
    assert "region" in window.histograms.region.text()
    window.act_clear_roi()
    qtbot.waitUntil(lambda: window.histograms.data_key[2] is None, timeout=TIMEOUT_MS)


def test_convert_runs_with_progress_and_cancel_leaves_no_file(
    qtbot, window, sim_pair_dir, tmp_path
):
    _open(qtbot, window, _entry(sim_pair_dir))
    stages = []
    window.state.busy_changed.connect(lambda b: stages.append(None if b is None else b.stage))
    out = tmp_path / "out.dng"
    assert window.start_convert(out) is not None
    qtbot.waitUntil(lambda: window.state.busy is None, timeout=TIMEOUT_MS)
    assert out.is_file() and window.state.result is not None
    assert window.state.result.output_path == out
    assert {"read", "method", "write"} <= set(stages)
    assert window.state.pair_metrics[0]["status"] == "converted"
    np.testing.assert_array_equal(
        window.panes.panes["output"].source, window.state.result.baseline.camera48
    )
    cancelled = tmp_path / "cancelled.dng"
    handle = window.start_convert(cancelled)
    window.act_cancel()
    assert handle.token.cancelled
    qtbot.waitUntil(lambda: window.state.busy is None, timeout=TIMEOUT_MS)
    assert not cancelled.exists() and not cancelled.with_suffix(".json").exists()
    assert list(tmp_path.glob("cancelled*")) == []
    assert "Cancelled" in window.state.last_message.text


def test_convert_panel_demosaic_reaches_the_dngs_provenance(qtbot, window, sim_pair_dir, tmp_path):
    from core.demosaic import METHODS as DEMOSAIC_METHODS
    from core.io.dng_writer import read_provenance

    panel = window.convert_panel
    keys = [panel.demosaic.itemData(i) for i in range(panel.demosaic.count())]
    assert keys == list(DEMOSAIC_METHODS) == ["bilinear", "malvar", "dht", "aahd", "learned"]
    default = ConvertOptions().demosaic
    assert panel.demosaic.currentData() == default
    assert "(default)" in panel.demosaic.itemText(keys.index(default))
    _open(qtbot, window, _entry(sim_pair_dir))
    panel.demosaic.setCurrentIndex(keys.index("malvar"))
    assert window.state.convert.demosaic == "malvar"
    out = tmp_path / "malvar.dng"
    assert window.start_convert(out) is not None
    qtbot.waitUntil(lambda: window.state.busy is None, timeout=TIMEOUT_MS)
    result = window.state.result
    assert result is not None and result.decision.used == "model"  # the model reads a guide
    assert read_provenance(out)["guide_demosaic"] == "malvar"
    assert result.report["provenance"]["guide_demosaic"] == "malvar"
    assert "guide demosaic malvar" in panel.decision.text()


def test_corrupt_file_shows_message_and_app_stays_usable(qtbot, window, sim_pair_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(sim_pair_dir / "proraw48.dng", bad / "proraw48.dng")
    data = (sim_pair_dir / "raw12.dng").read_bytes()
    (bad / "raw12.dng").write_bytes(data[: len(data) // 3])  # truncated
    window.open_entry(_entry(bad))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=TIMEOUT_MS)
    assert window.banner.level == "error"
    assert "raw12.dng" in window.banner.label.text()
    assert "Traceback" not in window.banner.label.text()
    assert window.state.pair_metrics[0]["status"] == "error"
    _open(qtbot, window, _entry(sim_pair_dir))
    assert window.state.loaded.entry.raw12 == sim_pair_dir / "raw12.dng"


def _arrays_held_by(*roots: object, min_bytes: int = 16 * 1024) -> list[np.ndarray]:
    """Every NumPy array of at least ``min_bytes`` reachable from ``roots`` through Python
    references: attributes, containers, closures of stored callables and array bases
    (modules, classes and function globals are not followed)."""
    skip = (types.ModuleType, type, str, bytes, int, float, types.FrameType, types.CodeType)
    seen: set[int] = set()
    found: dict[int, np.ndarray] = {}
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            if obj.nbytes >= min_bytes:
                found[id(obj)] = obj
            if obj.base is not None:
                stack.append(obj.base)
        elif isinstance(obj, types.FunctionType):
            for cell in obj.__closure__ or ():
                with contextlib.suppress(ValueError):  # an empty cell
                    stack.append(cell.cell_contents)
            stack.extend(obj.__defaults__ or ())
        elif not isinstance(obj, skip):
            stack.extend(gc.get_referents(obj))
    return list(found.values())


def test_switching_pairs_does_not_accumulate_arrays(qtbot, tmp_path, sim_pair_dir):
    """Open the demo pair, then switch between it and another pair four times.

    After every switch, each array the window and state held for the previous pair (panes,
    pyramids, rendered images, analysis, the pair itself) is freed everywhere in the
    process (a weak reference to it is dead), and the window holds the same number and
    bytes of arrays after every load: nothing accumulates.
    """
    from app.main_window import MainWindow

    win = MainWindow(
        demo_folder=tmp_path / "demo",
        qa_folder=tmp_path / "qa",
        records_folder=tmp_path / "signoff",
        demo_size="128x96",
    )
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    win.open_demo()
    qtbot.waitUntil(win.ready, timeout=TIMEOUT_MS)
    demo = win.state.loaded.entry
    other = _entry(sim_pair_dir)
    held: list[list[np.ndarray]] = []
    sizes: list[tuple[int, int]] = []  # (arrays, bytes) held after each load
    for entry in (None, other, demo, other, demo):
        if entry is not None:
            _open(qtbot, win, entry)
            assert win.state.loaded.entry == entry
        gc.collect()
        arrays = _arrays_held_by(win, win.state)
        assert any(a is win.state.loaded.analysis.output for a in arrays)  # the walk sees them
        if held:
            now = {id(a) for a in arrays}
            previous = [weakref.ref(a) for a in held[-1] if id(a) not in now]
            assert previous  # the previous pair's arrays were replaced...
            held[-1] = []
            gc.collect()
            leaked = [(a.shape, str(a.dtype)) for r in previous if (a := r()) is not None]
            assert leaked == []  # ...and freed
        held.append(arrays)
        sizes.append((len(arrays), sum(a.nbytes for a in arrays)))
        del arrays
    # from the second load on (the first renders before the first fit: smaller crops), the
    # window holds the same arrays, count and bytes, whichever pair (same size) it shows
    assert sizes[0][1] <= sizes[1][1] == sizes[2][1] == sizes[3][1] == sizes[4][1]
    assert sizes[1][0] == sizes[2][0] == sizes[3][0] == sizes[4][0]
    win.close()


def test_int8_signoff_writes_a_record_the_gate_accepts(qtbot, window, tmp_path):
    from core.signoff import gate_accepts, read_record

    panel = window.signoff
    assert panel.records.count() == 1  # an empty folder says so
    assert panel.records.item(0).text().startswith("no sign-off records in ")
    panel.reviewer.setText("QA Reviewer")
    panel.model_hash.setText("sha256:feedbeef")
    assert not panel.sign_button.isEnabled()
    for scene in panel.scenes:
        panel.set_verdict(scene, "approved", f"{scene} looks fine")
    assert panel.sign_button.isEnabled()
    panel.sign_button.click()
    path = panel.last_path
    assert path is not None and path.parent == tmp_path / "signoff"
    record = read_record(path)
    assert record.reviewer == "QA Reviewer" and record.model_hash == "sha256:feedbeef"
    assert record.scenes[0].note == f"{panel.scenes[0]} looks fine"
    assert all(s.metrics == {} for s in record.scenes)  # hash feedbeef: never compared
    ok, why = gate_accepts(record, "sha256:feedbeef", panel.quantization(), panel.scenes)
    assert ok, why
    assert panel.records.count() == 1 and "accepted" in panel.records.item(0).text()
    # The INT8 export's own lookup (canonical w8a8 config, required QA scenes) accepts it.
    from core.signoff import default_quantization, find_accepting_record

    found, reasons = find_accepting_record(
        tmp_path / "signoff", "feedbeef", default_quantization("w8a8")
    )
    assert found is not None and found[0] == path, reasons


def test_qa_table_filters_and_exports(qtbot, window, tmp_path):
    from app.qa import run_simulated

    rows = run_simulated(tmp_path / "qa", scenes=("backlit", "checkers"), size=(64, 48))
    window.state.set_qa_rows(rows)
    qa = window.qa
    assert qa.proxy.rowCount() == 2
    from app.qa import ALIGNMENT_COLUMN

    assert qa.model.horizontalHeaderItem(ALIGNMENT_COLUMN).text() == "align gate"
    why = qa.model.columnCount() - 1  # last in the exports, shown right after the verdict
    assert qa.model.horizontalHeaderItem(why).text() == "why"
    assert qa.view.horizontalHeader().visualIndex(why) == 2
    for r, row in enumerate(rows):  # the gate's verdict, with what registration did on hover
        cell = qa.model.item(r, ALIGNMENT_COLUMN)
        assert cell.text() == row.alignment != ""
        assert row.alignment_note in cell.toolTip()
    qa.filter_text.setText("pattern")
    assert qa.proxy.rowCount() == 1
    csv_text = qa.export(tmp_path / "qa.csv", "csv").read_text()
    md_text = qa.export(tmp_path / "qa.md", "md").read_text()
    assert csv_text.splitlines()[0].startswith("scene,verdict,method")
    assert "| backlit |" in md_text and "| checkers |" in md_text


def test_startup_screenshot_in_subprocess(sim_pair_dir, tmp_path):
    shot = tmp_path / "shot.png"
    code = (
        "import sys; from pathlib import Path; from app.main import run_gui; "
        f"sys.exit(run_gui(Path({str(sim_pair_dir)!r}), None, None, False, Path({str(shot)!r})))"
    )
    env = {**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 10_000
