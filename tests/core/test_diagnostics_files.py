"""core.diagnostics on files: the white-balance stability map against RAW12 and the
``main.py diagnose`` helpers (diagnose_file, format_diagnostics), bad inputs included."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.cfa import CfaPattern
from core.diagnostics import diagnose_file, format_diagnostics, wb_stability_files
from core.diagnostics.stability import wb_stability_map
from core.errors import (
    FileNotReadableError,
    NotADngError,
    PairMismatchError,
    ShapeError,
    WrongKindError,
)
from core.forward import forward_np
from core.io.dng_writer import write_linear_dng
from core.io.raw12 import read_raw12
from core.simulate.scenes import make_scene


def _write_output(folder: Path, sim_pair_dir: Path, *, cast_quadrant: bool = False) -> Path:
    """The simulated truth written as a Linear48 output DNG with RAW12's colour tags.

    Models a perfect conversion; ``cast_quadrant`` multiplies red by 1.25 (+0.32 EV R/G)
    in the top-left quadrant, a local colour cast that anchor PSNR alone would hide.
    """
    raw = read_raw12(sim_pair_dir / "raw12.dng")
    truth = np.load(sim_pair_dir / "truth.npy").astype(np.float32)
    if cast_quadrant:
        h, w = truth.shape[1:]
        truth[0, : h // 2, : w // 2] *= np.float32(1.25)
    out = folder / ("cast.dng" if cast_quadrant else "out.dng")
    write_linear_dng(out, truth, color=raw.color, identity=raw.identity)
    return out


def test_stability_of_an_exact_output_is_flat() -> None:
    """Camera48 against its own forward-operator mosaic: no cell deviates."""
    cam = make_scene("natural_coffee", 96, 128, seed=2) * np.float32(0.3)
    cfa = CfaPattern.from_name("RGGB")
    rep = wb_stability_map(cam, forward_np(cam, cfa), cfa, grid=(3, 4))
    assert rep.stable and rep.flagged == ()
    assert rep.stability.max_abs_dev_ev < 0.05
    assert rep.stability.deviation_map.shape == (3, 4, 2)
    assert 0.5 < rep.valid_fraction <= 1.0
    json.dumps(rep.to_dict(), allow_nan=False)


def test_stability_flags_a_local_cast_where_it_is() -> None:
    """Blue x 1.4 in the bottom-right quarter of the output: flagged there, B/G > 0."""
    cam = make_scene("natural_coffee", 96, 128, seed=2) * np.float32(0.3)
    cfa = CfaPattern.from_name("BGGR")
    anchor = forward_np(cam, cfa)
    cast = cam.copy()
    cast[2, 48:, 64:] *= np.float32(1.4)
    rep = wb_stability_map(cast, anchor, cfa, grid=(2, 2))
    assert not rep.stable
    cells = {(r, c, ratio) for r, c, ratio, _ in rep.flagged}
    assert (1, 1, "B/G") in cells
    assert all(dev > 0 for r, c, ratio, dev in rep.flagged if (r, c) == (1, 1))


def test_stability_rejects_mismatched_shapes() -> None:
    cam = np.ones((3, 16, 16), np.float32)
    with pytest.raises(ShapeError):
        wb_stability_map(cam, np.ones((7, 8), np.float32), CfaPattern.from_name("RGGB"))
    with pytest.raises(ShapeError):
        wb_stability_map(cam[0], np.ones((8, 8), np.float32), CfaPattern.from_name("RGGB"))


def test_stability_files_on_a_simulated_pair(tmp_path: Path, sim_pair_dir: Path) -> None:
    good = wb_stability_files(_write_output(tmp_path, sim_pair_dir), sim_pair_dir / "raw12.dng")
    assert good.stable, good.flagged
    bad = wb_stability_files(
        _write_output(tmp_path, sim_pair_dir, cast_quadrant=True), sim_pair_dir / "raw12.dng"
    )
    assert not bad.stable
    # The map is relative to the global median (a global cast is allowed), so the test
    # compares the cast quadrant (rows 0-2, columns 0-3 of the 6x8 grid) with the rest.
    dev = bad.stability.deviation_map
    inside = np.zeros(dev.shape[:2], bool)
    inside[:3, :4] = True
    rg = dev[..., 0]
    step = np.nanmean(rg[inside]) - np.nanmean(rg[~inside])
    assert step == pytest.approx(np.log2(1.25), abs=0.05)
    assert np.nanmax(np.abs(dev[..., 1])) < 0.05  # B/G untouched
    assert all(ratio == "R/G" for _, _, ratio, _ in bad.flagged)
    assert all(d > 0 for r, c, _, d in bad.flagged if inside[r, c])


def test_stability_files_reject_a_mismatched_pair(tmp_path: Path, sim_pair_dir: Path) -> None:
    raw = read_raw12(sim_pair_dir / "raw12.dng")
    small = np.full((3, 64, 64), 0.2, np.float32)
    out = tmp_path / "small.dng"
    write_linear_dng(out, small, color=raw.color, identity=raw.identity)
    with pytest.raises(PairMismatchError, match="twice"):
        wb_stability_files(out, sim_pair_dir / "raw12.dng")


def test_diagnose_file_and_format(tmp_path: Path, sim_pair_dir: Path) -> None:
    out = _write_output(tmp_path, sim_pair_dir)
    d = diagnose_file(out, method="classical", raw12=sim_pair_dir / "raw12.dng")
    json.dumps(d, allow_nan=False)
    assert d["kind"] == "Linear48 output" and d["size"] == [256, 192]
    assert d["method"] == "classical" and d["model_hash"] is None
    assert d["exposure"]["label"] in ("under", "well", "over")
    assert d["white_balance"]["gains"][1] == 1.0
    # The simulator's colour tags give a real white point in kelvin.
    assert 2000 < d["white_balance"]["as_shot_cct_k"] < 12000
    assert d["wb_stability"]["stable"] is True
    text = format_diagnostics(d)
    for word in ("exposure:", "white balance:", "saturation:", "vs RAW12:", "out.dng"):
        assert word in text
    assert text.endswith("\n")


def test_diagnose_file_reports_a_local_cast(tmp_path: Path, sim_pair_dir: Path) -> None:
    out = _write_output(tmp_path, sim_pair_dir, cast_quadrant=True)
    d = diagnose_file(out, method="classical", raw12=sim_pair_dir / "raw12.dng")
    assert d["wb_stability"]["stable"] is False
    assert "LOCAL CAST" in format_diagnostics(d)


def test_diagnose_file_without_raw12_and_with_auto(tmp_path: Path, sim_pair_dir: Path) -> None:
    out = _write_output(tmp_path, sim_pair_dir)
    d = diagnose_file(out)
    assert d["wb_stability"] is None
    assert d["method_requested"] == "auto" and d["method"] in ("learned", "classical")
    assert "vs RAW12" not in format_diagnostics(d)
    fallback = diagnose_file(out, checkpoint=str(tmp_path / "missing.pt"))
    assert fallback["method"] == "classical" and "not found" in fallback["fallback_reason"]
    text = format_diagnostics(fallback)
    assert "auto requested but unavailable" in text and "not found" in text


def test_diagnose_file_bad_inputs(tmp_path: Path, sim_pair_dir: Path) -> None:
    with pytest.raises(WrongKindError, match="LinearRaw"):
        diagnose_file(sim_pair_dir / "raw12.dng")
    junk = tmp_path / "junk.dng"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(NotADngError):
        diagnose_file(junk)
    with pytest.raises(FileNotReadableError):
        diagnose_file(tmp_path / "missing.dng")


def test_diagnose_file_reports_progress_and_honours_cancel(
    tmp_path: Path, sim_pair_dir: Path
) -> None:
    from core.errors import CancelledError
    from core.progress import CancelToken, Progress

    out = _write_output(tmp_path, sim_pair_dir)
    events: list[Progress] = []
    diagnose_file(out, method="classical", raw12=sim_pair_dir / "raw12.dng", progress=events.append)
    assert [e.done for e in events] == [0, 1, 2, 3] and events[-1].fraction == 1.0
    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        diagnose_file(out, method="classical", cancel=token)
