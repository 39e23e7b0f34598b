"""The learned diagnostic network: a small MobileNetV2-style backbone with three heads.

Inputs (from :mod:`core.diagnostics.features`): the ``THUMB_PX`` x ``THUMB_PX`` network
input (N, 6, 32, 32) and the statistics vector (N, N_STATS). The image goes through a
MobileNetV2 stem and inverted-residual blocks (1x1 expand, 3x3 depthwise, 1x1 linear
projection, residual when the shape allows; ReLU6, batch norm) and global average pooling;
the statistics through a two-layer MLP; both are concatenated and shared by the heads
(optionally plus a linear map of the statistics, ``stats_skip``):

- exposure: 3 logits (under / well / over) + log of the correction gamma;
- white balance: (temperature_ev, tint_ev) of the correction (see core.diagnostics.types);
- saturation: 3 logits (under / well / over) + log of the correction factor.

Plain torch, trained from scratch (``python -m training diagnostics train``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from core.diagnostics.features import INPUT_CHANNELS, N_STATS
from core.errors import ConfigError

__all__ = ["DiagnosticNet", "DiagnosticNetConfig", "DiagnosticOutput"]


@dataclass(frozen=True)
class DiagnosticNetConfig:
    """Architecture hyper-parameters (stored in every diagnostic checkpoint).

    Attributes:
        stem: channels of the stride-2 stem convolution.
        widths: output channels of the four inverted-residual stages.
        repeats: blocks per stage (the first block of stages 2-4 has stride 2).
        expansion: expansion factor t of the inverted residuals (stage 1 uses 1).
        embed: channels of the final 1x1 convolution before pooling.
        stats_hidden: width of the statistics MLP.
        head_hidden: width of the shared layer before the heads.
        dropout: dropout before the heads (training only).
        stats_skip: add a linear map of the statistics vector to every head output. The
            classical estimates are (nearly) linear in the statistics (gray-world gains
            are ``grayworld_log2_r/b``, the relative key is ``q50 - q99``), so the net can
            start from them and learn what to add; False in the first model.
    """

    stem: int = 16
    widths: tuple[int, int, int, int] = (16, 24, 32, 64)
    repeats: tuple[int, int, int, int] = (1, 2, 2, 2)
    expansion: int = 4
    embed: int = 128
    stats_hidden: int = 64
    head_hidden: int = 128
    dropout: float = 0.1
    stats_skip: bool = False

    def __post_init__(self) -> None:
        checks = {
            "stem": self.stem >= 4,
            "widths": len(self.widths) == 4 and all(int(w) >= 4 for w in self.widths),
            "repeats": len(self.repeats) == 4 and all(1 <= int(r) <= 6 for r in self.repeats),
            "expansion": 1 <= self.expansion <= 8,
            "embed": self.embed >= 8,
            "stats_hidden": self.stats_hidden >= 4,
            "head_hidden": self.head_hidden >= 8,
            "dropout": 0.0 <= self.dropout < 1.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"model.{name}: invalid value {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists). ``stats_skip`` is left out while
        False, so configs from before it existed (and their content hashes) are unchanged."""
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        if not self.stats_skip:
            del out["stats_skip"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiagnosticNetConfig:
        """From a dict; unknown keys or bad values raise ConfigError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"model: unknown field(s) {', '.join(unknown)}")
        values = dict(data)
        try:
            for key in ("widths", "repeats"):
                if key in values:
                    values[key] = tuple(int(v) for v in values[key])
            return cls(**values)
        except (TypeError, ValueError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"model: {err}") from err


class DiagnosticOutput(NamedTuple):
    """Raw network outputs for a batch of N images.

    Attributes:
        exposure_logits: (N, 3), classes ``EXPOSURE_LABELS``.
        log_gamma: (N,) natural log of the exposure correction gamma.
        wb_axes: (N, 2) correction (temperature_ev, tint_ev).
        saturation_logits: (N, 3), classes ``SATURATION_LABELS``.
        log_saturation: (N,) natural log of the saturation correction factor.
    """

    exposure_logits: Tensor
    log_gamma: Tensor
    wb_axes: Tensor
    saturation_logits: Tensor
    log_saturation: Tensor


class _InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear projection."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y: Tensor = self.body(x)
        return x + y if self.residual else y


class DiagnosticNet(nn.Module):
    """The diagnostic network (see module doc)."""

    def __init__(self, config: DiagnosticNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or DiagnosticNetConfig()
        self.config = cfg
        blocks: list[nn.Module] = [
            nn.Conv2d(INPUT_CHANNELS, cfg.stem, 3, 2, 1, bias=False),
            nn.BatchNorm2d(cfg.stem),
            nn.ReLU6(),
        ]
        cin = cfg.stem
        for stage, (cout, n) in enumerate(zip(cfg.widths, cfg.repeats, strict=True)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                t = 1 if stage == 0 else cfg.expansion
                blocks.append(_InvertedResidual(cin, cout, stride, t))
                cin = cout
        blocks += [nn.Conv2d(cin, cfg.embed, 1, bias=False), nn.BatchNorm2d(cfg.embed), nn.ReLU6()]
        self.backbone = nn.Sequential(*blocks)
        self.stats_mlp = nn.Sequential(
            nn.Linear(N_STATS, cfg.stats_hidden),
            nn.ReLU(),
            nn.Linear(cfg.stats_hidden, cfg.stats_hidden),
            nn.ReLU(),
        )
        self.shared = nn.Sequential(
            nn.Linear(cfg.embed + cfg.stats_hidden, cfg.head_hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
        )
        self.exposure_head = nn.Linear(cfg.head_hidden, 4)
        self.wb_head = nn.Linear(cfg.head_hidden, 2)
        self.saturation_head = nn.Linear(cfg.head_hidden, 4)
        self.stats_skip = nn.Linear(N_STATS, 10) if cfg.stats_skip else None

    def forward(self, image: Tensor, stats: Tensor) -> DiagnosticOutput:
        """Shapes: image (N, 6, H, W) from ``net_input``; stats (N, N_STATS)."""
        feat = self.backbone(image).mean(dim=(2, 3))
        h = self.shared(torch.cat([feat, self.stats_mlp(stats)], dim=1))
        e = self.exposure_head(h)
        wb = self.wb_head(h)
        s = self.saturation_head(h)
        if self.stats_skip is not None:
            k = self.stats_skip(stats)
            e, wb, s = e + k[:, :4], wb + k[:, 4:6], s + k[:, 6:]
        return DiagnosticOutput(e[:, :3], e[:, 3], wb, s[:, :3], s[:, 3])
