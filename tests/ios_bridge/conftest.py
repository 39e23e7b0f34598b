"""Shared fixtures of the Core ML bridge tests: the shipped model and tiny simulated scenes."""

from __future__ import annotations

import pytest

from ios_bridge.scenes import SceneInputs, load_scene
from tests.conftest import tiny_w8a8_config

__all__ = ["tiny_w8a8_config"]  # re-exported for the tests here

#: A tiny frame: RAW12 96x64 -> 192x128 at 48MP, cut into 64 px tiles with 16 px overlap.
TINY_RAW12 = (96, 64)
TINY_TILE, TINY_OVERLAP = 64, 16


@pytest.fixture(scope="session")
def tiny_scene() -> SceneInputs:
    """A backlit simulated pair (RAW12 96x64, seed 4) read back through real DNG files:
    strong local tone mapping, clipped sky, the smallest frame that still has 12 tiles."""
    return load_scene("backlit", TINY_RAW12, seed=4)
