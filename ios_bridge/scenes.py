"""Simulated capture pairs as executor inputs (through real DNG files, like convert)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import numpy as np

from core.cfa import CfaPattern

__all__ = ["SceneInputs", "load_scene"]


@dataclass(frozen=True)
class SceneInputs:
    """What the model needs from a capture pair (``core.model.infer.predict``'s arguments).

    Attributes:
        name: scene name.
        camera48: float32 (3, H48, W48) ProRAW48 in Camera48.
        anchor: float32 (H48/2, W48/2) shading-corrected Mosaic12.
        cfa: RAW12 pattern.
        wb_gains: float (3,) white-balance gains, green = 1.
        unclipped: bool (H48/2, W48/2) anchor below the clip.
    """

    name: str
    camera48: np.ndarray
    anchor: np.ndarray
    cfa: CfaPattern
    wb_gains: np.ndarray
    unclipped: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(H48, W48) in pixels."""
        return (int(self.camera48.shape[1]), int(self.camera48.shape[2]))


def load_scene(name: str, raw12_size: tuple[int, int] = (256, 192), seed: int = 0) -> SceneInputs:
    """Simulate scene ``name`` (RAW12 ``raw12_size`` = (width, height), ProRAW48 twice that),
    write it as a real DNG pair in a temporary folder and read it back with
    ``core.io.pair.load_pair``, as ``convert`` would.

    Raises: ConfigError for an unknown scene (naming the valid ones), ShapeError for a bad size.
    """
    from core.io.pair import load_pair
    from core.model.infer import CLIP_FRACTION
    from core.simulate.pair import SimConfig, simulate_pair, write_pair

    w12, h12 = raw12_size
    sim = simulate_pair(SimConfig(scene=name, w12=w12, h12=h12, seed=seed))
    with tempfile.TemporaryDirectory(prefix="linear48-scene-") as folder:
        paths = write_pair(sim, folder)
        pair = load_pair(paths.raw12, paths.proraw48)
    return SceneInputs(
        name=name,
        camera48=pair.camera48,
        anchor=pair.anchor,
        cfa=pair.raw12.cfa,
        wb_gains=np.asarray(pair.wb_gains, dtype=np.float64),
        unclipped=pair.anchor < CLIP_FRACTION if pair.unclipped is None else pair.unclipped,
    )
