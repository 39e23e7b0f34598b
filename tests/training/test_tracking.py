"""training.tracking and training.config."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from training.config import TrainConfig, config_from_dict, load_config
from training.tracking import Registry, ScalarWriter, dashboard_markdown, read_scalars

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


def test_shipped_configs_load() -> None:
    for path in sorted((REPO / "training" / "configs").glob("*.toml")):
        cfg = load_config(path)
        assert isinstance(cfg, TrainConfig)


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
