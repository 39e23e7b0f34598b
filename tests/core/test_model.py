"""core.model: the two-head network, checkpoints and whole-image inference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from core.cfa import CfaPattern
from core.errors import ConfigError, InputFileError
from core.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.model.infer import ModelOutput, load_default_model, load_model, predict
from core.model.net import Linear48Net, ModelConfig

#: Module types that map onto Core ML-friendly ops (conv, ReLU, average pooling); the
#: functional ops used (bilinear resize, concat, tanh, exp/exp2, log2, clamp, abs, mean)
#: are listed in core.model.net's docstring.
ALLOWED = (Linear48Net, nn.Sequential, nn.Conv2d, nn.ReLU, nn.AvgPool2d)


def _inputs(n: int = 1, h: int = 64, w: int = 64, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    pro = torch.rand(n, 3, h, w, generator=g) * 0.5
    guide = pro * 4.0 + 0.01 * torch.rand(n, 3, h, w, generator=g)
    conf = torch.ones(n, 1, h, w)
    return pro, guide, conf


def _net(seed: int = 0, config: ModelConfig | None = None) -> Linear48Net:
    """A network with random (non-zero) output layers so every path is exercised."""
    torch.manual_seed(seed)
    net = Linear48Net(config or ModelConfig())
    for p in net.parameters():
        with torch.no_grad():
            p.add_(0.3 * torch.randn_like(p))
    return net.eval()


def test_shapes_and_bounds() -> None:
    net = _net()
    pro, guide, conf = _inputs(2, 64, 48)
    with torch.no_grad():
        res = net(pro, guide, conf)
    assert res.output.shape == (2, 3, 64, 48)
    assert res.log_gain.shape == (2, 1, 64, 48)
    assert res.grid.log_gain.shape == (2, net.config.bins, 8, 6)
    assert float(res.output.min()) >= 0.0
    assert float(res.grid.log_gain.abs().max()) <= net.config.max_log_gain + 1e-6
    assert float(res.log_gain.abs().max()) <= net.config.max_log_gain + 1e-6


def test_identity_at_initialisation() -> None:
    """A fresh network applies only the global ratio (zero gain logits and residual)."""
    net = Linear48Net().eval()
    pro, guide, conf = _inputs()
    with torch.no_grad():
        res = net(pro, guide, conf)
    g0 = torch.exp2(res.grid.log2_global)
    torch.testing.assert_close(res.output, pro * g0, rtol=1e-5, atol=1e-7)
    # The guide is ~4x the ProRAW: the global ratio finds ~2 EV.
    assert abs(float(res.grid.log2_global.flatten()[0]) - 2.0) < 0.05


@pytest.mark.parametrize(
    "case",
    ["tiny", "huge", "black", "clipped", "nan", "inf", "mixed"],
)
def test_extreme_inputs_stay_finite(case: str) -> None:
    net = _net(1)
    pro, guide, conf = _inputs(1, 32, 32)
    if case == "tiny":
        pro, guide = pro * 1e-6, guide * 1e-6
    elif case == "huge":
        pro, guide = pro * 2e4, guide * 2e4
    elif case == "black":
        pro, guide = torch.zeros_like(pro), torch.zeros_like(guide)
    elif case == "clipped":
        pro, guide, conf = torch.full_like(pro, 1e4), torch.ones_like(guide), conf * 0
    elif case == "nan":
        pro[:, :, 3:9, 3:9] = float("nan")
        guide[:, 1] = float("nan")
    elif case == "inf":
        pro[:, 0, :5] = float("inf")
        guide[:, 2, 5:] = float("-inf")
    else:
        pro = pro * torch.logspace(-6, 4, 32).view(1, 1, 1, 32)
        pro[0, 0, 0, 0] = float("nan")
    with torch.no_grad():
        res = net(pro, guide, conf)
    for t in (res.output, res.log_gain, res.residual, res.grid.log_gain):
        assert torch.isfinite(t).all(), case
    assert float(res.output.min()) >= 0


def test_gradients_are_finite_on_extremes() -> None:
    net = _net(2).train()
    pro, guide, conf = _inputs(1, 32, 32)
    pro = pro * torch.logspace(-6, 4, 32).view(1, 1, 1, 32)
    res = net(pro, guide, conf)
    res.output.clamp_max(1e3).mean().backward()  # type: ignore[no-untyped-call]
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_only_core_ml_friendly_modules() -> None:
    net = Linear48Net()
    bad = [type(m).__name__ for m in net.modules() if not isinstance(m, ALLOWED)]
    assert not bad, f"modules outside the Core ML whitelist: {bad}"
    assert 10_000 < net.n_parameters() < 200_000


@torch.no_grad()
def test_detail_head_receptive_field_is_bounded() -> None:
    """Changing one input pixel moves the detail residual only within the head's radius."""
    net = _net(3)
    pro, guide, conf = _inputs(1, 64, 64)
    grid = net.gain_grid(pro, guide, conf)
    base = net.render(pro, guide, conf, grid).residual
    pro2 = pro.clone()
    pro2[0, :, 32, 32] *= 3.0
    moved = (net.render(pro2, guide, conf, grid).residual - base).abs().sum(dim=(0, 1)) > 0
    ys, xs = torch.nonzero(moved, as_tuple=True)
    radius = net.config.detail_layers + 1
    assert int((ys - 32).abs().max()) <= radius and int((xs - 32).abs().max()) <= radius


@torch.no_grad()
def test_tile_render_matches_whole_frame() -> None:
    """render() on a window with the whole-frame grid equals the whole frame away from
    the window border (DESIGN §6)."""
    net = _net(4)
    pro, guide, conf = _inputs(1, 64, 64)
    grid = net.gain_grid(pro, guide, conf)
    whole = net.render(pro, guide, conf, grid).output
    y0, x0, s = 16, 8, 40
    win = (slice(None), slice(None), slice(y0, y0 + s), slice(x0, x0 + s))
    tile = net.render(pro[win], guide[win], conf[win], grid, origin=(y0, x0)).output
    m = net.config.detail_layers + 2
    torch.testing.assert_close(tile[..., m:-m, m:-m], whole[win][..., m:-m, m:-m])


def _edge_bar(h: int = 32, w: int = 64) -> tuple[torch.Tensor, ...]:
    """A bright window (0.8) crossed by a thin dark bar (0.01, rows 14-19): the bright
    window's mullion, where the detail head's local-mean scale is set by the bright side."""
    pro = torch.full((1, 3, h, w), 0.8)
    pro[..., 14:20, :] = 0.01
    return pro, pro.clone(), torch.ones(1, 1, h, w)


@pytest.mark.parametrize("bound", [0.25, None])
def test_residual_is_bounded_by_each_pixels_own_value(bound: float | None) -> None:
    torch.manual_seed(0)
    net = Linear48Net(ModelConfig(residual_bound=bound)).eval()
    with torch.no_grad():
        net.detail[-1].bias.fill_(3.0)  # tanh(d) ~ 1: the largest residual the head can add
        pro, guide, conf = _edge_bar()
        res = net(pro, guide, conf)
    base = res.output - res.residual
    ratio = (res.residual / base)[..., 14:20, :]  # the dark bar's pixels
    if bound is None:  # what the bound is for: the bar's edge rows brightened by > 1 EV
        assert float(ratio.max()) > 1.0
    else:
        assert float(ratio.abs().max()) <= bound + 1e-5
        assert float(ratio.max()) > 0.9 * bound  # bounded, not switched off


def test_checkpoints_from_before_the_residual_bound_load_unbounded(tmp_path: Path) -> None:
    """A checkpoint whose config has no ``residual_bound`` (saved before it existed) loads
    with None and its content hash still checks; a new one stores and restores 0.25."""
    old = _net(6, ModelConfig(residual_bound=None))
    digest = save_checkpoint(tmp_path / "old.pt", old)
    payload = torch.load(tmp_path / "old.pt", weights_only=False)
    assert "residual_bound" not in payload["config"]
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.hash == digest and loaded.net.config.residual_bound is None
    save_checkpoint(tmp_path / "new.pt", _net(6))
    assert load_model(tmp_path / "new.pt").net.config.residual_bound == 0.25
    with pytest.raises(ConfigError, match="residual_bound"):
        ModelConfig(residual_bound=-1.0)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    net = _net(5)
    digest = save_checkpoint(tmp_path / "m.pt", net, {"run": "v0.1_test"})
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.hash == digest and loaded.meta["run"] == "v0.1_test"
    for a, b in zip(net.state_dict().values(), loaded.net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("damage", ["missing", "truncated", "garbage", "flipped", "config"])
def test_bad_checkpoints_raise_checkpoint_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, _net(6))
    data = path.read_bytes()
    if damage == "missing":
        path = tmp_path / "absent.pt"
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a model" * 100)
    elif damage == "flipped":
        payload = torch.load(path, weights_only=True)
        payload["state_dict"]["gain_out.bias"] += 1.0
        torch.save(payload, path)
    else:
        payload = torch.load(path, weights_only=True)
        payload["config"]["width"] = 8  # weights no longer fit; hash no longer matches
        torch.save(payload, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert isinstance(info.value, InputFileError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)


def test_mismatched_network_raises(tmp_path: Path) -> None:
    """A consistent file whose config cannot build this network: CheckpointError."""
    path = tmp_path / "m.pt"
    save_checkpoint(path, _net(7))
    payload = torch.load(path, weights_only=True)
    payload["config"]["unknown_field"] = 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="configuration"):
        load_checkpoint(path)


def test_predict_whole_image() -> None:
    net = _net(8)
    rng = np.random.default_rng(0)
    cam = (rng.random((3, 64, 96)) * 0.1).astype(np.float32)
    anchor = (rng.random((32, 48)) * 0.8).astype(np.float32)
    cam[0, :4, :4] = np.nan
    out = predict(net, cam, anchor, CfaPattern.from_name("BGGR"), np.array([2.0, 1.0, 1.5]))
    assert isinstance(out, ModelOutput)
    assert out.camera48.shape == (3, 64, 96) and out.camera48.dtype == np.float32
    assert np.all(np.isfinite(out.camera48)) and out.camera48.min() >= 0
    assert out.gain_lowres.shape == (8, 12) and out.cell_px48 == 8
    assert math.isfinite(out.global_gain) and out.seconds > 0
    assert {"residual_rms_rel", "log2_gain_range", "refine_log2_max"} <= set(out.stats)


def test_default_model_loads() -> None:
    """The shipped default is a valid checkpoint (it is committed: missing = a failure)."""
    from core.model.infer import DEFAULT_CHECKPOINT

    model = load_default_model()
    assert len(model.hash) == 64 and DEFAULT_CHECKPOINT.stat().st_size < 2 * 2**20
