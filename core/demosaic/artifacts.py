"""Periodic-artifact detector: spectral energy at the CFA period (2 px on the 12MP grid).

A demosaicer that treats the four CFA sites differently leaves a pattern repeating every
2 pixels: a grid (a known failure of learned demosaicers, whose sub-pixel outputs come
from separate filters), zipper or maze artifacts. Its energy sits at the three frequencies
with a 2 px period, (fy, fx) = (0, 1/2), (1/2, 0), (1/2, 1/2) cycles/px, where a natural
image's spectrum is smooth and low. The detector measures, per channel, how far the power
there stands above the surrounding spectrum, and compares output with truth.

Domain: log2 of each channel (floored at 1e-3 of the channel's mean, so the measure does
not depend on exposure), so a 1 % multiplicative grid counts the same in shadows and
highlights. Hann window, mean removed. Against truth, the spectrum analysed is that of
the log ratio output / truth: the error the demosaic made, so the scene's own 2 px
content (gratings, fine textures) neither hides nor fakes a grid.
"""

from __future__ import annotations

import math

import numpy as np

from core.errors import ShapeError

__all__ = [
    "ARTIFACT_THRESHOLD_DB",
    "CFA_FREQUENCIES",
    "cfa_peak_db",
    "has_periodic_artifact",
    "periodic_artifact_db",
]

#: (fy, fx) in cycles/px of a 2 px (CFA) period.
CFA_FREQUENCIES: tuple[tuple[float, float], ...] = ((0.0, 0.5), (0.5, 0.0), (0.5, 0.5))
#: ``periodic_artifact_db`` above this (4x the truth's relative power) flags a grid.
ARTIFACT_THRESHOLD_DB = 6.0
_PEAK_HALF = 1  # the peak is the 3x3 bins around the CFA frequency (Hann spreads it)
_RING_HALF = 8  # compared with the median of the 17x17 bins around it, peak excluded


def _check_image(img: np.ndarray) -> np.ndarray:
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1] < 16 or x.shape[2] < 16:
        raise ShapeError(f"need a (C, H, W) or (H, W) image of at least 16x16, got {x.shape}")
    h, w = x.shape[1] - x.shape[1] % 2, x.shape[2] - x.shape[2] % 2
    return np.nan_to_num(x[:, :h, :w], nan=0.0, posinf=0.0, neginf=0.0)


def _log_planes(x: np.ndarray) -> np.ndarray:
    """log2 per channel, floored at 1e-3 of the channel's mean |value| (exposure-free)."""
    floor = 1e-3 * np.maximum(np.mean(np.abs(x), axis=(1, 2), keepdims=True), 1e-30)
    return np.log2(np.maximum(x, floor))


def _prominence_db(planes: np.ndarray, *, pooled: bool = False) -> np.ndarray:
    """(C, H, W) signal -> (C, 3) dB of the CFA-frequency peaks over their neighbourhood;
    ``pooled``: the channels' power spectra summed first -> (1, 3) (steadier on noise)."""
    c, h, w = planes.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    inner = slice(_RING_HALF - _PEAK_HALF, _RING_HALF + _PEAK_HALF + 1)
    ring = np.ones((2 * _RING_HALF + 1,) * 2, bool)
    ring[inner, inner] = False
    specs = []
    for ch in range(c):
        plane = planes[ch] - planes[ch].mean()
        specs.append(np.abs(np.fft.fft2(plane * win)) ** 2)
    spec_stack = np.sum(specs, axis=0, keepdims=True) if pooled else np.stack(specs)
    out = np.zeros((spec_stack.shape[0], len(CFA_FREQUENCIES)), np.float64)
    for ch, spec in enumerate(spec_stack):
        if not np.any(spec):
            continue  # a constant plane has no pattern: 0 dB
        for k, (fy, fx) in enumerate(CFA_FREQUENCIES):
            cy, cx = round(fy * h), round(fx * w)
            ys = np.arange(cy - _RING_HALF, cy + _RING_HALF + 1) % h
            xs = np.arange(cx - _RING_HALF, cx + _RING_HALF + 1) % w
            block = spec[np.ix_(ys, xs)]
            peak = float(block[inner, inner].mean())
            ref = float(np.median(block[ring]))
            out[ch, k] = 10.0 * math.log10((peak + 1e-30) / (ref + 1e-30))
    return out


def cfa_peak_db(img: np.ndarray) -> np.ndarray:
    """Prominence of each CFA-period frequency in each channel of an image, in dB.

    For channel c and frequency f: ``10 log10(mean power of the 3x3 bins at f / median
    power of the 17x17 bins around f without those 3x3)`` of the log2 channel. About 0 dB
    for content with a smooth spectrum (white noise, many natural images), large for a
    2 px grid; but a scene with its own 2 px structure (fine value-noise textures,
    gratings, window grids) scores high too, so compare against truth when there is one.

    Shapes: img (C, H, W) or (H, W), at least 16x16 (an odd side loses its last pixel)
        -> (C, 3) in the order of :data:`CFA_FREQUENCIES`.
    Raises: ShapeError on other shapes.
    """
    return _prominence_db(_log_planes(_check_image(img)))


def periodic_artifact_db(output: np.ndarray, truth: np.ndarray | None = None) -> float:
    """Strongest CFA-period pattern that ``output`` adds to ``truth``, in dB.

    With truth: the prominence (as in :func:`cfa_peak_db`) of the CFA frequencies in the
    log ratio ``log2(output) - log2(truth)`` (the demosaic's multiplicative error; the
    three channels' power spectra summed), max over the frequencies; 0 for an output
    equal to truth, 0-5 dB for white noise or a blur, large when the error repeats every
    2 px. A demosaic that loses the scene's own 2 px content (aliasing on a grating)
    also scores: its error sits at the CFA period too. Without truth: the max of
    :func:`cfa_peak_db` of the output alone (confounded by the scene's own content).
    > :data:`ARTIFACT_THRESHOLD_DB` flags a grid.

    Shapes: output and truth (C, H, W) or (H, W), equal.
    Raises: ShapeError on mismatched or too small images.
    """
    out = _check_image(output)
    if truth is None:
        return float(_prominence_db(_log_planes(out)).max())
    ref = _check_image(truth)
    if np.shape(output) != np.shape(truth):
        raise ShapeError(f"output {np.shape(output)} and truth {np.shape(truth)} differ")
    # One floor for both (the truth's), so equal pixels give an exactly zero error.
    floor = 1e-3 * np.maximum(np.mean(np.abs(ref), axis=(1, 2), keepdims=True), 1e-30)
    err = np.log2(np.maximum(out, floor)) - np.log2(np.maximum(ref, floor))
    return float(_prominence_db(err, pooled=True).max())


def has_periodic_artifact(output: np.ndarray, truth: np.ndarray | None = None) -> bool:
    """True when :func:`periodic_artifact_db` exceeds :data:`ARTIFACT_THRESHOLD_DB`."""
    return periodic_artifact_db(output, truth) > ARTIFACT_THRESHOLD_DB
