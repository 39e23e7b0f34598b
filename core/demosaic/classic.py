"""Classical linear demosaicers from ``colour-demosaicing``: bilinear and Malvar-He-Cutler.

Both are linear filters (shift-invariant per CFA site), so ``f(a x) = a f(x)`` exactly up
to float rounding and values above 1.0 pass through unchanged.

Shapes: mosaic (H, W) float32 -> (3, H, W) float32, channels R, G, B. Units unchanged.
"""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np

from core.cfa import CfaPattern

__all__ = ["bilinear", "malvar"]


def _colour_demosaicing() -> ModuleType:
    """Import colour_demosaicing; it imports a deprecated SciPy namespace on load."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import colour_demosaicing

    return colour_demosaicing


def bilinear(mosaic: np.ndarray, cfa: CfaPattern) -> np.ndarray:
    """Bilinear interpolation of each colour plane (3x3 kernels, reflected borders)."""
    cd = _colour_demosaicing()
    rgb = cd.demosaicing_CFA_Bayer_bilinear(mosaic, cfa.name)
    return np.ascontiguousarray(np.moveaxis(np.asarray(rgb, np.float32), -1, 0))


def malvar(mosaic: np.ndarray, cfa: CfaPattern) -> np.ndarray:
    """Malvar, He and Cutler (2004): bilinear plus gradient-corrected 5x5 kernels."""
    cd = _colour_demosaicing()
    rgb = cd.demosaicing_CFA_Bayer_Malvar2004(mosaic, cfa.name)
    return np.ascontiguousarray(np.moveaxis(np.asarray(rgb, np.float32), -1, 0))
