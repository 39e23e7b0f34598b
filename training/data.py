"""Training data built in memory from the capture-pair simulator (no DNG round trip).

Two sources, mixed in one pool of :class:`PoolImage`:

- **Simulator scenes** (``core.simulate.scenes``, natural kind: procedural scenes and images
  shipped in installed packages) through :func:`core.simulate.pair.simulate_pair`; the
  stored codes are decoded exactly as :func:`core.io.pair.load_pair` reads the written DNGs
  (:func:`decode_simulated`; checked against ``load_pair`` in the tests).
- **Real raw content**: the real Bayer DNG in ``shared/data/real/`` demosaiced, white
  balanced to a neutral scene and used as scene content, passed through
  :func:`simulate_from_scene`, which mirrors ``simulate_pair``'s pixel steps (noise, 2x2
  binning, vignetting and its correction, clipping, LTM, ISP, headroom, 12-bit codes
  through the LinearizationTable) without writing files.

Pattern ("torture") scenes are left out: they are for evaluation.

Crops keep the CFA phase: every crop is taken at 12MP offsets whose parity makes its
top-left 2x2 equal to :data:`CANONICAL_CFA`, after an optional horizontal/vertical flip
(a flip mirrors the pattern; the crop parity restores it). So one batch has one pattern
and ``F(truth_crop) == anchor_crop`` holds exactly as it did before augmentation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.cfa import CfaPattern
from core.color import wb_gains as color_wb_gains
from core.demosaic import demosaic
from core.forward import bin2x2, remosaic_quad
from core.io.opcodes import parse_opcode_list, shading_gain_map
from core.simulate import isp, ltm, scenes
from core.simulate.pair import (
    RAW_BLACK,
    RAW_WHITE,
    SimConfig,
    SimulatedPair,
    auto_exposure,
    encode_with_table,
    linearization_table,
    proraw_isp,
    simulate_pair,
)

log = logging.getLogger(__name__)

#: Every training crop is re-phased to this pattern.
CANONICAL_CFA = CfaPattern.from_name("RGGB")
#: The real Bayer capture used as scene content.
REAL_CONTENT = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "real"
    / "bayer_canon550d_magiclantern_colorchart.dng"
)
CLIP_FRACTION = 0.97


@dataclass(frozen=True)
class PoolImage:
    """One simulated capture in memory.

    Attributes:
        truth: float32 (3, H48, W48) Camera48 ground truth.
        pro: float32 (3, H48, W48) ProRAW48 in Camera48 (as load_pair gives it).
        anchor: float32 (H12, W12) shading-corrected Mosaic12.
        unclipped: bool (H12, W12) raw mosaic below 0.97 of the clip.
        wb: float32 (3,) white-balance gains (green = 1).
        cfa: RAW12 pattern.
        name: scene and LTM operator, for logs.
    """

    truth: np.ndarray
    pro: np.ndarray
    anchor: np.ndarray
    unclipped: np.ndarray
    wb: np.ndarray
    cfa: CfaPattern
    name: str


def decode_simulated(sim: SimulatedPair) -> PoolImage:
    """Arrays of a simulated pair as ``core.io.pair.load_pair`` would read its DNGs.

    ProRAW: ``table[codes] / 65535`` (black 0, white 65535), times the as-shot neutral
    when white balance was moved into AnalogBalance (which the colour mapping undoes); no
    headroom rescaling (the model's global ratio absorbs it). RAW12:
    ``(codes - 528) / (4095 - 528)`` of the active area times the OpcodeList3 shading gain.
    """
    cfg = sim.config
    cfa = CfaPattern.from_name(cfg.cfa)
    table = sim.linearization_table.astype(np.float32) / np.float32(65535.0)
    pro = table[sim.proraw_codes]
    if cfg.wb_style == "analog-balance":
        neutral = np.asarray(cfg.neutral, np.float32) / np.float32(cfg.neutral[1])
        pro = pro * neutral[:, None, None]
    mosaic = (sim.raw12_codes[:, : cfg.w12].astype(np.float32) - RAW_BLACK) / np.float32(
        RAW_WHITE - RAW_BLACK
    )
    anchor = mosaic
    if sim.raw12_opcodes is not None:
        ol = parse_opcode_list(sim.raw12_opcodes, 3)
        gain = shading_gain_map([ol], cfg.h12, cfg.w12, cfa, image_size=(cfg.h12, cfg.w12))
        anchor = (mosaic * gain).astype(np.float32)
    return PoolImage(
        truth=sim.truth.astype(np.float32),
        pro=np.ascontiguousarray(pro, dtype=np.float32),
        anchor=anchor,
        unclipped=mosaic < CLIP_FRACTION,
        wb=color_wb_gains(sim.raw12_color).astype(np.float32),
        cfa=cfa,
        name=f"{cfg.scene}/{cfg.ltm}",
    )


def simulate_from_scene(scene: np.ndarray, cfg: SimConfig) -> PoolImage:
    """Simulate a pair in memory from given scene content (mirrors ``simulate_pair``).

    ``scene``: float32 (3, H48, W48) neutral-balanced linear scene (a white surface is
    (1, 1, 1)); ``cfg.scene`` is only a label. Steps as in ``simulate_pair``: camera
    neutral, auto-exposure, quad-Bayer Poisson-Gaussian noise, 2x2 binning, radial
    vignetting and its correction (so the anchor clips at the shading gain), 12-bit RAW
    codes, the LTM operator baked into the pixels, fusion noise, denoise, limited
    sharpening, headroom and 12-bit codes through the LinearizationTable.
    """
    rng = np.random.default_rng(cfg.seed)
    cfa = CfaPattern.from_name(cfg.cfa)
    neutral = np.asarray(cfg.neutral, np.float64) / cfg.neutral[1]
    truth = (scene * neutral[:, None, None]).astype(np.float32)
    truth *= np.float32(cfg.exposure * auto_exposure(truth, cfa))
    noisy = isp.poisson_gaussian_noise(
        remosaic_quad(truth, cfa),
        full_well_e=cfg.full_well_e,
        read_noise_e=cfg.read_noise_e,
        rng=rng,
    )
    mosaic12 = bin2x2(noisy.astype(np.float32))
    h12, w12 = mosaic12.shape
    yy, xx = np.mgrid[0:h12, 0:w12].astype(np.float32)
    r2 = ((xx - w12 / 2) ** 2 + (yy - h12 / 2) ** 2) / (0.25 * (w12**2 + h12**2))
    shading = 1.0 + (1.0 / (1.0 - cfg.vignetting_strength) - 1.0) * r2
    raw = np.round(np.minimum(mosaic12 / shading, 1.0) * (RAW_WHITE - RAW_BLACK))
    mosaic = (raw / (RAW_WHITE - RAW_BLACK)).astype(np.float32)
    op_name = cfg.ltm if cfg.ltm in ltm.LTM_OPERATORS else sorted(ltm.LTM_OPERATORS)[0]
    _, gain = ltm.apply_ltm(truth, op_name, strength=cfg.ltm_strength, rng=rng)
    pro = proraw_isp(truth * gain[None], cfg, rng)
    pro = np.maximum(pro, 0.0) / 2.0**cfg.proraw_headroom_ev
    table = linearization_table()
    pro = table.astype(np.float32)[encode_with_table(pro, table)] / np.float32(65535.0)
    return PoolImage(
        truth=truth,
        pro=np.ascontiguousarray(pro, dtype=np.float32),
        anchor=(mosaic * shading).astype(np.float32),
        unclipped=mosaic < CLIP_FRACTION,
        wb=(1.0 / neutral).astype(np.float32),
        cfa=cfa,
        name=f"{cfg.scene}/{op_name}",
    )


def load_real_content(path: Path = REAL_CONTENT) -> np.ndarray | None:
    """The real Bayer DNG demosaiced to a neutral-balanced (3, H, W) float32 scene.

    Returns None (logged) when the file is not there: training then uses the simulator's
    scenes only.
    """
    from core.io.raw12 import read_raw12

    if not path.is_file():
        log.warning("real raw content %s not found; training on simulated scenes only", path)
        return None
    raw = read_raw12(path)
    h, w = raw.mosaic.shape
    rgb = demosaic(raw.mosaic[: h // 2 * 2, : w // 2 * 2], raw.cfa)
    neutral = np.asarray(raw.color.as_shot_neutral, np.float64)
    neutral = neutral / neutral[1] if neutral.size == 3 and neutral[1] > 0 else np.ones(3)
    rgb = rgb / neutral.astype(np.float32)[:, None, None]
    return np.ascontiguousarray(rgb / max(float(np.percentile(rgb, 99.5)), 1e-6))


def _random_cfg(rng: np.random.Generator, scene: str, seed: int, w12: int, h12: int) -> SimConfig:
    return SimConfig(
        scene=scene,
        w12=w12,
        h12=h12,
        cfa=str(rng.choice(["BGGR", "RGGB"])),
        seed=seed,
        exposure=float(2.0 ** rng.uniform(-1.5, 1.0)),
        ltm=str(rng.choice(sorted(ltm.LTM_OPERATORS))),
        ltm_strength=float(rng.uniform(0.4, 1.0)),
        vignetting_strength=float(rng.uniform(0.0, 0.4)),
        proraw_noise=float(rng.uniform(0.15, 0.5)),
        denoise=float(rng.uniform(0.0, 0.5)),
        sharpen=float(rng.uniform(0.0, 0.6)),
        wb_style=str(rng.choice(["analog-balance", "as-shot-neutral"])),  # type: ignore[arg-type]
    )


def build_pool(
    n_images: int,
    *,
    seed: int,
    size12: tuple[int, int] = (192, 320),
    real_fraction: float = 0.15,
) -> list[PoolImage]:
    """A deterministic pool of simulated captures (natural scenes + real content).

    ``size12``: range of the RAW12 width (height = 3/4 of it, even); seeds are
    ``seed * 10_000 + i`` (the evaluation set uses seeds >= 9_000_000).
    """
    rng = np.random.default_rng(seed)
    names = scenes.scene_names("natural")
    real = load_real_content() if real_fraction > 0 else None
    pool: list[PoolImage] = []
    for i in range(n_images):
        w12 = int(rng.integers(size12[0] // 2, size12[1] // 2 + 1)) * 2
        h12 = (w12 * 3 // 4) // 2 * 2
        sim_seed = seed * 10_000 + i
        if real is not None and rng.random() < real_fraction:
            cfg = _random_cfg(rng, "real_canon550d", sim_seed, w12, h12)
            scene = _real_crop(real, 2 * h12, 2 * w12, rng)
            pool.append(simulate_from_scene(scene, cfg))
        else:
            cfg = _random_cfg(rng, str(rng.choice(names)), sim_seed, w12, h12)
            pool.append(decode_simulated(simulate_pair(cfg)))
    return pool


def _real_crop(real: np.ndarray, h48: int, w48: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of the real content resized to (3, h48, w48), with a random
    brightness ramp so the crop holds a wider dynamic range."""
    _, h, w = real.shape
    scale = rng.uniform(0.5, 1.0)
    ch, cw = max(16, int(h * scale)), max(16, int(w * scale))
    ch, cw = min(ch, h), min(cw, w)
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    win = torch.from_numpy(np.ascontiguousarray(real[:, y0 : y0 + ch, x0 : x0 + cw]))[None]
    out = torch.nn.functional.interpolate(win, size=(h48, w48), mode="area")[0].numpy()
    ramp = np.linspace(rng.uniform(-3, 0), rng.uniform(0, 3), w48, dtype=np.float32)
    return np.ascontiguousarray(out * np.exp2(ramp)[None, None, :], dtype=np.float32)


@dataclass(frozen=True)
class Sample:
    """One CFA-phase-safe crop (numpy, channel-first).

    Attributes:
        truth, pro: (3, c, c) Camera48 crops; c = crop48.
        guide12: (3, c/2, c/2) demosaiced anchor crop (Camera48, not white balanced).
        conf12: (1, c/2, c/2) unclipped mask demosaiced (min over channels).
        anchor: (c/2, c/2) shading-corrected Mosaic12 crop, pattern :data:`CANONICAL_CFA`.
        unclipped: (c/2, c/2) bool.
        wb: (3,) white-balance gains.
    """

    truth: np.ndarray
    pro: np.ndarray
    guide12: np.ndarray
    conf12: np.ndarray
    anchor: np.ndarray
    unclipped: np.ndarray
    wb: np.ndarray


def flipped_pattern(cfa: CfaPattern, flip_y: bool, flip_x: bool) -> CfaPattern:
    """The pattern of a mosaic of even size after flipping it (mirrors the 2x2)."""
    a = cfa.as_array()
    if flip_y:
        a = a[::-1]
    if flip_x:
        a = a[:, ::-1]
    return CfaPattern.from_array(a)


def phase_offset(cfa: CfaPattern, target: CfaPattern) -> tuple[int, int]:
    """(dy, dx) in {0, 1}: a 12MP crop starting at odd/even offsets with these parities
    has ``target`` as its top-left pattern. Raises ValueError if none does."""
    a = cfa.as_array()
    for dy in (0, 1):
        for dx in (0, 1):
            if np.array_equal(np.roll(a, (-dy, -dx), axis=(0, 1)), target.as_array()):
                return dy, dx
    raise ValueError(f"no crop phase turns {cfa.name} into {target.name}")


def augment_crop(
    img: PoolImage,
    rng: np.random.Generator,
    crop48: int,
    *,
    flip: bool = True,
    target: CfaPattern = CANONICAL_CFA,
) -> Sample:
    """A random crop (flips optional) whose anchor pattern is ``target``.

    Flips act on the 48MP arrays and the 12MP anchor together (a 48MP flip of an even-
    sized frame maps 12MP pixel j onto W12 - 1 - j, so F commutes with it); the mirrored
    pattern is then re-phased by the crop's 12MP offset parity.
    Raises: ValueError if the image is smaller than the crop.
    """
    if crop48 % 4:
        raise ValueError(f"crop48 must be a multiple of 4, got {crop48}")
    fy, fx = (bool(rng.random() < 0.5), bool(rng.random() < 0.5)) if flip else (False, False)
    truth, pro, anchor, unclipped = img.truth, img.pro, img.anchor, img.unclipped
    if fy:
        truth, pro, anchor, unclipped = truth[:, ::-1], pro[:, ::-1], anchor[::-1], unclipped[::-1]
    if fx:
        truth, pro = truth[:, :, ::-1], pro[:, :, ::-1]
        anchor, unclipped = anchor[:, ::-1], unclipped[:, ::-1]
    dy, dx = phase_offset(flipped_pattern(img.cfa, fy, fx), target)
    c12 = crop48 // 2
    h12, w12 = anchor.shape
    if h12 < c12 + 1 or w12 < c12 + 1:
        raise ValueError(f"image {w12}x{h12} (12MP) is smaller than the crop {c12}+1")
    y0 = 2 * int(rng.integers(0, (h12 - c12 - dy) // 2 + 1)) + dy
    x0 = 2 * int(rng.integers(0, (w12 - c12 - dx) // 2 + 1)) + dx
    a = np.ascontiguousarray(anchor[y0 : y0 + c12, x0 : x0 + c12])
    u = np.ascontiguousarray(unclipped[y0 : y0 + c12, x0 : x0 + c12])
    sl = (slice(None), slice(2 * y0, 2 * y0 + crop48), slice(2 * x0, 2 * x0 + crop48))
    guide = demosaic(a, target)
    conf = demosaic(u.astype(np.float32), target).min(axis=0, keepdims=True)
    return Sample(
        truth=np.ascontiguousarray(truth[sl]),
        pro=np.ascontiguousarray(pro[sl]),
        guide12=guide,
        conf12=np.ascontiguousarray(conf),
        anchor=a,
        unclipped=u,
        wb=img.wb,
    )


@dataclass(frozen=True)
class Batch:
    """Torch tensors of a batch (N samples, crop c, working space where noted).

    Attributes:
        pro, guide, truth: (N, 3, c, c) working space (Camera48 * wb).
        conf: (N, 1, c, c) guidance confidence.
        anchor: (N, 1, c/2, c/2) Mosaic12 (not white balanced); unclipped likewise, bool.
        wb: (N, 3, 1, 1) white-balance gains.
        cfa: the batch's pattern.
    """

    pro: torch.Tensor
    guide: torch.Tensor
    conf: torch.Tensor
    truth: torch.Tensor
    anchor: torch.Tensor
    unclipped: torch.Tensor
    wb: torch.Tensor
    cfa: CfaPattern


def make_batch(samples: list[Sample], cfa: CfaPattern = CANONICAL_CFA) -> Batch:
    """Stack samples, convert to working space and upsample the guidance 2x."""
    from core.model.net import upsample_guidance

    wb = torch.from_numpy(np.stack([s.wb for s in samples]).astype(np.float32))[:, :, None, None]

    def stack(key: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(s, key) for s in samples]))

    guide = upsample_guidance(stack("guide12") * wb)
    conf = upsample_guidance(stack("conf12"))
    return Batch(
        pro=stack("pro") * wb,
        guide=guide,
        conf=conf,
        truth=stack("truth") * wb,
        anchor=stack("anchor")[:, None],
        unclipped=stack("unclipped")[:, None],
        wb=wb,
        cfa=cfa,
    )


def sample_batch(pool: list[PoolImage], rng: np.random.Generator, batch: int, crop48: int) -> Batch:
    """A random batch of CFA-phase-safe crops from the pool."""
    idx = rng.integers(0, len(pool), size=batch)
    return make_batch([augment_crop(pool[int(i)], rng, crop48) for i in idx])
