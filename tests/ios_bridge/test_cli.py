"""The CLI handlers, called directly through a parser built by add_subcommands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from core.signoff import find_records
from ios_bridge.cli import EXIT_BUDGET, EXIT_SIGNOFF, add_subcommands
from ios_bridge.export import load_package
from ios_bridge.manifest import read_manifest


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="linear48")
    add_subcommands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_parser_registers_every_command():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_subcommands(sub)
    assert {"export-coreml", "parity", "signoff", "ios-plan"} <= set(sub.choices)
    args = parser.parse_args(["export-coreml", "--precision", "int8", "-o", "X", "--force"])
    assert args.force and args.precision == "int8" and callable(args.func)


def test_signoff_create_and_list(tmp_path, capsys):
    d = str(tmp_path)
    code = _run(
        [
            "signoff",
            "create",
            "--reviewer",
            "QA bot",
            "--precision",
            "int8",
            "--approve-all",
            "--verdict",
            "zone_plate=rejected",
            "--note",
            "zone_plate=moire",
            "--signoff-dir",
            d,
        ]
    )
    assert code == 0 and "REFUSES" in capsys.readouterr().out
    code = _run(
        [
            "signoff",
            "create",
            "--reviewer",
            "QA bot",
            "--precision",
            "int8",
            "--approve-all",
            "--signoff-dir",
            d,
        ]
    )
    assert code == 0 and "ACCEPTS" in capsys.readouterr().out
    records = [r for _, r in find_records(tmp_path)]
    assert len(records) == 2 and all(r.model_hash.startswith("sha256:") for r in records)
    assert _run(["signoff", "list", "--precision", "int8", "--signoff-dir", d]) == 0
    out = capsys.readouterr().out
    assert out.count("ACCEPTED") == 1 and "zone_plate: rejected" in out


def test_signoff_create_names_missing_scenes(tmp_path, capsys):
    code = _run(
        [
            "signoff",
            "create",
            "--reviewer",
            "R",
            "--precision",
            "w8a8",
            "--verdict",
            "backlit=approved",
            "--signoff-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == 4 and err.startswith("error: no verdict for bright_window")
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())
    code = _run(
        [
            "signoff",
            "create",
            "--reviewer",
            "R",
            "--precision",
            "w8a8",
            "--verdict",
            "moon=approved",
            "--signoff-dir",
            str(tmp_path),
        ]
    )
    assert code == 4 and "unknown scene(s) moon" in capsys.readouterr().err


def test_export_refused_without_signoff(tmp_path, capsys):
    code = _run(
        [
            "export-coreml",
            "--precision",
            "int8",
            "-o",
            str(tmp_path / "o"),
            "-q",
            "--signoff-dir",
            str(tmp_path / "none"),
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_SIGNOFF and err.startswith("error: INT8 export refused")
    assert not (tmp_path / "o").exists()


def test_bad_options_exit_4(tmp_path, capsys):
    assert _run(["export-coreml", "-o", str(tmp_path), "--frame", "big"]) == 4
    assert "not WxH" in capsys.readouterr().err
    assert _run(["ios-plan", "--frame", "102x100", "--no-sample", "-q"]) == 4
    assert "multiple of 4" in capsys.readouterr().err
    assert _run(["ios-plan", "--precision", "fp16", "--tile-px", "60", "--no-sample", "-q"]) == 4
    assert "tile_px" in capsys.readouterr().err


def test_bad_checkpoint_exit_2(tmp_path, capsys):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a model")
    assert _run(["signoff", "list", "--checkpoint", str(bad), "--signoff-dir", str(tmp_path)]) == 2
    assert "x.pt: model checkpoint" in capsys.readouterr().err


def test_ios_plan_pass_fail_and_manifest(tmp_path, capsys):
    out = tmp_path / "plan.json"
    code = _run(
        ["ios-plan", "--frame", "768x512", "--tile-px", "256", "--no-sample", "-q", "-o", str(out)]
    )
    text = capsys.readouterr().out
    assert code == 0 and "overall: PASS" in text
    assert read_manifest(out).frame_w == 768
    code = _run(
        [
            "ios-plan",
            "--frame",
            "768x512",
            "--tile-px",
            "256",
            "--no-sample",
            "-q",
            "--budget-gb",
            "0.01",
        ]
    )
    assert code == EXIT_BUDGET and "FAIL" in capsys.readouterr().out


@pytest.mark.coreml
@pytest.mark.slow
def test_signed_int8_export_end_to_end(tmp_path, capsys):
    d = str(tmp_path / "records")
    assert (
        _run(
            [
                "signoff",
                "create",
                "--reviewer",
                "R",
                "--precision",
                "int8",
                "--approve-all",
                "--signoff-dir",
                d,
            ]
        )
        == 0
    )
    out = tmp_path / "pkg"
    code = _run(
        [
            "export-coreml",
            "--precision",
            "int8",
            "-o",
            str(out),
            "--signoff-dir",
            d,
            "--frame",
            "192x128",
            "--tile-px",
            "64",
            "--overlap-px",
            "16",
            "-q",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "WARNING" not in captured.err and "verified" in captured.out
    manifest = read_manifest(out / "linear48_int8.manifest.json")
    assert manifest.signoff is not None and manifest.signoff["reviewer"] == "R"
    assert manifest.warning == ""
    model, program = load_package(out / "linear48_detail_int8.mlpackage")
    kinds = {
        op.weight.op.op_type for op in program.functions["main"].operations if op.op_type == "conv"
    }
    assert kinds == {"constexpr_affine_dequantize"}
    assert json.loads(model.user_defined_metadata["linear48.quantization"])["mode"] == "int8"


def test_registering_the_commands_imports_nothing_heavy():
    import subprocess
    import sys

    script = (
        "import argparse, sys\n"
        "from ios_bridge.cli import add_subcommands\n"
        "add_subcommands(argparse.ArgumentParser().add_subparsers())\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'coremltools', 'PySide6')]\n"
        "assert not bad, bad[:5]\n"
    )
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
