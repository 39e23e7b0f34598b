"""Python reference executor of the iOS plan: runs a manifest's operations in order.

It is what an iOS executor must reproduce, written against the torch modules: the
Core ML models' roles (``gain_model``, ``detail_model``) are played by :class:`Runners`
of one precision (``fp32`` reference, or the ``fp16``/``int8``/``w8a8`` emulation of the
packages, ``core.model.quant``); the executor-side operations (input preparation,
exposure sums, splat, grid upsampling, white balance, blend) run in float32 with
``core``'s own functions (the steps of ``core.model.emulate``, whose ``run_emulated``
runs the same list without a manifest and gives bit-identical outputs). With ``fp32``
runners and one tile plan the result equals ``core.model.infer.predict_tiled(...,
refine=False)``.

    manifest = build_manifest(net, model_hash, "fp16", (h48, w48), tile_px=768)
    result = ReferenceExecutor(manifest, make_runners(net, "fp16")).run(
        camera48, anchor, cfa, wb_gains, unclipped=unclipped)
    result.camera48, result.tile_ms, result.gain_ms
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from core.cfa import CfaPattern
from core.errors import ConfigError, ShapeError
from core.inference.tiling import Tile, run_tiled
from core.model.emulate import frame_exposure, frame_splat, tile_gain_bins, to_camera48
from core.model.infer import prepare_inputs
from core.model.quant import Runners, make_runners
from core.progress import CancelToken, ProgressCallback, no_progress
from ios_bridge.manifest import IosManifest

__all__ = ["ExecutorResult", "ReferenceExecutor", "Runners", "make_runners"]


@dataclass
class ExecutorResult:
    """Output of :meth:`ReferenceExecutor.run`.

    Attributes:
        camera48: float32 (3, H48, W48) Camera48 (not refined).
        log_gain: float32 (H48, W48) blended natural-log local gain.
        grid: float32 (bins, Hg, Wg) the gain model's output.
        exposure, log2_global: the frame statistics, EV.
        gain_ms: wall time of the gain model call.
        tile_ms: tile index -> wall time of its detail model call (sampled tiles only).
        tiles: tile index -> (3, th, tw) Camera48 of that tile before blending (only with
            ``keep_tiles``).
        origins: tile index -> (y0, x0).
    """

    camera48: np.ndarray
    log_gain: np.ndarray
    grid: np.ndarray
    exposure: float
    log2_global: float
    gain_ms: float
    tile_ms: dict[int, float] = field(default_factory=dict)
    tiles: dict[int, np.ndarray] = field(default_factory=dict)
    origins: dict[int, tuple[int, int]] = field(default_factory=dict)


class ReferenceExecutor:
    """Runs ``manifest.operations`` in order with ``runners`` in the model roles.

    Args:
        manifest: the plan (frame size, tiles, grid, bands, operations).
        runners: from :func:`make_runners`.
        sample_every: time the detail model on every n-th tile (1 = all).
        keep_tiles: keep each tile's pre-blend output (for per-tile parity).
    """

    def __init__(
        self,
        manifest: IosManifest,
        runners: Runners,
        *,
        sample_every: int = 1,
        keep_tiles: bool = False,
    ) -> None:
        if sample_every < 1:
            raise ConfigError(f"sample_every: {sample_every} must be >= 1")
        cfg = runners.base.config
        if (manifest.pool_px, manifest.bins) != (cfg.pool_px, cfg.bins):
            raise ConfigError(
                f"manifest grid (pool_px {manifest.pool_px}, bins {manifest.bins}) does not "
                f"match the model (pool_px {cfg.pool_px}, bins {cfg.bins})"
            )
        self.manifest = manifest
        self.runners = runners
        self.sample_every = sample_every
        self.keep_tiles = keep_tiles
        self._ops: dict[str, Callable[[dict[str, Any]], None]] = {
            "prepare_inputs": self._prepare_inputs,
            "exposure_sums": self._exposure_sums,
            "splat": self._splat,
            "gain_model": self._gain_model,
            "upsample_grid": self._upsample_grid,
            "detail_model": self._detail_model,
            "to_camera48": self._to_camera48,
        }

    # ------------------------------------------------------------------ the run

    def run(
        self,
        camera48: np.ndarray,
        anchor: np.ndarray,
        cfa: CfaPattern,
        wb_gains: np.ndarray,
        *,
        unclipped: np.ndarray | None = None,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
    ) -> ExecutorResult:
        """Execute the plan on one frame (arguments as ``core.model.infer.predict``).

        Raises:
            ShapeError: the frame is not the manifest's size.
            ConfigError: the manifest names an unknown operation or runs one before its
                inputs exist.
            CancelledError: cancelled between tiles.
        """
        m = self.manifest
        if camera48.shape[1:] != (m.frame_h, m.frame_w):
            raise ShapeError(
                f"frame is {camera48.shape[2]}x{camera48.shape[1]} but the manifest plans "
                f"{m.frame_w}x{m.frame_h}"
            )
        if unclipped is None:
            unclipped = anchor < m.clip_fraction
        state: dict[str, Any] = {
            "camera48": camera48,
            "anchor": anchor,
            "cfa": cfa,
            "unclipped": unclipped,
            "wb_gains": torch.from_numpy(np.asarray(wb_gains, np.float32).reshape(1, 3, 1, 1)),
            "_wb_np": np.asarray(wb_gains, np.float32),
        }
        self._tile_ms: dict[int, float] = {}
        self._tiles: dict[int, np.ndarray] = {}
        self._origins: dict[int, tuple[int, int]] = {}
        for op in m.operations:
            if op["op"] == "for_each_tile":
                self._for_each_tile(op, state, progress, cancel)
            else:
                self._dispatch(op, state)
        blended = state["frame"]
        return ExecutorResult(
            camera48=np.ascontiguousarray(blended[:3]),
            log_gain=np.ascontiguousarray(blended[3]),
            grid=state["log_gain_bins"][0].numpy().astype(np.float32),
            exposure=float(state["exposure"].flatten()[0]),
            log2_global=float(state["log2_global"].flatten()[0]),
            gain_ms=state["_gain_ms"],
            tile_ms=self._tile_ms,
            tiles=self._tiles,
            origins=self._origins,
        )

    def _dispatch(self, op: dict[str, Any], state: dict[str, Any]) -> None:
        fn = self._ops.get(op["op"])
        if fn is None:
            raise ConfigError(
                f"manifest operation {op['op']!r} is unknown; valid: {', '.join(self._ops)}"
            )
        missing = [name for name in op.get("inputs", []) if name not in state]
        if missing:
            raise ConfigError(
                f"manifest operation {op['op']!r} runs before its input(s) {', '.join(missing)}"
            )
        fn(state)

    # ----------------------------------------------------------------- frame ops

    def _prepare_inputs(self, state: dict[str, Any]) -> None:
        pro, guide, conf = prepare_inputs(
            state["camera48"],
            state["anchor"],
            state["cfa"],
            state["_wb_np"],
            unclipped=state["unclipped"],
            demosaic_method="bilinear",
        )
        state.update(pro=pro, guide=guide, conf=conf)

    def _exposure_sums(self, state: dict[str, Any]) -> None:
        exposure, log2_global = frame_exposure(
            self.runners.base,
            state["pro"],
            state["guide"],
            state["conf"],
            self.manifest.band_rows,
        )
        state.update(exposure=exposure, log2_global=log2_global)

    def _splat(self, state: dict[str, Any]) -> None:
        grid_in = frame_splat(
            self.runners.base,
            state["pro"],
            state["guide"],
            state["conf"],
            state["exposure"],
            state["log2_global"],
            self.manifest.band_rows,
        )
        m = self.manifest
        want = (1, 2 * m.bins + 7, m.grid_h, m.grid_w)
        if tuple(grid_in.shape) != want:
            raise ShapeError(f"splat gave {tuple(grid_in.shape)}, the manifest plans {want}")
        state["grid_in"] = grid_in

    def _gain_model(self, state: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        out = self.runners.gain(state["grid_in"])
        state["_gain_ms"] = 1000.0 * (time.perf_counter() - t0)
        m = self.manifest
        if tuple(out.shape) != (1, m.bins, m.grid_h, m.grid_w):
            raise ShapeError(f"gain model returned {tuple(out.shape)}")
        state["log_gain_bins"] = out.float()

    # ------------------------------------------------------------------ tile ops

    def _for_each_tile(
        self,
        op: dict[str, Any],
        state: dict[str, Any],
        progress: ProgressCallback,
        cancel: CancelToken | None,
    ) -> None:
        body = list(op.get("body", []))
        if not body or body[-1]["op"] != "blend":
            raise ConfigError("manifest for_each_tile must end with its blend operation")
        steps = body[:-1]
        blend_inputs = body[-1].get("inputs", [])
        plan = self.manifest.plan

        def tile_fn(tile: Tile) -> np.ndarray:
            local = dict(state)
            local["_tile"] = tile
            for step in steps:
                self._dispatch(step, local)
            missing = [n for n in blend_inputs if n not in local]
            if missing:
                raise ConfigError(f"manifest blend runs before its input(s) {', '.join(missing)}")
            rgb = local["tile_camera48"]
            if self.keep_tiles:
                self._tiles[tile.index] = rgb.copy()
            self._origins[tile.index] = (tile.y0, tile.x0)
            return np.concatenate([rgb, local["log_gain"][0].numpy()], axis=0)

        state["frame"] = run_tiled(tile_fn, plan, 4, progress=progress, cancel=cancel)

    def _window(self, state: dict[str, Any], name: str) -> Tensor:
        tile: Tile = state["_tile"]
        window: Tensor = state[name][:, :, tile.y0 : tile.y1, tile.x0 : tile.x1]
        return window

    def _upsample_grid(self, state: dict[str, Any]) -> None:
        state["gain_bins"] = tile_gain_bins(
            self.runners.base,
            state["log_gain_bins"],
            state["log2_global"],
            state["exposure"],
            state["_tile"],
        )

    def _detail_model(self, state: dict[str, Any]) -> None:
        tile: Tile = state["_tile"]
        args = (
            self._window(state, "pro"),
            self._window(state, "conf"),
            state["gain_bins"],
            state["log2_global"],
            state["exposure"],
        )
        t0 = time.perf_counter()
        output, log_gain = self.runners.detail(*args)
        if tile.index % self.sample_every == 0:
            self._tile_ms[tile.index] = 1000.0 * (time.perf_counter() - t0)
        state.update(output=output.float(), log_gain=log_gain.float())

    def _to_camera48(self, state: dict[str, Any]) -> None:
        state["tile_camera48"] = to_camera48(state["output"], state["wb_gains"])
