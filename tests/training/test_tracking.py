"""training.tracking and training.config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import ConfigError
from training.config import TrainConfig, config_from_dict, load_config
from training.tracking import (
    SCALARS_FILE,
    Registry,
    ScalarWriter,
    backfill_scalars,
    dashboard_markdown,
    read_scalars,
)

REPO = Path(__file__).resolve().parents[2]


def test_registry_round_trip(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    reg.upsert("v1.0_a", config={"x": 1}, status="PLANNED", notes="plan", commit="abc")
    reg.upsert("v1.0_a", status="SUCCESS", metrics={"truth_psnr_db": 30.5}, checkpoint="m.pt")
    reg.upsert("v1.0_a", metrics={"steps": 10})
    reg.upsert("v1.1_b", status="FAILED", commit="def")
    again = Registry(tmp_path)  # a new connection reads the same rows
    rec = again.get("v1.0_a")
    assert rec is not None
    assert (rec.status, rec.checkpoint, rec.notes, rec.git_commit) == (
        "SUCCESS",
        "m.pt",
        "plan",
        "abc",
    )
    assert rec.metrics == {"truth_psnr_db": 30.5, "steps": 10} and rec.config == {"x": 1}
    assert [r.name for r in again.all()] == ["v1.0_a", "v1.1_b"]
    table = dashboard_markdown(again.all())
    assert "| v1.0_a | SUCCESS | abc |" in table and "30.500" in table
    with pytest.raises(ConfigError, match="status"):
        reg.upsert("v1.0_a", status="DONE")


def test_tensorboard_events_round_trip(tmp_path: Path) -> None:
    w = ScalarWriter(tmp_path)
    w.add_scalar("loss/total", 0.5, 1)
    w.add_scalar("loss/total", 0.25, 2)
    w.close()
    assert read_scalars(w.path) == [("loss/total", 1, 0.5), ("loss/total", 2, 0.25)]
    data = bytearray(w.path.read_bytes())
    data[-3] ^= 0xFF
    w.path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC"):
        read_scalars(w.path)


def test_scalars_jsonl_beside_the_events(tmp_path: Path) -> None:
    w = ScalarWriter(tmp_path)
    w.add_scalar("loss/total", 0.5, 1)
    w.add_scalar("loss/range", float("nan"), 1)
    w.add_scalar("loss/total", 0.25, 2)
    w.flush()
    lines = [json.loads(line) for line in (tmp_path / SCALARS_FILE).read_text().splitlines()]
    w.close()
    assert w.scalars_path == tmp_path / SCALARS_FILE
    assert [(r["tag"], r["step"], r["value"]) for r in lines] == [
        ("loss/total", 1, 0.5),
        ("loss/range", 1, None),  # non-finite -> null: the file stays standard JSON
        ("loss/total", 2, 0.25),
    ]
    assert all(isinstance(r["wall_time"], float) for r in lines)
    again = ScalarWriter(tmp_path)  # a resumed run appends to the same scalars file
    again.add_scalar("loss/total", 0.125, 3)
    again.close()
    steps = [json.loads(x)["step"] for x in (tmp_path / SCALARS_FILE).read_text().splitlines()]
    assert steps == [1, 1, 2, 3]


def test_backfill_scalars_from_event_files(tmp_path: Path) -> None:
    w = ScalarWriter(tmp_path)
    w.add_scalar("loss/anchor", 0.75, 10)
    w.add_scalar("model/scale", 1.5, 10)
    w.close()
    (tmp_path / SCALARS_FILE).unlink()  # a run recorded before the file existed
    out = backfill_scalars(tmp_path)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [
        {"tag": "loss/anchor", "step": 10, "value": 0.75},
        {"tag": "model/scale", "step": 10, "value": 1.5},
    ]
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
        backfill_scalars(tmp_path / "empty")


def test_shipped_configs_load() -> None:
    """Every shipped config loads with its own trainer's loader (the diagnostic net and the
    learned demosaicer have their own config schemas)."""
    from training import demosaic, diagnostics

    loaders = {"diagnostics.toml": diagnostics.load_config, "demosaic.toml": demosaic.load_config}
    paths = sorted((REPO / "training" / "configs").glob("*.toml"))
    assert {"default.toml", *loaders} <= {p.name for p in paths}
    for path in paths:
        if path.name in loaders:
            assert loaders[path.name](path) is not None
        else:
            assert isinstance(load_config(path), TrainConfig)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"run": {"name": "default"}}, "run.name"),
        ({"optim": {"steps": 0}}, "optim.steps"),
        ({"optim": {"lr": "fast"}}, "optim.lr"),
        ({"data": {"crop48": 30}}, "data.crop48"),
        ({"loss": {"bogus": 1.0}}, "loss.bogus"),
        ({"model": {"pool_px": 6}}, "model.pool_px"),
        ({"extra": {}}, "extra"),
    ],
)
def test_bad_config_names_the_field(data: dict[str, dict[str, object]], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        config_from_dict(data)


def test_bad_toml(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[run\nname=")
    with pytest.raises(ConfigError, match="TOML"):
        load_config(p)
