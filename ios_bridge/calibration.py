"""w8a8 activation calibration: conv-input ranges on simulated scenes, tile by tile.

The float32 network runs through the reference executor (so the detail model sees tiles
and the gain model the splatted grid, exactly as on the device) over the scenes of the
quantization config's ``activations.calibration``; forward pre-hooks record each conv
input's min and max; scales are ``max|x| / 127`` rounded to float16. Deterministic for a
(model, config) pair, which is what a sign-off approves.
"""

from __future__ import annotations

import logging

from core.model.net import Linear48Net
from core.progress import CancelToken, Progress, ProgressCallback, no_progress
from ios_bridge.executor import ReferenceExecutor, make_runners
from ios_bridge.manifest import build_manifest
from ios_bridge.quant import (
    ActivationScales,
    QuantSpec,
    collect_activation_ranges,
    scales_from_ranges,
)
from ios_bridge.scenes import load_scene

log = logging.getLogger(__name__)

__all__ = ["calibrate_w8a8"]

#: (model hash, quantization hash) -> scales; calibration is deterministic, so a process
#: that exports and then runs parity calibrates once.
_CACHE: dict[tuple[str, str], ActivationScales] = {}


def calibrate_w8a8(
    net: Linear48Net,
    spec: QuantSpec,
    *,
    model_hash: str = "",
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> ActivationScales:
    """Activation scales (conv name -> float16-exact scale) for a w8a8 ``spec``.

    Cached per (``model_hash``, ``spec.hash``) when ``model_hash`` is given.

    Raises:
        ConfigError: ``spec`` is not w8a8, or a conv never saw data.
        CancelledError: cancelled between scenes.
    """
    from core.errors import ConfigError

    if spec.calibration is None:
        raise ConfigError(f"quantization.mode: {spec.mode} has no activation calibration")
    key = (model_hash, spec.hash)
    if model_hash and key in _CACHE:
        return dict(_CACHE[key])
    cal = spec.calibration
    token = cancel or CancelToken()
    runners = make_runners(net, "fp32")
    total = len(cal.scenes)

    def run() -> None:
        for i, name in enumerate(cal.scenes):
            token.raise_if_cancelled()
            progress(Progress("calibrate", i, total, f"scene {name}"))
            scene = load_scene(name, cal.raw12_size, cal.seed)
            manifest = build_manifest(
                net,
                model_hash,
                "fp32",
                scene.shape,
                tile_px=cal.tile_px,
                overlap_px=cal.overlap_px,
            )
            ReferenceExecutor(manifest, runners).run(
                scene.camera48,
                scene.anchor,
                scene.cfa,
                scene.wb_gains,
                unclipped=scene.unclipped,
                cancel=token,
            )
        progress(Progress("calibrate", total, total, "ranges collected"))

    scales = scales_from_ranges(collect_activation_ranges(net, run))
    log.info("w8a8 calibration on %d scene(s): %d activation scales", total, len(scales))
    if model_hash:
        _CACHE[key] = dict(scales)
    return scales
