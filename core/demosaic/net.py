"""The learned guidance demosaicer: a small bias-free CNN on the packed RGGB planes.

Architecture (:class:`DemosaicNet`): the RGGB-phased mosaic (N, 1, H, W) is packed into
its four 2x2 phases, (N, 4, H/2, W/2) in the order R, Gr, Gb, B (``pixel_unshuffle``);
``depth`` 3x3 convolutions with leaky ReLUs between them map it to 12 planes, which
``pixel_shuffle`` unpacks into an RGB residual (N, 3, H, W) added to the bilinear
demosaic of the same mosaic. Core ML friendly ops only (conv, leaky ReLU, pixel
(un)shuffle, add).

Linear by construction: no convolution has a bias, leaky ReLU is positively homogeneous and
the bilinear part is linear, so ``net(a x) = a net(x)`` for every a > 0 (exactly, up to
float rounding). Training at one exposure therefore serves all, and highlights above 1.0
go through unscaled.

Any CFA phase: the network itself only sees RGGB; :func:`reflect_to_rggb` pads another
phase by reflection (which keeps every pixel's colour, the pattern having period 2) so
that it starts on red, and the caller crops the result back.

Receptive field: ``depth`` packed pixels = ``2 * depth`` mosaic pixels, plus 1 for the
sub-pixel position and 1 for the bilinear part: :attr:`DemosaicNetConfig.margin_px`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from core.errors import ConfigError, ShapeError

__all__ = [
    "DemosaicNet",
    "DemosaicNetConfig",
    "bilinear_rggb",
    "pack_rggb",
    "reflect_to_rggb",
]


@dataclass(frozen=True)
class DemosaicNetConfig:
    """Architecture of :class:`DemosaicNet`.

    Attributes:
        channels: feature channels of the hidden convolutions.
        depth: number of 3x3 convolutions (>= 2), all at half resolution.
        negative_slope: of the leaky ReLU between them (0 = ReLU). Any slope keeps the
            network positively homogeneous; a positive one keeps bias-free units from
            dying (a ReLU run collapsed to plain bilinear).
    """

    channels: int = 24
    depth: int = 5
    negative_slope: float = 0.1

    def __post_init__(self) -> None:
        for name, ok in (
            ("channels", isinstance(self.channels, int) and 4 <= self.channels <= 256),
            ("depth", isinstance(self.depth, int) and 2 <= self.depth <= 32),
            (
                "negative_slope",
                isinstance(self.negative_slope, float) and 0.0 <= self.negative_slope < 1.0,
            ),
        ):
            if not ok:
                raise ConfigError(f"demosaic model.{name}: invalid value {getattr(self, name)!r}")

    @property
    def margin_px(self) -> int:
        """Context (mosaic pixels, even) each output pixel needs on every side."""
        reach = 2 * self.depth + 2
        return reach + reach % 2

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemosaicNetConfig:
        """From :meth:`to_dict`; raises ConfigError naming an unknown field."""
        known = {f.name for f in fields(cls)}
        bad = sorted(set(data) - known)
        if bad:
            raise ConfigError(f"demosaic model.{bad[0]}: unknown field; valid: {', '.join(known)}")
        return cls(**data)


def _check_rggb_batch(mosaic: Tensor) -> None:
    if mosaic.ndim != 4 or mosaic.shape[1] != 1:
        raise ShapeError(f"mosaic must be (N, 1, H, W), got {tuple(mosaic.shape)}")
    if mosaic.shape[2] % 2 or mosaic.shape[3] % 2 or mosaic.shape[2] < 2 or mosaic.shape[3] < 2:
        raise ShapeError(f"mosaic sides must be even, got {tuple(mosaic.shape[2:])}")


def pack_rggb(mosaic: Tensor) -> Tensor:
    """(N, 1, H, W) RGGB-phased mosaic -> (N, 4, H/2, W/2) planes R, Gr, Gb, B."""
    _check_rggb_batch(mosaic)
    return nnf.pixel_unshuffle(mosaic, 2)


def _bilinear_packed_weights() -> Tensor:
    """(12, 4, 3, 3) kernel: packed RGGB planes -> bilinear R, G, B at the four positions.

    Output channel ``4 c + 2 dy + dx`` is colour c at sub-pixel (dy, dx) of each 2x2 cell
    (the ``pixel_shuffle`` order); input channels R, Gr, Gb, B; tap (ky, kx) reads packed
    cell (i + ky - 1, j + kx - 1). The classic bilinear rules: a colour is taken as is at
    its own site, averaged over its 2 row or column neighbours or 4 diagonal neighbours
    (R, B), or over its 4 direct neighbours (G at R and B sites).
    """
    w = torch.zeros(12, 4, 3, 3)
    r, gr, gb, b = 0, 1, 2, 3
    rules: list[tuple[int, int, int, list[tuple[int, int, int]]]] = [
        # (colour, dy, dx, [(plane, cell dy, cell dx), ...]) averaged with equal weights
        (0, 0, 0, [(r, 0, 0)]),
        (0, 0, 1, [(r, 0, 0), (r, 0, 1)]),
        (0, 1, 0, [(r, 0, 0), (r, 1, 0)]),
        (0, 1, 1, [(r, 0, 0), (r, 0, 1), (r, 1, 0), (r, 1, 1)]),
        (2, 1, 1, [(b, 0, 0)]),
        (2, 1, 0, [(b, 0, -1), (b, 0, 0)]),
        (2, 0, 1, [(b, -1, 0), (b, 0, 0)]),
        (2, 0, 0, [(b, -1, -1), (b, -1, 0), (b, 0, -1), (b, 0, 0)]),
        (1, 0, 1, [(gr, 0, 0)]),
        (1, 1, 0, [(gb, 0, 0)]),
        (1, 0, 0, [(gb, -1, 0), (gb, 0, 0), (gr, 0, -1), (gr, 0, 0)]),
        (1, 1, 1, [(gr, 0, 0), (gr, 1, 0), (gb, 0, 0), (gb, 0, 1)]),
    ]
    for colour, dy, dx, taps in rules:
        for plane, oy, ox in taps:
            w[4 * colour + 2 * dy + dx, plane, oy + 1, ox + 1] += 1.0 / len(taps)
    return w


_BILINEAR_PACKED = _bilinear_packed_weights()


def _bilinear_packed(packed: Tensor) -> Tensor:
    """(N, 4, h, w) packed RGGB -> (N, 12, h, w) bilinear RGB per sub-pixel position."""
    weight = _BILINEAR_PACKED.to(dtype=packed.dtype, device=packed.device)
    return nnf.conv2d(packed, weight, padding=1)


def bilinear_rggb(mosaic: Tensor) -> Tensor:
    """Bilinear demosaic of an RGGB-phased mosaic (zero padding at the borders).

    Shapes: (N, 1, H, W) -> (N, 3, H, W). Linear; equals the classic bilinear kernels
    ([1 2 1]/4 outer products for R and B, the 4-neighbour cross for G) in the interior.
    Computed on the packed planes (one dense 4 -> 12 convolution), not on sparse masks.
    """
    return nnf.pixel_shuffle(_bilinear_packed(pack_rggb(mosaic)), 2)


class DemosaicNet(nn.Module):
    """Bias-free residual demosaicer on packed RGGB planes (module docstring)."""

    def __init__(self, config: DemosaicNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or DemosaicNetConfig()
        c, d = self.config.channels, self.config.depth
        widths = [4] + [c] * (d - 1) + [12]
        convs = [nn.Conv2d(widths[i], widths[i + 1], 3, padding=1, bias=False) for i in range(d)]
        with torch.no_grad():  # start close to plain bilinear: a small initial residual
            convs[-1].weight.mul_(0.1)
        self.convs = nn.ModuleList(convs)

    def forward(self, mosaic: Tensor) -> Tensor:
        """RGGB-phased mosaic (N, 1, H, W), H and W even -> linear RGB (N, 3, H, W).

        Units unchanged (Mosaic12 scale in and out); the output may dip below 0 near
        edges, callers clamp.
        """
        # channels_last runs these small convolutions about twice as fast on CPU
        packed = pack_rggb(mosaic).contiguous(memory_format=torch.channels_last)
        x = packed
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i < len(self.convs) - 1:
                x = nnf.leaky_relu(x, self.config.negative_slope)
        return nnf.pixel_shuffle(x + _bilinear_packed(packed), 2).contiguous()


def reflect_to_rggb(mosaic: np.ndarray, phase: tuple[int, int], margin_px: int) -> np.ndarray:
    """Reflect-pad a mosaic so it starts on red with ``margin_px`` (even) of context.

    ``phase`` is :func:`core.demosaic._common.phase_offset_to_rggb` of its pattern. The
    result has ``margin_px + dy`` rows above and below and ``margin_px + dx`` columns left
    and right (numpy ``mode="reflect"``: pixel -k mirrors pixel k, which has the same
    colour); the original pixel (0, 0) sits at ``(margin_px + dy, margin_px + dx)``.

    Shapes: (H, W) -> (H + 2 (margin + dy), W + 2 (margin + dx)), still even.
    """
    if margin_px % 2:
        raise ShapeError(f"margin_px must be even to keep the CFA phase, got {margin_px}")
    dy, dx = phase
    return np.pad(
        mosaic, ((margin_px + dy, margin_px + dy), (margin_px + dx, margin_px + dx)), "reflect"
    )
