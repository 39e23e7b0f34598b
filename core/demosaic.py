"""RAW12 guidance demosaic: Mosaic12 (H12, W12) -> linear RGB (3, H12, W12).

One entry point, :func:`demosaic`, with the methods looked up in :data:`METHODS`. The
methods come from the ``colour-demosaicing`` package (bilinear and Malvar 2004); a later
issue adds more.

Convention: the mosaic is on the Mosaic12 scale (1.0 = sensor clip, not white balanced),
the pattern is RAW12's 2x2 Bayer pattern at the mosaic's top-left pixel; the output keeps
the scale and the 12MP grid (pixel centres at integers), channels R, G, B.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np

from core.cfa import CfaPattern
from core.errors import ShapeError

__all__ = ["METHODS", "DemosaicMethod", "demosaic"]

DemosaicMethod = Literal["bilinear", "malvar"]

_Demosaicer = Callable[[np.ndarray, str], np.ndarray]


def _colour_demosaicing() -> object:
    """Import colour_demosaicing; it imports a deprecated SciPy namespace on load."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import colour_demosaicing

    return colour_demosaicing


def _bilinear(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    cd = _colour_demosaicing()
    return np.asarray(cd.demosaicing_CFA_Bayer_bilinear(mosaic, pattern))  # type: ignore[attr-defined]


def _malvar(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    cd = _colour_demosaicing()
    return np.asarray(cd.demosaicing_CFA_Bayer_Malvar2004(mosaic, pattern))  # type: ignore[attr-defined]


#: Method name -> implementation (H, W) float, pattern name -> (H, W, 3).
METHODS: dict[str, _Demosaicer] = {"bilinear": _bilinear, "malvar": _malvar}


def demosaic(
    mosaic12: np.ndarray, cfa: CfaPattern, method: DemosaicMethod | str = "bilinear"
) -> np.ndarray:
    """Demosaic the RAW12 anchor mosaic for guidance.

    Shapes: mosaic12 (H12, W12) -> float32 (3, H12, W12), channels R, G, B.
    Units: Mosaic12 scale in and out (not white balanced). Malvar can undershoot below 0
        near sharp edges; the result is clamped at 0 (Camera48 has no negatives).
        Non-finite input values are treated as 0.
    Raises: ShapeError on a non-2D mosaic, odd or tiny sizes; ValueError naming the valid
        methods on an unknown method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown demosaic method {method!r}; valid: {', '.join(METHODS)}")
    m = np.asarray(mosaic12)
    if m.ndim != 2:
        raise ShapeError(f"mosaic12 must be (H12, W12), got shape {m.shape}")
    if m.shape[0] < 2 or m.shape[1] < 2 or m.shape[0] % 2 or m.shape[1] % 2:
        raise ShapeError(f"mosaic12 is {m.shape[1]}x{m.shape[0]}; both sides must be even")
    clean = np.nan_to_num(m.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    rgb = METHODS[method](clean, cfa.name)
    out = np.ascontiguousarray(np.moveaxis(rgb, -1, 0), dtype=np.float32)
    np.maximum(out, 0.0, out=out)
    return out
