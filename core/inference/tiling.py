"""The one tiling model (DESIGN §6): tile plans, raised-cosine blend weights, tiled runs.

Convention: arrays are (C, H, W) on the 48MP grid; a tile is the half-open box
``[y0, y1) x [x0, x1)`` in 48MP pixels. Tile origins are multiples of ``align_px``
(4 = the quad-Bayer period, which keeps the CFA phase of every tile equal to the frame's)
and neighbouring tiles overlap by at least ``overlap_px``. Inside each overlap the two
tiles' weights are ``cos^2`` and ``sin^2`` of the same ramp, so the weights of all tiles
sum to exactly 1 at every pixel (a partition of unity). The ramp is confined to the
centre of the overlap, leaving ``margin_px`` on each side where only the tile with full
context contributes: a model whose receptive-field radius is at most ``margin_px`` gives
the same result tiled as on the whole image.

``ios_bridge`` derives its device plans from :func:`plan_tiles`; nothing else tiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import ConfigError, ShapeError
from core.progress import CancelToken, Progress, ProgressCallback, no_progress

#: DESIGN §6 bounds.
MIN_TILE_PX, MAX_TILE_PX = 512, 1024
MIN_OVERLAP_PX, MAX_OVERLAP_PX = 32, 64


@dataclass(frozen=True)
class Tile:
    """One tile: the box it covers, in 48MP pixels (half-open), and its index."""

    index: int
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return (self.y1 - self.y0, self.x1 - self.x0)


@dataclass(frozen=True)
class TilePlan:
    """A frame cut into overlapping tiles.

    Attributes:
        h, w: frame size in pixels.
        tile_px: nominal tile side (tiles at the frame edge may be the same size: the
            plan spreads tiles evenly so all have ``tile_px`` sides unless the frame is
            smaller).
        overlap_px: minimum overlap between neighbours.
        margin_px: pixels at each side of an overlap where the blend ramp is flat.
        align_px: tile origins are multiples of this.
        ys, xs: tile origins along each axis; tiles are their Cartesian product.
    """

    h: int
    w: int
    tile_px: int
    overlap_px: int
    margin_px: int
    align_px: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @property
    def tiles(self) -> list[Tile]:
        """All tiles in row-major order."""
        th, tw = min(self.tile_px, self.h), min(self.tile_px, self.w)
        return [
            Tile(i * len(self.xs) + j, y, y + th, x, x + tw)
            for i, y in enumerate(self.ys)
            for j, x in enumerate(self.xs)
        ]

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def to_dict(self) -> dict[str, object]:
        """JSON-able description (for reports and the iOS manifest)."""
        return {
            "height": self.h,
            "width": self.w,
            "tile_px": self.tile_px,
            "overlap_px": self.overlap_px,
            "margin_px": self.margin_px,
            "align_px": self.align_px,
            "tile_origins_y": list(self.ys),
            "tile_origins_x": list(self.xs),
            "n_tiles": len(self),
            "blend": "raised-cosine (sin^2/cos^2) over the overlap centre",
        }


def _origins(n_px: int, tile: int, overlap: int, align: int) -> tuple[int, ...]:
    """Evenly spread, aligned tile origins covering [0, n_px) with >= overlap between."""
    if tile >= n_px:
        return (0,)
    count = math.ceil((n_px - overlap) / (tile - overlap))
    while True:
        last = n_px - tile
        raw = [last * i / (count - 1) for i in range(count)] if count > 1 else [0.0]
        origins = [min(last, round(r / align) * align) for r in raw]
        origins[-1] = last
        gaps = [origins[i] + tile - origins[i + 1] for i in range(count - 1)]
        if all(g >= overlap for g in gaps) and len(set(origins)) == count:
            return tuple(origins)
        count += 1


def plan_tiles(
    h: int,
    w: int,
    *,
    tile_px: int = 768,
    overlap_px: int = 48,
    margin_px: int | None = None,
    align_px: int = 4,
    enforce_design_bounds: bool = True,
) -> TilePlan:
    """Cut an (H, W) frame into overlapping, CFA-aligned tiles.

    Args:
        h, w: frame size (multiples of ``align_px``).
        tile_px: tile side, 512..1024 per DESIGN §6 (smaller allowed for tests with
            ``enforce_design_bounds=False``).
        overlap_px: minimum overlap, 32..64 per DESIGN §6.
        margin_px: flat part at each end of an overlap (default overlap // 4).
        align_px: origin alignment (4 = quad-Bayer period).

    Raises:
        ConfigError: sizes out of bounds, naming the field.
        ShapeError: the frame is not a multiple of ``align_px``.
    """
    margin = overlap_px // 4 if margin_px is None else margin_px
    if enforce_design_bounds:
        if not MIN_TILE_PX <= tile_px <= MAX_TILE_PX:
            raise ConfigError(f"tile_px: {tile_px} is outside {MIN_TILE_PX}..{MAX_TILE_PX}")
        if not MIN_OVERLAP_PX <= overlap_px <= MAX_OVERLAP_PX:
            raise ConfigError(
                f"overlap_px: {overlap_px} is outside {MIN_OVERLAP_PX}..{MAX_OVERLAP_PX}"
            )
    if tile_px % align_px or tile_px <= 2 * overlap_px:
        raise ConfigError(f"tile_px: {tile_px} must be a multiple of {align_px} and > 2 x overlap")
    if not 0 <= 2 * margin < overlap_px:
        raise ConfigError(f"margin_px: {margin} must be >= 0 and < overlap_px / 2")
    if h <= 0 or w <= 0 or h % align_px or w % align_px:
        raise ShapeError(f"frame {w}x{h} must be a positive multiple of {align_px} in each axis")
    return TilePlan(
        h=h,
        w=w,
        tile_px=tile_px,
        overlap_px=overlap_px,
        margin_px=margin,
        align_px=align_px,
        ys=_origins(h, tile_px, overlap_px, align_px),
        xs=_origins(w, tile_px, overlap_px, align_px),
    )


def _axis_weights(origins: tuple[int, ...], size: int, n_px: int, margin: int) -> list[np.ndarray]:
    """1D weights per tile along one axis; they sum to 1 at every position.

    Each pair of neighbours shares complementary ``sin^2``/``cos^2`` ramps over the centre
    of their overlap. When the frame forces tiles so close that three overlap, the pairwise
    ramps sum to more than 1 there; dividing by the sum restores the partition (and is a
    no-op, up to rounding, everywhere else).
    """
    length = min(size, n_px)
    raw = []
    for i, start in enumerate(origins):
        wgt = np.ones(length, np.float64)
        pos = np.arange(start, start + length, dtype=np.float64)
        for j, sign in ((i - 1, +1), (i + 1, -1)):
            if not 0 <= j < len(origins):
                continue
            lo = start if sign > 0 else origins[j]
            hi = origins[j] + length if sign > 0 else start + length
            lo, hi = lo + margin, hi - margin  # ramp only over the overlap's centre
            t = np.clip((pos - lo + 0.5) / max(hi - lo, 1), 0.0, 1.0)
            ramp = np.sin(0.5 * np.pi * t) ** 2  # 0 -> 1 across the overlap
            wgt *= ramp if sign > 0 else 1.0 - ramp
        raw.append(wgt)
    total = np.zeros(n_px, np.float64)
    for start, wgt in zip(origins, raw, strict=True):
        total[start : start + length] += wgt
    return [wgt / total[start : start + length] for start, wgt in zip(origins, raw, strict=True)]


def iter_blend_weights(plan: TilePlan) -> Iterator[np.ndarray]:
    """Per-tile (th, tw) float32 weights, in ``plan.tiles`` order, summing to 1 everywhere.

    Made one tile at a time from the two 1-D axis profiles (a 48MP plan's weights would
    be ~260 MB if all were held at once).
    """
    th, tw = min(plan.tile_px, plan.h), min(plan.tile_px, plan.w)
    wy = _axis_weights(plan.ys, th, plan.h, plan.margin_px)
    wx = _axis_weights(plan.xs, tw, plan.w, plan.margin_px)
    for a in wy:
        for b in wx:
            yield np.outer(a, b).astype(np.float32)


def blend_weights(plan: TilePlan) -> list[np.ndarray]:
    """All of :func:`iter_blend_weights` as a list (small plans and tests)."""
    return list(iter_blend_weights(plan))


TileFunction = Callable[[Tile], np.ndarray]


def run_tiled(
    fn: TileFunction,
    plan: TilePlan,
    channels: int,
    *,
    out: np.ndarray | Sequence[np.ndarray] | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Evaluate ``fn`` on every tile and blend the results into a (channels, H, W) frame.

    ``fn(tile)`` returns a (channels, th, tw) float32 array for that box (it reads its own
    input, so callers can stream tiles from disk). Progress and cancel are per tile.
    ``out``: one (channels, H, W) float32 frame to fill, or several frames ((c_i, H, W)
    or (H, W), channel counts summing to ``channels``) that receive consecutive channel
    blocks, so a caller can free one block (e.g. a gain plane) without the others.
    Returns the (first) frame filled.

    Raises:
        ShapeError: ``fn`` returned the wrong shape, or ``out`` does not match.
        CancelledError: cancelled between tiles.
    """
    token = cancel or CancelToken()
    if out is None:
        frames: list[np.ndarray] = [np.zeros((channels, plan.h, plan.w), np.float32)]
    else:
        frames = [out] if isinstance(out, np.ndarray) else list(out)
        for frame in frames:
            frame[...] = 0.0
    blocks = [(f[None] if f.ndim == 2 else f) for f in frames]
    if sum(b.shape[0] for b in blocks) != channels or any(
        b.shape[1:] != (plan.h, plan.w) for b in blocks
    ):
        raise ShapeError(
            f"out frames {[f.shape for f in frames]} do not hold {channels} channels of "
            f"{plan.w}x{plan.h}"
        )
    tiles = plan.tiles
    for tile, weight in zip(tiles, iter_blend_weights(plan), strict=True):
        token.raise_if_cancelled()
        values = np.asarray(fn(tile), dtype=np.float32)
        if values.shape != (channels, *tile.shape):
            raise ShapeError(
                f"tile {tile.index} returned {values.shape}, expected {(channels, *tile.shape)}"
            )
        c0 = 0
        for block in blocks:
            n = block.shape[0]
            block[:, tile.y0 : tile.y1, tile.x0 : tile.x1] += values[c0 : c0 + n] * weight
            c0 += n
        progress(Progress("tiles", tile.index + 1, len(tiles), f"tile {tile.index + 1}"))
    return frames[0]
