"""Training configuration: a frozen dataclass loaded from TOML, validated by field name.

[run]      name = "v1.0_default", seed, notes
[data]     pool_images, size12_min, size12_max, real_fraction, crop48, batch
[optim]    steps, lr, weight_decay, threads, log_every, checkpoint_every
[loss]     anchor, detail, tv, range, truth, histogram, warmup_fraction
[model]    fields of core.model.net.ModelConfig
[eval]     size12 ("512x384"), seed
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.model.net import ModelConfig

RUN_NAME = re.compile(r"^v\d+\.\d+_[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class RunSection:
    """Run identity: ``name`` is ``v{major}.{minor}_{variant}``."""

    name: str = "v0.1_dev"
    seed: int = 0
    notes: str = ""


@dataclass(frozen=True)
class DataSection:
    """Simulated pool and crops (sizes in pixels; crop48 on the 48MP grid, multiple of 4)."""

    pool_images: int = 64
    size12_min: int = 192
    size12_max: int = 320
    real_fraction: float = 0.15
    crop48: int = 160
    batch: int = 8


@dataclass(frozen=True)
class OptimSection:
    """AdamW with cosine decay; threads for torch.set_num_threads."""

    steps: int = 2000
    lr: float = 2e-3
    weight_decay: float = 1e-4
    threads: int = 1
    log_every: int = 20
    checkpoint_every: int = 250


@dataclass(frozen=True)
class LossSection:
    """Loss weights; the detail and truth terms ramp in after ``warmup_fraction``.
    ``anchor_pool``: the anchor term compares per-plane means of anchor_pool^2 Bayer cells
    (1 = single pixels)."""

    anchor: float = 1.0
    anchor_pool: int = 2
    detail: float = 0.02
    tv: float = 0.02
    range: float = 0.1
    truth: float = 1.0
    histogram: float = 0.05
    warmup_fraction: float = 0.2


@dataclass(frozen=True)
class EvalSection:
    """Held-out evaluation run at the end of training (RAW12 size WxH)."""

    size12: str = "512x384"
    seed: int = 9_000_000


@dataclass(frozen=True)
class TrainConfig:
    """The whole training configuration."""

    run: RunSection = field(default_factory=RunSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    loss: LossSection = field(default_factory=LossSection)
    model: ModelConfig = field(default_factory=ModelConfig)
    eval: EvalSection = field(default_factory=EvalSection)

    def __post_init__(self) -> None:
        checks: dict[str, bool] = {
            "run.name": bool(RUN_NAME.match(self.run.name)),
            "data.pool_images": self.data.pool_images >= 1,
            "data.size12_min": self.data.size12_min >= 32,
            "data.size12_max": self.data.size12_max >= self.data.size12_min,
            "data.real_fraction": 0.0 <= self.data.real_fraction <= 1.0,
            "data.crop48": self.data.crop48 >= 32 and self.data.crop48 % 4 == 0,
            "data.batch": self.data.batch >= 1,
            "optim.steps": self.optim.steps >= 1,
            "optim.lr": 0 < self.optim.lr < 1,
            "optim.weight_decay": self.optim.weight_decay >= 0,
            "optim.threads": 1 <= self.optim.threads <= 64,
            "optim.log_every": self.optim.log_every >= 1,
            "optim.checkpoint_every": self.optim.checkpoint_every >= 1,
            "loss.warmup_fraction": 0.0 <= self.loss.warmup_fraction <= 1.0,
            "loss.anchor_pool": self.loss.anchor_pool in (1, 2, 4)
            and self.data.crop48 % (4 * self.loss.anchor_pool) == 0,
        }
        for name in ("anchor", "detail", "tv", "range", "truth", "histogram"):
            checks[f"loss.{name}"] = getattr(self.loss, name) >= 0
        for name, ok in checks.items():
            if not ok:
                section, key = name.split(".")
                value = getattr(getattr(self, section), key)
                hint = " (want v{major}.{minor}_{variant})" if name == "run.name" else ""
                raise ConfigError(f"{name}: invalid value {value!r}{hint}")
        if 3 * self.data.size12_min // 4 <= self.data.crop48 // 2:
            raise ConfigError(
                f"data.crop48: {self.data.crop48} does not fit images of RAW12 width "
                f"{self.data.size12_min} (height {3 * self.data.size12_min // 4})"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/TOML-able)."""
        return asdict(self)

    def with_overrides(self, **sections: dict[str, Any]) -> TrainConfig:
        """A copy with some fields replaced, e.g. ``optim={"steps": 2}``."""
        return _build(self.to_dict() | {k: self.to_dict()[k] | v for k, v in sections.items()})


_SECTIONS: dict[str, type] = {
    "run": RunSection,
    "data": DataSection,
    "optim": OptimSection,
    "loss": LossSection,
    "model": ModelConfig,
    "eval": EvalSection,
}


def coerce_field(section: str, key: str, value: Any, default: Any) -> Any:
    """``value`` of field ``section.key`` checked against the type of ``default`` (ints
    pass as floats, bools only as bools, tuples element-wise); ConfigError names it."""
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple) or len(value) != len(default):
            raise ConfigError(f"{section}.{key}: expected {len(default)} numbers, got {value!r}")
        return tuple(coerce_field(section, key, v, d) for v, d in zip(value, default, strict=True))
    expected = type(default)
    ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
    if not ok or isinstance(value, bool) != (expected is bool):
        raise ConfigError(
            f"{section}.{key}: expected {expected.__name__}, got {type(value).__name__} {value!r}"
        )
    return float(value) if expected is float else value


def build_sections(
    data: dict[str, Any],
    sections: dict[str, type],
    builders: dict[str, Callable[[dict[str, Any]], Any]] | None = None,
) -> dict[str, Any]:
    """Validate a parsed TOML config section by section (the one schema checker of every
    trainer's config).

    ``sections``: name -> dataclass with defaults, filled field by field through
    :func:`coerce_field`; ``builders``: name -> function building that section from its
    table itself (e.g. a network config's ``from_dict``). Returns name -> built section.
    Raises ConfigError naming the unknown section, the non-table or the offending field.
    """
    builders = builders or {}
    valid = [*sections, *builders]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise ConfigError(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    built: dict[str, Any] = {}
    for name in valid:
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(f"{name}: must be a table")
        if name in builders:
            built[name] = builders[name](raw)
            continue
        cls = sections[name]
        known = [f.name for f in fields(cls)]
        bad = sorted(set(raw) - set(known))
        if bad:
            raise ConfigError(f"{name}.{bad[0]}: unknown field; valid: {', '.join(known)}")
        default = cls()
        values = {k: coerce_field(name, k, v, getattr(default, k)) for k, v in raw.items()}
        built[name] = replace(default, **values)
    return built


def _build(data: dict[str, Any]) -> TrainConfig:
    return TrainConfig(**build_sections(data, _SECTIONS))


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict. Raises ConfigError naming the file when it cannot be read
    or parsed."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except OSError as err:
        raise ConfigError(f"{p}: cannot read config ({err.strerror})") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{p}: not valid TOML ({err})") from err


def load_config(path: str | Path) -> TrainConfig:
    """Read a TOML config. Raises ConfigError naming the file/field on any problem."""
    return config_from_dict(read_toml(path))


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build and validate from a nested dict (as parsed from TOML)."""
    return _build(data)
