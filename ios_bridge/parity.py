"""FP32 vs FP16 vs INT8 (emulated) parity, per scene and per tile.

Each scene (simulated, through real DNG files) runs through the reference executor once
per precision (``core.model.quant``: fp32 reference, fp16 / int8 / w8a8 emulations); the
outputs (Camera48, before the desktop-only refinement) are compared frame-wide and tile by
tile on each tile's own pre-blend output — what the device's detail model produces — so
the worst tile is named with its origin, not averaged away. The comparison maths
(:class:`TileDiff`, :class:`Comparison`, figures) is ``core.model.parity``'s, shared with
the GUI's INT8 sign-off; this module adds the multi-scene report and its CLI forms.

    report = parity_report("resources/models/default.pt", ["backlit"], ["fp16", "int8"])
    print(report.text())
    report.worst_tiles(5)          # [(scene, comparison, TileDiff)], worst first
    report.signoff_metrics("int8") # scene -> {metric: value} for a sign-off record
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import ConfigError
from core.model.emulate import calibrate_w8a8, load_scene
from core.model.infer import DEFAULT_CHECKPOINT
from core.model.parity import (
    Comparison,
    TileDiff,
    compare_runs,
    comparison_figures,
    json_float,
)
from core.model.quant import ModelSource, QuantSpec, make_runners, resolve_model
from core.progress import CancelToken, Progress, ProgressCallback, no_progress
from core.signoff import required_scenes
from ios_bridge.executor import ExecutorResult, ReferenceExecutor
from ios_bridge.manifest import build_manifest

__all__ = [
    "Comparison",
    "ParityReport",
    "TileDiff",
    "parity_report",
    "signoff_metrics_from_dict",
]

#: Comparisons made for each requested precision: (candidate, reference).
_PAIRS = {
    "fp16": (("fp16", "fp32"),),
    "int8": (("int8", "fp32"), ("int8", "fp16")),
    "w8a8": (("w8a8", "fp32"), ("w8a8", "fp16")),
}


@dataclass(frozen=True)
class ParityReport:
    """All comparisons of one parity run, plus how it was run.

    Attributes:
        comparisons: per scene and comparison, in run order.
        model_hash: the checkpoint.
        quantization_hashes: precision -> sha256 of its quantization config.
        tile_px, overlap_px: the tile plan.
        raw12_size: (width, height) of the simulated RAW12s; seed: simulator seed.
    """

    comparisons: tuple[Comparison, ...]
    model_hash: str
    quantization_hashes: dict[str, str]
    tile_px: int
    overlap_px: int
    raw12_size: tuple[int, int]
    seed: int

    def worst_tiles(self, n: int = 10) -> list[tuple[str, str, TileDiff]]:
        """(scene, comparison label, tile) of the ``n`` worst tiles by max |difference|."""
        rows = [(c.scene, c.label, t) for c in self.comparisons for t in c.tiles]
        rows.sort(key=lambda r: (-r[2].max_abs, r[2].psnr_db))
        return rows[:n]

    def signoff_metrics(self, precision: str) -> dict[str, dict[str, float]]:
        """scene -> finite figures of ``precision`` (vs fp16 and vs fp32) for a record."""
        out: dict[str, dict[str, float]] = {}
        for c in self.comparisons:
            if c.candidate == precision:
                out.setdefault(c.scene, {}).update(comparison_figures(c))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (non-finite PSNRs as strings)."""
        return {
            "model_hash": self.model_hash,
            "quantization_hashes": self.quantization_hashes,
            "tile_px": self.tile_px,
            "overlap_px": self.overlap_px,
            "raw12_size": list(self.raw12_size),
            "seed": self.seed,
            "comparisons": [
                {
                    "scene": c.scene,
                    "candidate": c.candidate,
                    "reference": c.reference,
                    "max_abs": c.max_abs,
                    "rms": c.rms,
                    "psnr_db": json_float(c.psnr_db),
                    "grid_max_abs": c.grid_max_abs,
                    "worst_tile": {
                        k: json_float(v) if isinstance(v, float) else v
                        for k, v in asdict(c.worst).items()
                    },
                    "tiles": [
                        {
                            k: json_float(v) if isinstance(v, float) else v
                            for k, v in asdict(t).items()
                        }
                        for t in c.tiles
                    ],
                }
                for c in self.comparisons
            ],
        }

    def text(self) -> str:
        """The printed table: one row per scene and comparison, worst tile named."""
        head = (
            f"{'scene':<20}{'comparison':<16}{'max abs':>10}{'RMS':>10}{'PSNR dB':>9}"
            f"{'grid dlog':>10}  worst tile (index @ y0,x0): max abs / PSNR dB"
        )
        lines = [
            f"parity of model {self.model_hash[:12]}: RAW12 {self.raw12_size[0]}x"
            f"{self.raw12_size[1]} (seed {self.seed}), tiles {self.tile_px} px overlap "
            f"{self.overlap_px}; linear units, PSNR peak 1.0 = RAW12 clip",
            head,
            "-" * len(head),
        ]
        for c in self.comparisons:
            w = c.worst
            lines.append(
                f"{c.scene:<20}{c.label:<16}{c.max_abs:>10.2e}{c.rms:>10.2e}{c.psnr_db:>9.1f}"
                f"{c.grid_max_abs:>10.2e}  #{w.index} @ {w.y0},{w.x0}: {w.max_abs:.2e} / "
                f"{w.psnr_db:.1f}"
            )
        worst = self.worst_tiles(1)
        if worst:
            scene, label, t = worst[0]
            lines.append(
                f"worst tile overall: {scene} {label} tile #{t.index} at (y0={t.y0}, x0={t.x0}) "
                f"{t.w}x{t.h}: max abs {t.max_abs:.3e}, RMS {t.rms:.3e}, PSNR {t.psnr_db:.1f} dB"
            )
        return "\n".join(lines)


def parity_report(
    checkpoint: ModelSource = DEFAULT_CHECKPOINT,
    scenes: list[str] | tuple[str, ...] | None = None,
    precisions: list[str] | tuple[str, ...] = ("fp16", "int8", "w8a8"),
    tile_px: int = 256,
    overlap_px: int = 48,
    *,
    raw12_size: tuple[int, int] = (256, 192),
    seed: int = 0,
    quantization: dict[str, dict[str, Any]] | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ParityReport:
    """Run every scene at fp32 and each precision; compare (see the module docstring).

    Args:
        checkpoint: the model.
        scenes: simulated scene names (default: the QA set, ``core.signoff.required_scenes``).
        precisions: any of ``fp16``, ``int8``, ``w8a8`` (fp16 is added when an INT8 one
            is asked for: INT8 is compared with both FP32 and FP16).
        tile_px, overlap_px: the tile plan (frames smaller than a tile get one tile).
        raw12_size: (width, height) of each simulated RAW12; the frame is twice that.
        seed: simulator seed.
        quantization: precision -> quantization config (default: the canonical ones);
            w8a8 calibrates with its config's calibration.

    Raises: ConfigError (unknown precision or scene), CheckpointError, CancelledError.
    """
    bad = [p for p in precisions if p not in _PAIRS]
    if bad or not precisions:
        raise ConfigError(f"precisions: {bad or '(none)'} not among fp16, int8, w8a8")
    net, model_hash = resolve_model(checkpoint)
    names = list(scenes) if scenes else list(required_scenes())
    runs = ["fp32", "fp16", *[p for p in ("int8", "w8a8") if p in precisions]]
    token = cancel or CancelToken()
    specs: dict[str, QuantSpec] = {}
    for p in runs:
        if p in ("int8", "w8a8"):
            given = (quantization or {}).get(p)
            specs[p] = QuantSpec.default(p) if given is None else QuantSpec.from_config(given)
    scales = None
    if "w8a8" in specs:
        scales = calibrate_w8a8(
            net, specs["w8a8"], model_hash=model_hash, progress=progress, cancel=token
        )
    runners = {p: make_runners(net, p, scales if p == "w8a8" else None) for p in runs}
    comparisons: list[Comparison] = []
    total = len(names) * len(runs)
    for i, name in enumerate(names):
        token.raise_if_cancelled()
        progress(Progress("parity", i * len(runs), total, f"scene {name}"))
        scene = load_scene(name, raw12_size, seed)
        manifest = build_manifest(
            net, model_hash, "fp32", scene.shape, tile_px=tile_px, overlap_px=overlap_px
        )
        results: dict[str, ExecutorResult] = {}
        for j, p in enumerate(runs):
            token.raise_if_cancelled()
            progress(Progress("parity", i * len(runs) + j, total, f"{name} {p}"))
            results[p] = ReferenceExecutor(manifest, runners[p], keep_tiles=True).run(
                scene.camera48,
                scene.anchor,
                scene.cfa,
                scene.wb_gains,
                unclipped=scene.unclipped,
                cancel=token,
            )
        for p in precisions:
            for cand, ref in _PAIRS[p]:
                comparisons.append(compare_runs(name, cand, ref, results[cand], results[ref]))
    progress(Progress("parity", total, total, "done"))
    return ParityReport(
        comparisons=tuple(comparisons),
        model_hash=model_hash,
        quantization_hashes={p: s.hash for p, s in specs.items()},
        tile_px=tile_px,
        overlap_px=overlap_px,
        raw12_size=raw12_size,
        seed=seed,
    )


def signoff_metrics_from_dict(obj: dict[str, Any], precision: str) -> dict[str, dict[str, float]]:
    """:meth:`ParityReport.signoff_metrics` from a saved ``to_dict()`` (``parity --json``).

    Raises: ConfigError when ``obj`` is not a parity report.
    """
    try:
        comparisons = obj["comparisons"]
        out: dict[str, dict[str, float]] = {}
        for c in comparisons:
            if c["candidate"] != precision:
                continue
            m = out.setdefault(str(c["scene"]), {})
            suffix = f"_vs_{c['reference']}"
            worst = c["worst_tile"]
            values = {
                "max_abs": c["max_abs"],
                "rms": c["rms"],
                "psnr_db": c["psnr_db"],
                "worst_tile_max_abs": worst["max_abs"],
                "worst_tile_psnr_db": worst["psnr_db"],
            }
            for k, v in values.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    m[k + suffix] = float(v)
    except (KeyError, TypeError) as err:
        raise ConfigError(f"parity JSON: not a parity report (missing {err})") from err
    return out
