"""QA review rows: the alignment gate's verdict and residual from core's registration,
core.diagnostics' verdicts on each scene's output, and what fails a scene (Qt-free), plus
the QA tab showing the diagnostics columns (gui)."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from app.pairing import PairEntry
from app.qa import (
    ALIGNMENT_COLUMN,
    DIAGNOSTIC_COLUMNS,
    FIRST_DIAGNOSTIC_COLUMN,
    FIRST_METRIC_COLUMN,
    METRIC_COLUMNS,
    QaRow,
    QaThresholds,
    alignment_of,
    checks,
    diagnostic_flags,
    evaluate_entry,
    failures,
    table_rows,
    to_csv,
)
from core.diagnostics import SceneInfo, optimize_corrections, wb_stability_map
from core.io.pair import load_pair
from core.pipeline import (
    FALLBACK_CHAIN,
    ConvertOptions,
    RegistrationOutcome,
    choose_method,
    register_pair,
)


def test_scene_row_carries_cores_gate_verdict_and_residual(sim_pair_dir: Path) -> None:
    entry = PairEntry("sim", sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng")
    row = evaluate_entry(entry)
    loaded = load_pair(entry.raw12, entry.proraw48)
    _, outcome = register_pair(loaded, ConvertOptions(allow_misaligned=True))
    verdict, _, reasons = alignment_of(outcome)
    # the fixture pair has no misregistration: core registers it (0.30 px RMS here)
    assert outcome.status == "registered" and outcome.result is not None
    assert row.alignment == verdict == "passed" and row.alignment_reasons == reasons == ()
    assert row.alignment_note == outcome.note
    assert row.metrics["residual_rms_px"] == pytest.approx(outcome.result.residual_rms_px)
    assert 0 < row.metrics["residual_rms_px"] < 0.5
    # the first method of the chain is not a fallback (auto's first choice is the model)
    assert ("fallback" in row.tags) == (row.method != FALLBACK_CHAIN["auto"][0])
    header, body = table_rows([row], QaThresholds())
    assert header[ALIGNMENT_COLUMN] == "align gate" and body[0][ALIGNMENT_COLUMN] == verdict
    assert header[FIRST_METRIC_COLUMN] == METRIC_COLUMNS["residual_rms_px"][0] == "residual px"
    assert (
        to_csv([row], QaThresholds())
        .splitlines()[0]
        .startswith("scene,verdict,method,align gate,residual px,")
    )


def test_alignment_verdicts_from_registration_outcomes() -> None:
    none = RegistrationOutcome("unmeasured", None, "registration not possible: flat")
    assert alignment_of(none)[0] == "unmeasured" and math.isnan(alignment_of(none)[1])
    assert alignment_of(RegistrationOutcome("skipped", None, "off"))[0] == "skipped"


def test_a_failed_gate_fails_the_scene_with_its_reasons() -> None:
    good = {"anchor_psnr_db": 45.0, "residual_rms_px": 0.05}
    ok = QaRow("a", None, "model", metrics=good, alignment="passed")
    assert failures(ok, QaThresholds()) == []
    bad = QaRow(
        "b",
        None,
        "global",
        metrics={**good, "residual_rms_px": 1.4},
        alignment="FAILED",
        alignment_reasons=("remaining misalignment 1.40 px RMS exceeds 0.50 px",),
    )
    assert failures(bad, QaThresholds()) == [
        "alignment gate failed (remaining misalignment 1.40 px RMS exceeds 0.50 px)"
    ]
    _, body = table_rows([ok, bad], QaThresholds())
    assert [b[1] for b in body] == ["pass", "FAIL"]
    assert [b[FIRST_METRIC_COLUMN] for b in body] == ["0.050", "1.400"]
    # too little structure to measure: converted unregistered, not a failure
    flat = QaRow("c", None, "model", metrics=good, alignment="unmeasured")
    assert failures(flat, QaThresholds()) == []


def _core_output(entry: PairEntry):
    """The scene's output as QA converts it, computed with core directly (and its pair)."""
    options = ConvertOptions(allow_misaligned=True)
    pair, outcome = register_pair(load_pair(entry.raw12, entry.proraw48), options)
    result, _, _ = choose_method(pair, options, misaligned=outcome.status == "failed-overridden")
    return pair, result.camera48


def _core_diagnostics(pair, camera48):
    """core.diagnostics on an output as a DNG reader renders it (RAW12's white balance and
    BaselineExposure, which the written DNG copies), and the stability map vs RAW12."""
    scene = SceneInfo(
        wb_gains=tuple(float(g) for g in pair.wb_gains),
        exposure_ev=pair.raw12.color.baseline_exposure_ev,
        color=pair.raw12.color,
    )
    advice = optimize_corrections(camera48, scene)
    stability = wb_stability_map(camera48, pair.anchor, pair.raw12.cfa, unclipped=pair.unclipped)
    return advice, stability


def _column(panel, header: str) -> int:
    """Index of a column by its one-line header (the tab puts units on a second line)."""
    model = panel.model
    names = [
        model.horizontalHeaderItem(c).text().replace("\n", " ") for c in range(model.columnCount())
    ]
    return names.index(header)


@pytest.mark.gui
def test_qa_table_shows_cores_diagnostics_of_each_scene_output(
    qtbot, sim_pair_dir: Path, tmp_path: Path
) -> None:
    """The QA tab's diagnostics columns are core.diagnostics' results on the scene's output;
    their thresholds flag, sort, filter and export like the other columns."""
    from PySide6.QtCore import Qt

    from app.panels.qa import FAIL_COLOUR, QaPanel
    from app.state import AppState
    from app.workers import Workers

    entry = PairEntry("sim", sim_pair_dir / "raw12.dng", sim_pair_dir / "proraw48.dng")
    row = evaluate_entry(entry)
    pair, out = _core_output(entry)
    advice, stability = _core_diagnostics(pair, out)
    worst = stability.stability.max_abs_dev_ev
    assert row.advice == advice and row.advice.method == "learned"  # the shipped model ran
    np.testing.assert_array_equal(
        row.stability.stability.deviation_map, stability.stability.deviation_map
    )
    # a second scene: the same output with a local cast, to sort, flag and filter
    cast = dataclasses.replace(
        row, scene="cast", metrics={**row.metrics, "wb_local_cast_ev": worst + 0.5}
    )
    state = AppState()
    panel = QaPanel(state, Workers(), tmp_path / "qa")
    qtbot.addWidget(panel)
    state.set_qa_rows([row, cast])
    expected = {
        "exposure": advice.exposure.label,
        "saturation": advice.saturation.label if advice.saturation.identifiable else "not judged",
        "WB temp EV": f"{advice.white_balance.temperature_ev:+.3f}",
        "WB tint EV": f"{advice.white_balance.tint_ev:+.3f}",
        "local cast EV": f"{worst:.3f}",
    }
    for header, text in expected.items():
        assert panel.model.item(0, _column(panel, header)).text() == text, header
    col = _column(panel, "local cast EV")
    assert "vs RAW12" in panel.model.item(0, col).toolTip()  # core's wording on hover
    assert advice.exposure.label in panel.model.item(0, _column(panel, "exposure")).toolTip()
    # threshold: the default (core's local-cast threshold) vs a limit between the two rows
    assert worst <= QaThresholds().max_local_cast_ev
    panel.spins["max_local_cast_ev"].setValue(worst + 0.25)
    why = panel.model.columnCount() - 1
    assert panel.model.item(1, 1).text() == "FAIL"
    reasons = panel.model.item(1, why).text().split("; ")
    assert any(r.startswith(f"local cast {worst + 0.5:.3f} EV") for r in reasons), reasons
    assert "local cast" not in panel.model.item(0, why).text()
    assert panel.model.item(1, col).foreground().color().name() == FAIL_COLOUR
    # sorting by the column uses the values, filtering by the flag keeps the cast scene
    panel.view.sortByColumn(col, Qt.SortOrder.DescendingOrder)
    assert panel.proxy.index(0, 0).data() == "cast"
    panel.filter_diagnostic.setCurrentIndex(panel.filter_diagnostic.findData("cast"))
    assert panel.proxy.rowCount() == 1 and panel.proxy.index(0, 0).data() == "cast"
    # exports: the same columns and texts
    csv_lines = panel.export(tmp_path / "qa.csv", "csv").read_text().splitlines()
    header = csv_lines[0].split(",")
    assert header[FIRST_DIAGNOSTIC_COLUMN : FIRST_DIAGNOSTIC_COLUMN + 5] == [
        h for h, _ in DIAGNOSTIC_COLUMNS.values()
    ]
    first = next(csv.reader([csv_lines[1]]))
    assert [first[header.index(h)] for h in expected] == list(expected.values())
    md = panel.export(tmp_path / "qa.md", "md").read_text()
    assert "| exposure | saturation | WB temp EV | WB tint EV | local cast EV |" in md
    sim_line = next(line for line in md.splitlines() if line.startswith("| sim |"))
    assert " | ".join(expected.values()) in sim_line
    assert f"local cast ≤ {panel.thresholds().max_local_cast_ev:g} EV" in md


def test_diagnostic_thresholds_flag_rows() -> None:
    """WB shift and local cast are judged by value; the verdicts only when asked to."""
    good = {"anchor_psnr_db": 45.0, "wb_temperature_ev": 0.02, "wb_tint_ev": -0.01}
    row = QaRow("a", None, "model", metrics={**good, "wb_local_cast_ev": 0.04})
    t = QaThresholds()
    assert failures(row, t) == []
    shifted = dataclasses.replace(row, metrics={**row.metrics, "wb_tint_ev": -0.4})
    assert failures(shifted, t) == ["white balance shift temp +0.020 / tint -0.400 EV"]
    assert checks(shifted, t)["wb_temperature_ev"][0] and not checks(shifted, t)["wb_tint_ev"][0]
    assert diagnostic_flags(shifted, t) == {"wb", "flagged"}
    cast = dataclasses.replace(row, metrics={**row.metrics, "wb_local_cast_ev": 0.3})
    assert failures(cast, t) == ["local cast 0.300 EV"]
    advice = optimize_corrections(np.full((3, 8, 8), 0.18, np.float32), method="classical")
    under = dataclasses.replace(
        row,
        advice=dataclasses.replace(
            advice, exposure=dataclasses.replace(advice.exposure, label="under")
        ),
    )
    assert under.verdict("exposure") == "under"
    assert failures(under, t) == [] and "exposure" in diagnostic_flags(under, t)
    assert failures(under, dataclasses.replace(t, exposure_fails=True)) == ["exposure under"]
    _, body = table_rows([under], t)
    assert body[0][FIRST_DIAGNOSTIC_COLUMN] == "under"
