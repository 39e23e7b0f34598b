"""Exposure / white-balance / saturation diagnostics with correction advice (issue 7).

Stable public interface (keep these signatures):

- dataclasses :class:`ExposureDiagnostic`, :class:`WhiteBalanceDiagnostic`,
  :class:`SaturationDiagnostic`, :class:`CorrectionAdvice` (and :class:`SceneInfo`);
- :func:`optimize_corrections` ``(image, scene=None, *, method="auto") -> CorrectionAdvice``;
- :func:`generate_preview` ``(image, advice) -> (3, h, w) float32`` corrected linear image;
- :func:`wb_stability_map` / :func:`wb_stability_files`: per-region white-balance /
  chroma stability of an output against its RAW12 anchor;
- :func:`diagnose_file` / :func:`format_diagnostics`: the ``main.py diagnose`` helpers.

Units and shapes: :mod:`core.diagnostics.types`. Two estimators sit behind one interface:
a learned MobileNetV2-style network (:mod:`core.diagnostics.net`, shipped as
``resources/models/diagnostic.pt``, cached after the first load) and classical
gray-world / histogram statistics (:mod:`core.diagnostics.estimators`), used when asked
for or when the model cannot be loaded; the advice records which ran and why.
"""

from __future__ import annotations

from core.diagnostics.advice import generate_preview, optimize_corrections
from core.diagnostics.checkpoint import (
    DEFAULT_DIAGNOSTIC_CHECKPOINT,
    DiagnosticCheckpointError,
    LoadedDiagnosticModel,
    load_diagnostic_model,
)
from core.diagnostics.report import advice_fields, diagnose_file, format_diagnostics
from core.diagnostics.stability import (
    WbStabilityReport,
    wb_stability_captures,
    wb_stability_files,
    wb_stability_map,
)
from core.diagnostics.types import (
    CorrectionAdvice,
    ExposureDiagnostic,
    SaturationDiagnostic,
    SceneInfo,
    WhiteBalanceDiagnostic,
)

__all__ = [
    "DEFAULT_DIAGNOSTIC_CHECKPOINT",
    "CorrectionAdvice",
    "DiagnosticCheckpointError",
    "ExposureDiagnostic",
    "LoadedDiagnosticModel",
    "SaturationDiagnostic",
    "SceneInfo",
    "WbStabilityReport",
    "WhiteBalanceDiagnostic",
    "advice_fields",
    "diagnose_file",
    "format_diagnostics",
    "generate_preview",
    "load_diagnostic_model",
    "optimize_corrections",
    "wb_stability_captures",
    "wb_stability_files",
    "wb_stability_map",
]
