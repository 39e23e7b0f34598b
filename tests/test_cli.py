"""The CLI as a user runs it: exit codes, one-line errors, no Qt for convert, no partial files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from main import main
from tests.conftest import REPO


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("convert", "inspect", "eval", "gui", "demo"))


def test_no_arguments_opens_the_gui(monkeypatch: pytest.MonkeyPatch) -> None:
    import main as main_module

    seen: list[object] = []
    monkeypatch.setattr(main_module, "cmd_gui", lambda args: seen.append(args) or 0)
    assert main([]) == 0
    assert len(seen) == 1 and getattr(seen[0], "demo", None) is False


@pytest.mark.gui
def test_gui_starts_and_saves_a_screenshot(tmp_path: Path) -> None:
    """The start-up test: ``main.py gui --demo --screenshot`` in a subprocess, offscreen."""
    shot = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    env.pop("DISPLAY", None)
    proc = subprocess.run(
        [sys.executable, str(REPO / "main.py"), "gui", "--demo", "--screenshot", str(shot)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert (tmp_path / "out" / "demo" / "raw12.dng").is_file()


def test_demo_convert_runs_twice_and_replaces_only_its_own_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's first command, run twice: the demo's own output is replaced; an
    existing file named with -o still needs --force."""
    monkeypatch.chdir(tmp_path)
    assert main(["convert", "--quiet"]) == 0
    first = (tmp_path / "out" / "demo" / "linear48.dng").stat().st_mtime_ns
    assert main(["convert", "--quiet"]) == 0
    assert (tmp_path / "out" / "demo" / "linear48.dng").stat().st_mtime_ns > first
    other = tmp_path / "mine.dng"
    other.write_bytes(b"keep me")
    assert main(["convert", "--quiet", "-o", str(other)]) != 0
    assert other.read_bytes() == b"keep me"
    assert "already exists" in capsys.readouterr().err


def test_convert_inspect_eval(
    sim_pair_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.dng"
    code = main(
        [
            "convert",
            "--raw12",
            str(sim_pair_dir / "raw12.dng"),
            "--proraw48",
            str(sim_pair_dir / "proraw48.dng"),
            "-o",
            str(out),
            "-q",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    assert "anchor PSNR" in text and out.is_file() and out.with_suffix(".json").is_file()

    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"].startswith("Linear48 output")
    assert info["provenance"]["method"] == "model"

    assert (
        main(["eval", "--raw12", str(sim_pair_dir / "raw12.dng"), "--output", str(out), "--json"])
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["psnr_db"] > 20


def test_existing_output_needs_force(
    sim_pair_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.dng"
    out.write_bytes(b"keep me")
    args = [
        "convert",
        "--raw12",
        str(sim_pair_dir / "raw12.dng"),
        "--proraw48",
        str(sim_pair_dir / "proraw48.dng"),
        "-o",
        str(out),
        "-q",
    ]
    assert main(args) == 3
    assert "--force" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main([*args, "--force"]) == 0


def test_bad_input_exit_code_and_one_line(
    sim_pair_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "bogus.dng"
    bogus.write_bytes(b"not a raw file at all")
    out = tmp_path / "o.dng"
    code = main(
        [
            "convert",
            "--raw12",
            str(bogus),
            "--proraw48",
            str(sim_pair_dir / "proraw48.dng"),
            "-o",
            str(out),
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: bogus.dng: not a DNG") and err.count("\n") == 1
    assert not out.exists()


def test_swapped_files_are_explained(
    sim_pair_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "convert",
            "--raw12",
            str(sim_pair_dir / "proraw48.dng"),
            "--proraw48",
            str(sim_pair_dir / "raw12.dng"),
            "-o",
            str(tmp_path / "o.dng"),
            "-q",
        ]
    )
    assert code == 2
    assert "pass it as --proraw48" in capsys.readouterr().err


def test_convert_never_imports_qt(sim_pair_dir: Path, tmp_path: Path) -> None:
    script = (
        "import sys, main\n"
        f"rc = main.main(['convert', '--raw12', {str(sim_pair_dir / 'raw12.dng')!r}, "
        f"'--proraw48', {str(sim_pair_dir / 'proraw48.dng')!r}, '-o', "
        f"{str(tmp_path / 'o.dng')!r}, '-q'])\n"
        "assert rc == 0, rc\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', "
        "'coremltools')]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr


def test_demo_writes_a_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "-o", str(tmp_path / "d"), "--size", "96x64", "--scene", "checkers"]) == 0
    names = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert names == ["ltm_gain.npy", "proraw48.dng", "raw12.dng", "sim.json", "truth.npy"]
    assert main(["demo", "-o", str(tmp_path / "e"), "--size", "96by64"]) == 4
    assert "WIDTHxHEIGHT" in capsys.readouterr().err


def test_register_json_has_the_documented_fields(
    sim_pair_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "register",
            "--raw12",
            str(sim_pair_dir / "raw12.dng"),
            "--proraw48",
            str(sim_pair_dir / "proraw48.dng"),
            "--json",
        ]
    )
    assert code == 0
    info = json.loads(capsys.readouterr().out)
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
        assert key in info
    assert len(info["radial"]) == 3 and len(info["tangential"]) == 2


def test_convert_demosaic_option_reaches_the_report_and_diagnose_reads_the_output(
    sim_pair_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--demosaic` changes the model's guidance (recorded in the provenance, and the
    output differs from the bilinear one); `diagnose --json` reports all three heads."""
    from core.evaluate import load_output_camera48

    outs = {}
    for method in ("bilinear", "malvar"):
        out = tmp_path / f"{method}.dng"
        args = ["convert", "--raw12", str(sim_pair_dir / "raw12.dng")]
        args += ["--proraw48", str(sim_pair_dir / "proraw48.dng"), "-o", str(out), "-q"]
        assert main([*args, "--demosaic", method]) == 0
        capsys.readouterr()
        report = json.loads(out.with_suffix(".json").read_text())
        assert report["provenance"]["guide_demosaic"] == method
        outs[method] = load_output_camera48(out, 0.0)[0]
    assert not np.array_equal(outs["bilinear"], outs["malvar"])

    assert main(["diagnose", str(tmp_path / "malvar.dng"), "--json"]) == 0
    diag = json.loads(capsys.readouterr().out)
    assert {"exposure", "white_balance", "saturation"} <= set(diag)


def test_unknown_demosaic_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["convert", "--demosaic", "nearest"])
    assert "invalid choice" in capsys.readouterr().err
