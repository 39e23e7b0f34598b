"""Emulated device runs of the model over a frame, tile by tile, and w8a8 calibration.

The device plan (DESIGN §6; ``ios_bridge.manifest`` writes the same steps down for an iOS
executor) runs, in this order::

    prepare_inputs   frame   camera48, anchor, wb -> pro, guide, conf (working space)
    exposure         bands   Linear48Net.exposure_sums summed over row bands
    splat            bands   Linear48Net.splat per row band -> grid_in
    gain model       frame   grid_in -> log_gain_bins            (runners.gain)
    for each tile (core.inference.tiling.plan_tiles, row-major):
      upsample_grid  tile    log_gain_bins cropped at the tile's origin -> gain_bins
      detail model   tile    pro, conf, gain_bins, log2_global, exposure
                             -> output, log_gain                 (runners.detail)
      to_camera48    tile    output / wb
      blend          tile    raised-cosine weights (core.inference.tiling.run_tiled)

:func:`run_emulated` is that list with the model roles played by
:class:`core.model.quant.Runners` of one precision (``fp32`` reference or the
``fp16``/``int8``/``w8a8`` emulation). The steps are functions here
(:func:`frame_exposure`, :func:`frame_splat`, :func:`tile_gain_bins`,
:func:`to_camera48`) so that ``ios_bridge.executor.ReferenceExecutor``, which interprets a
manifest's operation list, calls the very same code: the two give bit-identical outputs.
With ``fp32`` runners the result equals ``core.model.infer.predict_tiled(..., refine=False)``
within float summation order.

:func:`calibrate_w8a8` collects every conv input's range over the float32 runs of a
quantization config's calibration scenes (:func:`load_scene`, simulated pairs read back
through real DNG files as ``convert`` reads them) and turns them into activation scales.

    scene = load_scene("backlit", (256, 192), seed=0)
    run = run_emulated(make_runners(net, "fp16"), scene, tile_px=256, overlap_px=48)
    run.camera48, run.tiles[0], run.origins[0]
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from core.cfa import CfaPattern
from core.errors import ConfigError, ShapeError
from core.inference.tiling import Tile, TilePlan, plan_tiles, run_tiled
from core.io.captures import ColorMetadata
from core.model.infer import CLIP_FRACTION, prepare_inputs
from core.model.net import GainGrid, Linear48Net
from core.model.quant import (
    ActivationScales,
    QuantSpec,
    Runners,
    collect_activation_ranges,
    make_runners,
    scales_from_ranges,
)
from core.progress import CancelToken, Progress, ProgressCallback, no_progress

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BAND_ROWS",
    "SceneInputs",
    "TiledRun",
    "calibrate_w8a8",
    "emulation_plan",
    "frame_exposure",
    "frame_splat",
    "load_scene",
    "run_emulated",
    "tile_gain_bins",
    "to_camera48",
]

#: Rows per band of the two streaming passes (a multiple of every pool_px we use).
DEFAULT_BAND_ROWS = 512


# ------------------------------------------------------------------------------ scenes


@dataclass(frozen=True)
class SceneInputs:
    """What the model needs from a capture pair (``core.model.infer.predict``'s arguments).

    Attributes:
        name: scene name.
        camera48: float32 (3, H48, W48) ProRAW48 in Camera48.
        anchor: float32 (H48/2, W48/2) shading-corrected Mosaic12.
        cfa: RAW12 pattern.
        wb_gains: float (3,) white-balance gains, green = 1.
        unclipped: bool (H48/2, W48/2) anchor below the clip.
        color: the RAW12's colour tags (for previews: ``core.color.stored_to_srgb_matrix``).
    """

    name: str
    camera48: np.ndarray
    anchor: np.ndarray
    cfa: CfaPattern
    wb_gains: np.ndarray
    unclipped: np.ndarray
    color: ColorMetadata | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(H48, W48) in pixels."""
        return (int(self.camera48.shape[1]), int(self.camera48.shape[2]))


def load_scene(name: str, raw12_size: tuple[int, int] = (256, 192), seed: int = 0) -> SceneInputs:
    """Simulate scene ``name`` (RAW12 ``raw12_size`` = (width, height), ProRAW48 twice that),
    write it as a real DNG pair in a temporary folder and read it back with
    ``core.io.pair.load_pair``, as ``convert`` would.

    Raises: ConfigError for an unknown scene (naming the valid ones), ShapeError for a bad size.
    """
    from core.io.pair import load_pair
    from core.simulate.pair import SimConfig, simulate_pair, write_pair

    w12, h12 = raw12_size
    sim = simulate_pair(SimConfig(scene=name, w12=w12, h12=h12, seed=seed))
    with tempfile.TemporaryDirectory(prefix="linear48-scene-") as folder:
        paths = write_pair(sim, folder)
        pair = load_pair(paths.raw12, paths.proraw48)
    return SceneInputs(
        name=name,
        camera48=pair.camera48,
        anchor=pair.anchor,
        cfa=pair.raw12.cfa,
        wb_gains=np.asarray(pair.wb_gains, dtype=np.float64),
        unclipped=pair.anchor < CLIP_FRACTION if pair.unclipped is None else pair.unclipped,
        color=pair.raw12.color,
    )


# ------------------------------------------------------------------------------- steps


def emulation_plan(frame_hw: tuple[int, int], tile_px: int, overlap_px: int) -> TilePlan:
    """The tile plan of a frame: ``plan_tiles`` with tiles smaller than the DESIGN bounds
    allowed (small test frames) and one tile when the frame is smaller than ``tile_px``."""
    h, w = frame_hw
    return plan_tiles(
        h, w, tile_px=min(tile_px, max(h, w)), overlap_px=overlap_px, enforce_design_bounds=False
    )


def _bands(h: int, band_rows: int) -> list[slice]:
    return [slice(y, min(y + band_rows, h)) for y in range(0, h, band_rows)]


def frame_exposure(
    net: Linear48Net, pro: Tensor, guide: Tensor, conf: Tensor, band_rows: int
) -> tuple[Tensor, Tensor]:
    """(exposure, log2_global), each (1, 1, 1, 1) EV: ``exposure_sums`` summed in float64
    over row bands of ``band_rows``, then ``exposure_from_sums`` (float32).

    Shapes: pro, guide (1, 3, H48, W48); conf (1, 1, H48, W48), working space.
    """
    sums = torch.zeros(1, 4, dtype=torch.float64)
    with torch.inference_mode():
        for band in _bands(pro.shape[2], band_rows):
            win = (slice(None), slice(None), band)
            sums += net.exposure_sums(guide[win], pro[win], conf[win]).double()
        return Linear48Net.exposure_from_sums(sums.float())


def frame_splat(
    net: Linear48Net,
    pro: Tensor,
    guide: Tensor,
    conf: Tensor,
    exposure: Tensor,
    log2_global: Tensor,
    band_rows: int,
) -> Tensor:
    """The gain model's input (1, 2*bins + 7, Hg, Wg): ``Linear48Net.splat`` per row band
    (band origins are multiples of ``pool_px``), stacked by rows."""
    parts = []
    with torch.inference_mode():
        for band in _bands(pro.shape[2], band_rows):
            win = (slice(None), slice(None), band)
            parts.append(net.splat(pro[win], guide[win], conf[win], exposure, log2_global))
    return torch.cat(parts, dim=2)


def tile_gain_bins(
    net: Linear48Net, log_gain_bins: Tensor, log2_global: Tensor, exposure: Tensor, tile: Tile
) -> Tensor:
    """The detail model's ``gain_bins`` input (1, bins, th, tw): the grid's log gains
    upsampled and cropped at the tile's origin (``Linear48Net.upsample_grid``, float32)."""
    grid = GainGrid(log_gain_bins, log2_global, exposure)
    with torch.inference_mode():
        return net.upsample_grid(grid, tile.shape, (tile.y0, tile.x0))


def to_camera48(output: Tensor, wb_gains: Tensor) -> np.ndarray:
    """A tile's output in working space (1, 3, th, tw) -> Camera48 (3, th, tw) float32:
    divided by the white-balance gains (1, 3, 1, 1); NaN and +inf become 0."""
    with torch.inference_mode():
        rgb = torch.nan_to_num(output / wb_gains, nan=0.0, posinf=0.0)
    return rgb[0].numpy()


# --------------------------------------------------------------------------------- run


@dataclass
class TiledRun:
    """Output of :func:`run_emulated` (the fields of ``ios_bridge``'s ``ExecutorResult``).

    Attributes:
        camera48: float32 (3, H48, W48) Camera48, blended (not refined).
        log_gain: float32 (H48, W48) blended natural-log local gain.
        grid: float32 (bins, Hg, Wg) the gain model's output.
        exposure, log2_global: the frame statistics, EV.
        tiles: tile index -> (3, th, tw) Camera48 of that tile before blending (only with
            ``keep_tiles``).
        origins: tile index -> (y0, x0) in 48MP pixels.
    """

    camera48: np.ndarray
    log_gain: np.ndarray
    grid: np.ndarray
    exposure: float
    log2_global: float
    tiles: dict[int, np.ndarray] = field(default_factory=dict)
    origins: dict[int, tuple[int, int]] = field(default_factory=dict)


def run_emulated(
    runners: Runners,
    scene: SceneInputs,
    *,
    tile_px: int = 256,
    overlap_px: int = 48,
    band_rows: int = DEFAULT_BAND_ROWS,
    keep_tiles: bool = True,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> TiledRun:
    """Run the device plan (module docstring) on one frame with ``runners``.

    Args:
        runners: ``core.model.quant.make_runners(net, precision, act_scales)``.
        scene: the frame's inputs (:func:`load_scene`, or any capture pair's arrays).
        tile_px, overlap_px: the tile plan (:func:`emulation_plan`).
        band_rows: rows per band of the exposure and splat passes (multiple of pool_px).
        keep_tiles: keep each tile's pre-blend output (per-tile parity).

    Raises:
        ConfigError: ``band_rows`` is not a positive multiple of the model's pool_px.
        ShapeError: bad input shapes (``prepare_inputs``), or a grid of the wrong size.
        CancelledError: cancelled between tiles.
    """
    net = runners.base
    pool = net.config.pool_px
    if band_rows <= 0 or band_rows % pool:
        raise ConfigError(f"band_rows: {band_rows} must be a positive multiple of {pool}")
    h, w = scene.shape
    plan = emulation_plan((h, w), tile_px, overlap_px)
    token = cancel or CancelToken()
    unclipped = scene.anchor < CLIP_FRACTION if scene.unclipped is None else scene.unclipped
    wb_np = np.asarray(scene.wb_gains, np.float32)
    wb = torch.from_numpy(wb_np.reshape(1, 3, 1, 1))
    pro, guide, conf = prepare_inputs(
        scene.camera48,
        scene.anchor,
        scene.cfa,
        wb_np,
        unclipped=unclipped,
        demosaic_method="bilinear",
    )
    token.raise_if_cancelled()
    exposure, log2_global = frame_exposure(net, pro, guide, conf, band_rows)
    grid_in = frame_splat(net, pro, guide, conf, exposure, log2_global, band_rows)
    want = (1, 2 * net.config.bins + 7, (h + pool - 1) // pool, (w + pool - 1) // pool)
    if tuple(grid_in.shape) != want:
        raise ShapeError(f"splat gave {tuple(grid_in.shape)}, expected {want}")
    log_gain_bins = runners.gain(grid_in).float()
    tiles: dict[int, np.ndarray] = {}
    origins: dict[int, tuple[int, int]] = {}

    def tile_fn(tile: Tile) -> np.ndarray:
        bins = tile_gain_bins(net, log_gain_bins, log2_global, exposure, tile)
        box = (slice(None), slice(None), slice(tile.y0, tile.y1), slice(tile.x0, tile.x1))
        output, log_gain = runners.detail(pro[box], conf[box], bins, log2_global, exposure)
        rgb = to_camera48(output.float(), wb)
        if keep_tiles:
            tiles[tile.index] = rgb.copy()
        origins[tile.index] = (tile.y0, tile.x0)
        return np.concatenate([rgb, log_gain.float()[0].numpy()], axis=0)

    blended = run_tiled(tile_fn, plan, 4, progress=progress, cancel=token)
    return TiledRun(
        camera48=np.ascontiguousarray(blended[:3]),
        log_gain=np.ascontiguousarray(blended[3]),
        grid=log_gain_bins[0].numpy().astype(np.float32),
        exposure=float(exposure.flatten()[0]),
        log2_global=float(log2_global.flatten()[0]),
        tiles=tiles,
        origins=origins,
    )


# ------------------------------------------------------------------------- calibration

#: (model hash, quantization hash) -> scales; calibration is deterministic, so a process
#: that exports and then runs parity (or a GUI session that compares several scenes)
#: calibrates once.
_CALIBRATION_CACHE: dict[tuple[str, str], ActivationScales] = {}


def calibrate_w8a8(
    net: Linear48Net,
    spec: QuantSpec,
    *,
    model_hash: str = "",
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ActivationScales:
    """Activation scales (conv name -> float16-exact scale) for a w8a8 ``spec``.

    The float32 network runs the device plan (:func:`run_emulated`: the detail model sees
    tiles, the gain model the splatted grid, exactly as on the device) over the scenes of
    ``spec.calibration``; forward pre-hooks record each conv input's min and max
    (``collect_activation_ranges``); scales are ``max|x| / 127`` rounded to float16.
    Deterministic for a (model, config) pair, which is what a sign-off approves. Cached
    per (``model_hash``, ``spec.hash``) when ``model_hash`` is given.

    Raises:
        ConfigError: ``spec`` is not w8a8, or a conv never saw data.
        CancelledError: cancelled between scenes or tiles.
    """
    if spec.calibration is None:
        raise ConfigError(f"quantization.mode: {spec.mode} has no activation calibration")
    key = (model_hash, spec.hash)
    if model_hash and key in _CALIBRATION_CACHE:
        return dict(_CALIBRATION_CACHE[key])
    cal = spec.calibration
    token = cancel or CancelToken()
    runners = make_runners(net, "fp32")
    total = len(cal.scenes)

    def run() -> None:
        for i, name in enumerate(cal.scenes):
            token.raise_if_cancelled()
            progress(Progress("calibrate", i, total, f"calibration scene {name}"))
            scene = load_scene(name, cal.raw12_size, cal.seed)
            run_emulated(
                runners,
                scene,
                tile_px=cal.tile_px,
                overlap_px=cal.overlap_px,
                keep_tiles=False,
                cancel=token,
            )
        progress(Progress("calibrate", total, total, "ranges collected"))

    scales = scales_from_ranges(collect_activation_ranges(net, run))
    log.info("w8a8 calibration on %d scene(s): %d activation scales", total, len(scales))
    if model_hash:
        _CALIBRATION_CACHE[key] = dict(scales)
    return scales
