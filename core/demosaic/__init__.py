"""RAW12 guidance demosaic: Mosaic12 (H12, W12) -> linear RGB (3, H12, W12).

One entry point, :func:`demosaic`, with the methods in the plain dict :data:`METHODS`:

- ``bilinear``, ``malvar``: linear filters from ``colour-demosaicing``
  (:mod:`core.demosaic.classic`);
- ``dht``, ``aahd``: LibRaw's algorithms through rawpy on an in-memory DNG, kept linear
  by a homogeneous scaling (:mod:`core.demosaic.libraw`); the teachers;
- ``learned``: a small bias-free CNN (:mod:`core.demosaic.net`), shipped as
  ``resources/models/demosaic.pt`` and trained by ``training/demosaic.py``.

Every method is linear in exposure, ``demosaic(a m) = a demosaic(m)`` for a > 0 (exact
for bilinear, Malvar and the network; up to a 16-bit quantiser step for DHT/AAHD), and
keeps values above 1.0 (HDR). Also here: :func:`mosaic_from_rgb` (sample RGB with a CFA)
and the periodic-artifact detector (:mod:`core.demosaic.artifacts`).

Convention: the mosaic is on the Mosaic12 scale (1.0 = sensor clip, not white balanced),
the pattern is RAW12's 2x2 Bayer pattern at the mosaic's top-left pixel; the output keeps
the scale and the 12MP grid (pixel centres at integers), channels R, G, B.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from core.cfa import CfaPattern
from core.demosaic._common import (
    NonFiniteMosaicError,
    as_pattern,
    check_mosaic,
    mosaic_from_rgb,
    phase_offset_to_rggb,
)
from core.demosaic.artifacts import (
    ARTIFACT_THRESHOLD_DB,
    cfa_peak_db,
    has_periodic_artifact,
    periodic_artifact_db,
)
from core.demosaic.classic import bilinear, malvar
from core.errors import ConfigError

__all__ = [
    "ARTIFACT_THRESHOLD_DB",
    "DEFAULT_METHOD",
    "METHODS",
    "DemosaicMethod",
    "NonFiniteMosaicError",
    "cfa_peak_db",
    "demosaic",
    "has_periodic_artifact",
    "mosaic_from_rgb",
    "periodic_artifact_db",
    "phase_offset_to_rggb",
]

DemosaicMethod = Literal["bilinear", "malvar", "dht", "aahd", "learned"]
#: What callers get without asking (the guidance the shipped de-LTM model was trained on).
DEFAULT_METHOD: DemosaicMethod = "bilinear"

_Demosaicer = Callable[[np.ndarray, CfaPattern], np.ndarray]


def _dht(mosaic: np.ndarray, cfa: CfaPattern) -> np.ndarray:
    from core.demosaic.libraw import libraw_demosaic

    return libraw_demosaic(mosaic, cfa, "DHT")


def _aahd(mosaic: np.ndarray, cfa: CfaPattern) -> np.ndarray:
    from core.demosaic.libraw import libraw_demosaic

    return libraw_demosaic(mosaic, cfa, "AAHD")


def _learned(mosaic: np.ndarray, cfa: CfaPattern) -> np.ndarray:
    from core.demosaic.learned import learned_demosaic  # imports torch: only when asked

    return learned_demosaic(mosaic, cfa)


#: Method name -> implementation: (H, W) float32 finite mosaic, pattern -> (3, H, W).
METHODS: dict[str, _Demosaicer] = {
    "bilinear": bilinear,
    "malvar": malvar,
    "dht": _dht,
    "aahd": _aahd,
    "learned": _learned,
}


def demosaic(
    mosaic12: np.ndarray, cfa: CfaPattern | str, method: DemosaicMethod | str = DEFAULT_METHOD
) -> np.ndarray:
    """Demosaic the RAW12 anchor mosaic for guidance.

    Shapes: mosaic12 (H12, W12), both even -> float32 (3, H12, W12), channels R, G, B.
    Units: Mosaic12 scale in and out (not white balanced), values above 1.0 kept. Some
        methods undershoot below 0 near sharp edges; the result is clamped at 0 (Camera48
        has no negatives).
    Raises: ConfigError (a ValueError) naming the valid methods on an unknown method;
        ShapeError on a non-2-D, odd, empty or absurdly large mosaic or an unknown
        pattern name; NonFiniteMosaicError on NaN or infinite values;
        core.model.checkpoint.CheckpointError when ``learned`` finds its checkpoint
        missing or corrupt; LibRawDemosaicError if LibRaw fails (``dht``, ``aahd``).
    """
    impl = METHODS.get(method) if isinstance(method, str) else None
    if impl is None:
        raise ConfigError(f"unknown demosaic method {method!r}; valid: {', '.join(METHODS)}")
    pattern = as_pattern(cfa)
    m = check_mosaic(mosaic12)
    out = np.ascontiguousarray(impl(m, pattern), dtype=np.float32)
    np.maximum(out, 0.0, out=out)
    return out
