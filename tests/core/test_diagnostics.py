"""core.diagnostics: degradation model, features, classical estimates, advice, preview,
checkpoints and their bad-input paths.

The learned model's accuracy against the classical baseline is pinned in
``test_diagnostics_model.py``; the stability map and the DNG helpers in
``test_diagnostics_files.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.diagnostics import (
    CorrectionAdvice,
    DiagnosticCheckpointError,
    SceneInfo,
    generate_preview,
    load_diagnostic_model,
    optimize_corrections,
)
from core.diagnostics.checkpoint import clear_cache, save_diagnostic_checkpoint
from core.diagnostics.estimators import classical_estimate
from core.diagnostics.evaluation import score, thumbnails
from core.diagnostics.features import (
    N_STATS,
    STAT_NAMES,
    THUMB_PX,
    analysis_thumbnail,
    area_downsample,
    chroma,
    global_stats,
    net_input,
)
from core.diagnostics.net import DiagnosticNet, DiagnosticNetConfig
from core.diagnostics.synthetic import (
    REFERENCE_CHROMA,
    REFERENCE_KEY_EV,
    Degradation,
    balance_scene,
    correct,
    correct_t,
    degrade,
    degrade_t,
    exposure_class,
    make_samples,
    place_reference,
    relative_key_t,
    sample_degradation,
    saturation_class,
)
from core.diagnostics.types import axes_from_gains, gains_from_axes
from core.errors import ConfigError, InputFileError, ShapeError
from core.model.checkpoint import CheckpointError
from core.simulate.scenes import make_scene


def _colour_patch(seed: int = 0, h: int = 24, w: int = 32) -> np.ndarray:
    """A smooth, moderately saturated linear image in (0.05, 0.8): models a clean,
    well-exposed working-space image whose saturation changes never clamp at 0."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.6, (1, h, w)).astype(np.float32)
    tint = rng.uniform(0.8, 1.25, (3, 1, 1)).astype(np.float32)
    return np.clip(base * tint, 0.05, 0.8).astype(np.float32)


# --------------------------------------------------------------------------- degradation


def test_degrade_golden_pixels() -> None:
    """Hand-checked: gamma 2, saturation 0.5, cast (1.1, 1, 0.9) on two pixels.

    Pixel A = (0.5, 0.5, 0.5) (grey): ** 2 -> 0.25 each; saturation keeps grey; cast ->
    (0.275, 0.25, 0.225).
    Pixel B = (1.0, 0.5, 0.5): ** 2 -> (1, 0.25, 0.25); Y = 0.25 + 0.125 + 0.0625 = 0.4375;
    Y + 0.5 (x - Y) -> (0.71875, 0.34375, 0.34375); cast -> (0.790625, 0.34375, 0.309375).
    """
    x = np.array([[[0.5, 1.0]], [[0.5, 0.5]], [[0.5, 0.5]]], np.float32)
    y = degrade(x, Degradation(gamma=2.0, saturation=0.5, cast=(1.1, 1.0, 0.9)))
    expected = np.array([[[0.275, 0.790625]], [[0.25, 0.34375]], [[0.225, 0.309375]]])
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_correct_inverts_degrade() -> None:
    """The advised corrections (truth labels) restore the clean image exactly."""
    x = _colour_patch()
    for seed in range(6):
        d = sample_degradation(np.random.default_rng(seed))
        y = degrade(x, d)
        back = correct(y, d.correction_gains, 1.0 / d.saturation, 1.0 / d.gamma)
        np.testing.assert_allclose(back, x, rtol=2e-4, atol=1e-6)


def test_torch_and_numpy_degradations_agree() -> None:
    x = _colour_patch(1)
    ds = [sample_degradation(np.random.default_rng(s)) for s in range(3)]
    xt = torch.from_numpy(np.stack([x] * 3))
    gamma = torch.tensor([d.gamma for d in ds])
    sat = torch.tensor([d.saturation for d in ds])
    cast = torch.tensor([d.cast for d in ds])
    yt = degrade_t(xt, gamma, sat, cast)
    for i, d in enumerate(ds):
        np.testing.assert_allclose(yt[i].numpy(), degrade(x, d), rtol=1e-5, atol=1e-7)
    back = correct_t(yt, 1.0 / cast, 1.0 / sat, 1.0 / gamma)
    np.testing.assert_allclose(back.numpy(), xt.numpy(), rtol=2e-4, atol=1e-6)


def test_degradation_ranges_and_classes() -> None:
    """Drawn parameters follow the issue's ranges and every class appears."""
    ds = [sample_degradation(np.random.default_rng(s)) for s in range(300)]
    for d in ds:
        assert 1 / 2.5 - 1e-9 <= d.gamma <= 2.5 + 1e-9
        assert 0.6 - 1e-9 <= d.saturation <= 1 / 0.6 + 1e-9
        assert d.cast[1] == 1.0 and 0.8 <= d.cast[0] <= 1.2 and 0.8 <= d.cast[2] <= 1.2
    assert {d.exposure_label for d in ds} == {"under", "well", "over"}
    assert {d.saturation_label for d in ds} == {"under", "well", "over"}
    assert exposure_class(2.0) == "under" and exposure_class(0.5) == "over"
    assert exposure_class(1.05) == "well"
    assert saturation_class(0.7) == "under" and saturation_class(1.3) == "over"
    assert saturation_class(1.0) == "well"


def test_reference_placement_sets_key_and_chroma() -> None:
    """Scene-referenced labels: a low-key colourful image and a high-key pastel one both
    reach the reference key (q50 - q99 of log2 luminance, EV) and, after the exposure
    gamma, the reference gray-world-balanced chroma; a grey chart keeps chroma 0."""
    rng = np.random.default_rng(3)
    base = rng.uniform(0.0, 1.0, (1, 48, 64)).astype(np.float32)
    tint = np.ones((3, 48, 64), np.float32)
    tint[:, :, :32] = np.array([1.3, 1.0, 0.6], np.float32)[:, None, None]
    tint[:, :, 32:] = np.array([0.7, 1.0, 1.4], np.float32)[:, None, None]
    low_key = np.clip(base**6 * tint, 0.0, 0.9).astype(np.float32)
    pastel = np.clip((0.3 + 0.6 * base) * (1.0 + 0.05 * (tint - 1.0)), 0, 0.95)
    for img in (low_key, pastel.astype(np.float32)):
        for gamma in (0.5, 1.0, 2.0):
            ref, chromatic = place_reference(img, gamma)
            assert chromatic
            key = float(relative_key_t(torch.from_numpy(ref)[None])[0])
            assert key == pytest.approx(REFERENCE_KEY_EV, abs=0.02)
            shown = torch.from_numpy(analysis_thumbnail(ref**gamma))[None]
            gw_chroma = float(global_stats(shown)[0, STAT_NAMES.index("chroma_grayworld")])
            assert gw_chroma == pytest.approx(REFERENCE_CHROMA, abs=0.01)
    grey = np.repeat(base * 0.8, 3, axis=0)
    ref, chromatic = place_reference(grey, 1.0)
    assert float(chroma(torch.from_numpy(ref)[None])[0]) < 1e-6 and not chromatic


def test_label_definitions_share_degradations() -> None:
    """Both label definitions draw the same degradations; only the clean reference
    differs. An unknown definition is a ConfigError naming the valid ones."""
    a = make_samples(["backlit"], range(2), size=(32, 48), labels="as_rendered")
    b = make_samples(["backlit"], range(2), size=(32, 48), labels="scene_referenced")
    assert [s.degradation for s in a] == [s.degradation for s in b]
    assert not np.allclose(a[0].image, b[0].image)
    with pytest.raises(ConfigError, match="scene_referenced"):
        make_samples(["backlit"], range(1), size=(32, 48), labels="bogus")  # type: ignore[arg-type]


def test_wb_axes_round_trip() -> None:
    """Golden: gains (2, 1, 0.5) are log2 (1, -1): temperature 1 EV, tint 0."""
    assert axes_from_gains((2.0, 1.0, 0.5)) == pytest.approx((1.0, 0.0))
    assert axes_from_gains((0.5, 1.0, 0.5)) == pytest.approx((0.0, 1.0))
    for temp, tint in ((0.1, -0.05), (-0.2, 0.3)):
        assert axes_from_gains(gains_from_axes(temp, tint)) == pytest.approx((temp, tint))
    with pytest.raises(ValueError):
        axes_from_gains((0.0, 1.0, 1.0))


# --------------------------------------------------------------------------- features


def test_thumbnail_is_an_area_average() -> None:
    """Constant image -> constant thumbnail; a 2:1 split image keeps its mean; NaN, inf
    and negatives count as 0."""
    img = np.full((3, 300, 500), 0.25, np.float32)
    np.testing.assert_allclose(analysis_thumbnail(img), 0.25, rtol=1e-6)
    split = np.zeros((3, 128, 128), np.float32)
    split[:, :64] = 1.0
    assert analysis_thumbnail(split).mean() == pytest.approx(0.5, rel=1e-6)
    bad = np.full((3, 64, 64), 0.5, np.float32)
    bad[0, :32] = np.nan
    bad[1, :32] = -1.0
    bad[2, :32] = np.inf
    t = analysis_thumbnail(bad)
    assert t.shape == (3, THUMB_PX, THUMB_PX) and np.all(np.isfinite(t))
    np.testing.assert_allclose(t.mean(axis=(1, 2)), [0.25, 0.25, 0.25], rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 0, 5), (4, 8, 8), (8, 8), (3, 8)])
def test_thumbnail_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError):
        analysis_thumbnail(np.zeros(shape, np.float32))


def test_area_downsample_limits_the_long_side() -> None:
    img = np.arange(3 * 30 * 50, dtype=np.float32).reshape(3, 30, 50)
    small = area_downsample(img, 20)
    assert max(small.shape[1:]) <= 20
    assert small[0, 0, 0] == pytest.approx(img[0, :3, :3].mean())
    assert area_downsample(img, None).shape == img.shape


def test_chroma_scales_with_saturation() -> None:
    """The saturation step scales luminance-weighted chroma by exactly its factor."""
    x = torch.from_numpy(_colour_patch(2))[None]
    base = float(chroma(x)[0])
    y = torch.from_numpy(degrade(x[0].numpy(), Degradation(1.0, 0.7, (1.0, 1.0, 1.0))))[None]
    assert float(chroma(y)[0]) == pytest.approx(0.7 * base, rel=1e-5)
    grey = torch.full((1, 3, 8, 8), 0.3)
    assert float(chroma(grey)[0]) == pytest.approx(0.0, abs=1e-7)


def test_stats_and_net_input_shapes_are_finite() -> None:
    t = torch.rand(4, 3, THUMB_PX, THUMB_PX) * 2.0
    t[0] = 0.0  # an all-black image must not produce NaN
    s = global_stats(t)
    assert s.shape == (4, N_STATS) and torch.isfinite(s).all()
    n = net_input(t)
    assert n.shape == (4, 6, THUMB_PX, THUMB_PX) and torch.isfinite(n).all()


# --------------------------------------------------------------------------- classical


def test_grayworld_recovers_a_cast_on_a_grey_chart() -> None:
    """Models a neutral test chart under a colour cast: gray world is exact there."""
    clean = balance_scene(make_scene("checkers", 64, 64, seed=1)) * np.float32(0.5)
    d = Degradation(gamma=1.0, saturation=1.0, cast=(1.15, 1.0, 0.85))
    est = classical_estimate(torch.from_numpy(analysis_thumbnail(degrade(clean, d)))[None])
    np.testing.assert_allclose(est.gains[0], d.correction_gains, rtol=1e-3)
    assert not est.identifiable[0]  # grey: saturation not judged
    assert est.saturation_probs[0].argmax() == 1


def test_classical_exposure_follows_gamma() -> None:
    """Same scene, gamma 2.5 vs 1/2.5: the classical key statistic orders them."""
    clean = balance_scene(make_scene("natural_coffee", 96, 128, seed=0))
    clean *= np.float32(0.8 / np.percentile(clean.mean(axis=0), 99))
    dark = degrade(clean, Degradation(2.5, 1.0, (1.0, 1.0, 1.0)))
    bright = degrade(clean, Degradation(0.4, 1.0, (1.0, 1.0, 1.0)))
    est = classical_estimate(
        torch.from_numpy(np.stack([analysis_thumbnail(dark), analysis_thumbnail(bright)]))
    )
    assert est.exposure_probs[0].argmax() == 0  # under
    assert est.exposure_probs[1].argmax() == 2  # over
    assert est.gamma[0] < 1.0 < est.gamma[1]


def test_score_counts_what_it_says() -> None:
    """A perfect estimate built from the truth scores 100 % on every head; a wrong one 0."""
    samples = make_samples(["backlit", "checkers"], range(3), size=(32, 48), seed=4)
    est = classical_estimate(thumbnails(samples))
    onehot = np.eye(3)
    truth = type(est)(
        exposure_probs=np.stack(
            [onehot[["under", "well", "over"].index(s.degradation.exposure_label)] for s in samples]
        ),
        gamma=np.array([1 / s.degradation.gamma for s in samples]),
        gains=np.array([s.degradation.correction_gains for s in samples]),
        saturation_probs=np.stack(
            [
                onehot[["under", "well", "over"].index(s.degradation.saturation_label)]
                for s in samples
            ]
        ),
        saturation_factor=np.ones(len(samples)),
        identifiable=np.ones(len(samples), bool),
        stats=est.stats,
    )
    perfect = score(truth, samples)
    assert perfect.exposure == perfect.white_balance == perfect.saturation == 1.0
    assert perfect.log_gamma_error == pytest.approx(0.0, abs=1e-12)
    assert perfect.n == 6 and perfect.n_saturation == 3  # checkers are grey
    wrong = type(est)(
        **{
            **truth.__dict__,
            "gains": truth.gains + 0.06,
            "exposure_probs": np.roll(truth.exposure_probs, 1, axis=1),
        }
    )
    bad = score(wrong, samples)
    assert bad.exposure == 0.0 and bad.white_balance == 0.0


# --------------------------------------------------------------------------- advice


def _scene_image(seed: int = 0) -> np.ndarray:
    """A simulated backlit scene in working space, auto-exposed: models a converted DNG."""
    x = balance_scene(make_scene("backlit", 96, 128, seed=seed))
    return (x * np.float32(0.8 / np.percentile(x.mean(axis=0), 99))).astype(np.float32)


def test_classical_advice_is_complete_and_json(tmp_path: Path) -> None:
    adv = optimize_corrections(_scene_image(), method="classical")
    assert isinstance(adv, CorrectionAdvice)
    assert adv.method == "classical" and adv.method_requested == "classical"
    assert adv.model_hash is None and adv.fallback_reason == ""
    assert adv.exposure.label in ("under", "well", "over")
    assert sum(adv.exposure.probabilities.values()) == pytest.approx(1.0)
    assert adv.white_balance.gains[1] == 1.0
    json.dumps(adv.to_dict(), allow_nan=False)


def test_auto_falls_back_when_the_checkpoint_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    adv = optimize_corrections(_scene_image(), checkpoint=str(missing))
    assert adv.method == "classical" and adv.method_requested == "auto"
    assert "not found" in adv.fallback_reason
    assert any("classical" in n for n in adv.notes)
    with pytest.raises(DiagnosticCheckpointError, match="not found"):
        optimize_corrections(_scene_image(), method="learned", checkpoint=str(missing))


def test_scene_gains_equal_a_pre_balanced_image() -> None:
    """Passing Camera48 with SceneInfo gains gives the same advice as balancing first."""
    working = _scene_image(1)
    gains = np.array([1.9, 1.0, 1.4], np.float32)
    camera = working / gains[:, None, None]
    a = optimize_corrections(working, method="classical")
    b = optimize_corrections(
        camera * np.float32(0.5),
        SceneInfo(wb_gains=tuple(float(g) for g in gains), exposure_ev=1.0),
        method="classical",
    )
    assert a.white_balance.gains == pytest.approx(b.white_balance.gains, rel=1e-4)
    assert a.exposure.key_ev == pytest.approx(b.exposure.key_ev, abs=1e-3)
    assert b.input_exposure_ev == 1.0 and b.input_gains == pytest.approx(tuple(gains))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"method": "magic"}, ConfigError),
        ({"scene": SceneInfo(wb_gains=(1.0, 0.0, 1.0))}, ConfigError),
        ({"scene": SceneInfo(exposure_ev=float("nan"))}, ConfigError),
    ],
)
def test_bad_arguments_raise_typed_errors(kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        optimize_corrections(_scene_image(), **kwargs)


def test_bad_image_raises_shape_error() -> None:
    with pytest.raises(ShapeError):
        optimize_corrections(np.zeros((2, 8, 8), np.float32), method="classical")
    with pytest.raises(ShapeError):
        optimize_corrections(np.zeros((3, 8, 8), np.complex64), method="classical")


def test_preview_applies_the_truth_corrections() -> None:
    """An advice holding the true inverse restores the clean image (at preview size)."""
    clean = _colour_patch(3, 64, 96)
    d = Degradation(gamma=1.8, saturation=0.7, cast=(1.1, 1.0, 0.85))
    adv = optimize_corrections(degrade(clean, d), method="classical")
    wb = adv.white_balance
    truth = CorrectionAdvice(
        exposure=type(adv.exposure)(**{**adv.exposure.__dict__, "correction_gamma": 1 / 1.8}),
        white_balance=type(wb)(**{**wb.__dict__, "gains": d.correction_gains}),
        saturation=type(adv.saturation)(
            **{**adv.saturation.__dict__, "correction_factor": 1 / 0.7}
        ),
        method="classical",
        method_requested="classical",
    )
    full = generate_preview(degrade(clean, d), truth, max_side_px=None)
    np.testing.assert_allclose(full, clean, rtol=3e-4, atol=1e-6)
    small = generate_preview(degrade(clean, d), truth, max_side_px=48)
    assert small.shape == (3, 32, 48) and small.dtype == np.float32
    with pytest.raises(ShapeError):
        generate_preview(np.zeros((3, 4)), truth)
    with pytest.raises(ConfigError):
        generate_preview(clean, truth, max_side_px=0)


# --------------------------------------------------------------------------- checkpoints


def _tiny_net() -> DiagnosticNet:
    torch.manual_seed(0)
    cfg = DiagnosticNetConfig(
        stem=4, widths=(4, 4, 4, 4), repeats=(1, 1, 1, 1), embed=8, stats_hidden=4, head_hidden=8
    )
    return DiagnosticNet(cfg)


def test_checkpoint_round_trip_and_cache(tmp_path: Path) -> None:
    clear_cache()
    path = tmp_path / "d.pt"
    digest = save_diagnostic_checkpoint(path, _tiny_net(), {"run": "t"})
    a = load_diagnostic_model(path)
    assert a.hash == digest and a.meta["run"] == "t" and not a.net.training
    assert load_diagnostic_model(path) is a  # cached
    adv = optimize_corrections(_scene_image(), method="learned", checkpoint=str(path))
    assert adv.method == "learned" and adv.model_hash == digest


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    # Flip bytes in the middle of the archive (tensor data), keeping the zip readable
    # or not: either way it must be a one-line CheckpointError.
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "random", "other-format", "tensor"])
def test_bad_checkpoints_raise_one_line_errors(tmp_path: Path, damage: str) -> None:
    clear_cache()
    path = tmp_path / "d.pt"
    save_diagnostic_checkpoint(path, _tiny_net())
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "corrupt":
        _corrupt(path)
    elif damage == "random":
        path.write_bytes(np.random.default_rng(0).bytes(5000))
    elif damage == "other-format":
        torch.save({"format": "linear48-model", "version": 1}, path)
    else:
        torch.save(torch.zeros(3), path)
    with pytest.raises(DiagnosticCheckpointError) as info:
        load_diagnostic_model(path)
    assert isinstance(info.value, CheckpointError) and isinstance(info.value, InputFileError)
    assert "\n" not in str(info.value) and "d.pt" in str(info.value)
    adv = optimize_corrections(_scene_image(), checkpoint=str(path))
    assert adv.method == "classical" and adv.fallback_reason == str(info.value)


def test_edited_weights_fail_the_content_check(tmp_path: Path) -> None:
    clear_cache()
    path = tmp_path / "d.pt"
    save_diagnostic_checkpoint(path, _tiny_net())
    payload = torch.load(path, weights_only=True)
    key = next(iter(payload["state_dict"]))
    payload["state_dict"][key] = payload["state_dict"][key] + 1.0
    torch.save(payload, path)
    with pytest.raises(DiagnosticCheckpointError, match="content check"):
        load_diagnostic_model(path)


def test_feature_version_mismatch_is_refused(tmp_path: Path) -> None:
    clear_cache()
    path = tmp_path / "d.pt"
    save_diagnostic_checkpoint(path, _tiny_net())
    payload = torch.load(path, weights_only=True)
    payload["feature_version"] = 999
    torch.save(payload, path)
    with pytest.raises(DiagnosticCheckpointError, match="feature version 999"):
        load_diagnostic_model(path)


def test_net_config_validation() -> None:
    with pytest.raises(ConfigError, match=r"model\.widths"):
        DiagnosticNetConfig(widths=(4, 4, 4))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown"):
        DiagnosticNetConfig.from_dict({"bogus": 1})
    cfg = DiagnosticNetConfig()
    assert DiagnosticNetConfig.from_dict(cfg.to_dict()) == cfg


def test_absurdly_large_checkpoint_is_refused_unread(tmp_path: Path) -> None:
    """A 65 MiB file (sparse, nothing real written) is refused by size before reading."""
    clear_cache()
    path = tmp_path / "huge.pt"
    with path.open("wb") as handle:
        handle.truncate(65 * 2**20)
    with pytest.raises(DiagnosticCheckpointError, match="far larger"):
        load_diagnostic_model(path)
