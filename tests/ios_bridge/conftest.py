"""Shared fixtures of the Core ML bridge tests: the shipped model and tiny simulated scenes."""

from __future__ import annotations

import pytest

from core.model.infer import LoadedModel, load_default_model
from core.signoff import default_quantization
from ios_bridge.scenes import SceneInputs, load_scene

#: A tiny frame: RAW12 96x64 -> 192x128 at 48MP, cut into 64 px tiles with 16 px overlap.
TINY_RAW12 = (96, 64)
TINY_TILE, TINY_OVERLAP = 64, 16


@pytest.fixture(scope="session")
def model() -> LoadedModel:
    """The shipped default checkpoint (resources/models/default.pt)."""
    return load_default_model()


@pytest.fixture(scope="session")
def tiny_scene() -> SceneInputs:
    """A backlit simulated pair (RAW12 96x64, seed 4) read back through real DNG files:
    strong local tone mapping, clipped sky, the smallest frame that still has 12 tiles."""
    return load_scene("backlit", TINY_RAW12, seed=4)


def tiny_w8a8_config() -> dict:
    """The canonical w8a8 config with a one-scene, RAW12 64x48 calibration (fast)."""
    config = default_quantization("w8a8")
    config["activations"]["calibration"].update(
        scenes=["backlit"], raw12_size=[64, 48], tile_px=64, overlap_px=16
    )
    return config
