"""The iOS execution plan: what a device executor needs to reproduce the desktop result.

A manifest (JSON, ``schema`` = :data:`MANIFEST_SCHEMA`) fixes the frame size, the tile plan
(``core.inference.tiling.plan_tiles``: origins, overlap, raised-cosine blend), the gain
grid, the input normalization and the **order of operations**, each with the state it
reads and writes::

    prepare_inputs   executor  frame   camera48, anchor, wb -> pro, guide, conf
    exposure_sums    executor  band    pro, guide, conf -> exposure, log2_global
    splat            executor  band    pro, guide, conf, exposure, log2_global -> grid_in
    gain_model       gain      frame   grid_in -> log_gain_bins
    for_each_tile    (loop over tiles, row-major)
      upsample_grid  executor  tile    log_gain_bins -> gain_bins   (crop at the origin)
      detail_model   detail    tile    pro, conf, gain_bins, log2_global, exposure
                                       -> output, log_gain
      to_camera48    executor  tile    output -> tile_camera48       (divide by wb)
      blend          executor  tile    tile_camera48, log_gain -> frame (weights)

``ios_bridge.executor.ReferenceExecutor`` runs exactly this list, op by op.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.inference.tiling import TilePlan, plan_tiles
from core.io.atomic import atomic_write_text
from core.model.emulate import DEFAULT_BAND_ROWS, emulation_plan
from core.model.infer import CLIP_FRACTION
from core.model.net import Linear48Net
from ios_bridge.errors import CoreMLPackageError

__all__ = [
    "MANIFEST_SCHEMA",
    "OPERATIONS",
    "IosManifest",
    "build_manifest",
    "grid_shape",
    "read_manifest",
    "write_manifest",
]

MANIFEST_SCHEMA = "linear48.ios-manifest/1"
#: Refuse manifests larger than this before parsing (a real one is a few KiB).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


def _op(
    op: str, runs_on: str, per: str, inputs: list[str], outputs: list[str], note: str
) -> dict[str, Any]:
    return {
        "op": op,
        "runs_on": runs_on,
        "per": per,
        "inputs": inputs,
        "outputs": outputs,
        "note": note,
    }


#: The order of operations (see the module docstring); ``for_each_tile`` holds a body.
OPERATIONS: tuple[dict[str, Any], ...] = (
    _op(
        "prepare_inputs",
        "executor",
        "frame",
        ["camera48", "anchor", "unclipped", "wb_gains"],
        ["pro", "guide", "conf"],
        "core.model.infer.prepare_inputs: pro = camera48 * wb; guide = bilinear demosaic of "
        "the anchor * wb, 2x bilinear upsample (align_corners=False); conf = min over "
        "channels of the demosaiced unclipped mask, upsampled the same way",
    ),
    _op(
        "exposure_sums",
        "executor",
        "band",
        ["pro", "guide", "conf"],
        ["exposure", "log2_global"],
        "sum Linear48Net.exposure_sums over row bands of band_rows, then exposure_from_sums "
        "(float32)",
    ),
    _op(
        "splat",
        "executor",
        "band",
        ["pro", "guide", "conf", "exposure", "log2_global"],
        ["grid_in"],
        "Linear48Net.splat per row band (origins multiples of pool_px), bands stacked by "
        "rows -> (1, 2*bins + 7, grid_h, grid_w)",
    ),
    _op(
        "gain_model",
        "gain",
        "frame",
        ["grid_in"],
        ["log_gain_bins"],
        "Core ML gain package: grid_in -> log_gain_bins (1, bins, grid_h, grid_w), natural log",
    ),
    {
        "op": "for_each_tile",
        "runs_on": "executor",
        "per": "frame",
        "inputs": [],
        "outputs": ["camera48_out", "log_gain_out"],
        "note": "tiles in row-major order of tiling.tile_origins_y x tiling.tile_origins_x",
        "body": [
            _op(
                "upsample_grid",
                "executor",
                "tile",
                ["log_gain_bins"],
                ["gain_bins"],
                "Linear48Net.upsample_grid(grid, (tile_px, tile_px), (y0, x0)): crop the grid "
                "with 2 spare cells each side, bilinear x pool_px (cell-centred), crop pixels",
            ),
            _op(
                "detail_model",
                "detail",
                "tile",
                ["pro", "conf", "gain_bins", "log2_global", "exposure"],
                ["output", "log_gain"],
                "Core ML detail package on the tile's window of pro and conf (the detail "
                "path reads no guidance)",
            ),
            _op(
                "to_camera48",
                "executor",
                "tile",
                ["output", "wb_gains"],
                ["tile_camera48"],
                "output / wb (NaN -> 0, +inf -> 0): working space back to Camera48",
            ),
            _op(
                "blend",
                "executor",
                "tile",
                ["tile_camera48", "log_gain"],
                ["camera48_out", "log_gain_out"],
                "accumulate value * core.inference.tiling.blend_weights(plan)[tile] (raised "
                "cosine over the overlap centre; the weights of all tiles sum to 1)",
            ),
        ],
    },
)


def grid_shape(frame_hw: tuple[int, int], pool_px: int) -> tuple[int, int]:
    """Gain-grid size (ceil(H / pool_px), ceil(W / pool_px)) of a frame."""
    h, w = frame_hw
    return ((h + pool_px - 1) // pool_px, (w + pool_px - 1) // pool_px)


@dataclass(frozen=True)
class IosManifest:
    """A parsed, validated manifest (see the module docstring; units in the names).

    Attributes:
        precision: ``fp16``, ``int8`` or ``w8a8`` (or ``fp32`` for a desktop-only plan).
        model_hash: checkpoint content hash (hex).
        frame_h, frame_w: frame size in 48MP pixels.
        tile_px, overlap_px, margin_px, align_px: the tile plan's parameters.
        tile_origins_y, tile_origins_x: the plan's tile origins.
        pool_px, bins: gain-grid cell size (48MP pixels) and intensity bins.
        grid_h, grid_w: gain-grid size (the gain model's fixed input size).
        band_rows: rows per band of the exposure and splat passes.
        clip_fraction: anchor values at or above this are clipped (conf = 0).
        io_dtype: Core ML input/output element type.
        operations: the order of operations.
        models: role -> {"file", "inputs", "outputs"} (shapes per tensor name).
        quantization: the signed quantization config (None for fp16).
        quantization_hash: its sha256 (None for fp16).
        activation_scales_hash: sha256 of the calibrated w8a8 scales (None otherwise).
        signoff: the accepting record (file, reviewer, date) or None.
        warning: non-empty when the export bypassed the sign-off gate.
        exporter: tool versions.
    """

    precision: str
    model_hash: str
    frame_h: int
    frame_w: int
    tile_px: int
    overlap_px: int
    margin_px: int
    align_px: int
    tile_origins_y: tuple[int, ...]
    tile_origins_x: tuple[int, ...]
    pool_px: int
    bins: int
    grid_h: int
    grid_w: int
    band_rows: int = DEFAULT_BAND_ROWS
    clip_fraction: float = CLIP_FRACTION
    io_dtype: str = "float16"
    operations: tuple[dict[str, Any], ...] = OPERATIONS
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    quantization: dict[str, Any] | None = None
    quantization_hash: str | None = None
    activation_scales_hash: str | None = None
    signoff: dict[str, str] | None = None
    warning: str = ""
    exporter: dict[str, str] = field(default_factory=dict)

    @property
    def plan(self) -> TilePlan:
        """The tile plan, rebuilt with ``plan_tiles`` and checked against the origins.

        Raises: ConfigError when the stored origins are not what ``plan_tiles`` gives.
        """
        plan = plan_tiles(
            self.frame_h,
            self.frame_w,
            tile_px=self.tile_px,
            overlap_px=self.overlap_px,
            margin_px=self.margin_px,
            align_px=self.align_px,
            enforce_design_bounds=False,
        )
        if plan.ys != self.tile_origins_y or plan.xs != self.tile_origins_x:
            raise ConfigError("manifest.tiling: tile origins differ from plan_tiles for this frame")
        return plan

    @property
    def tile_side_px(self) -> tuple[int, int]:
        """(height, width) of every tile (the frame side when it is smaller than tile_px)."""
        return (min(self.tile_px, self.frame_h), min(self.tile_px, self.frame_w))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to disk."""
        return {
            "schema": MANIFEST_SCHEMA,
            "precision": self.precision,
            "model_hash": self.model_hash,
            "frame": {"height": self.frame_h, "width": self.frame_w},
            "tiling": {
                "tile_px": self.tile_px,
                "overlap_px": self.overlap_px,
                "margin_px": self.margin_px,
                "align_px": self.align_px,
                "tile_origins_y": list(self.tile_origins_y),
                "tile_origins_x": list(self.tile_origins_x),
                "n_tiles": len(self.tile_origins_y) * len(self.tile_origins_x),
                "blend": "raised-cosine (sin^2/cos^2) over the overlap centre; "
                "core.inference.tiling.blend_weights",
            },
            "gain_grid": {
                "pool_px": self.pool_px,
                "bins": self.bins,
                "height": self.grid_h,
                "width": self.grid_w,
                "channels_in": 2 * self.bins + 7,
                "upsample": "bilinear, cell-centred (cell i centred at pool_px*i + "
                "(pool_px-1)/2), align_corners=False",
            },
            "streaming": {"band_rows": self.band_rows},
            "normalization": {
                "working_space": "Camera48 x white-balance gains from RAW12 AsShotNeutral "
                "(green = 1)",
                "scale": "Mosaic12 (1.0 = RAW12 sensor clip); HDR values above 1 allowed",
                "clip_fraction": self.clip_fraction,
                "guide_demosaic": "bilinear",
                "io_dtype": self.io_dtype,
                "output": "Camera48 = output / wb_gains",
                "refine": (
                    "not on device (the desktop's anchor_refine: gain smoothing, then the "
                    "RAW fit, after predict)"
                ),
            },
            "operations": list(self.operations),
            "models": self.models,
            "quantization": self.quantization,
            "quantization_hash": self.quantization_hash,
            "activation_scales_hash": self.activation_scales_hash,
            "signoff": self.signoff,
            "warning": self.warning,
            "exporter": self.exporter,
        }

    @classmethod
    def from_dict(cls, obj: Any, path: Path | None = None) -> IosManifest:
        """Parse and validate; CoreMLPackageError naming the first bad field."""

        def bad(what: str) -> CoreMLPackageError:
            return CoreMLPackageError(f"not a valid iOS manifest ({what})", path)

        if not isinstance(obj, dict):
            raise bad("not a JSON object")
        if obj.get("schema") != MANIFEST_SCHEMA:
            raise bad(f"schema {obj.get('schema')!r} is not {MANIFEST_SCHEMA!r}")
        try:
            frame, tiling, grid = obj["frame"], obj["tiling"], obj["gain_grid"]
            norm = obj["normalization"]
            manifest = cls(
                precision=str(obj["precision"]),
                model_hash=str(obj["model_hash"]),
                frame_h=int(frame["height"]),
                frame_w=int(frame["width"]),
                tile_px=int(tiling["tile_px"]),
                overlap_px=int(tiling["overlap_px"]),
                margin_px=int(tiling["margin_px"]),
                align_px=int(tiling["align_px"]),
                tile_origins_y=tuple(int(v) for v in tiling["tile_origins_y"]),
                tile_origins_x=tuple(int(v) for v in tiling["tile_origins_x"]),
                pool_px=int(grid["pool_px"]),
                bins=int(grid["bins"]),
                grid_h=int(grid["height"]),
                grid_w=int(grid["width"]),
                band_rows=int(obj["streaming"]["band_rows"]),
                clip_fraction=float(norm["clip_fraction"]),
                io_dtype=str(norm["io_dtype"]),
                operations=tuple(obj["operations"]),
                models=dict(obj.get("models") or {}),
                quantization=obj.get("quantization"),
                quantization_hash=obj.get("quantization_hash"),
                activation_scales_hash=obj.get("activation_scales_hash"),
                signoff=obj.get("signoff"),
                warning=str(obj.get("warning") or ""),
                exporter=dict(obj.get("exporter") or {}),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise bad(f"missing or wrong field: {err}") from err
        checks = {
            "frame": manifest.frame_h > 0 and manifest.frame_w > 0,
            "gain_grid.pool_px": manifest.pool_px > 0,
            "gain_grid.size": (manifest.grid_h, manifest.grid_w)
            == grid_shape((manifest.frame_h, manifest.frame_w), manifest.pool_px),
            "streaming.band_rows": manifest.band_rows > 0
            and manifest.band_rows % manifest.pool_px == 0,
            "operations": all(isinstance(op, dict) and "op" in op for op in manifest.operations),
        }
        for name, ok in checks.items():
            if not ok:
                raise bad(f"{name} is inconsistent")
        try:
            _ = manifest.plan
        except ConfigError as err:
            raise bad(str(err)) from err
        return manifest


def build_manifest(
    net: Linear48Net,
    model_hash: str,
    precision: str,
    frame_hw: tuple[int, int],
    *,
    tile_px: int = 768,
    overlap_px: int = 48,
    band_rows: int = DEFAULT_BAND_ROWS,
    **extra: Any,
) -> IosManifest:
    """The plan for one frame size; ``extra`` fills the optional fields (models, ...).

    The tile plan is ``plan_tiles(H, W, tile_px, overlap_px)`` (tiles smaller than the
    DESIGN bounds are allowed, for tests); a frame smaller than a tile gets one tile.

    Raises: ConfigError / ShapeError from ``plan_tiles``; ConfigError when ``band_rows``
        is not a positive multiple of the model's pool_px.
    """
    h, w = frame_hw
    cfg = net.config
    if band_rows <= 0 or band_rows % cfg.pool_px:
        raise ConfigError(f"band_rows: {band_rows} must be a positive multiple of {cfg.pool_px}")
    plan = emulation_plan((h, w), tile_px, overlap_px)
    gh, gw = grid_shape((h, w), cfg.pool_px)
    return IosManifest(
        precision=precision,
        model_hash=model_hash,
        frame_h=h,
        frame_w=w,
        tile_px=plan.tile_px,
        overlap_px=plan.overlap_px,
        margin_px=plan.margin_px,
        align_px=plan.align_px,
        tile_origins_y=plan.ys,
        tile_origins_x=plan.xs,
        pool_px=cfg.pool_px,
        bins=cfg.bins,
        grid_h=gh,
        grid_w=gw,
        band_rows=band_rows,
        **extra,
    )


def write_manifest(manifest: IosManifest, path: str | Path, *, overwrite: bool = True) -> Path:
    """Write the manifest JSON atomically; returns the path (OutputError on failure)."""
    target = Path(path)
    atomic_write_text(target, json.dumps(manifest.to_dict(), indent=2) + "\n", overwrite=overwrite)
    return target


def read_manifest(path: str | Path) -> IosManifest:
    """Read and validate a manifest.

    Raises:
        CoreMLPackageError: missing, unreadable, absurdly large, not JSON, or invalid
            (one line naming the problem).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as err:
        raise CoreMLPackageError(f"cannot read iOS manifest ({err.strerror or err})", p) from err
    if size > MAX_MANIFEST_BYTES:
        raise CoreMLPackageError(f"iOS manifest is {size / 2**20:.0f} MiB; not a manifest", p)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CoreMLPackageError(f"iOS manifest is not readable JSON ({err})", p) from err
    return IosManifest.from_dict(obj, p)
