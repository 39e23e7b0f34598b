"""The two-head de-LTM network (DESIGN §5) and its composition.

Inputs (all float32, working space = Camera48 * white-balance gains, 48MP grid):

- ``pro``: (N, 3, H, W) linearized, registered ProRAW48 (the detail carrier, ``I``).
- ``guide``: (N, 3, H, W) RAW12 guidance: the anchor demosaiced at 12MP and upsampled 2x
  bilinearly (:func:`upsample_guidance`).
- ``conf``: (N, 1, H, W) guidance confidence in [0, 1]: 1 where the anchor is unclipped,
  0 where it is clipped (the unclipped mask demosaiced and upsampled the same way). It is
  an extra channel next to the six image channels because a clipped anchor says nothing
  about the gain there.

Composition::

    L = max(0, I * g0 * g + r)
    log g = clamp(s * tanh(h), -max_log_gain, max_log_gain)   (h: gain head, s learnable)
    r = clamp(rho * tanh(d) * m, -b, b),  b = residual_bound * |I * g0 * g|   (d: detail head)

``g0`` is one global exposure ratio against the anchor (DESIGN §2 allows it): the
confidence-weighted mean log ratio guidance / ProRAW, clamped to +-12 EV. The local gain
``g`` is bounded by the hard clamp (default ln 16). ``m`` is the local mean luminance of
``I * g0 * g`` (3x3 average), so the residual is relative to brightness and bounded: nothing
is exponentiated unbounded, and non-finite inputs are zeroed first (:func:`sanitize`).
``b`` bounds it per channel by the pixel's *own* value as well: beside a high-contrast edge
``m`` is set by the bright side, and a small ``d`` brightened the first dark pixels of a
thin dark bar by 0.7-1 EV (the bright-window scene's mullions; the default band's halo 0.084
vs 0.020 for the global baseline), which the RAW12 anchor, 2x coarser, cannot see. With
``residual_bound`` 0.25 a pixel moves by at most +0.32 / -0.42 EV. The clamp is written
``(|r + b| - |r - b|) / 2`` (abs, add, sub, mul: no new Core ML op). Checkpoints saved
before the bound existed have no ``residual_bound`` in their config and load unbounded
(``None``), with their content hash unchanged.

Gain head: a bilateral-grid gain. Per pixel, the log2 luminance of ``I`` relative to the
frame's exposure selects a position ``t`` on ``bins`` intensity bins (tent weights). The
log ratio guidance / ProRAW is splatted onto a low-resolution grid (``pool_px`` 48MP
pixels per cell) per bin with average pooling; a small UNet turns the splatted grid into
``bins`` log-gain maps, which are upsampled bilinearly and sliced at each pixel's ``t``.
The gain thus varies smoothly in space but can step across luminance edges, without halos.
The grid is computed once per frame (DESIGN §6); slicing is per pixel.

Detail head: ``detail_layers`` 3x3 convolutions at full resolution (default 4: receptive
field 9x9, plus the 3x3 mean of ``m``: radius 5 px), fully convolutional. It sees
ProRAW's own features (log luminance, chromaticity), the confidence and the sliced gain,
not the 12MP guidance: the guidance is blurrier than ProRAW, and its ratio to ProRAW
swings across every edge, which the head otherwise turned into edge bands (halos).

Ops: conv, ReLU, average pooling, bilinear resize, concat, tanh, exp2, clamp, abs and
elementwise math (Core ML friendly). :func:`sanitize` (NaN/inf -> 0) runs first.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from core.errors import ConfigError, ShapeError

__all__ = [
    "GainGrid",
    "Linear48Net",
    "ModelConfig",
    "NetOutput",
    "luminance_t",
    "sanitize",
    "upsample_guidance",
]

#: Luminance floor (linear units) before any log: ~2**-20 of the sensor clip.
LOG_FLOOR = 2.0**-20
#: ``log2(LOG_FLOOR)``: the smallest log2 luminance the network sees.
LOG2_FLOOR = -20.0
#: Inputs above this (linear units) are clamped: far beyond any real HDR value.
MAX_INPUT = 1e4
#: Bound of the global exposure ratio, EV.
MAX_GLOBAL_EV = 12.0
#: Bound of per-pixel log ratios fed to the network, EV.
MAX_RATIO_EV = 8.0
N_FEATURES = 7
#: The detail head sees ProRAW's own features only (log luminance, chromaticity, conf).
DETAIL_FEATURES = 5


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters (stored in every checkpoint).

    Attributes:
        width: low-resolution trunk channels (level 1; level 2 has twice as many).
        detail_width: channels of the full-resolution detail head.
        detail_layers: 3x3 convolutions in the detail head (receptive field 2 * n + 1).
        bins: intensity bins of the bilateral gain grid.
        bin_ev: width of one intensity bin, EV (the grid spans bins * bin_ev EV).
        pool_px: gain-grid cell size in 48MP pixels (a multiple of 4: whole quad cells).
        max_log_gain: hard clamp on |log g| of the local gain (natural log; ln 16).
        rho: bound of the residual relative to local brightness.
        init_scale: initial value of the learnable output scale s.
        residual_bound: bound of the residual relative to the pixel's own value (per
            channel); None = no such bound (checkpoints saved before it existed).
    """

    width: int = 16
    detail_width: int = 16
    detail_layers: int = 4
    bins: int = 8
    bin_ev: float = 2.0
    pool_px: int = 8
    max_log_gain: float = math.log(16.0)
    rho: float = 0.25
    init_scale: float = 1.0
    residual_bound: float | None = 0.25

    def __post_init__(self) -> None:
        checks = {
            "width": self.width >= 2,
            "detail_width": self.detail_width >= 2,
            "detail_layers": 2 <= self.detail_layers <= 8,
            "bins": self.bins >= 2,
            "bin_ev": self.bin_ev > 0,
            "pool_px": self.pool_px >= 4 and self.pool_px % 4 == 0,
            "max_log_gain": 0 < self.max_log_gain <= math.log(256.0),
            "rho": 0 <= self.rho <= 1,
            "init_scale": self.init_scale > 0,
            "residual_bound": self.residual_bound is None or 0 <= self.residual_bound <= 16,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"model.{name}: invalid value {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (``residual_bound`` left out when None, as checkpoints
        saved before it existed have it, so their content hash still checks)."""
        out = asdict(self)
        if out["residual_bound"] is None:
            del out["residual_bound"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """From a stored dict (a checkpoint's); unknown keys raise ConfigError naming them.
        A missing ``residual_bound`` means a checkpoint from before the bound: None."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"model: unknown field(s) {', '.join(unknown)}")
        return cls(**{"residual_bound": None, **data})


class GainGrid(NamedTuple):
    """Output of the gain head (low resolution, computed once per frame).

    Attributes:
        log_gain: (N, bins, h, w) natural-log local gain per intensity bin, clamped.
        log2_global: (N, 1, 1, 1) global exposure ratio, EV.
        exposure: (N, 1, 1, 1) frame exposure (mean log2 guidance luminance), EV.
    """

    log_gain: Tensor
    log2_global: Tensor
    exposure: Tensor


class NetOutput(NamedTuple):
    """Full-resolution result.

    Attributes:
        output: (N, 3, H, W) L, working space, >= 0.
        log_gain: (N, 1, H, W) natural-log local gain after slicing (without g0).
        residual: (N, 3, H, W) r, linear units.
        grid: the gain head's :class:`GainGrid`.
    """

    output: Tensor
    log_gain: Tensor
    residual: Tensor
    grid: GainGrid


def sanitize(x: Tensor) -> Tensor:
    """NaN and -inf -> 0, +inf -> :data:`MAX_INPUT`, then clamp to [0, MAX_INPUT]."""
    x = torch.nan_to_num(x, nan=0.0, posinf=MAX_INPUT, neginf=0.0)
    return torch.clamp(x, 0.0, MAX_INPUT)


_LUMA = torch.tensor([0.25, 0.5, 0.25]).view(1, 3, 1, 1)


def luminance_t(rgb: Tensor) -> Tensor:
    """``0.25 R + 0.5 G + 0.25 B`` (core.metrics convention). (N, 3, H, W) -> (N, 1, H, W)."""
    return (rgb * _LUMA.to(rgb.dtype)).sum(dim=1, keepdim=True)


def upsample_guidance(guide12: Tensor) -> Tensor:
    """2x bilinear upsampling of 12MP guidance onto the 48MP grid.

    Convention: 12MP pixel x12 covers 48MP pixels 2*x12 and 2*x12 + 1, its centre at
    x48 = 2*x12 + 0.5 (DESIGN §4): cell-centred, ``align_corners=False``.
    Shapes: (N, C, H12, W12) -> (N, C, 2*H12, 2*W12).
    """
    return nnf.interpolate(guide12, scale_factor=2.0, mode="bilinear", align_corners=False)


def _log2(x: Tensor) -> Tensor:
    """``log2(x + LOG_FLOOR)`` for x >= 0, never below ``log2(LOG_FLOOR)`` = -20.

    The clamp is a no-op in float32 (x >= 0), so desktop outputs are unchanged; it is there
    for float16 on hardware without subnormals, where ``LOG_FLOOR`` (2**-20, a float16
    subnormal) flushes to 0 and ``log2(0 + 0)`` would be -inf (then NaN in the chroma
    difference of an exactly black pixel).
    """
    # An explicit upper bound (log2 MAX_INPUT < 14: never reached) keeps the exported
    # clip's constants finite in float16.
    return torch.clamp(torch.log2(x + LOG_FLOOR), LOG2_FLOOR, 16.0)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, padding_mode="zeros")


class _Features(NamedTuple):
    feats: Tensor  # (N, 7, H, W) bounded features
    ratio_ev: Tensor  # (N, 1, H, W) log2 guide/pro luminance minus the global ratio, clamped
    lum_pos: Tensor  # (N, 1, H, W) log2 luminance of I relative to exposure, EV


class Linear48Net(nn.Module):
    """Two-head de-LTM network; see the module docstring for the maths.

    ``forward(pro, guide, conf)`` -> :class:`NetOutput`. ``gain_grid`` and ``render``
    split it for tiled inference: the grid once over the frame, the render per tile.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        w, k = cfg.width, cfg.bins
        cin = 2 * k + N_FEATURES
        self.enc1 = nn.Sequential(
            _conv(cin, w), nn.ReLU(inplace=True), _conv(w, w), nn.ReLU(inplace=True)
        )
        self.pool = nn.AvgPool2d(2, ceil_mode=True)
        self.enc2 = nn.Sequential(
            _conv(w, 2 * w), nn.ReLU(inplace=True), _conv(2 * w, 2 * w), nn.ReLU(inplace=True)
        )
        self.mid = nn.Sequential(
            _conv(2 * w, 2 * w), nn.ReLU(inplace=True), _conv(2 * w, 2 * w), nn.ReLU(inplace=True)
        )
        self.dec2 = nn.Sequential(_conv(4 * w, 2 * w), nn.ReLU(inplace=True))
        self.dec1 = nn.Sequential(_conv(3 * w, w), nn.ReLU(inplace=True))
        self.gain_out = _conv(w, k)
        dw = cfg.detail_width
        layers: list[nn.Module] = [_conv(DETAIL_FEATURES + 1, dw), nn.ReLU(inplace=True)]
        for _ in range(cfg.detail_layers - 2):
            layers += [_conv(dw, dw), nn.ReLU(inplace=True)]
        self.detail = nn.Sequential(*layers, _conv(dw, 3))
        self.local_mean = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.log_scale = nn.Parameter(torch.tensor(math.log(cfg.init_scale)))
        self.centres: Tensor
        self.register_buffer(
            "centres", torch.arange(k, dtype=torch.float32).view(1, k, 1, 1), persistent=False
        )
        # Start near identity: zero gain logits and a zero residual.
        for conv in (self.gain_out, self.detail[-1]):
            assert isinstance(conv, nn.Conv2d)
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ pieces

    @property
    def scale(self) -> Tensor:
        """The learnable output scale s > 0 of ``log g = s * tanh(h)``."""
        return torch.exp(torch.clamp(self.log_scale, -4.0, 2.0))

    def _check(self, pro: Tensor, guide: Tensor | None, conf: Tensor) -> None:
        if pro.ndim != 4 or pro.shape[1] != 3:
            raise ShapeError(f"pro must be (N, 3, H, W), got {tuple(pro.shape)}")
        if guide is not None and guide.shape != pro.shape:
            raise ShapeError(f"guide {tuple(guide.shape)} must match pro {tuple(pro.shape)}")
        n, _, h, w = pro.shape
        if conf.shape != (n, 1, h, w):
            raise ShapeError(f"conf must be ({n}, 1, {h}, {w}), got {tuple(conf.shape)}")

    def exposure(self, guide: Tensor, pro: Tensor, conf: Tensor) -> tuple[Tensor, Tensor]:
        """Frame exposure (mean log2 guidance luminance) and global log2 ratio, EV.

        Shapes: (N, 3, H, W) x2, (N, 1, H, W) -> (N, 1, 1, 1) x2. Both bounded.
        """
        lg, lp = _log2(luminance_t(guide)), _log2(luminance_t(pro))
        exposure = torch.clamp(lg.mean(dim=(2, 3), keepdim=True), -30.0, 20.0)
        wgt = conf * (lp > -20.0).float()
        ratio = torch.clamp(lg - lp, -MAX_GLOBAL_EV, MAX_GLOBAL_EV)
        den = wgt.sum(dim=(2, 3), keepdim=True)
        glob = (ratio * wgt).sum(dim=(2, 3), keepdim=True) / (den + 1e-6)
        return exposure, torch.clamp(glob, -MAX_GLOBAL_EV, MAX_GLOBAL_EV)

    def features(
        self, pro: Tensor, guide: Tensor, conf: Tensor, exposure: Tensor, log2_global: Tensor
    ) -> _Features:
        """Bounded per-pixel features (N, 7, H, W): log luminance of I and of the guide
        (relative to exposure, /8), their log ratio less the global one (/4, times the
        confidence), I's log chromaticity (/4), and the confidence."""
        lp = _log2(luminance_t(pro))
        lg = _log2(luminance_t(guide))
        lum_pos = torch.clamp(lp + log2_global - exposure, -16.0, 16.0)
        guide_pos = torch.clamp(lg - exposure, -16.0, 16.0)
        ratio = torch.clamp(lg - lp - log2_global, -MAX_RATIO_EV, MAX_RATIO_EV)
        chroma = torch.clamp(_log2(pro) - lp, -4.0, 4.0)
        # The ratio says nothing where the anchor clipped: the network sees it masked.
        feats = torch.cat(
            [lum_pos / 8.0, guide_pos / 8.0, ratio * conf / 4.0, chroma / 4.0, conf], 1
        )
        return _Features(feats, ratio, lum_pos)

    def bin_weights(self, lum_pos: Tensor) -> Tensor:
        """Tent weights (N, bins, H, W) of each pixel on the intensity bins (sum to 1)."""
        k = self.config.bins
        t = torch.clamp(lum_pos / self.config.bin_ev + 0.5 * (k - 1), 0.0, float(k - 1))
        return torch.relu(1.0 - torch.abs(t - self.centres))

    def exposure_sums(self, guide: Tensor, pro: Tensor, conf: Tensor) -> Tensor:
        """Additive statistics behind :meth:`exposure` for one window of the frame.

        Shapes: (N, 3, h, w) x2, (N, 1, h, w) -> (N, 4): sum of log2 guidance luminance,
        pixel count, confidence-weighted sum of the log2 ratio, sum of weights. Summing them
        over windows that partition the frame and calling :meth:`exposure_from_sums` gives
        exactly :meth:`exposure` of the whole frame (streaming, DESIGN §6).
        """
        pro, guide, conf = sanitize(pro), sanitize(guide), torch.clamp(sanitize(conf), 0, 1)
        lg, lp = _log2(luminance_t(guide)), _log2(luminance_t(pro))
        wgt = conf * (lp > -20.0).float()
        ratio = torch.clamp(lg - lp, -MAX_GLOBAL_EV, MAX_GLOBAL_EV)
        n = torch.full_like(lg.sum(dim=(1, 2, 3)), float(lg[0].numel()))
        return torch.stack(
            [lg.sum(dim=(1, 2, 3)), n, (ratio * wgt).sum(dim=(1, 2, 3)), wgt.sum(dim=(1, 2, 3))],
            dim=1,
        )

    @staticmethod
    def exposure_from_sums(sums: Tensor) -> tuple[Tensor, Tensor]:
        """(exposure, log2_global), each (N, 1, 1, 1) EV, from summed :meth:`exposure_sums`."""
        exposure = torch.clamp(sums[:, 0] / sums[:, 1], -30.0, 20.0).view(-1, 1, 1, 1)
        glob = (sums[:, 2] / (sums[:, 3] + 1e-6)).view(-1, 1, 1, 1)
        return exposure, torch.clamp(glob, -MAX_GLOBAL_EV, MAX_GLOBAL_EV)

    def splat(
        self, pro: Tensor, guide: Tensor, conf: Tensor, exposure: Tensor, log2_global: Tensor
    ) -> Tensor:
        """The gain head's low-resolution input for one window: (N, 2*bins + 7, h/p, w/p).

        p = ``pool_px``; cells are averages over p x p pixels (the last row/column of cells
        may be partial). A window whose origin is a multiple of p gives exactly the rows
        and columns of the whole frame's splat that it covers, so a frame can be splatted
        band by band without holding its full-resolution features (DESIGN §6).
        """
        pro, guide, conf = sanitize(pro), sanitize(guide), torch.clamp(sanitize(conf), 0, 1)
        self._check(pro, guide, conf)
        f = self.features(pro, guide, conf, exposure, log2_global)
        wts = self.bin_weights(f.lum_pos)
        p = self.config.pool_px
        pool = nn.functional.avg_pool2d
        wc = wts * conf
        den = pool(wc, p, ceil_mode=True)
        num = pool(wc * (f.ratio_ev / 4.0), p, ceil_mode=True)
        return torch.cat([num / (den + 1e-3), torch.sqrt(den), pool(f.feats, p, ceil_mode=True)], 1)

    def grid_head(self, x: Tensor) -> Tensor:
        """The gain head's UNet on a splatted grid: (N, 2*bins + 7, h, w) -> (N, bins, h, w)
        natural-log gains, bounded by ``s * tanh`` and the hard clamp. Fixed-size low-res
        input: the part exported to Core ML as the gain model."""
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        m = nnf.interpolate(m, size=e2.shape[-2:], mode="bilinear", align_corners=False)
        d2 = self.dec2(torch.cat([m, e2], 1))
        d2 = nnf.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False)
        h = self.gain_out(self.dec1(torch.cat([d2, e1], 1)))
        lim = self.config.max_log_gain
        return torch.clamp(self.scale * torch.tanh(h), -lim, lim)

    def gain_grid(self, pro: Tensor, guide: Tensor, conf: Tensor) -> GainGrid:
        """The gain head over a whole frame: (N, bins, H/pool_px, W/pool_px) log gains."""
        pro, guide, conf = sanitize(pro), sanitize(guide), torch.clamp(sanitize(conf), 0, 1)
        self._check(pro, guide, conf)
        exposure, log2_global = self.exposure(guide, pro, conf)
        x = self.splat(pro, guide, conf, exposure, log2_global)
        return GainGrid(self.grid_head(x), log2_global, exposure)

    def upsample_grid(
        self, grid: GainGrid, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)
    ) -> Tensor:
        """The grid's per-bin log gains upsampled onto a window: (N, bins, h, w).

        Bilinear, cell-centred (cell (i, j) centred at pool_px * i + (pool_px - 1) / 2),
        for a window of ``shape`` (h, w) whose top-left is ``origin`` (y, x) in frame
        pixels. This is the tile input of the exported detail model.
        """
        p = self.config.pool_px
        h, w = shape
        gh, gw = grid.log_gain.shape[-2:]
        if origin == (0, 0) and (h + p - 1) // p == gh and (w + p - 1) // p == gw:
            return nnf.interpolate(
                grid.log_gain, scale_factor=float(p), mode="bilinear", align_corners=False
            )[..., :h, :w]
        # A tile: crop the grid (spare cells each side), upsample, crop pixels. Half-pixel
        # centres keep the frame mapping: crop cell k = frame cell i0 + k. The spare cells
        # make the interpolation inside the window identical to the whole-frame one; at
        # the frame edge the crop edge is the frame edge.
        y0, x0 = origin
        i0, j0 = max(0, y0 // p - 2), max(0, x0 // p - 2)
        i1, j1 = min(gh, (y0 + h) // p + 3), min(gw, (x0 + w) // p + 3)
        crop = grid.log_gain[..., i0:i1, j0:j1]
        up = nnf.interpolate(crop, scale_factor=float(p), mode="bilinear", align_corners=False)
        oy, ox = y0 - i0 * p, x0 - j0 * p
        return up[..., oy : oy + h, ox : ox + w]

    def slice_gain(
        self, grid: GainGrid, lum_pos: Tensor, origin: tuple[int, int] = (0, 0)
    ) -> Tensor:
        """Per-pixel natural-log local gain (N, 1, H, W) from the grid: each pixel takes
        the tent-weighted mix of the upsampled bins (:meth:`upsample_grid`) at its
        intensity ``lum_pos`` (N, 1, H, W)."""
        up = self.upsample_grid(grid, (lum_pos.shape[-2], lum_pos.shape[-1]), origin)
        return (self.bin_weights(lum_pos) * up).sum(dim=1, keepdim=True)

    def render(
        self,
        pro: Tensor,
        guide: Tensor | None,
        conf: Tensor,
        grid: GainGrid,
        origin: tuple[int, int] = (0, 0),
    ) -> NetOutput:
        """Detail head and composition on a window (whole frame or a tile) given the grid.
        ``guide`` is only shape-checked (the detail path does not read it): None skips it."""
        up = self.upsample_grid(grid, (pro.shape[-2], pro.shape[-1]), origin)
        return self.render_bins(pro, guide, conf, up, grid.log2_global, grid.exposure, grid)

    def render_bins(
        self,
        pro: Tensor,
        guide: Tensor | None,
        conf: Tensor,
        gain_bins: Tensor,
        log2_global: Tensor,
        exposure: Tensor,
        grid: GainGrid | None = None,
    ) -> NetOutput:
        """Detail head and composition from already-upsampled grid bins.

        Shapes: pro, guide (N, 3, h, w) (guide only checked, may be None); conf
        (N, 1, h, w); gain_bins (N, bins, h, w) from
        :meth:`upsample_grid`; log2_global, exposure (N, 1, 1, 1) EV. Everything here is
        per pixel or a 9x9 neighbourhood: the tile function exported to Core ML.
        """
        self._check(pro, guide, conf)
        pro, conf = sanitize(pro), torch.clamp(sanitize(conf), 0, 1)
        # The detail head sees ProRAW's own features only (channels 0 and 3-6 of
        # :meth:`features`), so the guidance is not read here.
        lp = _log2(luminance_t(pro))
        lum_pos = torch.clamp(lp + log2_global - exposure, -16.0, 16.0)
        chroma = torch.clamp(_log2(pro) - lp, -4.0, 4.0)
        log_gain = (self.bin_weights(lum_pos) * gain_bins).sum(dim=1, keepdim=True)
        base = pro * torch.exp2(log2_global) * torch.exp(log_gain)
        x = torch.cat([lum_pos / 8.0, chroma / 4.0, conf, log_gain / self.config.max_log_gain], 1)
        # channels_last: oneDNN runs these small-channel 3x3 convolutions ~1.8x faster.
        d = self.detail(x.contiguous(memory_format=torch.channels_last)).contiguous()
        m = self.local_mean(luminance_t(base))
        residual = self.config.rho * torch.tanh(d) * m
        if self.config.residual_bound is not None:
            b = torch.abs(base) * self.config.residual_bound
            residual = 0.5 * (torch.abs(residual + b) - torch.abs(residual - b))
        if grid is None:
            grid = GainGrid(gain_bins[..., :0, :0], log2_global, exposure)
        return NetOutput(torch.relu(base + residual), log_gain, residual, grid)

    def forward(self, pro: Tensor, guide: Tensor, conf: Tensor) -> NetOutput:
        """Whole-image forward. Shapes: (N, 3, H, W), (N, 3, H, W), (N, 1, H, W)."""
        return self.render(pro, guide, conf, self.gain_grid(pro, guide, conf))

    def n_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
