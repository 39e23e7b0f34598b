"""Run the learned demosaicer on a whole mosaic, band by band.

The mosaic is reflect-padded once so that it starts on red with the network's full
context on every side (:func:`core.demosaic.net.reflect_to_rggb`), then cut into
horizontal bands of even height; each band carries ``margin_px`` rows of context above
and below, so the result equals a whole-image pass (the convolutions' zero padding only
touches the discarded margins) while memory stays bounded by the band.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.cfa import CfaPattern
from core.demosaic._common import phase_offset_to_rggb
from core.demosaic.checkpoint import LoadedDemosaicModel, load_demosaic_model
from core.demosaic.net import DemosaicNet, reflect_to_rggb
from core.progress import CancelToken, Progress, ProgressCallback

__all__ = ["BAND_PIXELS", "learned_demosaic"]

#: Target input pixels per band (about 1 MP: ~100 MB of activations at 24 channels).
BAND_PIXELS = 1_000_000

ModelSpec = LoadedDemosaicModel | DemosaicNet | str | Path | None


def _net(model: ModelSpec) -> DemosaicNet:
    if isinstance(model, DemosaicNet):
        return model
    if isinstance(model, LoadedDemosaicModel):
        return model.net
    return load_demosaic_model(model).net


def learned_demosaic(
    mosaic: np.ndarray,
    cfa: CfaPattern,
    *,
    model: ModelSpec = None,
    band_rows: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Demosaic with the learned network (default: the shipped, cached checkpoint).

    Shapes: mosaic (H, W) float32, finite, H and W even -> (3, H, W) float32.
    Units: unchanged (Mosaic12 scale); linear (``f(a x) = a f(x)``, a > 0); not clamped.
    Args:
        model: a loaded checkpoint, a bare network, a checkpoint path, or None for the
            shipped ``resources/models/demosaic.pt``.
        band_rows: output rows per band (even); default about :data:`BAND_PIXELS` input
            pixels per band.
        progress: called with stage ``"demosaic"`` after each band.
        cancel: checked before each band (raises CancelledError).
    Raises: CheckpointError for a missing or corrupt checkpoint; CancelledError.
    """
    net = _net(model)
    margin = net.config.margin_px
    dy, dx = phase_offset_to_rggb(cfa)
    padded = reflect_to_rggb(mosaic, (dy, dx), margin)
    h, w = mosaic.shape
    rows, cols = h + 2 * dy, w + 2 * dx  # the RGGB-phased region, both even
    if band_rows is None:
        band_rows = max(2, BAND_PIXELS // padded.shape[1] - 2 * margin)
    band_rows = max(2, band_rows - band_rows % 2)
    out = np.empty((3, rows, cols), np.float32)
    starts = list(range(0, rows, band_rows))
    net.eval()
    for k, r0 in enumerate(starts):
        if cancel is not None:
            cancel.raise_if_cancelled()
        r1 = min(r0 + band_rows, rows)
        band = torch.from_numpy(np.ascontiguousarray(padded[r0 : r1 + 2 * margin]))[None, None]
        with torch.inference_mode():
            res = net(band)[0].numpy()
        out[:, r0:r1] = res[:, margin : margin + r1 - r0, margin : margin + cols]
        if progress is not None:
            progress(Progress("demosaic", k + 1, len(starts)))
    return np.ascontiguousarray(out[:, dy : dy + h, dx : dx + w])
