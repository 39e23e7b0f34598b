"""Simulated capture pairs as executor inputs: ``core.model.emulate``'s scene loader.

Re-exported here (the GUI's INT8 sign-off loads its QA scenes through the same function).
"""

from __future__ import annotations

from core.model.emulate import SceneInputs, load_scene

__all__ = ["SceneInputs", "load_scene"]
