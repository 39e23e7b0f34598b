"""Core ML export of the gain and detail models, verified after writing (issue 5).

    result = export_coreml("resources/models/default.pt", "out/coreml", "fp16")
    result.packages["gain"], result.packages["detail"], result.manifest_path
    print(result.summary())

Writes, into ``out_dir``, two ML Program packages with FP16 compute precision and
float16 I/O (minimum deployment target iOS 17) plus the iOS manifest:

    linear48_gain_<precision>.mlpackage     net.grid_head at the frame's grid size
    linear48_detail_<precision>.mlpackage   net.render_bins on one tile_px tile
    linear48_<precision>.manifest.json      ios_bridge.manifest (tile plan, order, ...)

Precisions: ``fp16``; ``int8`` (weight-only, ``linear_quantize_weights``); ``w8a8``
(int8 weights + calibrated int8 activations; see ``ios_bridge.quant``). INT8 precisions
pass the sign-off gate first (``core.signoff.find_accepting_record``): without a record
that approves this model hash and this quantization config on every required QA scene
the export raises :class:`SignoffRequiredError` before anything is written; ``force``
exports anyway and stamps a warning into both packages' metadata and the manifest.

Everything is written into a staging folder beside the targets, verified there
(:func:`verify_package`: reloaded spec, inputs/outputs and shapes, op set, weight
precision, weights against the torch model) and only then renamed into place; a failure
or cancel leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import ConfigError, OutputError
from core.model.infer import DEFAULT_CHECKPOINT
from core.model.net import Linear48Net
from core.progress import CancelToken, Progress, ProgressCallback, no_progress
from core.signoff import find_accepting_record
from ios_bridge.errors import (
    CoreMLPackageError,
    ExportToolError,
    PackageVerificationError,
    SignoffRequiredError,
)
from ios_bridge.graph import (
    DETAIL_INPUTS,
    DETAIL_OUTPUTS,
    GAIN_INPUTS,
    GAIN_OUTPUTS,
    DetailModel,
    GainModel,
    check_detail_ignores_guide,
    detail_example_inputs,
    export_program,
    gain_example_inputs,
    quiet_third_party,
)
from ios_bridge.manifest import IosManifest, build_manifest, grid_shape, write_manifest
from ios_bridge.quant import (
    EXPORT_PRECISIONS,
    ActivationScales,
    ModelSource,
    QuantSpec,
    activation_scales_hash,
    conv_layers,
    dequantize_int8,
    quantize_weight_int8,
    resolve_model,
    variant_net,
)

log = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_OPS",
    "DEFAULT_FRAME_HW",
    "DEFAULT_SIGNOFF_DIR",
    "ExportResult",
    "PackageCheck",
    "export_coreml",
    "exporter_versions",
    "load_package",
    "package_paths",
    "verify_package",
]

#: The iPhone 48MP frame (H, W) the gain model's fixed input is sized for.
DEFAULT_FRAME_HW = (6048, 8064)
#: Where the GUI writes sign-off records by default (app.main_window).
DEFAULT_SIGNOFF_DIR = Path("signoff")
#: MIL ops the packages may contain (DESIGN §5's op list after conversion). Anything else,
#: a data-dependent ``non_zero`` above all, fails verification.
ALLOWED_OPS = frozenset(
    {
        "const",
        "conv",
        "relu",
        "avg_pool",
        "upsample_bilinear",
        "concat",
        "tanh",
        "mul",
        "add",
        "sub",
        "clip",
        "abs",
        "log",
        "exp",
        "exp2",
        "equal",
        "not_equal",
        "select",
        "fill_like",
        "slice_by_index",
        "reduce_sum",
        "quantize",
        "dequantize",
        "constexpr_affine_dequantize",
    }
)
#: Metadata keys every package carries (prefix ``linear48.``).
METADATA_KEYS = (
    "role",
    "precision",
    "model_hash",
    "quantization",
    "quantization_hash",
    "activation_scales_hash",
    "normalization",
    "tile_plan",
    "gain_grid",
    "exporter",
    "signoff",
    "warning",
    "manifest",
)
_FP16_TYPE = 65552  # ArrayFeatureType.FLOAT16


def package_paths(out_dir: str | Path, precision: str) -> dict[str, Path]:
    """Target paths: ``gain``, ``detail`` (.mlpackage folders) and ``manifest`` (JSON)."""
    base = Path(out_dir)
    return {
        "gain": base / f"linear48_gain_{precision}.mlpackage",
        "detail": base / f"linear48_detail_{precision}.mlpackage",
        "manifest": base / f"linear48_{precision}.manifest.json",
    }


def exporter_versions() -> dict[str, str]:
    """Versions of everything that shaped the packages."""
    from importlib.metadata import PackageNotFoundError, version

    import coremltools as ct

    try:
        linear48 = version("linear48")
    except PackageNotFoundError:
        linear48 = "unknown"
    return {
        "linear48": linear48,
        "coremltools": ct.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# ------------------------------------------------------------------------------ checks


@dataclass
class PackageCheck:
    """Verification of one written package (see :func:`verify_package`).

    Attributes:
        role: ``gain`` or ``detail``.
        path: the package folder.
        problems: failed checks (empty = verified).
        inputs, outputs: name -> (shape, element type) as stored in the spec.
        op_counts: MIL op type -> count.
        weight_precision: ``fp16`` or ``int8`` (of the conv weights), or ``mixed``.
        convs: conv layers checked against the torch model.
        max_weight_abs_diff: largest |package weight (dequantized) - float32 torch weight|.
        max_weight_step_ratio: that difference over half a quantization step (int8; <= 1
            means within rounding), or over the float16 rounding bound (fp16).
        bit_exact: the stored weights equal the emulation's (fp16 rounding or int8 q and
            scale) bit for bit.
        act_scales_checked: w8a8 activation quantize ops matched to calibrated scales.
        size_bytes: files in the package.
        metadata: the ``linear48.*`` metadata.
    """

    role: str
    path: Path
    problems: list[str] = field(default_factory=list)
    inputs: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)
    outputs: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)
    op_counts: dict[str, int] = field(default_factory=dict)
    weight_precision: str = ""
    convs: int = 0
    max_weight_abs_diff: float = float("nan")
    max_weight_step_ratio: float = float("nan")
    bit_exact: bool = False
    act_scales_checked: int = 0
    size_bytes: int = 0
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        ins = ", ".join(f"{k} {'x'.join(map(str, s))} {t}" for k, (s, t) in self.inputs.items())
        outs = ", ".join(f"{k} {'x'.join(map(str, s))} {t}" for k, (s, t) in self.outputs.items())
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.op_counts.items()) if k != "const")
        out = [
            f"{self.role}: {self.path.name} ({self.size_bytes / 1024:.1f} KiB) — "
            + ("verified" if self.ok else "FAILED"),
            f"  inputs:  {ins}",
            f"  outputs: {outs}",
            f"  ops:     {ops}",
            f"  weights: {self.convs} conv layers {self.weight_precision}, bit-exact vs emulation "
            f"{'yes' if self.bit_exact else 'NO'}, max |w - w_fp32| {self.max_weight_abs_diff:.3g}"
            f" ({self.max_weight_step_ratio:.2f} x the rounding bound)",
        ]
        if self.act_scales_checked:
            out.append(f"  activations: {self.act_scales_checked} int8 quantize ops, scales match")
        if self.metadata.get("linear48.warning"):
            out.append(f"  WARNING: {self.metadata['linear48.warning']}")
        out += [f"  problem: {p}" for p in self.problems]
        return out


@dataclass(frozen=True)
class PackageExpectation:
    """What :func:`verify_package` checks a package against.

    Attributes:
        role: ``gain`` or ``detail``.
        precision: ``fp16``, ``int8`` or ``w8a8``.
        net: the float32 torch network the package came from.
        inputs, outputs: name -> shape.
        model_hash: the checkpoint hash the metadata must carry.
        act_scales: w8a8 calibrated scales (conv name -> scale).
        warning: the warning the metadata must carry ("" = none).
    """

    role: str
    precision: str
    net: Linear48Net
    inputs: Mapping[str, tuple[int, ...]]
    outputs: Mapping[str, tuple[int, ...]]
    model_hash: str
    act_scales: ActivationScales | None = None
    warning: str = ""


def load_package(path: str | Path) -> tuple[Any, Any]:
    """Reload a package without Core ML (works on Linux): (MLModel, MIL program).

    Raises:
        CoreMLPackageError: missing, not a package, corrupt or not an ML Program.
    """
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_load

    p = Path(path)
    if not p.is_dir() or not (p / "Manifest.json").is_file():
        raise CoreMLPackageError("not a Core ML package (no Manifest.json inside)", p)
    try:
        with quiet_third_party():
            model = ct.models.MLModel(str(p), skip_model_load=True)
            spec = model.get_spec()
    except Exception as err:  # coremltools raises many types on damaged packages
        raise CoreMLPackageError(f"Core ML package is damaged ({type(err).__name__})", p) from err
    if spec.WhichOneof("Type") != "mlProgram":
        raise CoreMLPackageError("Core ML package is not an ML Program", p)
    try:
        with quiet_third_party():
            program = milproto_load(
                spec,
                specification_version=spec.specificationVersion,
                file_weights_dir=model.weights_dir,
            )
    except Exception as err:
        raise CoreMLPackageError(
            f"Core ML package weights are unreadable ({type(err).__name__})", p
        ) from err
    return model, program


def _features(desc: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    out = {}
    for f in desc:
        arr = f.type.multiArrayType
        kind = "float16" if arr.dataType == _FP16_TYPE else f"type{arr.dataType}"
        out[f.name] = (tuple(int(s) for s in arr.shape), kind)
    return out


def _tree_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _conv_weight(op: Any) -> tuple[str, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(kind, dequantized float16 weight, int8 q or None, float16 scale or None)."""
    w = op.weight
    src = w.op
    if src.op_type == "const":
        return "fp16" if w.val.dtype == np.float16 else str(w.val.dtype), w.val, None, None
    if src.op_type == "constexpr_affine_dequantize":
        q = np.asarray(src.quantized_data.val)
        scale = np.asarray(src.scale.val)
        zp = np.asarray(src.zero_point.val)
        axis = int(src.axis.val)
        if q.dtype != np.int8 or axis != 0 or np.any(zp != 0):
            return f"{q.dtype} axis {axis}", dequantize_int8(q, scale), q, scale
        return "int8", dequantize_int8(q, scale), q, scale.astype(np.float16)
    return src.op_type, np.zeros(0), None, None


def verify_package(path: str | Path, expect: PackageExpectation) -> PackageCheck:
    """Check a written package against the torch model it came from.

    Checks: an ML Program; inputs/outputs names, shapes and float16 type; only
    :data:`ALLOWED_OPS`; every conv weight stored in the precision's format (float16
    const, or int8 ``constexpr_affine_dequantize`` per output channel); each matched to
    one torch conv (same shape, nearest values) and equal to its emulation bit for bit
    (float16 rounding, or ``quantize_weight_int8``'s integers and scales), biases equal
    to the float16 torch biases; the dequantized weights within half a quantization step
    of the float32 ones; for w8a8 every conv input quantized to int8 with the calibrated
    scale; the ``linear48.*`` metadata present with this model hash and warning.

    Raises:
        CoreMLPackageError: the package cannot be reloaded at all.
    """
    p = Path(path)
    model, program = load_package(p)
    spec = model.get_spec()
    chk = PackageCheck(role=expect.role, path=p, size_bytes=_tree_size(p))
    chk.inputs = _features(spec.description.input)
    chk.outputs = _features(spec.description.output)
    for label, got, want in (
        ("input", chk.inputs, expect.inputs),
        ("output", chk.outputs, expect.outputs),
    ):
        if list(got) != list(want):
            chk.problems.append(f"{label}s are {list(got)}, expected {list(want)}")
        for name, shape in want.items():
            if name in got and (got[name][0] != tuple(shape) or got[name][1] != "float16"):
                chk.problems.append(
                    f"{label} {name} is {got[name][0]} {got[name][1]}, expected {tuple(shape)} "
                    "float16"
                )
    ops = list(program.functions["main"].operations)
    chk.op_counts = dict(Counter(op.op_type for op in ops))
    extra = sorted(set(chk.op_counts) - ALLOWED_OPS)
    if extra:
        chk.problems.append(f"unexpected ops {', '.join(extra)}")
    chk.metadata = {
        k: v for k, v in model.user_defined_metadata.items() if k.startswith("linear48.")
    }
    missing = [k for k in METADATA_KEYS if f"linear48.{k}" not in chk.metadata]
    if missing:
        chk.problems.append(f"metadata missing {', '.join(missing)}")
    for key, want_value in (
        ("model_hash", expect.model_hash),
        ("precision", expect.precision),
        ("role", expect.role),
        ("warning", expect.warning),
    ):
        got_value = chk.metadata.get(f"linear48.{key}")
        if got_value is not None and got_value != want_value:
            chk.problems.append(f"metadata {key} is {got_value!r}, expected {want_value!r}")
    _check_weights(chk, ops, expect)
    return chk


def _check_weights(chk: PackageCheck, ops: list[Any], expect: PackageExpectation) -> None:
    """Weight precision, torch match, bit-exactness and (w8a8) activation scales."""
    role_prefix = "detail." if expect.role == "detail" else ""
    torch_convs = {
        name: conv
        for name, conv in conv_layers(expect.net)
        if name.startswith("detail.") == (role_prefix == "detail.")
    }
    want_kind = "fp16" if expect.precision == "fp16" else "int8"
    convs = [op for op in ops if op.op_type == "conv"]
    chk.convs = len(convs)
    if len(convs) != len(torch_convs):
        chk.problems.append(f"{len(convs)} conv ops, the torch model has {len(torch_convs)}")
    kinds: set[str] = set()
    unmatched = dict(torch_convs)
    max_diff, max_ratio, exact = 0.0, 0.0, True
    for op in convs:
        kind, w16, q, scale = _conv_weight(op)
        kinds.add(kind)
        if kind != want_kind:
            chk.problems.append(f"conv {op.name} weight is {kind}, expected {want_kind}")
            exact = False
            continue
        candidates = [
            (float(np.abs(w16.astype(np.float32) - c.weight.detach().numpy()).max()), name)
            for name, c in unmatched.items()
            if tuple(c.weight.shape) == w16.shape
        ]
        if not candidates:
            chk.problems.append(f"conv {op.name} {w16.shape} matches no torch conv")
            exact = False
            continue
        diff, name = min(candidates)
        conv = unmatched.pop(name)
        w32 = conv.weight.detach().numpy()
        axes = tuple(range(1, w32.ndim))
        err_c = np.abs(w16.astype(np.float32) - w32).max(axis=axes)
        amax_c = np.abs(w32).max(axis=axes)
        if kind == "fp16":
            exact &= bool(np.array_equal(w16, w32.astype(np.float16)))
            bound_c = amax_c * 2.0**-11 + 2.0**-25  # half an fp16 ulp (+ subnormal floor)
        else:
            assert q is not None and scale is not None  # int8 kind always carries both
            eq, es = quantize_weight_int8(w32)
            exact &= bool(np.array_equal(q, eq) and np.array_equal(scale, es))
            # half a step, plus the fp16 roundings of w, w / scale and q * scale
            bound_c = scale.astype(np.float32) / 2 + amax_c * 2.0**-10 + 2.0**-24
        max_diff = max(max_diff, diff)
        max_ratio = max(max_ratio, float((err_c / bound_c).max()))
        bias = op.bias.val if getattr(op, "bias", None) is not None else None
        tb = None if conv.bias is None else conv.bias.detach().numpy().astype(np.float16)
        if (bias is None) != (tb is None) or (
            bias is not None and tb is not None and not np.array_equal(np.asarray(bias), tb)
        ):
            chk.problems.append(f"conv {name} bias differs from the torch model's")
        if expect.precision == "w8a8":
            _check_act_scale(chk, op, name, expect.act_scales or {})
    chk.weight_precision = kinds.pop() if len(kinds) == 1 else "mixed"
    chk.max_weight_abs_diff = max_diff
    chk.max_weight_step_ratio = max_ratio
    chk.bit_exact = exact and not unmatched
    if unmatched:
        chk.problems.append(f"torch conv(s) {', '.join(unmatched)} not found in the package")
    if not exact:
        chk.problems.append("stored weights differ from the emulation's")
    if max_ratio > 1.0:
        chk.problems.append(f"weights off by {max_ratio:.2f} x the rounding bound")


def _check_act_scale(chk: PackageCheck, conv: Any, name: str, scales: ActivationScales) -> None:
    deq = conv.x.op
    quant = deq.input.op if deq is not None and deq.op_type == "dequantize" else None
    if quant is None or quant.op_type != "quantize":
        chk.problems.append(f"conv {name} input is not int8-quantized")
        return
    dtype = str(quant.output_dtype.val)
    got = float(np.asarray(quant.scale.val).reshape(-1)[0])
    deq_scale = float(np.asarray(deq.scale.val).reshape(-1)[0])
    want = scales.get(name)
    if dtype != "int8" or want is None or got != want or deq_scale != want:
        chk.problems.append(
            f"conv {name} activation quantization is {dtype} scale {got:g}, expected int8 "
            f"scale {want}"
        )
        return
    chk.act_scales_checked += 1


# ------------------------------------------------------------------------------ export


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_coreml` wrote.

    Attributes:
        precision: ``fp16``, ``int8`` or ``w8a8``.
        packages: ``gain`` / ``detail`` -> package folder.
        manifest_path: the iOS manifest JSON.
        manifest: its content.
        checks: role -> verification report.
        model_hash: checkpoint content hash.
        quantization_hash: sha256 of the quantization config (None for fp16).
        signoff_record: the accepting sign-off record (None for fp16 or when forced).
        warnings: what the caller must show loudly (a forced export).
        seconds: wall time.
    """

    precision: str
    packages: dict[str, Path]
    manifest_path: Path
    manifest: IosManifest
    checks: dict[str, PackageCheck]
    model_hash: str
    quantization_hash: str | None
    signoff_record: Path | None
    warnings: tuple[str, ...]
    seconds: float

    def summary(self) -> str:
        """Multi-line report: per package verification, manifest, warnings."""
        lines = [
            f"Core ML export ({self.precision}) of model {self.model_hash[:12]} in "
            f"{self.seconds:.1f} s",
        ]
        for role in ("gain", "detail"):
            lines += self.checks[role].lines()
        lines.append(f"manifest: {self.manifest_path}")
        if self.signoff_record is not None:
            lines.append(f"sign-off: {self.signoff_record}")
        lines += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(lines)


def _gate(
    precision: str,
    model_hash: str,
    spec: QuantSpec | None,
    signoff_dir: Path,
    force: bool,
) -> tuple[Path | None, dict[str, str] | None, str]:
    """(record path, record summary, warning) or SignoffRequiredError."""
    if spec is None:
        return None, None, ""
    found, reasons = find_accepting_record(signoff_dir, model_hash, spec.config)
    if found is not None:
        path, rec = found
        return path, {"file": path.name, "reviewer": rec.reviewer, "date": rec.date}, ""
    if not force:
        raise SignoffRequiredError(model_hash, spec.hash, reasons)
    warning = (
        f"UNSIGNED {precision.upper()} EXPORT: forced past the sign-off gate; no record in "
        f"{signoff_dir} approves model {model_hash[:12]} with quantization {spec.hash[:8]} "
        f"({'; '.join(reasons)}). Not for release."
    )
    log.warning("%s", warning)
    return None, None, warning


def _convert(
    program: torch.export.ExportedProgram,
    inputs: dict[str, tuple[int, ...]],
    outputs: tuple[str, ...],
) -> Any:
    import coremltools as ct

    try:
        with quiet_third_party():
            return ct.convert(
                program,
                inputs=[
                    ct.TensorType(name=n, shape=s, dtype=np.float16) for n, s in inputs.items()
                ],
                outputs=[ct.TensorType(name=n, dtype=np.float16) for n in outputs],
                convert_to="mlprogram",
                compute_precision=ct.precision.FLOAT16,
                minimum_deployment_target=ct.target.iOS17,
                skip_model_load=True,
            )
    except Exception as err:  # coremltools raises many types; translate at the boundary
        raise ExportToolError(
            f"coremltools could not convert the model: {type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from err


def _quantize_weights_int8(mlmodel: Any) -> Any:
    import coremltools.optimize as cto

    op_config = cto.coreml.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=0
    )
    config = cto.coreml.OptimizationConfig(op_type_configs={"conv": op_config})
    with quiet_third_party():
        return cto.coreml.linear_quantize_weights(mlmodel, config)


def _io_shapes(
    names: tuple[str, ...], tensors: tuple[torch.Tensor, ...]
) -> dict[str, tuple[int, ...]]:
    return {n: tuple(int(s) for s in t.shape) for n, t in zip(names, tensors, strict=True)}


def export_coreml(
    checkpoint: ModelSource = DEFAULT_CHECKPOINT,
    out_dir: str | Path = "out/coreml",
    precision: str = "fp16",
    *,
    signoff_dir: str | Path = DEFAULT_SIGNOFF_DIR,
    force: bool = False,
    tile_px: int = 768,
    overlap_px: int = 48,
    frame_hw: tuple[int, int] = DEFAULT_FRAME_HW,
    quantization: dict[str, Any] | None = None,
    overwrite: bool = False,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ExportResult:
    """Export, verify and write the gain and detail packages plus the iOS manifest.

    Args:
        checkpoint: checkpoint path (or an already loaded one).
        out_dir: destination folder (created).
        precision: ``fp16``, ``int8`` or ``w8a8``.
        signoff_dir: folder of sign-off records (INT8 precisions).
        force: export INT8 without an accepting sign-off, stamping a warning.
        tile_px, overlap_px: the detail model's tile side and the plan's overlap (px).
        frame_hw: (H, W) of the frames the plan is for; fixes the gain model's input.
        quantization: the quantization config (default ``core.signoff.default_quantization``).
        overwrite: replace existing packages of this precision in ``out_dir``.

    Raises:
        ConfigError: bad precision, sizes or quantization config (naming the field).
        CheckpointError: the checkpoint is missing or damaged.
        SignoffRequiredError: INT8 without an accepting sign-off and without ``force``.
        OutputError: targets exist (without ``overwrite``) or cannot be written.
        PackageVerificationError: a package failed its checks (nothing is kept).
        ExportToolError: torch.export / coremltools failed.
        CancelledError: cancelled (nothing is kept).
    """
    t0 = time.perf_counter()
    if precision not in EXPORT_PRECISIONS:
        raise ConfigError(f"precision: {precision!r} is not one of {', '.join(EXPORT_PRECISIONS)}")
    token = cancel or CancelToken()
    steps = 7
    progress(Progress("export", 0, steps, "loading the model"))
    net, model_hash = resolve_model(checkpoint)
    spec = None
    if precision != "fp16":
        spec = (
            QuantSpec.default(precision)
            if quantization is None
            else QuantSpec.from_config(quantization)
        )
        if spec.mode != precision:
            raise ConfigError(f"quantization.mode: {spec.mode!r} does not match {precision!r}")
    record_path, record, warning = _gate(precision, model_hash, spec, Path(signoff_dir), force)
    targets = package_paths(out_dir, precision)
    existing = [p for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise OutputError(f"{existing[0]} already exists; pass --overwrite to replace it")
    gh, gw = grid_shape(frame_hw, net.config.pool_px)
    manifest0 = build_manifest(
        net, model_hash, precision, frame_hw, tile_px=tile_px, overlap_px=overlap_px
    )
    tile_h, tile_w = manifest0.tile_side_px
    if tile_h != tile_w:
        raise ConfigError(f"tile_px: the frame {frame_hw} is smaller than a square tile")
    token.raise_if_cancelled()

    act_scales: ActivationScales | None = None
    export_net = net
    if spec is not None and spec.mode == "w8a8":
        from ios_bridge.calibration import calibrate_w8a8

        progress(Progress("export", 1, steps, "calibrating activations"))
        act_scales = calibrate_w8a8(net, spec, model_hash=model_hash, cancel=token)
        export_net = variant_net(net, "w8a8", act_scales)
    gain_ex = gain_example_inputs(export_net, (gh, gw))
    check_detail_ignores_guide(net)
    detail_ex = detail_example_inputs(export_net, tile_h)
    io = {
        "gain": (_io_shapes(GAIN_INPUTS, gain_ex), {GAIN_OUTPUTS[0]: (1, net.config.bins, gh, gw)}),
        "detail": (
            _io_shapes(DETAIL_INPUTS, detail_ex),
            {DETAIL_OUTPUTS[0]: (1, 3, tile_h, tile_h), DETAIL_OUTPUTS[1]: (1, 1, tile_h, tile_h)},
        ),
    }
    models_info = {
        role: {
            "file": targets[role].name,
            "inputs": {k: list(v) for k, v in io[role][0].items()},
            "outputs": {k: list(v) for k, v in io[role][1].items()},
        }
        for role in ("gain", "detail")
    }
    versions = exporter_versions()
    manifest = build_manifest(
        net,
        model_hash,
        precision,
        frame_hw,
        tile_px=tile_px,
        overlap_px=overlap_px,
        models=models_info,
        quantization=None if spec is None else spec.config,
        quantization_hash=None if spec is None else spec.hash,
        activation_scales_hash=None if act_scales is None else activation_scales_hash(act_scales),
        signoff=record,
        warning=warning,
        exporter=versions,
    )
    meta = _metadata(manifest, targets["manifest"].name)

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".linear48-export-", dir=out))
    except OSError as err:
        raise OutputError(f"cannot write to {out}: {err.strerror or err}") from err
    try:
        checks: dict[str, PackageCheck] = {}
        modules = {
            "gain": (GainModel(export_net), gain_ex),
            "detail": (DetailModel(export_net), detail_ex),
        }
        for i, role in enumerate(("gain", "detail")):
            token.raise_if_cancelled()
            progress(Progress("export", 2 + 2 * i, steps, f"converting the {role} model"))
            module, example = modules[role]
            mlmodel = _convert(export_program(module, example), io[role][0], tuple(io[role][1]))
            if precision == "int8":
                mlmodel = _quantize_weights_int8(mlmodel)
            _stamp(mlmodel, role, meta, warning)
            staged = staging / targets[role].name
            with quiet_third_party():
                mlmodel.save(str(staged))
            del mlmodel
            # coremltools' ExecuTorch debug-handle map: not part of the model (Manifest.json
            # does not list it), source-graph names only; not shipped.
            (staged / "executorch_debug_handle_mapping.json").unlink(missing_ok=True)
            token.raise_if_cancelled()
            progress(Progress("export", 3 + 2 * i, steps, f"verifying the {role} package"))
            expect = PackageExpectation(
                role, precision, net, io[role][0], io[role][1], model_hash, act_scales, warning
            )
            check = verify_package(staged, expect)
            if not check.ok:
                raise PackageVerificationError(role, check.problems)
            checks[role] = check
        write_manifest(manifest, staging / targets["manifest"].name)
        token.raise_if_cancelled()
        progress(Progress("export", 6, steps, "moving into place"))
        for key in ("gain", "detail", "manifest"):
            _replace(staging / targets[key].name, targets[key], staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for role in ("gain", "detail"):
        checks[role].path = targets[role]
    progress(Progress("export", steps, steps, "done"))
    return ExportResult(
        precision=precision,
        packages={"gain": targets["gain"], "detail": targets["detail"]},
        manifest_path=targets["manifest"],
        manifest=manifest,
        checks=checks,
        model_hash=model_hash,
        quantization_hash=None if spec is None else spec.hash,
        signoff_record=record_path,
        warnings=(warning,) if warning else (),
        seconds=time.perf_counter() - t0,
    )


def _metadata(manifest: IosManifest, manifest_name: str) -> dict[str, str]:
    d = manifest.to_dict()
    return {
        "precision": manifest.precision,
        "model_hash": manifest.model_hash,
        "quantization": json.dumps(manifest.quantization, sort_keys=True),
        "quantization_hash": manifest.quantization_hash or "",
        "activation_scales_hash": manifest.activation_scales_hash or "",
        "normalization": json.dumps(d["normalization"], sort_keys=True),
        "tile_plan": json.dumps(d["tiling"], sort_keys=True),
        "gain_grid": json.dumps(d["gain_grid"], sort_keys=True),
        "exporter": json.dumps(manifest.exporter, sort_keys=True),
        "signoff": json.dumps(manifest.signoff, sort_keys=True),
        "manifest": manifest_name,
    }


_DESCRIPTIONS = {
    "grid_in": "splatted gain grid (1, 2*bins+7, Hg, Wg): Linear48Net.splat of the frame",
    "log_gain_bins": "natural-log local gain per intensity bin (1, bins, Hg, Wg)",
    "pro": "ProRAW48 tile in working space (Camera48 x wb), 1.0 = RAW12 clip",
    "conf": "guidance confidence tile in [0, 1] (0 where RAW12 clipped)",
    "gain_bins": "gain grid upsampled and cropped at the tile origin (Linear48Net.upsample_grid)",
    "log2_global": "global exposure ratio, EV (1, 1, 1, 1)",
    "exposure": "frame exposure (mean log2 guidance luminance), EV (1, 1, 1, 1)",
    "output": "L = max(0, I g0 g + r), working space; divide by wb for Camera48",
    "log_gain": "natural-log local gain after slicing (without g0)",
}


def _stamp(mlmodel: Any, role: str, meta: dict[str, str], warning: str) -> None:
    """Metadata and descriptions; a forced export's warning goes everywhere a user looks."""
    for key, value in meta.items():
        mlmodel.user_defined_metadata[f"linear48.{key}"] = value
    mlmodel.user_defined_metadata["linear48.role"] = role
    mlmodel.user_defined_metadata["linear48.warning"] = warning
    what = "gain model (net.grid_head)" if role == "gain" else "detail model (net.render_bins)"
    description = f"Linear48 {what}, {meta['precision']}, model {meta['model_hash'][:12]}"
    mlmodel.short_description = f"{warning} {description}" if warning else description
    mlmodel.author = "Linear48"
    mlmodel.version = meta["model_hash"][:12]
    spec_names = {f.name for f in mlmodel.get_spec().description.input} | {
        f.name for f in mlmodel.get_spec().description.output
    }
    for name in spec_names:
        if name in _DESCRIPTIONS:
            with contextlib.suppress(KeyError):
                if name in (GAIN_OUTPUTS + DETAIL_OUTPUTS):
                    mlmodel.output_description[name] = _DESCRIPTIONS[name]
                else:
                    mlmodel.input_description[name] = _DESCRIPTIONS[name]


def _replace(staged: Path, target: Path, staging: Path) -> None:
    """Rename ``staged`` onto ``target``; an existing target is moved aside first and
    deleted with the staging folder (a folder cannot be replaced by rename in one step)."""
    try:
        if target.exists():
            os.replace(target, staging / f".old-{target.name}")
        os.replace(staged, target)
    except OSError as err:
        raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
