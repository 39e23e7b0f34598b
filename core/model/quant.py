"""Precisions of the exported models and their PyTorch emulation (no coremltools).

Four variants of one checkpoint, each runnable in torch on any machine:

- ``fp32``: the checkpoint as trained (the reference).
- ``fp16``: every weight rounded to float16 and every op's result rounded to float16
  (:func:`fp16_emulation`): the FP16 Core ML program.
- ``int8``: weight-only. Every conv weight is quantized **exactly as coremltools'
  ``linear_quantize_weights`` does** on the FP16 program (:func:`quantize_weight_int8`:
  per output channel, symmetric, int8 in [-127, 127], computed on the float16 weights in
  float16 arithmetic, scale stored as float16) and dequantized ``q * scale`` in float16;
  everything else as ``fp16``. The export (``ios_bridge.export``) checks that the package
  holds these very integers and scales.
- ``w8a8``: the same int8 weights plus int8 activations: every conv input is quantized
  per tensor, symmetric (``round(x / s)`` clamped to [-128, 127], Core ML's ``quantize``)
  and dequantized, with scales ``s = max|x| / 127`` (rounded to float16) calibrated on
  simulated scenes (:func:`core.model.emulate.calibrate_w8a8`). The module that does it
  (:class:`W8A8Conv2d`) is written with ``torch.ops.quantized_decomposed`` ops, the
  representation coremltools' ``torch.export`` frontend converts to
  ``quantize``/``dequantize`` + ``constexpr_affine_dequantize``: the emulation and the
  exported package are the same graph.

:func:`make_runners` wraps a variant in the two roles of the device plan (gain model,
detail model); :mod:`core.model.emulate` runs them over a frame tile by tile and
:mod:`core.model.parity` compares precisions. This module lives in ``core`` so that the
GUI's INT8 sign-off (``app``) and the Core ML bridge (``ios_bridge``, which re-exports
these names) share one implementation.

Why not coremltools' own activation APIs (coremltools 9.0, torch 2.13, Linux):
``ct.optimize.coreml.linear_quantize_activations`` calibrates by running Core ML
predictions (macOS only); ``ct.optimize.torch.quantization.LinearQuantizer``'s finalized
model uses quantized tensors that ``torch.export`` rejects and ``torch.jit.trace``
conversion fails under NumPy 2.4 (coremltools issue #2633); its PT2E ``CoreMLQuantizer``
needs ``torch.ao.quantization.quantizer``, gone from torch 2.13. See docs/ios_bridge.md.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.ao.quantization.fx._decomposed  # registers torch.ops.quantized_decomposed
from torch import Tensor, nn
from torch.nn import functional as nnf
from torch.overrides import TorchFunctionMode

from core.errors import ConfigError
from core.model.checkpoint import LoadedCheckpoint
from core.model.infer import LoadedModel, load_model
from core.model.net import Linear48Net
from core.signoff import QUANT_MODES, QUANT_SCHEMA, default_quantization, quantization_hash

__all__ = [
    "EXPORT_PRECISIONS",
    "FP16_MIN_NORMAL",
    "PRECISIONS",
    "ActivationScales",
    "CalibrationSpec",
    "ModelSource",
    "Precision",
    "QuantSpec",
    "Runners",
    "W8A8Conv2d",
    "activation_scales_hash",
    "collect_activation_ranges",
    "conv_layers",
    "dequantize_int8",
    "fp16_emulation",
    "iter_weight_tensors",
    "make_runners",
    "quantize_weight_int8",
    "quantized_weights",
    "resolve_model",
    "round_fp16",
    "scales_from_ranges",
    "variant_net",
]

Precision = Literal["fp32", "fp16", "int8", "w8a8"]
#: A model as the public functions accept it: a checkpoint path or an already loaded one
#: (``core.model.checkpoint.LoadedCheckpoint`` or ``core.model.infer.LoadedModel``).
ModelSource = str | Path | LoadedCheckpoint | LoadedModel
#: Every precision the emulation knows, reference first.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8", "w8a8")
#: Exportable precisions.
EXPORT_PRECISIONS: tuple[str, ...] = ("fp16", "int8", "w8a8")
#: int8 activation range of Core ML's ``quantize`` (full int8; symmetric scale uses 127).
ACT_QMIN, ACT_QMAX = -128, 127
#: Smallest activation range used for a scale (an all-zero input would give scale 0).
MIN_ACT_RANGE = 1e-4

ActivationScales = dict[str, float]


@dataclass(frozen=True)
class CalibrationSpec:
    """Where w8a8 activation ranges come from (part of the signed config).

    Attributes:
        scenes: simulated scene names.
        raw12_size: (width, height) of each simulated RAW12 (the frame is twice that).
        seed: simulator seed.
        tile_px, overlap_px: the tile plan the detail model sees during calibration.
    """

    scenes: tuple[str, ...]
    raw12_size: tuple[int, int]
    seed: int
    tile_px: int
    overlap_px: int


@dataclass(frozen=True)
class QuantSpec:
    """A validated quantization config (see ``core.signoff.default_quantization``).

    Attributes:
        mode: ``int8`` or ``w8a8``.
        config: the config dict exactly as given (what is hashed and signed).
        calibration: the activation calibration (w8a8 only).
    """

    mode: str
    config: dict[str, Any]
    calibration: CalibrationSpec | None

    @property
    def hash(self) -> str:
        """sha256 of the config's canonical JSON (``core.signoff.quantization_hash``)."""
        return quantization_hash(self.config)

    @classmethod
    def default(cls, mode: str) -> QuantSpec:
        """The canonical config of ``mode``; ConfigError for an unknown mode."""
        if mode not in QUANT_MODES:
            raise ConfigError(f"precision: {mode!r} has no quantization; use one of int8, w8a8")
        return cls.from_config(default_quantization(mode))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> QuantSpec:
        """Validate a config dict; ConfigError naming the field that is wrong.

        Only what the exporter implements is accepted: int8 symmetric per-channel conv
        weights, and for w8a8 int8 symmetric per-tensor min/max activations at conv inputs.
        """
        if not isinstance(config, dict):
            raise ConfigError("quantization: must be a JSON object")

        def need(where: dict[str, Any], key: str, value: Any, field: str) -> None:
            if where.get(key) != value:
                raise ConfigError(
                    f"quantization.{field}: {where.get(key)!r} is not supported (expected "
                    f"{value!r})"
                )

        need(config, "schema", QUANT_SCHEMA, "schema")
        mode = config.get("mode")
        if mode not in QUANT_MODES:
            raise ConfigError(f"quantization.mode: {mode!r} is not one of int8, w8a8")
        need(config, "compute_precision", "fp16", "compute_precision")
        weights = config.get("weights")
        if not isinstance(weights, dict):
            raise ConfigError("quantization.weights: missing")
        for key, value in default_quantization(mode)["weights"].items():
            need(weights, key, value, f"weights.{key}")
        calibration = None
        if mode == "w8a8":
            acts = config.get("activations")
            if not isinstance(acts, dict):
                raise ConfigError("quantization.activations: missing for w8a8")
            for key, value in default_quantization("w8a8")["activations"].items():
                if key != "calibration":
                    need(acts, key, value, f"activations.{key}")
            cal = acts.get("calibration")
            if not isinstance(cal, dict):
                raise ConfigError("quantization.activations.calibration: missing")
            try:
                calibration = CalibrationSpec(
                    scenes=tuple(str(s) for s in cal["scenes"]),
                    raw12_size=(int(cal["raw12_size"][0]), int(cal["raw12_size"][1])),
                    seed=int(cal["seed"]),
                    tile_px=int(cal["tile_px"]),
                    overlap_px=int(cal["overlap_px"]),
                )
            except (KeyError, TypeError, ValueError, IndexError) as err:
                raise ConfigError(f"quantization.activations.calibration: invalid ({err})") from err
            if not calibration.scenes:
                raise ConfigError("quantization.activations.calibration.scenes: empty")
        return cls(str(mode), dict(config), calibration)


def resolve_model(source: ModelSource) -> tuple[Linear48Net, str]:
    """(network in eval mode, content hash) of a checkpoint path or a loaded model.

    Raises: CheckpointError (one line) for a missing or damaged checkpoint.
    """
    if isinstance(source, LoadedCheckpoint | LoadedModel):
        return source.net.eval(), source.hash
    loaded = load_model(source)
    return loaded.net.eval(), loaded.hash


# ----------------------------------------------------------------------------- weights


def quantize_weight_int8(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8 quantization, as coremltools 9 does it.

    The arithmetic of ``coremltools.optimize._utils.quantize_weight_by_dtype`` in
    ``linear_symmetric`` mode for int8, on the weight as the FP16 program stores it::

        w16 = float16(weight)
        m = max(|min_c w16|, |max_c w16|)          per output channel c (float16)
        scale = (m - (-m)) / (127 - (-127))        float16
        q = clip(round_half_even(w16 / scale), -127, 127)

    Shapes: weight (Cout, ...) float -> q int8 (same shape), scale float16 (Cout,).
    """
    w16 = np.asarray(weight, dtype=np.float16)
    axes = tuple(range(1, w16.ndim))
    vmin = np.amin(w16, axis=axes, keepdims=True)
    vmax = np.amax(w16, axis=axes, keepdims=True)
    mabs = np.maximum(np.abs(vmin), np.abs(vmax))
    qmin, qmax = -127, 127
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (mabs - (-mabs)) / np.float16(qmax - qmin)
        q = np.round(w16 / scale)
    q = np.clip(q, qmin, qmax)
    return q.astype(np.int8), scale.astype(np.float16).reshape(-1)


def dequantize_int8(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``q * scale`` per output channel in float16 (Core ML's ``constexpr_affine_dequantize``
    with zero point 0). Shapes: q (Cout, ...), scale (Cout,) -> float16 like q."""
    s = np.asarray(scale, np.float16).reshape((-1,) + (1,) * (q.ndim - 1))
    return (q.astype(np.float16) * s).astype(np.float16)


def conv_layers(net: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every Conv2d of ``net`` with its qualified name, in registration order."""
    return [(n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)]


def quantized_weights(net: Linear48Net) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """conv name -> (int8 q, float16 scale) of every conv weight (:func:`quantize_weight_int8`)."""
    return {
        name: quantize_weight_int8(conv.weight.detach().cpu().numpy())
        for name, conv in conv_layers(net)
    }


# ------------------------------------------------------------------------- activations


class W8A8Conv2d(nn.Module):
    """A 3x3 conv with int8 activations and int8 weights, in quantized_decomposed ops.

    forward: ``x -> dequantize(quantize(x, s_act)) -> conv2d(., dequantize(q_w, s_w)) + b``.
    Shapes as the Conv2d it replaces; ``act_scale`` (float, float16-exact) per tensor,
    weight scales per output channel.
    """

    def __init__(self, conv: nn.Conv2d, act_scale: float) -> None:
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros":
            raise ConfigError("w8a8 supports plain zero-padded convolutions only")
        q, scale = quantize_weight_int8(conv.weight.detach().cpu().numpy())
        self.act_scale = float(np.float16(act_scale))
        self.stride = conv.stride
        self.padding = conv.padding
        self.dilation = conv.dilation
        self.qweight: Tensor
        self.wscale: Tensor
        self.wzero: Tensor
        self.register_buffer("qweight", torch.from_numpy(q))
        self.register_buffer("wscale", torch.from_numpy(scale.astype(np.float32)))
        self.register_buffer("wzero", torch.zeros(q.shape[0], dtype=torch.int64))
        bias = conv.bias
        b = None if bias is None else bias.detach().to(torch.float16).to(torch.float32)
        self.bias = None if b is None else nn.Parameter(b, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        """Shapes: (N, Cin, H, W) -> (N, Cout, H', W')."""
        qd = torch.ops.quantized_decomposed
        s = self.act_scale
        xq = qd.quantize_per_tensor(x, s, 0, ACT_QMIN, ACT_QMAX, torch.int8)
        xd = qd.dequantize_per_tensor(xq, s, 0, ACT_QMIN, ACT_QMAX, torch.int8)
        w = qd.dequantize_per_channel(
            self.qweight, self.wscale, self.wzero, 0, -127, 127, torch.int8
        )
        return nnf.conv2d(xd, w, self.bias, self.stride, self.padding, self.dilation)


def collect_activation_ranges(
    net: Linear48Net, run: Callable[[], None]
) -> dict[str, tuple[float, float]]:
    """Min and max of every conv's input over whatever ``run()`` feeds ``net``.

    Installs forward pre-hooks on each Conv2d, calls ``run`` once, removes the hooks.
    Returns: conv name -> (min, max) in the activation's own units.
    """
    ranges: dict[str, tuple[float, float]] = {}

    def make_hook(name: str) -> Callable[[nn.Module, tuple[Tensor, ...]], None]:
        def hook(_: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            x = inputs[0].detach()
            lo, hi = float(x.min()), float(x.max())
            old = ranges.get(name)
            ranges[name] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))

        return hook

    handles = [m.register_forward_pre_hook(make_hook(n)) for n, m in conv_layers(net)]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    missing = [n for n, _ in conv_layers(net) if n not in ranges]
    if missing:
        raise ConfigError(f"calibration never reached conv layer(s) {', '.join(missing)}")
    return ranges


def scales_from_ranges(ranges: dict[str, tuple[float, float]]) -> ActivationScales:
    """Symmetric int8 scales ``max(|min|, |max|) / 127`` rounded to float16."""
    out: ActivationScales = {}
    for name, (lo, hi) in ranges.items():
        m = max(abs(lo), abs(hi), MIN_ACT_RANGE)
        out[name] = float(np.float16(m / 127.0))
    return out


def activation_scales_hash(scales: ActivationScales) -> str:
    """sha256 of the scales (sorted names, float16 bytes): identifies a calibration result."""
    h = hashlib.sha256()
    for name in sorted(scales):
        h.update(name.encode())
        h.update(np.float16(scales[name]).tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------- fp16 emulation

#: Smallest normal float16.
FP16_MIN_NORMAL = 2.0**-14


def round_fp16(x: Tensor, *, flush_subnormals: bool = False) -> Tensor:
    """float32 -> nearest float16 value, kept as float32 (other dtypes unchanged).

    ``flush_subnormals``: values below the smallest normal float16 (2**-14) become 0, as
    on hardware without float16 subnormals.
    """
    if x.dtype != torch.float32:
        return x
    y = x.to(torch.float16).to(torch.float32)
    if flush_subnormals:
        y = torch.where(y.abs() < FP16_MIN_NORMAL, torch.zeros_like(y), y)
    return y


def _round_tree(value: Any, flush: bool) -> Any:
    if isinstance(value, torch.Tensor):
        return round_fp16(value, flush_subnormals=flush)
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_round_tree(v, flush) for v in value)
    if isinstance(value, list):
        return [_round_tree(v, flush) for v in value]
    return value


class _Fp16RoundingMode(TorchFunctionMode):
    """Rounds every float32 tensor that a torch function returns to the FP16 grid."""

    def __init__(self, flush_subnormals: bool = False) -> None:
        super().__init__()
        self.flush = flush_subnormals

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        return _round_tree(func(*args, **(kwargs or {})), self.flush)


@contextlib.contextmanager
def fp16_emulation(*, flush_subnormals: bool = False) -> Iterator[None]:
    """Inside this block every torch op's float32 result is rounded to float16 (values stay
    float32): an FP16 Core ML program emulated op by op. Accumulation inside an op
    (a convolution's sum) stays float32, as on the GPU and Neural Engine.
    ``flush_subnormals`` also flushes results below 2**-14 to zero (hardware without
    float16 subnormals). The mode is per thread (torch's function-mode stack is
    thread-local), so a worker thread's emulation leaves other threads alone."""
    with _Fp16RoundingMode(flush_subnormals):
        yield


# ---------------------------------------------------------------------------- variants


def _round_params(net: nn.Module) -> None:
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.to(torch.float16).to(torch.float32))


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, leaf, module)


def variant_net(
    net: Linear48Net, precision: str, act_scales: ActivationScales | None = None
) -> Linear48Net:
    """A copy of ``net`` carrying ``precision``'s weights (see the module docstring).

    ``fp32`` returns ``net`` itself. ``w8a8`` needs ``act_scales`` (conv name -> scale).
    The copy is in eval mode; run ``fp16``/``int8``/``w8a8`` copies under
    :func:`fp16_emulation` to emulate the FP16 program.

    Raises:
        ConfigError: unknown precision, or w8a8 without scales for every conv.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return net
    out = copy.deepcopy(net).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    _round_params(out)
    if precision == "int8":
        with torch.no_grad():
            for _, conv in conv_layers(out):
                q, scale = quantize_weight_int8(conv.weight.numpy())
                conv.weight.copy_(torch.from_numpy(dequantize_int8(q, scale).astype(np.float32)))
    elif precision == "w8a8":
        layers = conv_layers(out)
        missing = [n for n, _ in layers if not act_scales or n not in act_scales]
        if missing:
            raise ConfigError(f"w8a8: no activation scale for {', '.join(missing)}")
        assert act_scales is not None
        for name, conv in layers:
            _set_module(out, name, W8A8Conv2d(conv, act_scales[name]))
    return out


def iter_weight_tensors(net: Linear48Net) -> Iterator[tuple[str, Tensor]]:
    """(name, tensor) of every parameter (weights and biases) of ``net``."""
    yield from ((n, p.detach()) for n, p in net.named_parameters())


# ----------------------------------------------------------------------------- runners

GainFn = Callable[[Tensor], Tensor]
DetailFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class Runners:
    """The two model roles of one precision, plus the float32 network for the rest.

    Attributes:
        precision: ``fp32``, ``fp16``, ``int8`` or ``w8a8``.
        base: the float32 network (executor-side operations use its functions).
        gain: grid_in (1, 2*bins + 7, Hg, Wg) -> log gains (1, bins, Hg, Wg).
        detail: (pro, conf, gain_bins, log2_global, exposure) -> (output, log_gain), the
            detail package's inputs (``ios_bridge.graph.DETAIL_INPUTS``): ``net.render_bins``
            on one tile, which reads no guidance.
    """

    precision: str
    base: Linear48Net
    gain: GainFn
    detail: DetailFn


def make_runners(
    net: Linear48Net, precision: str = "fp32", act_scales: ActivationScales | None = None
) -> Runners:
    """Runners of ``precision`` for ``net`` (w8a8 needs calibrated ``act_scales``).

    Emulated precisions take and return FP16-rounded tensors (the packages' I/O is float16)
    and run every op under :func:`fp16_emulation`.

    Raises: ConfigError from :func:`variant_net`.
    """
    net.eval()
    model = variant_net(net, precision, act_scales)
    emulate = precision != "fp32"

    def gain(x: Tensor) -> Tensor:
        with torch.inference_mode():
            if not emulate:
                return model.grid_head(x)
            with fp16_emulation():
                return round_fp16(model.grid_head(round_fp16(x)))

    def render(
        pro: Tensor, conf: Tensor, bins: Tensor, lg: Tensor, ex: Tensor
    ) -> tuple[Tensor, Tensor]:
        # ``pro`` stands in for the guide's shape: render_bins does not read it
        res = model.render_bins(pro, pro, conf, bins, lg, ex)
        return res.output, res.log_gain

    def detail(
        pro: Tensor, conf: Tensor, bins: Tensor, lg: Tensor, ex: Tensor
    ) -> tuple[Tensor, Tensor]:
        with torch.inference_mode():
            if not emulate:
                return render(pro, conf, bins, lg, ex)
            r16 = [round_fp16(a) for a in (pro, conf, bins, lg, ex)]
            with fp16_emulation():
                output, log_gain = render(r16[0], r16[1], r16[2], r16[3], r16[4])
            return round_fp16(output), round_fp16(log_gain)

    return Runners(precision, net, gain, detail)
