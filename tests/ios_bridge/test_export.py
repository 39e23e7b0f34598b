"""Core ML export: loadable, verified packages; the sign-off gate; nothing half-written.

Packages are small (frame 192x128 -> gain grid 24x16, 64 px detail tiles) but built by the
real pipeline: torch.export -> coremltools ML Program (FP16) -> reload and verify. Core ML
prediction does not run on Linux; verification reloads the spec and the weights instead.
"""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch

from core.errors import ConfigError, OutputError
from core.signoff import default_quantization
from ios_bridge.errors import CoreMLPackageError, PackageVerificationError, SignoffRequiredError
from ios_bridge.export import (
    PackageCheck,
    PackageExpectation,
    export_coreml,
    load_package,
    verify_package,
)
from ios_bridge.manifest import read_manifest
from tests.ios_bridge.conftest import TINY_OVERLAP, TINY_TILE, tiny_w8a8_config

pytestmark = [pytest.mark.coreml, pytest.mark.slow]

FRAME = (128, 192)


def _export(model, out, precision, signoff_dir, **kw):
    return export_coreml(
        model,
        out,
        precision,
        signoff_dir=signoff_dir,
        tile_px=TINY_TILE,
        overlap_px=TINY_OVERLAP,
        frame_hw=FRAME,
        **kw,
    )


@pytest.fixture(scope="module")
def fp16(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16")
    return _export(model, out, "fp16", out / "no-records")


@pytest.fixture(scope="module")
def forced_w8a8(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("w8a8")
    return _export(
        model, out, "w8a8", out / "no-records", force=True, quantization=tiny_w8a8_config()
    )


def test_fp16_packages_are_verified(fp16, model):
    assert sorted(p.name for p in fp16.manifest_path.parent.iterdir()) == [
        "linear48_detail_fp16.mlpackage",
        "linear48_fp16.manifest.json",
        "linear48_gain_fp16.mlpackage",
    ]  # no staging folder, no debug files left
    gain, detail = fp16.checks["gain"], fp16.checks["detail"]
    assert gain.ok and detail.ok
    assert gain.weight_precision == detail.weight_precision == "fp16"
    assert gain.bit_exact and detail.bit_exact
    assert (gain.convs, detail.convs) == (9, 4)
    assert gain.inputs == {"grid_in": ((1, 23, 16, 24), "float16")}
    assert gain.outputs == {"log_gain_bins": ((1, 8, 16, 24), "float16")}
    assert detail.outputs["output"] == ((1, 3, 64, 64), "float16")
    assert 0 < detail.max_weight_abs_diff < 1e-3 and detail.max_weight_step_ratio <= 1
    assert "non_zero" not in detail.op_counts and detail.op_counts["conv"] == 4
    assert gain.metadata["linear48.model_hash"] == model.hash
    assert gain.metadata["linear48.warning"] == ""
    assert json.loads(gain.metadata["linear48.tile_plan"])["tile_px"] == TINY_TILE
    manifest = read_manifest(fp16.manifest_path)
    assert manifest == fp16.manifest and manifest.quantization is None
    assert manifest.models["detail"]["file"] == "linear48_detail_fp16.mlpackage"
    assert "verified" in fp16.summary()


def test_reloaded_fp16_weights_equal_torch_half(fp16, model):
    _, program = load_package(fp16.packages["detail"])
    convs = [op for op in program.functions["main"].operations if op.op_type == "conv"]
    first = np.asarray(convs[0].weight.val)
    assert first.dtype == np.float16
    np.testing.assert_array_equal(
        first, model.net.detail[0].weight.detach().numpy().astype(np.float16)
    )


def test_verification_catches_a_different_model(fp16, model):
    other = copy.deepcopy(model.net)
    with torch.no_grad():
        other.detail[2].weight.mul_(1.01)
    io = fp16.manifest.models["detail"]
    expect = PackageExpectation(
        "detail",
        "fp16",
        other,
        {k: tuple(v) for k, v in io["inputs"].items()},
        {k: tuple(v) for k, v in io["outputs"].items()},
        model.hash,
    )
    check = verify_package(fp16.packages["detail"], expect)
    assert not check.ok and "stored weights differ from the emulation's" in check.problems
    wrong = PackageExpectation("detail", "int8", model.net, expect.inputs, expect.outputs, "0" * 64)
    problems = " | ".join(verify_package(fp16.packages["detail"], wrong).problems)
    assert "expected int8" in problems and "model_hash" in problems


def test_w8a8_forced_export_is_stamped(forced_w8a8):
    r = forced_w8a8
    assert r.signoff_record is None and len(r.warnings) == 1
    warning = r.warnings[0]
    assert warning.startswith("UNSIGNED W8A8 EXPORT") and "Not for release" in warning
    for role in ("gain", "detail"):
        check = r.checks[role]
        assert check.ok and check.weight_precision == "int8" and check.bit_exact
        assert check.act_scales_checked == check.convs
        assert check.metadata["linear48.warning"] == warning
        model, _ = load_package(r.packages[role])
        assert model.short_description.startswith("UNSIGNED W8A8 EXPORT")
    manifest = read_manifest(r.manifest_path)
    assert manifest.warning == warning and manifest.activation_scales_hash
    assert manifest.quantization == tiny_w8a8_config()
    assert r.checks["gain"].op_counts["quantize"] == 9


def test_int8_without_signoff_is_refused_and_writes_nothing(model, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SignoffRequiredError, match="no sign-off records") as info:
        _export(model, out, "int8", tmp_path / "records")
    assert "--force" in str(info.value) and "\n" not in str(info.value)
    assert not out.exists()


def test_existing_packages_are_not_overwritten(fp16, model):
    out = fp16.manifest_path.parent
    with pytest.raises(OutputError, match="--overwrite"):
        _export(model, out, "fp16", out / "no-records")


def test_failed_verification_leaves_nothing(model, tmp_path, monkeypatch):
    def failing(path, expect):
        return PackageCheck(role=expect.role, path=path, problems=["weights off"])

    monkeypatch.setattr("ios_bridge.export.verify_package", failing)
    with pytest.raises(PackageVerificationError, match="gain package failed verification"):
        _export(model, tmp_path, "fp16", tmp_path / "none")
    assert list(tmp_path.iterdir()) == []


def test_bad_options(model, tmp_path):
    with pytest.raises(ConfigError, match="precision"):
        export_coreml(model, tmp_path, "int4")
    q = default_quantization("int8")
    with pytest.raises(ConfigError, match="does not match"):
        _export(model, tmp_path, "w8a8", tmp_path, quantization=q, force=True)
    assert list(tmp_path.iterdir()) == []


def test_bad_packages(fp16, tmp_path):
    with pytest.raises(CoreMLPackageError, match="not a Core ML package"):
        load_package(tmp_path / "missing.mlpackage")
    (tmp_path / "file.mlpackage").write_bytes(b"\x00" * 100)
    with pytest.raises(CoreMLPackageError, match="not a Core ML package"):
        load_package(tmp_path / "file.mlpackage")
    broken = tmp_path / "broken.mlpackage"
    shutil.copytree(fp16.packages["gain"], broken)
    (broken / "Data/com.apple.CoreML/model.mlmodel").write_bytes(b"garbage" * 10)
    with pytest.raises(CoreMLPackageError, match="damaged"):
        load_package(broken)
    truncated = tmp_path / "truncated.mlpackage"
    shutil.copytree(fp16.packages["gain"], truncated)
    weights = truncated / "Data/com.apple.CoreML/weights/weight.bin"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CoreMLPackageError, match="weights are unreadable") as info:
        load_package(truncated)
    assert "truncated.mlpackage" in str(info.value)
