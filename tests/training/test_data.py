"""training.data: in-memory samples match the DNG path; augmentation keeps the CFA phase."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.cfa import CfaName, CfaPattern
from core.forward import forward_np
from core.io.pair import load_pair
from core.simulate.pair import SimConfig, simulate_pair, write_pair
from training.data import (
    CANONICAL_CFA,
    PoolImage,
    augment_crop,
    decode_simulated,
    flipped_pattern,
    make_batch,
    phase_offset,
    simulate_from_scene,
)


@pytest.mark.parametrize("wb_style", ["analog-balance", "as-shot-neutral"])
def test_decode_matches_load_pair(tmp_path: Path, wb_style: str) -> None:
    """decode_simulated gives what load_pair reads from the written DNGs."""
    sim = simulate_pair(
        SimConfig(scene="backlit", w12=64, h12=48, seed=5, wb_style=wb_style)  # type: ignore[arg-type]
    )
    paths = write_pair(sim, tmp_path)
    pair = load_pair(paths.raw12, paths.proraw48)
    img = decode_simulated(sim)
    np.testing.assert_allclose(img.pro, pair.camera48, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(img.anchor, pair.anchor, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(img.unclipped, pair.unclipped)
    np.testing.assert_allclose(img.wb, pair.wb_gains, rtol=1e-6)
    assert img.cfa == pair.raw12.cfa


def _noise_free(cfa: CfaPattern, seed: int = 0) -> PoolImage:
    """Random Camera48 truth whose anchor is exactly F(truth) in pattern ``cfa``."""
    rng = np.random.default_rng(seed)
    truth = rng.random((3, 96, 128)).astype(np.float32)
    anchor = forward_np(truth, cfa)
    return PoolImage(truth, truth.copy(), anchor, anchor < 2, np.ones(3, np.float32), cfa, "t")


@pytest.mark.parametrize("name", [n.value for n in CfaName])
def test_augmented_crops_satisfy_f_against_their_anchor(name: str) -> None:
    """Every flip combination, every source phase: F(truth crop) == anchor crop (up to float
    summation order, which a flip permutes),
    in the canonical pattern."""
    img = _noise_free(CfaPattern.from_name(name))
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(24):
        s = augment_crop(img, rng, 32)
        np.testing.assert_allclose(forward_np(s.truth, CANONICAL_CFA), s.anchor, rtol=1e-6)
        seen.add(tuple(s.truth[0, 0, :2].tolist()))
    assert len(seen) > 4


def test_flip_without_rephasing_breaks_f() -> None:
    """The control: a horizontally flipped anchor has the mirrored pattern, not the old one."""
    cfa = CfaPattern.from_name("BGGR")
    img = _noise_free(cfa)
    truth_f, anchor_f = img.truth[:, :, ::-1], img.anchor[:, ::-1]
    assert not np.allclose(forward_np(np.ascontiguousarray(truth_f), cfa), anchor_f, rtol=1e-3)
    mirrored = flipped_pattern(cfa, False, True)
    assert mirrored.name == "GBRG"
    np.testing.assert_allclose(
        forward_np(np.ascontiguousarray(truth_f), mirrored), anchor_f, rtol=1e-6
    )
    assert phase_offset(mirrored, cfa) == (0, 1)


def test_simulate_from_scene_and_batch() -> None:
    rng = np.random.default_rng(0)
    scene = rng.random((3, 96, 128)).astype(np.float32) + 0.1
    img = simulate_from_scene(scene, SimConfig(scene="custom", w12=64, h12=48, ltm="blur"))
    assert img.pro.shape == img.truth.shape == (3, 96, 128)
    assert img.anchor.shape == (48, 64) and np.all(np.isfinite(img.pro))
    batch = make_batch([augment_crop(img, rng, 32) for _ in range(2)])
    assert batch.pro.shape == (2, 3, 32, 32) and batch.guide.shape == (2, 3, 32, 32)
    assert batch.anchor.shape == (2, 1, 16, 16) and batch.conf.shape == (2, 1, 32, 32)
