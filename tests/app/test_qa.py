"""QA review rows (Qt-free): the alignment gate's verdict and residual from core's
registration, and what fails a scene."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from app.pairing import PairEntry
from app.qa import (
    ALIGNMENT_COLUMN,
    FIRST_METRIC_COLUMN,
    METRIC_COLUMNS,
    QaRow,
    QaThresholds,
    alignment_of,
    evaluate_entry,
    failures,
    table_rows,
    to_csv,
)
from core.io.pair import load_pair
from core.pipeline import FALLBACK_CHAIN, ConvertOptions, RegistrationOutcome, register_pair


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
