"""Precisions of the exported models and their PyTorch emulation: ``core.model.quant``.

The emulation (fp16 rounding, the coremltools-exact int8 weight quantizer, the w8a8
``quantized_decomposed`` conv, activation ranges and scales, the per-precision model
variants and runners) is pure PyTorch and lives in :mod:`core.model.quant`, so the GUI's
INT8 sign-off runs the very code the export quantizes with. This module re-exports it
under its historical names; see that module's docstring for the arithmetic.
"""

from __future__ import annotations

from core.model.quant import (
    ACT_QMAX,
    ACT_QMIN,
    EXPORT_PRECISIONS,
    MIN_ACT_RANGE,
    PRECISIONS,
    ActivationScales,
    CalibrationSpec,
    ModelSource,
    Precision,
    QuantSpec,
    W8A8Conv2d,
    activation_scales_hash,
    collect_activation_ranges,
    conv_layers,
    dequantize_int8,
    iter_weight_tensors,
    quantize_weight_int8,
    quantized_weights,
    resolve_model,
    scales_from_ranges,
    variant_net,
)

__all__ = [
    "ACT_QMAX",
    "ACT_QMIN",
    "EXPORT_PRECISIONS",
    "MIN_ACT_RANGE",
    "PRECISIONS",
    "ActivationScales",
    "CalibrationSpec",
    "ModelSource",
    "Precision",
    "QuantSpec",
    "W8A8Conv2d",
    "activation_scales_hash",
    "collect_activation_ranges",
    "conv_layers",
    "dequantize_int8",
    "iter_weight_tensors",
    "quantize_weight_int8",
    "quantized_weights",
    "resolve_model",
    "scales_from_ranges",
    "variant_net",
]
