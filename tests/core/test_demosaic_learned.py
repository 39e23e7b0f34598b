"""core.demosaic learned method: network, banded inference, checkpoints, shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.cfa import CfaName, CfaPattern
from core.demosaic import checkpoint as ck
from core.demosaic import demosaic, mosaic_from_rgb
from core.demosaic.classic import bilinear
from core.demosaic.evaluation import evaluation_cases
from core.demosaic.learned import learned_demosaic
from core.demosaic.net import (
    DemosaicNet,
    DemosaicNetConfig,
    bilinear_rggb,
    pack_rggb,
    reflect_to_rggb,
)
from core.errors import ConfigError, ShapeError
from core.metrics import psnr
from core.model.checkpoint import CheckpointError
from core.progress import CancelToken
from tests.core.test_demosaic import interior

PHASES = [n.value for n in CfaName]


def random_net(seed: int = 0, channels: int = 8, depth: int = 3) -> DemosaicNet:
    """An untrained network with large random weights: a strongly nonlinear function of
    its input, so exact equalities below are not satisfied by accident."""
    torch.manual_seed(seed)
    net = DemosaicNet(DemosaicNetConfig(channels=channels, depth=depth))
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.5)
    return net.eval()


def test_pack_rggb_order() -> None:
    """Planes come out R, Gr, Gb, B: the four 2x2 positions in reading order."""
    m = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    packed = pack_rggb(m)
    assert packed[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]
    assert packed[0, :, 1, 1].tolist() == [10.0, 11.0, 14.0, 15.0]


def test_bilinear_rggb_matches_classic_interior() -> None:
    m = np.random.default_rng(0).random((20, 24)).astype(np.float32)
    ours = bilinear_rggb(torch.from_numpy(m)[None, None])[0].numpy()
    np.testing.assert_allclose(
        interior(ours, 1), interior(bilinear(m, CfaPattern.from_name("RGGB")), 1), atol=1e-6
    )


def test_network_is_positively_homogeneous() -> None:
    """No biases + leaky ReLU + linear bilinear: net(a x) == a net(x) for a > 0."""
    net = random_net()
    x = torch.rand(2, 1, 16, 20)
    with torch.no_grad():
        ref = 3.5 * net(x)  # float rounding: compare on the scale of the output
        torch.testing.assert_close(net(3.5 * x), ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
        assert not torch.allclose(net(-x), -net(x), atol=1e-3)  # nonlinear: the leaky ReLUs


def test_banded_equals_whole_image() -> None:
    """Bands with margin_px of context reproduce the one-band result."""
    net = random_net(1)
    m = np.random.default_rng(1).random((50, 38)).astype(np.float32)
    cfa = CfaPattern.from_name("GBRG")
    whole = learned_demosaic(m, cfa, model=net, band_rows=10_000)
    banded = learned_demosaic(m, cfa, model=net, band_rows=6)
    np.testing.assert_allclose(banded, whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", PHASES)
def test_any_phase_runs_the_rggb_network_on_reflected_data(name: str) -> None:
    """For pattern P the result equals the network run on the reflect-padded RGGB mosaic
    and cropped back: phase handling is exact, not an approximation."""
    net = random_net(2)
    cfa = CfaPattern.from_name(name)
    m = np.random.default_rng(2).random((24, 28)).astype(np.float32)
    out = learned_demosaic(m, cfa, model=net)
    dy, dx = {"RGGB": (0, 0), "GRBG": (0, 1), "GBRG": (1, 0), "BGGR": (1, 1)}[name]
    margin = net.config.margin_px
    padded = reflect_to_rggb(m, (dy, dx), margin)
    assert CfaPattern.from_name(name).shifted(margin + dy, margin + dx).name == "RGGB"
    with torch.no_grad():
        ref = net(torch.from_numpy(padded)[None, None])[0].numpy()
    y0, x0 = margin + dy, margin + dx
    np.testing.assert_allclose(out, ref[:, y0 : y0 + 24, x0 : x0 + 28], rtol=1e-5, atol=1e-5)


def test_reflect_keeps_every_pixel_colour() -> None:
    """Reflect padding by any amount keeps the CFA: the padded mosaic of a colour image
    equals the mosaic of the reflect-padded image."""
    rgb = np.random.default_rng(3).random((3, 10, 12)).astype(np.float32)
    cfa = CfaPattern.from_name("BGGR")
    padded_m = reflect_to_rggb(mosaic_from_rgb(rgb, cfa), (1, 1), 4)
    padded_rgb = np.pad(rgb, ((0, 0), (5, 5), (5, 5)), mode="reflect")
    np.testing.assert_array_equal(padded_m, mosaic_from_rgb(padded_rgb, "RGGB"))
    with pytest.raises(ShapeError):
        reflect_to_rggb(np.zeros((4, 4), np.float32), (0, 0), 3)


def test_progress_and_cancel() -> None:
    net = random_net(3)
    m = np.zeros((40, 40), np.float32)
    seen = []
    learned_demosaic(m, CfaPattern.from_name("RGGB"), model=net, band_rows=10, progress=seen.append)
    assert [p.done for p in seen] == list(range(1, len(seen) + 1)) and len(seen) >= 4
    token = CancelToken()
    token.cancel()
    from core.errors import CancelledError

    with pytest.raises(CancelledError):
        learned_demosaic(m, CfaPattern.from_name("RGGB"), model=net, cancel=token)


def test_config_validation() -> None:
    assert DemosaicNetConfig().margin_px % 2 == 0
    with pytest.raises(ConfigError, match="depth"):
        DemosaicNetConfig(depth=1)
    with pytest.raises(ConfigError, match="channels"):
        DemosaicNetConfig(channels=0)
    with pytest.raises(ConfigError, match="unknown field"):
        DemosaicNetConfig.from_dict({"channels": 8, "width": 3})


# ---------------------------------------------------------------------- checkpoints


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "demosaic.pt"
    ck.save_demosaic_checkpoint(path, random_net(4), {"run": "test"})
    return path


def test_round_trip_and_hash(saved: Path) -> None:
    loaded = ck.load_demosaic_checkpoint(saved)
    assert loaded.meta == {"run": "test"} and len(loaded.hash) == 64
    assert loaded.hash == ck.content_hash(loaded.config, loaded.net.state_dict())
    m = np.random.default_rng(4).random((16, 16)).astype(np.float32)
    np.testing.assert_array_equal(
        learned_demosaic(m, CfaPattern.from_name("RGGB"), model=loaded),
        learned_demosaic(m, CfaPattern.from_name("RGGB"), model=random_net(4)),
    )


def test_cache_reuses_and_reloads(saved: Path) -> None:
    ck.clear_cache()
    a = ck.load_demosaic_model(saved)
    assert ck.load_demosaic_model(saved) is a
    ck.save_demosaic_checkpoint(saved, random_net(5))
    b = ck.load_demosaic_model(saved)
    assert b is not a and b.hash != a.hash


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00not a model" * 100)
    elif how == "tampered":
        payload = torch.load(path, weights_only=True)
        key = sorted(payload["state_dict"])[0]
        payload["state_dict"][key] += 1.0
        torch.save(payload, path)
    elif how == "other-format":
        payload = torch.load(path, weights_only=True)
        payload["format"] = "linear48-model"
        torch.save(payload, path)
    elif how == "version":
        payload = torch.load(path, weights_only=True)
        payload["version"] = 99
        torch.save(payload, path)
    elif how == "bad-config":
        payload = torch.load(path, weights_only=True)
        payload["config"] = {"channels": -3, "depth": 3}
        torch.save(payload, path)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated", "damaged"),
        ("garbage", "damaged"),
        ("tampered", "content check"),
        ("other-format", "not a Linear48 demosaic"),
        ("version", "format version"),
        ("bad-config", "unusable configuration"),
    ],
)
def test_corrupt_checkpoint_is_a_typed_error(saved: Path, how: str, message: str) -> None:
    _corrupt(saved, how)
    ck.clear_cache()
    with pytest.raises(CheckpointError, match=message) as info:
        learned_demosaic(np.zeros((8, 8), np.float32), CfaPattern.from_name("RGGB"), model=saved)
    assert "\n" not in str(info.value) and info.value.path == saved


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        ck.load_demosaic_model(tmp_path / "nope.pt")


# -------------------------------------------------------------------- shipped model


def test_shipped_model_is_small_and_verified() -> None:
    path = ck.DEFAULT_DEMOSAIC_CHECKPOINT
    assert path.stat().st_size < 1024 * 1024
    loaded = ck.load_demosaic_model()
    assert loaded.path == path and loaded.meta.get("run", "").startswith("v")
    assert ck.load_demosaic_model() is loaded  # cached


def test_shipped_model_beats_bilinear_on_heldout_truth() -> None:
    """Held-out simulated truth (natural scenes at seeds never trained on, all four
    phases, 128x96): the learned demosaic has a higher mean PSNR than bilinear by at least
    1.5 dB and wins on at least 8 of the 10 scenes, noise-free and noisy."""
    cases = evaluation_cases(["natural"], size12=(128, 96))
    wins = 0
    gains = []
    for case in cases:
        for mosaic in (case.mosaic, case.noisy):
            learned = psnr(interior(demosaic(mosaic, case.cfa, "learned")), interior(case.truth))
            bil = psnr(interior(demosaic(mosaic, case.cfa, "bilinear")), interior(case.truth))
            gains.append(learned - bil)
            wins += learned > bil
    assert np.mean(gains) > 1.5
    assert wins >= 16
