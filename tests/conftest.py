"""Shared fixtures: paths to the real header files and small simulated capture pairs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = (REPO / ".." / "shared" / "data" / "real").resolve()
IN_CI = bool(os.environ.get("CI"))


def real_file(name: str) -> Path:
    """Path of a file in shared/data/real; skips (fails in CI) when the folder is missing."""
    path = REAL_DATA / name
    if not path.is_file():
        if IN_CI:
            pytest.fail(f"real data file missing in CI: {path}")
        pytest.skip(f"real data file not available: {path}")
    return path


@pytest.fixture(scope="session")
def sim_pair_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated pair (RAW12 128x96 BGGR, ProRAW48 256x192) written as real DNGs.

    Models: a backlit scene, a blur-based LTM baked into ProRAW pixels, iOS 15-style
    white balance in AnalogBalance, an OpcodeList3 vignetting GainMap, no misregistration.
    """
    from core.simulate.pair import SimConfig, simulate_pair, write_pair

    folder = tmp_path_factory.mktemp("simpair")
    cfg = SimConfig(scene="backlit", w12=128, h12=96, cfa="BGGR", seed=3, ltm="blur")
    write_pair(simulate_pair(cfg), folder)
    return folder


def tiny_w8a8_config() -> dict:
    """The canonical w8a8 config with a one-scene, RAW12 64x48 calibration (fast)."""
    from core.signoff import default_quantization

    config = default_quantization("w8a8")
    config["activations"]["calibration"].update(
        scenes=["backlit"], raw12_size=[64, 48], tile_px=64, overlap_px=16
    )
    return config


@pytest.fixture(scope="session")
def model():  # -> core.model.infer.LoadedModel (imported lazily: torch)
    """The shipped default checkpoint (resources/models/default.pt), loaded once."""
    from core.model.infer import load_default_model

    return load_default_model()
