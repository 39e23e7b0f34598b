"""Capture-pair simulator: a linear scene -> RAW12 + ProRAW48 DNGs + ground truth.

What it models (each step follows the real files' conventions in
``shared/data/real/README.md``):

- **Truth**: a scene in camera-native linear RGB on the Mosaic12 scale (1.0 = sensor
  clip), i.e. Camera48 of an ideal 48MP sensor. A neutral surface has camera RGB equal to
  the as-shot neutral (e.g. 0.45, 1, 0.54 for daylight on an iPhone-like sensor).
- **RAW12**: the 48MP quad-Bayer mosaic (``Q[y][x] = P[y//2][x//2]``) with Poisson-
  Gaussian noise per 48MP photosite, binned 2x2 (so ``F(truth)`` is its noise-free
  value), darkened by lens vignetting, clipped at 1.0 and stored as 12-bit codes with
  black 528 / white 4095 in an iPhone-like layout: big-endian, zero-padded columns
  right of the ActiveArea, lossless-JPEG tiles, BGGR (main camera) or RGGB, and the
  vignetting correction as an OpcodeList3 GainMap (or FixVignetteRadial).
- **ProRAW48**: the truth after a local tone mapping operator (baked into the pixels,
  expressed as a ProfileGainTableMap, or both), multi-frame-fusion-like low noise,
  denoise and sharpening, an optional small misregistration, HDR headroom above the RAW
  clip, white balance stored either in AsShotNeutral (iOS 14) or moved into
  AnalogBalance with white-balanced pixels (iOS 15+), 12-bit codes through a 4096-entry
  LinearizationTable, lossless-JPEG tiles.
- **Ground truth**: the truth scene and the baked LTM gain, saved as ``.npy``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from core.cfa import CfaPattern
from core.errors import ConfigError, ShapeError
from core.forward import bin2x2, remosaic_quad
from core.io.atomic import atomic_write
from core.io.captures import CameraIdentity, ColorMetadata
from core.io.dng_writer import write_bayer_dng, write_linearraw_dng
from core.io.opcodes import (
    FixVignetteRadialOpcode,
    GainMapOpcode,
    OpcodeList,
    serialize_opcode_list,
    shading_gain_map,
)
from core.io.pgtm import ProfileGainTableMap, serialize_pgtm
from core.simulate import isp, ltm, scenes

log = logging.getLogger(__name__)

#: iPhone 12 Pro colour matrices (from the real ProRAW header in shared/data/real).
IPHONE_CM1 = np.array(
    [
        [1.227163, -0.545479, -0.261288],
        [-0.454686, 1.51778, -0.04265],
        [-0.040938, 0.163614, 0.591346],
    ]
)
IPHONE_CM2 = np.array(
    [
        [0.914543, -0.322228, -0.126225],
        [-0.428868, 1.309541, 0.094676],
        [-0.106292, 0.235045, 0.430733],
    ]
)
RAW_BLACK, RAW_WHITE = 528, 4095

LtmMode = Literal["pixels", "pgtm", "both", "none"]
WbStyle = Literal["as-shot-neutral", "analog-balance"]
Vignetting = Literal["gainmap", "radial", "none"]


@dataclass(frozen=True)
class SimConfig:
    """Parameters of one simulated capture pair.

    Attributes:
        scene: scene name (``core.simulate.scenes.SCENES``).
        w12, h12: RAW12 size in pixels (even); ProRAW48 is twice in each axis.
        cfa: RAW12 pattern (``BGGR`` main camera, ``RGGB`` others).
        seed: RNG seed; everything is deterministic for a seed.
        exposure: scale on top of auto-exposure (1.0 = the 99th percentile of the RAW
            mosaic at 80 % of the clip; 2.0 = one stop over).
        ltm: LTM operator name, or ``"random"``.
        ltm_strength: operator strength (1.0 = typical Apple-like).
        ltm_mode: where the tone mapping goes: baked into ProRAW pixels, expressed as a
            PGTM (pixels stay linear), both (half each), or none.
        full_well_e, read_noise_e: per 48MP photosite.
        vignetting: how RAW12's lens shading correction is described.
        vignetting_strength: corner darkening (fraction of light lost in the corners).
        misregistration: ProRAW48 warp (translation_px (tx, ty), zoom, radial (k1, k2, k3),
            tangential (p1, p2)) in 48MP pixels; identity by default.
        proraw_headroom_ev: ProRAW white level sits this many EV above the RAW clip.
        proraw_noise: ProRAW noise as a fraction of RAW12's (multi-frame fusion).
        denoise, sharpen: ProRAW ISP strengths.
        wb_style: where ProRAW stores white balance.
        neutral: camera RGB of a white surface (AsShotNeutral); the scenes are lit by
            daylight (``scenes.DAYLIGHT_CAMERA_RGB``), another value re-lights them.
    """

    scene: str = "backlit"
    w12: int = 1008
    h12: int = 756
    cfa: str = "BGGR"
    seed: int = 0
    exposure: float = 1.0
    ltm: str = "random"
    ltm_strength: float = 1.0
    ltm_mode: LtmMode = "pixels"
    full_well_e: float = 1500.0
    read_noise_e: float = 2.0
    vignetting: Vignetting = "gainmap"
    vignetting_strength: float = 0.35
    misregistration: dict[str, tuple[float, ...] | float] = field(default_factory=dict)
    proraw_headroom_ev: float = 3.0
    proraw_noise: float = 0.3
    denoise: float = 0.25
    sharpen: float = 0.3
    wb_style: WbStyle = "analog-balance"
    neutral: tuple[float, float, float] = scenes.DAYLIGHT_CAMERA_RGB

    def __post_init__(self) -> None:
        if self.w12 < 16 or self.h12 < 16 or self.w12 % 2 or self.h12 % 2:
            raise ShapeError(f"RAW12 size {self.w12}x{self.h12}: both must be even and >= 16")
        if self.ltm_mode not in ("pixels", "pgtm", "both", "none"):
            raise ConfigError(f"ltm_mode: {self.ltm_mode!r} is not pixels, pgtm, both or none")
        if self.vignetting not in ("gainmap", "radial", "none"):
            raise ConfigError(f"vignetting: {self.vignetting!r} is not gainmap, radial or none")
        if self.wb_style not in ("as-shot-neutral", "analog-balance"):
            raise ConfigError(
                f"wb_style: {self.wb_style!r} is not as-shot-neutral or analog-balance"
            )
        CfaPattern.from_name(self.cfa)


@dataclass(frozen=True)
class SimulatedPair:
    """Arrays of a simulated pair (before or after writing).

    Attributes:
        truth: float32 (3, H48, W48) Camera48 ground truth.
        raw12_codes: uint16 (H12, W12 + pad) stored RAW12 frame.
        proraw_codes: uint16 (3, H48, W48) stored 12-bit ProRAW codes.
        ltm_gain: float32 (H48, W48) LTM gain baked into the ProRAW pixels (1 = none).
        pgtm: the PGTM written into ProRAW48, if any.
        config: the configuration used (``ltm`` resolved to the operator actually used).
    """

    truth: np.ndarray
    raw12_codes: np.ndarray
    proraw_codes: np.ndarray
    ltm_gain: np.ndarray
    pgtm: ProfileGainTableMap | None
    linearization_table: np.ndarray
    raw12_opcodes: bytes | None
    raw12_color: ColorMetadata
    proraw_color: ColorMetadata
    config: SimConfig


@dataclass(frozen=True)
class PairPaths:
    """Files written by :func:`write_pair`."""

    raw12: Path
    proraw48: Path
    truth: Path
    ltm_gain: Path
    meta: Path


def linearization_table(n: int = 4096) -> np.ndarray:
    """A ProRAW-like LinearizationTable: (n,) uint16, 0 -> 0, n-1 -> 65535.

    Linear near black (slope ~2 codes, like iOS 15 files) bending into a power law so
    12-bit codes cover the HDR range; strictly increasing.
    """
    x = np.linspace(0.0, 1.0, n)
    curve = 0.08 * x + 0.92 * x**2.2
    table = np.round(curve * 65535).astype(np.int64)
    table = np.maximum.accumulate(np.maximum(table, np.arange(n)))  # strictly increasing
    table[-1] = 65535
    return np.minimum(table, 65535).astype(np.uint16)


def encode_with_table(linear01: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Nearest stored code for linear values in [0, 1] (1.0 = table[-1]) -> uint16 codes."""
    target = np.clip(linear01, 0.0, 1.0) * float(table[-1])
    t = table.astype(np.float64)
    idx = np.clip(np.searchsorted(t, target), 1, t.size - 1)
    lower = idx - 1
    pick_lower = (target - t[lower]) <= (t[idx] - target)
    return np.where(pick_lower, lower, idx).astype(np.uint16)


def auto_exposure(
    camera48: np.ndarray, cfa: CfaPattern, *, percentile: float = 99.0, target: float = 0.8
) -> float:
    """Exposure scale a camera's auto-exposure would pick: the ``percentile`` of the
    noise-free RAW12 mosaic lands at ``target`` of the clip, so only small light sources
    (sun, lamps, point lights: under 1 % of the frame) clip."""
    from core.forward import forward_np

    level = float(np.percentile(forward_np(camera48, cfa)[::3, ::3], percentile))
    return target / level if level > 0 else 1.0


def sharpen_limited(rgb: np.ndarray, amount: float) -> np.ndarray:
    """ISP-style sharpening: unsharp mask (radius 1 px) with overshoot control.

    The result is clamped to each pixel's 3x3 neighbourhood range, as camera ISPs limit
    halos; without it, fine high-contrast patterns (1 px checkers) get clipped at zero and
    their local mean rises, a bias no real ProRAW shows.
    Shapes: (3, H, W) -> (3, H, W) float32, non-negative.
    """
    from scipy import ndimage

    sharp = isp.sharpen(rgb, amount, 1.0)
    out = np.empty_like(sharp)
    for c in range(rgb.shape[0]):
        lo = ndimage.minimum_filter(rgb[c], size=3, mode="nearest")
        hi = ndimage.maximum_filter(rgb[c], size=3, mode="nearest")
        np.clip(sharp[c], lo, hi, out=out[c])
    return out


def proraw_isp(tonemapped: np.ndarray, cfg: SimConfig, rng: np.random.Generator) -> np.ndarray:
    """ProRAW48's pixel processing after tone mapping: fusion-level noise, denoise and
    overshoot-limited sharpening (each skipped at strength 0).

    Shapes: (3, H48, W48) -> (3, H48, W48) float32. Units: Camera48 (sensor scale).
    """
    pro = tonemapped
    if cfg.proraw_noise > 0:
        pro = isp.poisson_gaussian_noise(
            pro,
            full_well_e=cfg.full_well_e / cfg.proraw_noise**2,
            read_noise_e=cfg.read_noise_e,
            rng=rng,
        )
    if cfg.denoise > 0:
        pro = isp.denoise(pro, cfg.denoise)
    if cfg.sharpen > 0:
        pro = sharpen_limited(pro, cfg.sharpen)
    return pro


def _vignetting_opcodes(cfg: SimConfig, h12: int, w12: int) -> OpcodeList | None:
    if cfg.vignetting == "none" or cfg.vignetting_strength <= 0:
        return None
    # Gain needed in the corners: 1 / (1 - strength); radial law gain = 1 + k0 r^2 + k1 r^4.
    corner_gain = 1.0 / max(1e-3, 1.0 - cfg.vignetting_strength)
    k0 = 0.7 * (corner_gain - 1.0)
    k1 = 0.3 * (corner_gain - 1.0)
    if cfg.vignetting == "radial":
        op: GainMapOpcode | FixVignetteRadialOpcode = FixVignetteRadialOpcode(
            k=(k0, k1, 0.0, 0.0, 0.0), center_x=0.5, center_y=0.5
        )
    else:
        pv, ph = 13, 17
        yy, xx = np.meshgrid(np.linspace(0, 1, pv), np.linspace(0, 1, ph), indexing="ij")
        # r normalised to 1 at the corners, as for FixVignetteRadial.
        r2 = ((xx - 0.5) ** 2 * w12**2 + (yy - 0.5) ** 2 * h12**2) / (0.25 * (w12**2 + h12**2))
        gains = (1.0 + k0 * r2 + k1 * r2**2).astype(np.float32)[..., None]
        op = GainMapOpcode(
            top=0,
            left=0,
            bottom=h12,
            right=w12,
            plane=0,
            planes=1,
            row_pitch=1,
            col_pitch=1,
            map_points_v=pv,
            map_points_h=ph,
            map_spacing_v=1.0 / (pv - 1),
            map_spacing_h=1.0 / (ph - 1),
            map_origin_v=0.0,
            map_origin_h=0.0,
            map_planes=1,
            gains=gains,
        )
    return OpcodeList(list_id=3, opcodes=(op,))


def _resolve_ltm(cfg: SimConfig, rng: np.random.Generator) -> str:
    if cfg.ltm != "random":
        if cfg.ltm not in ltm.LTM_OPERATORS:
            raise ConfigError(
                f"ltm: {cfg.ltm!r} is not one of {', '.join(['random', *ltm.LTM_OPERATORS])}"
            )
        return cfg.ltm
    names = sorted(ltm.LTM_OPERATORS)
    return names[int(rng.integers(len(names)))]


def simulate_pair(cfg: SimConfig) -> SimulatedPair:
    """Build the arrays of one capture pair (see the module docstring for the model)."""
    rng = np.random.default_rng(cfg.seed)
    h12, w12 = cfg.h12, cfg.w12
    h48, w48 = 2 * h12, 2 * w12
    cfa = CfaPattern.from_name(cfg.cfa)
    neutral = np.asarray(cfg.neutral, dtype=np.float64)
    neutral = neutral / neutral[1]
    scene = scenes.make_scene(cfg.scene, h48, w48, seed=cfg.seed)
    # Scenes are camera RGB lit by daylight (a white surface reads DAYLIGHT_CAMERA_RGB);
    # another as-shot neutral re-lights the scene by the ratio of the two.
    relight = neutral / np.asarray(scenes.DAYLIGHT_CAMERA_RGB, dtype=np.float64)
    truth = (scene * relight[:, None, None]).astype(np.float32)
    truth *= np.float32(cfg.exposure * auto_exposure(truth, cfa))

    # RAW12: quad-Bayer photosites with noise, 2x2 binning, vignetting, clipping, codes.
    quad = remosaic_quad(truth, cfa)
    noisy = isp.poisson_gaussian_noise(
        quad, full_well_e=cfg.full_well_e, read_noise_e=cfg.read_noise_e, rng=rng
    )
    mosaic12 = bin2x2(noisy.astype(np.float32))
    opcodes = _vignetting_opcodes(cfg, h12, w12)
    if opcodes is not None:
        shading = shading_gain_map([opcodes], h12, w12, cfa, image_size=(h12, w12))
        mosaic12 = mosaic12 / shading
    pad = max(16, (w12 * 192 // 4032) // 16 * 16)
    codes = np.round(RAW_BLACK + (RAW_WHITE - RAW_BLACK) * np.minimum(mosaic12, 1.0))
    raw_frame = np.zeros((h12, w12 + pad), np.uint16)
    raw_frame[:, :w12] = np.clip(codes, 0, RAW_WHITE).astype(np.uint16)

    # ProRAW48: tone mapping, fusion-like noise, ISP, misregistration, headroom, codes.
    op_name = _resolve_ltm(cfg, rng)
    pixel_strength = {"pixels": 1.0, "both": 0.5, "pgtm": 0.0, "none": 0.0}[cfg.ltm_mode]
    if pixel_strength > 0:
        _, gain = ltm.apply_ltm(truth, op_name, strength=cfg.ltm_strength * pixel_strength, rng=rng)
    else:
        gain = np.ones((h48, w48), np.float32)
    pro = proraw_isp(truth * gain[None], cfg, rng)
    if cfg.misregistration:
        pro = isp.warp_image(pro, **cfg.misregistration)  # type: ignore[arg-type]
    pro = np.maximum(pro, 0.0).astype(np.float32)
    pgtm: ProfileGainTableMap | None = None
    if cfg.ltm_mode in ("pgtm", "both"):
        strength = cfg.ltm_strength * (1.0 if cfg.ltm_mode == "pgtm" else 0.5)
        table, weights, sv, sh, ov, oh = ltm.pgtm_arrays_for_scene(
            truth, points_v=6, points_h=8, points_n=257, strength=strength, rng=rng
        )
        pgtm = ProfileGainTableMap(
            points_v=6,
            points_h=8,
            spacing_v=sv,
            spacing_h=sh,
            origin_v=ov,
            origin_h=oh,
            points_n=257,
            input_weights=tuple(float(w) for w in weights),  # type: ignore[arg-type]
            table=table.astype(np.float32),
        )
    headroom = 2.0**cfg.proraw_headroom_ev
    pro_linear = pro / headroom
    ab = None
    pro_neutral = neutral.copy()
    if cfg.wb_style == "analog-balance":
        ab = 1.0 / neutral
        pro_linear = pro_linear * ab[:, None, None]
        pro_neutral = np.ones(3)
    table = linearization_table()
    pro_codes = encode_with_table(pro_linear, table)

    raw_color = ColorMetadata(
        color_matrix1=IPHONE_CM1,
        color_matrix2=IPHONE_CM2,
        calibration_illuminant1=17,
        calibration_illuminant2=21,
        as_shot_neutral=neutral,
        baseline_exposure=0.0,
        noise_profile=(3e-5, 3e-8),
    )
    pro_color = replace(
        raw_color,
        as_shot_neutral=pro_neutral,
        analog_balance=ab,
        baseline_exposure=cfg.proraw_headroom_ev - 0.3,
        baseline_sharpness=1.5,
        profile_name="Apple Embedded Color Profile",
    )
    return SimulatedPair(
        truth=truth,
        raw12_codes=raw_frame,
        proraw_codes=pro_codes,
        ltm_gain=gain.astype(np.float32),
        pgtm=pgtm,
        linearization_table=table,
        raw12_opcodes=serialize_opcode_list(opcodes) if opcodes is not None else None,
        raw12_color=raw_color,
        proraw_color=pro_color,
        config=replace(cfg, ltm=op_name),
    )


IDENTITY = CameraIdentity(
    make="Apple",
    model="iPhone 15 Pro (simulated)",
    unique_camera_model="iPhone16,1 back camera (Linear48 simulator)",
    software="Linear48 simulator",
    orientation=1,
)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as handle:
        np.save(handle, array)


def write_pair(sim: SimulatedPair, folder: str | Path, *, stem: str = "") -> PairPaths:
    """Write a simulated pair as DNGs plus ground truth into ``folder`` (created)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"{stem}_" if stem else ""
    cfg = sim.config
    h12, w12 = cfg.h12, cfg.w12
    paths = PairPaths(
        raw12=out / f"{prefix}raw12.dng",
        proraw48=out / f"{prefix}proraw48.dng",
        truth=out / f"{prefix}truth.npy",
        ltm_gain=out / f"{prefix}ltm_gain.npy",
        meta=out / f"{prefix}sim.json",
    )
    stored_w = sim.raw12_codes.shape[1]
    tile_w = next((t for t in (264, 256, 192, 128, 64, 32, 16) if stored_w % t == 0), None)
    write_bayer_dng(
        paths.raw12,
        sim.raw12_codes,
        cfa=CfaPattern.from_name(cfg.cfa),
        black=float(RAW_BLACK),
        white=RAW_WHITE,
        color=sim.raw12_color,
        identity=IDENTITY,
        active_area=(0, 0, h12, w12),
        default_crop=(0, 0, w12, h12),
        opcode_list3=sim.raw12_opcodes,
        tile_shape=(min(378, h12), tile_w) if tile_w else None,
    )
    write_linearraw_dng(
        paths.proraw48,
        sim.proraw_codes,
        bits_per_sample=12,
        linearization_table=sim.linearization_table,
        black=(0, 0, 0),
        white=(65535, 65535, 65535),
        color=sim.proraw_color,
        identity=IDENTITY,
        pgtm=serialize_pgtm(sim.pgtm) if sim.pgtm is not None else None,
    )
    _save_npy(paths.truth, sim.truth)
    _save_npy(paths.ltm_gain, sim.ltm_gain)
    meta = {
        "config": asdict(cfg),
        "truth_shape": list(sim.truth.shape),
        "model": __doc__.split("\n\n")[1] if __doc__ else "",
    }
    with atomic_write(paths.meta) as handle:
        handle.write((json.dumps(meta, indent=2, default=str) + "\n").encode())
    return paths


def parse_size(text: str) -> tuple[int, int]:
    """``"1008x756"`` -> (1008, 756); raises ConfigError with the expected form."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise ConfigError(f"size: {text!r} is not WIDTHxHEIGHT, e.g. 1008x756") from err
    return w, h


def write_demo_pair(
    folder: str | Path, *, scene: str = "backlit", size: str = "1008x756", seed: int = 0
) -> PairPaths:
    """The bundled demo pair: a deterministic simulated backlit scene (default 1008x756 RAW12).

    Re-uses the files when ``folder`` already holds the same demo (same config).
    """
    w12, h12 = parse_size(size)
    cfg = SimConfig(scene=scene, w12=w12, h12=h12, seed=seed)
    out = Path(folder)
    meta = out / "sim.json"
    if meta.is_file() and (out / "raw12.dng").is_file() and (out / "proraw48.dng").is_file():
        try:
            old = json.loads(meta.read_text())["config"]
            wanted = {"scene": scene, "w12": w12, "h12": h12, "seed": seed}
            if all(old.get(k) == v for k, v in wanted.items()):
                return PairPaths(
                    out / "raw12.dng",
                    out / "proraw48.dng",
                    out / "truth.npy",
                    out / "ltm_gain.npy",
                    meta,
                )
        except (OSError, ValueError, KeyError):
            pass
    return write_pair(simulate_pair(cfg), out)
