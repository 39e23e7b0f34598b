"""Metrics for the pipeline report, the CLI ``eval``, tests, the GUI and training.

Two families:

- **Anchor metrics** (real captures): the output Camera48 pushed through the forward
  operator F (DESIGN §3) against the RAW12 anchor mosaic, on the Mosaic12 scale
  (1.0 = sensor clip). PSNR, SSIM, MAE and per-CFA-plane error statistics/histograms.
- **Scene metrics** (simulated data with a known truth, or output vs ProRAW for the GUI):
  residual local tone mapping, halos, detail retention and local colour casts, all from
  ratios output / reference, so the scene content cancels and only the processing remains.

Conventions used throughout:

- Luminance is :func:`luminance`: ``0.25 R + 0.5 G + 0.25 B`` of camera-native channels
  (camera space is not sRGB; this is a fixed, simple weighting, not a colorimetric Y).
- EV = log2 units. A pixel takes part in a log-ratio metric only if both values exceed
  ``floor`` (default 2**-12 of clip, ~12 stops down) and are finite.
- ``mask`` arguments are bool (H, W), True = use the pixel.
- Spatial scales that must mean the same on any image size are given in pixels of the
  full 48MP frame (8064x6048, diagonal :data:`REFERENCE_DIAG_PX` = 10080 px) and scaled by
  ``diagonal / 10080`` (``scale=`` overrides it).
- Every result dataclass is frozen and has ``to_dict()`` giving plain JSON types; NaN and
  inf become ``None`` there (strict JSON has neither).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from core.cfa import PLANE_NAMES, CfaPattern
from core.errors import ConfigError, ShapeError
from core.forward import cfa_planes, forward_np
from core.jsonutil import to_jsonable

__all__ = [
    "DEFAULT_FLOOR",
    "LUMA_WEIGHTS",
    "REFERENCE_DIAG_PX",
    "AnchorMetrics",
    "CfaErrorStats",
    "ChromaStability",
    "TruthMetrics",
    "anchor_metrics",
    "cfa_error_histograms",
    "chroma_stability",
    "gradient_correlation",
    "halo_indicator",
    "halo_map",
    "ltm_residual",
    "luminance",
    "psnr",
    "ssim",
    "truth_metrics",
]

LUMA_WEIGHTS: tuple[float, float, float] = (0.25, 0.5, 0.25)
DEFAULT_FLOOR: float = 2.0**-12
REFERENCE_DIAG_PX: float = 10080.0  # hypot(8064, 6048), the 48MP frame
_TRUNCATE = 3.0  # Gaussian support in sigmas (speed; the tails beyond 3 sigma are < 0.3%)
HistogramScale = Literal["linear", "ev"]


# --------------------------------------------------------------------------- JSON


class _ToDict:
    """Mixin: ``to_dict()`` of a dataclass with JSON-safe values (NaN/inf -> None)."""

    def to_dict(self) -> dict[str, Any]:
        """Field name -> plain JSON value."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


# --------------------------------------------------------------------------- basics


def luminance(camera48: np.ndarray) -> np.ndarray:
    """Fixed luminance of camera-native RGB: ``0.25 R + 0.5 G + 0.25 B``.

    Shapes: (3, H, W) -> (H, W) float32.
    Units: same linear scale as the input.
    Raises: ShapeError if the input is not (3, H, W).
    """
    x = np.asarray(camera48)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ShapeError(f"luminance needs a (3, H, W) image, got {x.shape}")
    wr, wg, wb = LUMA_WEIGHTS
    y = x[1].astype(np.float32) * np.float32(wg)
    y += x[0] * np.float32(wr)
    y += x[2] * np.float32(wb)
    return y


def _lum_of(img: np.ndarray) -> np.ndarray:
    """(3, H, W) -> luminance; (H, W) is taken as a luminance already."""
    x = np.asarray(img)
    if x.ndim == 2:
        return x.astype(np.float32, copy=False)
    return luminance(x)


def _pair_lum(output: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yo, yr = _lum_of(output), _lum_of(reference)
    if yo.shape != yr.shape:
        raise ShapeError(f"output is {yo.shape[::-1]} (WxH) but reference is {yr.shape[::-1]}")
    return yo, yr


def _check_mask(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask, dtype=bool)
    if m.shape != shape:
        raise ShapeError(f"mask must have shape {shape}, got {m.shape}")
    return m


def _valid_log(yo: np.ndarray, yr: np.ndarray, floor: float, mask: np.ndarray | None) -> np.ndarray:
    valid = np.isfinite(yo) & np.isfinite(yr) & (yo > floor) & (yr > floor)
    m = _check_mask(mask, yo.shape)
    return valid if m is None else valid & m


def _log_ratio(yo: np.ndarray, yr: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """log2(yo / yr) where valid, 0 elsewhere; float32 (H, W)."""
    r = np.zeros(yo.shape, dtype=np.float32)
    r[valid] = np.log2(yo[valid] / yr[valid])
    return r


def psnr(
    a: np.ndarray, b: np.ndarray, *, peak: float = 1.0, mask: np.ndarray | None = None
) -> float:
    """Peak signal-to-noise ratio ``10 log10(peak**2 / mean((a - b)**2))``.

    Shapes: a, b same shape, (H, W) or (C, H, W); mask (H, W) (broadcast over C) or the
        full shape.
    Units: dB; ``peak`` on the data's linear scale (1.0 = sensor clip).
    Returns: ``inf`` for identical inputs (zero error), ``nan`` when no pixel is selected.
        Non-finite pixels are left out.
    Raises: ShapeError on mismatched shapes.
    """
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape:
        raise ShapeError(f"psnr needs equal shapes, got {x.shape} and {y.shape}")
    sel = np.isfinite(x) & np.isfinite(y)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape not in (x.shape, x.shape[-2:]):
            raise ShapeError(f"mask {m.shape} does not fit data {x.shape}")
        sel &= np.broadcast_to(m, x.shape)
    n = int(np.count_nonzero(sel))
    if n == 0:
        return float("nan")
    d = x[sel].astype(np.float64) - y[sel]
    mse = float(np.dot(d, d) / n)
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(peak * peak / mse)


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    *,
    data_range: float = 1.0,
    mask: np.ndarray | None = None,
    win_size: int = 7,
) -> float:
    """Mean structural similarity of two single-channel images (skimage, uniform window).

    The SSIM map is from ``skimage.metrics.structural_similarity(full=True)``; its mean is
    taken over ``mask`` minus the half-window border (as skimage does). Images smaller than
    the window use the largest odd window that fits (at least 3).

    Shapes: a, b (H, W); mask (H, W).
    Units: dimensionless, 1.0 = identical; ``data_range`` on the data's linear scale.
    Returns: ``nan`` when the image is smaller than 3x3 or no pixel is selected.
    Raises: ShapeError on mismatched or non-2-D shapes.
    """
    from skimage.metrics import structural_similarity

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 2 or x.shape != y.shape:
        raise ShapeError(f"ssim needs two equal (H, W) images, got {x.shape} and {y.shape}")
    m = _check_mask(mask, x.shape)
    win = min(win_size, min(x.shape) - (1 - min(x.shape) % 2))
    if win < 3:
        return float("nan")
    _, smap = structural_similarity(x, y, win_size=win, data_range=data_range, full=True)
    pad = (win - 1) // 2
    sel = np.zeros(x.shape, dtype=bool)
    sel[pad : x.shape[0] - pad, pad : x.shape[1] - pad] = True
    if m is not None:
        sel &= m
    if not sel.any():
        return float("nan")
    return float(np.mean(smap[sel]))


# --------------------------------------------------------------------------- anchor


@dataclass(frozen=True)
class CfaErrorStats(_ToDict):
    """Statistics of ``F(output) - anchor`` over one CFA plane's valid pixels.

    Units: Mosaic12 (1.0 = sensor clip). All NaN and ``count`` 0 for an empty plane.
    """

    mean: float
    std: float
    rmse: float
    p01: float
    p50: float
    p99: float
    count: int


def _error_stats(d: np.ndarray) -> CfaErrorStats:
    if d.size == 0:
        nan = float("nan")
        return CfaErrorStats(nan, nan, nan, nan, nan, nan, 0)
    d64 = d.astype(np.float64, copy=False)
    p01, p50, p99 = np.percentile(d64, [1.0, 50.0, 99.0])
    return CfaErrorStats(
        mean=float(d64.mean()),
        std=float(d64.std()),
        rmse=float(math.sqrt(np.dot(d64, d64) / d64.size)),
        p01=float(p01),
        p50=float(p50),
        p99=float(p99),
        count=int(d64.size),
    )


@dataclass(frozen=True)
class AnchorMetrics(_ToDict):
    """F(output) against the RAW12 anchor (DESIGN §3), over the anchor's unclipped pixels.

    Attributes:
        psnr_db: PSNR in dB, peak 1.0 (clip), over valid pixels; inf if exact.
        ssim: mean of ``ssim_per_cfa`` (SSIM computed per CFA plane, data_range 1).
        ssim_per_cfa: SSIM of each of the R, Gr, Gb, B planes.
        mae: mean |F(output) - anchor| over valid pixels (Mosaic12 units).
        per_cfa: error statistics per plane R, Gr, Gb, B.
        n_valid: pixels compared.
        n_clipped: pixels left out because the anchor is at or above ``clip``.
        n_masked: pixels left out by the caller's mask or for non-finite values.
        n_clip_violations: clipped anchor pixels where F(output) < clip, i.e. the output is
            darker than a value the sensor proved is at least the clip level.
        clip: the clip threshold used (Mosaic12 units).
    """

    psnr_db: float
    ssim: float
    ssim_per_cfa: dict[str, float]
    mae: float
    per_cfa: dict[str, CfaErrorStats]
    n_valid: int
    n_clipped: int
    n_masked: int
    n_clip_violations: int
    clip: float


def _check_anchor(camera48: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    a = np.asarray(anchor)
    cam_shape = np.shape(camera48)
    if a.ndim != 2 or len(cam_shape) != 3 or a.shape != (cam_shape[1] // 2, cam_shape[2] // 2):
        raise ShapeError(
            f"anchor is {a.shape[::-1]} (WxH) but Camera48 {cam_shape[1:][::-1]} needs an "
            "anchor of exactly half its size in each axis"
        )
    return a.astype(np.float32, copy=False)


def anchor_metrics(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    clip: float = 0.98,
    mask: np.ndarray | None = None,
) -> AnchorMetrics:
    """Consistency of an output with the RAW12 anchor: F(camera48) vs anchor.

    Which pixels count: a pixel whose **anchor** is at or above ``clip`` carries no
    information about the true value (only a lower bound), so it is excluded and counted in
    ``n_clipped``; a pixel where only F(output) is above ``clip`` is a genuine error and is
    kept. Clipped anchor pixels where F(output) < clip are counted as ``n_clip_violations``.
    SSIM is computed per CFA plane (each plane is a single-colour image; SSIM windows across
    the raw mosaic would mix colours) on ``min(x, clip)`` of both sides, so clipped areas
    agree whenever the output is at least the clip level there, and averaged over valid
    pixels.

    Shapes: camera48 (3, H48, W48); anchor (H48/2, W48/2); mask (H48/2, W48/2).
    Units: Mosaic12 (1.0 = sensor clip) for both, after lens shading of the anchor.
    Raises: ShapeError if the anchor is not exactly half of camera48 in each axis.
    """
    a = _check_anchor(camera48, anchor)
    pred = forward_np(camera48, cfa)
    user = _check_mask(mask, a.shape)
    finite = np.isfinite(a) & np.isfinite(pred)
    usable = finite if user is None else finite & user
    clipped = usable & (a >= clip)
    valid = usable & ~clipped
    diff = pred.astype(np.float64) - a
    d_valid = diff[valid]
    n_valid = int(d_valid.size)
    mae = float(np.abs(d_valid).mean()) if n_valid else float("nan")

    diff_planes = cfa_planes(diff, cfa)
    valid_planes = cfa_planes(valid, cfa)
    pred_c = cfa_planes(np.minimum(pred, np.float32(clip)), cfa)
    a_c = cfa_planes(np.minimum(a, np.float32(clip)), cfa)
    per_cfa = {n: _error_stats(diff_planes[n][valid_planes[n]]) for n in PLANE_NAMES}
    ssim_per_cfa = {
        n: ssim(pred_c[n], a_c[n], data_range=1.0, mask=valid_planes[n]) for n in PLANE_NAMES
    }
    ssim_values = [v for v in ssim_per_cfa.values() if math.isfinite(v)]
    return AnchorMetrics(
        psnr_db=psnr(pred, a, peak=1.0, mask=valid),
        ssim=float(np.mean(ssim_values)) if ssim_values else float("nan"),
        ssim_per_cfa=ssim_per_cfa,
        mae=mae,
        per_cfa=per_cfa,
        n_valid=n_valid,
        n_clipped=int(np.count_nonzero(clipped)),
        n_masked=int(a.size - np.count_nonzero(usable)),
        n_clip_violations=int(np.count_nonzero(clipped & (pred < clip))),
        clip=float(clip),
    )


def _hist_linear(pred: np.ndarray, a: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    return pred.astype(np.float64) - a, np.ones(a.shape, dtype=bool)


def _hist_ev(pred: np.ndarray, a: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    ok = (pred > floor) & (a > floor)
    ratio = np.divide(pred, a, out=np.ones(a.shape, dtype=np.float64), where=ok)
    return np.log2(ratio), ok


_HIST_VALUES = {"linear": _hist_linear, "ev": _hist_ev}


def cfa_error_histograms(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    bins: int | np.ndarray = 128,
    scale: HistogramScale = "linear",
    mask: np.ndarray | None = None,
    roi: tuple[int, int, int, int] | None = None,
    clip: float = 0.98,
    floor: float = DEFAULT_FLOOR,
    value_range: tuple[float, float] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-CFA-plane histograms of the anchor error, for the GUI.

    ``scale="linear"``: ``F(output) - anchor`` (Mosaic12 units). ``scale="ev"``:
    ``log2(F(output) / anchor)`` where both exceed ``floor``. Pixels as in
    :func:`anchor_metrics` (anchor >= clip, non-finite and masked-out pixels left out).
    All four planes share one set of edges: ``bins`` edges if an array, else ``bins`` equal
    bins over ``value_range``, by default symmetric about 0 out to the larger of |0.5th| and
    |99.5th| percentile of all planes' values. Values beyond the range are counted in the
    end bins, so the counts add up to the pixels used.

    Shapes: camera48 (3, H48, W48); anchor, mask (H48/2, W48/2); ``roi`` = (y0, y1, x0, x1)
        on the 12MP grid, half-open (any phase: the CFA is re-phased for the crop).
        Returns {plane: (counts int64 (B,), edges float64 (B+1,))} for R, Gr, Gb, B.
    Units: edges in Mosaic12 units (linear) or EV (ev).
    Raises: ConfigError for an unknown scale; ShapeError for a bad anchor, mask or roi.
    """
    if scale not in _HIST_VALUES:
        raise ConfigError(f"scale must be one of {', '.join(_HIST_VALUES)}, got {scale!r}")
    a = _check_anchor(camera48, anchor)
    user = _check_mask(mask, a.shape)
    cam = np.asarray(camera48)
    pattern = cfa
    if roi is not None:
        y0, y1, x0, x1 = (int(v) for v in roi)
        if not (0 <= y0 < y1 <= a.shape[0] and 0 <= x0 < x1 <= a.shape[1]):
            raise ShapeError(f"roi {roi} is empty or outside the 12MP frame {a.shape}")
        cam = cam[:, 2 * y0 : 2 * y1, 2 * x0 : 2 * x1]
        a = a[y0:y1, x0:x1]
        user = None if user is None else user[y0:y1, x0:x1]
        pattern = cfa.shifted(y0 % 2, x0 % 2)
    pred = forward_np(cam, pattern)
    values, ok = _HIST_VALUES[scale](pred, a, floor)
    ok &= np.isfinite(a) & np.isfinite(pred) & (a < clip)
    if user is not None:
        ok &= user
    v_planes, ok_planes = cfa_planes(values, pattern), cfa_planes(ok, pattern)
    per_plane = {n: v_planes[n][ok_planes[n]] for n in PLANE_NAMES}
    if isinstance(bins, (int, np.integer)):
        if value_range is None:
            pooled = np.concatenate(list(per_plane.values()))
            lim = float(np.max(np.abs(np.percentile(pooled, [0.5, 99.5])))) if pooled.size else 0
            lim = lim if lim > 0 else (1e-6 if scale == "linear" else 1e-3)
            value_range = (-lim, lim)
        edges = np.linspace(value_range[0], value_range[1], int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for n, v in per_plane.items():
        counts, _ = np.histogram(np.clip(v, edges[0], edges[-1]), bins=edges)
        out[n] = (counts.astype(np.int64), edges.copy())
    return out


# --------------------------------------------------------------------------- filtering


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur, zero outside the image (pair with a blurred weight: normalized conv)."""
    return ndimage.gaussian_filter(x, sigma, mode="constant", cval=0.0, truncate=_TRUNCATE)


def _nconv(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Normalized convolution ``G(v w) / G(w)``; 0 where no weight is within reach."""
    num = _gauss(values * weights, sigma)
    den = _gauss(weights, sigma)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 1e-6)


def _block_sum(x: np.ndarray, k: int) -> np.ndarray:
    """Sum over k x k blocks; the image is zero-padded up to a multiple of k."""
    h, w = x.shape
    hp, wp = -(-h // k) * k, -(-w // k) * k
    padded = np.zeros((hp, wp), dtype=np.float64)
    padded[:h, :w] = x
    return padded.reshape(hp // k, k, wp // k, k).sum(axis=(1, 3))


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    v, cw = values[order], np.cumsum(weights[order])
    return float(v[np.searchsorted(cw, 0.5 * cw[-1])])


def _scale(shape: tuple[int, int], scale: float | None) -> float:
    return float(scale) if scale is not None else math.hypot(*shape) / REFERENCE_DIAG_PX


# --------------------------------------------------------------------------- scene metrics


def ltm_residual(
    output: np.ndarray,
    reference: np.ndarray,
    *,
    sigma_frac: float = 0.03,
    floor: float = DEFAULT_FLOOR,
    mask: np.ndarray | None = None,
) -> float:
    """Residual local tone mapping of ``output`` against ``reference``, in EV.

    Definition: ``r = log2(Y_out / Y_ref)`` per valid pixel (Y = :func:`luminance`);
    ``R = G_sigma * r``, a normalized Gaussian low-pass (invalid pixels and outside the
    image carry no weight) with ``sigma = sigma_frac * hypot(H, W)``; ``m`` = the median of
    R over valid pixels (one global gain is allowed); result = RMS of ``R - m`` over valid
    pixels. 0 = no spatially varying gain left. A sinusoidal log gain of amplitude A EV and
    wavelength lambda gives about ``A / sqrt(2) * exp(-2 pi^2 sigma^2 / lambda^2)``.

    Computed on k x k block sums with ``k = floor(sigma / 4)`` (sigma >= 4 cells): the
    block pre-filter widens sigma by under 0.3 %, and a 48MP frame takes well under a second.

    Shapes: output, reference (3, H, W) Camera48 or (H, W) luminance; mask (H, W).
    Units: EV (log2). Returns nan if no pixel is valid.
    Raises: ShapeError on mismatched shapes.
    """
    yo, yr = _pair_lum(output, reference)
    valid = _valid_log(yo, yr, floor, mask)
    if not valid.any():
        return float("nan")
    r = _log_ratio(yo, yr, valid)
    sigma = sigma_frac * math.hypot(*yo.shape)
    k = max(1, int(sigma // 4))
    w_blocks = _block_sum(valid.astype(np.float32), k)
    r_blocks = _block_sum(r, k)
    low = _nconv(
        np.divide(r_blocks, w_blocks, out=np.zeros_like(r_blocks), where=w_blocks > 0),
        w_blocks,
        sigma / k,
    )
    sel = w_blocks > 0
    lv, wv = low[sel], w_blocks[sel]
    dev = lv - _weighted_median(lv, wv)
    return float(math.sqrt(np.sum(wv * dev * dev) / np.sum(wv)))


@dataclass(frozen=True)
class _HaloFields:
    band: np.ndarray  # (h, w) halo band H, EV, working resolution
    zone: np.ndarray  # (h, w) bool, near strong reference edges and valid
    valid: np.ndarray  # (h, w) bool
    k: int  # working-resolution binning factor


def _bin_mean(x: np.ndarray, k: int) -> np.ndarray:
    if k == 1:
        return x
    h, w = x.shape
    padded = np.pad(x, ((0, -h % k), (0, -w % k)), mode="edge")
    return padded.reshape(padded.shape[0] // k, k, padded.shape[1] // k, k).mean(
        axis=(1, 3), dtype=np.float32
    )


def _halo_fields(
    output: np.ndarray,
    reference: np.ndarray,
    *,
    sigma_fine_px: float,
    sigma_coarse_px: float,
    edge_ev: float,
    eps_ev2: float,
    scale: float | None,
    floor: float,
    mask: np.ndarray | None,
    max_pixels: int,
) -> _HaloFields:
    yo, yr = _pair_lum(output, reference)
    s = _scale(yo.shape, scale)
    valid_full = _valid_log(yo, yr, floor, mask)
    k = max(1, math.ceil(math.sqrt(yo.size / max_pixels)))
    if k > 1:
        yo = _bin_mean(np.where(valid_full, yo, 0), k)
        yr_b = _bin_mean(np.where(valid_full, yr, 0), k)
        frac = _bin_mean(valid_full.astype(np.float32), k)
        valid = frac > 0.999
        yo = np.divide(yo, frac, out=np.zeros_like(yo), where=valid)
        yr = np.divide(yr_b, frac, out=np.zeros_like(yr_b), where=valid)
    else:
        valid = valid_full
    sf = max(sigma_fine_px * s / k, 0.5)
    sc = max(sigma_coarse_px * s / k, 2.0 * sf)
    w = valid.astype(np.float32)
    r = _log_ratio(yo, yr, valid)
    lum = np.zeros_like(r)
    lum[valid] = np.log2(yr[valid])
    fine_l = _nconv(lum, w, sf)
    band_r = _nconv(r, w, sf) - _nconv(r, w, sc)
    band_l = fine_l - _nconv(lum, w, sc)
    # Local least-squares fit band_r ~ a * band_l in Gaussian windows of the coarse sigma:
    # the part of the ratio's band-pass that follows the reference's own edges (an
    # edge-aware gain or a global curve) is explained; the rest is a halo.
    cross = _gauss(w * band_r * band_l, sc)
    power = _gauss(w * band_l * band_l, sc) + eps_ev2 * _gauss(w, sc)
    a = np.divide(cross, power, out=np.zeros_like(cross), where=power > 0)
    band = np.where(valid, band_r - a * band_l, np.float32(np.nan)).astype(np.float32)
    gy, gx = np.gradient(fine_l)
    threshold = edge_ev / (math.sqrt(2.0 * math.pi) * max(sf, 1.0))
    edges = (np.hypot(gx, gy) >= threshold) & valid
    radius = math.ceil(2.0 * sc)
    zone = ndimage.maximum_filter(edges.astype(np.uint8), size=2 * radius + 1) > 0
    return _HaloFields(band=band, zone=zone & valid, valid=valid, k=k)


def halo_map(
    output: np.ndarray,
    reference: np.ndarray,
    *,
    sigma_fine_px: float = 2.0,
    sigma_coarse_px: float = 16.0,
    edge_ev: float = 1.0,
    eps_ev2: float = 1e-3,
    scale: float | None = None,
    floor: float = DEFAULT_FLOOR,
    mask: np.ndarray | None = None,
    max_pixels: int = 13_000_000,
) -> np.ndarray:
    """Signed halo band of ``output`` against ``reference`` (for the GUI), in EV.

    Definition (all in log2, Y = :func:`luminance`, invalid pixels carry no weight):

    1. ``r = log2(Y_out / Y_ref)``, ``l = log2(Y_ref)``.
    2. Band-pass both with a difference of Gaussians at mid scales:
       ``B_r = G_f r - G_c r``, ``B_l = G_f l - G_c l``, with ``sigma_f = sigma_fine_px * s``
       and ``sigma_c = sigma_coarse_px * s``; sigma_*_px are in pixels of the 48MP frame and
       ``s = hypot(H, W) / 10080`` (or ``scale``) maps them onto this image.
    3. Remove what the reference's own structure explains: ``a = G_c(B_r B_l) /
       (G_c(B_l^2) + eps)`` (a local least-squares slope), ``H = B_r - a B_l``. A global
       gain gives ``B_r = 0``; an edge-aware gain or a pointwise tone curve changes the
       ratio in step with the reference's edges, so ``B_r = a B_l`` and ``H ~ 0``. A gain
       computed from a blurred luminance (the classic halo) changes *across* an edge over
       the blur width while the reference is flat there: that survives in H as the
       overshoot/undershoot bands.

    Images above ``max_pixels`` are first binned k x k (a 48MP frame 2x2) to bound time;
    the map is returned at full size (nearest upsampling). Pixels that are not valid are
    NaN.

    Shapes: output, reference (3, H, W) Camera48 or (H, W) luminance; mask (H, W);
        returns float32 (H, W).
    Units: EV.
    Raises: ShapeError on mismatched shapes.
    """
    f = _halo_fields(
        output,
        reference,
        sigma_fine_px=sigma_fine_px,
        sigma_coarse_px=sigma_coarse_px,
        edge_ev=edge_ev,
        eps_ev2=eps_ev2,
        scale=scale,
        floor=floor,
        mask=mask,
        max_pixels=max_pixels,
    )
    h, w = np.shape(output)[-2:]
    if f.k == 1:
        return f.band
    up = np.repeat(np.repeat(f.band, f.k, axis=0), f.k, axis=1)
    return np.ascontiguousarray(up[:h, :w])


def halo_indicator(
    output: np.ndarray,
    reference: np.ndarray,
    *,
    sigma_fine_px: float = 2.0,
    sigma_coarse_px: float = 16.0,
    edge_ev: float = 1.0,
    eps_ev2: float = 1e-3,
    scale: float | None = None,
    floor: float = DEFAULT_FLOOR,
    mask: np.ndarray | None = None,
    max_pixels: int = 13_000_000,
) -> float:
    """Halo strength near strong edges: RMS of :func:`halo_map`'s H there, in EV.

    The edge zone: pixels where the reference's ``|grad G_f l|`` reaches
    ``edge_ev / (sqrt(2 pi) * max(sigma_f, 1))`` (the peak slope of an ``edge_ev``-EV step
    blurred by ``sigma_f``, i.e. luminance steps of about ``edge_ev`` EV or more), dilated by
    ``ceil(2 sigma_c)`` pixels (a square), where halos of this band live. Parameters as in
    :func:`halo_map`.

    Shapes: output, reference (3, H, W) or (H, W); mask (H, W).
    Units: EV; 0 = no halo. Returns nan when the reference has no strong edge.
    Raises: ShapeError on mismatched shapes.
    """
    f = _halo_fields(
        output,
        reference,
        sigma_fine_px=sigma_fine_px,
        sigma_coarse_px=sigma_coarse_px,
        edge_ev=edge_ev,
        eps_ev2=eps_ev2,
        scale=scale,
        floor=floor,
        mask=mask,
        max_pixels=max_pixels,
    )
    if not f.zone.any():
        return float("nan")
    vals = f.band[f.zone].astype(np.float64)
    return float(math.sqrt(np.dot(vals, vals) / vals.size))


def gradient_correlation(
    output: np.ndarray,
    reference: np.ndarray,
    *,
    floor: float = DEFAULT_FLOOR,
    mask: np.ndarray | None = None,
) -> float:
    """Detail retention: Pearson correlation of the gradient fields of log2 luminance.

    Gradients are forward differences of ``log2(max(Y, floor))`` along x and along y; both
    components of every pixel pair whose two pixels are valid (finite, above ``floor`` in
    both images, in ``mask``) form one vector per image, and the result is their Pearson
    correlation. Log luminance makes it independent of a global gain and weights shadows and
    highlights alike (detail is contrast).

    Shapes: output, reference (3, H, W) or (H, W); mask (H, W).
    Units: dimensionless, 1.0 = identical detail. nan when there is no gradient at all.
    Raises: ShapeError on mismatched shapes.
    """
    yo, yr = _pair_lum(output, reference)
    valid = _valid_log(yo, yr, floor, mask)
    lo = np.log2(np.maximum(yo, np.float32(floor)))
    lr = np.log2(np.maximum(yr, np.float32(floor)))
    # Running sums over both components (no concatenated copies: a 48MP frame stays fast).
    n = 0
    s_o = s_r = s_oo = s_rr = s_or = 0.0
    for axis in (1, 0):
        pair_ok = np.logical_and(
            valid[:, 1:] if axis == 1 else valid[1:], valid[:, :-1] if axis == 1 else valid[:-1]
        )
        go = np.where(pair_ok, np.diff(lo, axis=axis), np.float32(0))
        gr = np.where(pair_ok, np.diff(lr, axis=axis), np.float32(0))
        n += int(np.count_nonzero(pair_ok))
        s_o += float(go.sum(dtype=np.float64))
        s_r += float(gr.sum(dtype=np.float64))
        s_oo += float(np.square(go).sum(dtype=np.float64))
        s_rr += float(np.square(gr).sum(dtype=np.float64))
        go *= gr
        s_or += float(go.sum(dtype=np.float64))
    if n < 2:
        return float("nan")
    cov = s_or - s_o * s_r / n
    var_o = s_oo - s_o * s_o / n
    var_r = s_rr - s_r * s_r / n
    denom = math.sqrt(max(var_o, 0.0) * max(var_r, 0.0))
    return float(min(1.0, max(-1.0, cov / denom))) if denom > 0 else float("nan")


@dataclass(frozen=True)
class ChromaStability(_ToDict):
    """Local colour casts of output against reference, per grid cell.

    Attributes:
        max_abs_dev_ev: largest |deviation| over cells and both ratios, EV (nan if none).
        worst_cell: (row, col) of that cell, or None.
        worst_ratio: "R/G" or "B/G" for that deviation ("" if none).
        global_median_ev: (R/G, B/G) global median log2 ratios removed first, EV.
        deviation_map: float32 (gv, gh, 2): per cell median log2((X/G)_out / (X/G)_ref)
            minus the global median, [..., 0] = R/G, [..., 1] = B/G; NaN for empty cells.
        grid: (gv, gh).
    """

    max_abs_dev_ev: float
    worst_cell: tuple[int, int] | None
    worst_ratio: str
    global_median_ev: tuple[float, float]
    deviation_map: np.ndarray
    grid: tuple[int, int]


def chroma_stability(
    output: np.ndarray,
    reference: np.ndarray,
    *,
    grid: tuple[int, int] = (6, 8),
    floor: float = DEFAULT_FLOOR,
    mask: np.ndarray | None = None,
    stride: int = 1,
) -> ChromaStability:
    """Spatial stability of chromaticity: does the output carry local colour casts?

    Per valid pixel (all three channels above ``floor`` in both images, finite, in mask),
    ``d_R = log2((R/G)_out / (R/G)_ref)`` and ``d_B`` likewise. The global medians of d_R and
    d_B are removed (a global white-balance difference is allowed); the image is split into
    ``grid = (gv, gh)`` near-equal cells and each cell's medians are the map. ``stride``
    subsamples pixels (2 = every other row and column) for speed on 48MP frames.

    Shapes: output, reference (3, H, W) Camera48; mask (H, W). Map (gv, gh, 2).
    Units: EV.
    Raises: ShapeError on mismatched shapes or a grid larger than the image.
    """
    o, r = np.asarray(output), np.asarray(reference)
    if o.ndim != 3 or o.shape[0] != 3 or o.shape != r.shape:
        raise ShapeError(f"chroma_stability needs two (3, H, W) images, got {o.shape}, {r.shape}")
    gv, gh = int(grid[0]), int(grid[1])
    if not (0 < gv <= o.shape[1] and 0 < gh <= o.shape[2]):
        raise ShapeError(f"grid {grid} does not fit an image of {o.shape[1:]}")
    m = _check_mask(mask, o.shape[1:])
    o, r = o[:, ::stride, ::stride], r[:, ::stride, ::stride]
    if m is not None:
        m = m[::stride, ::stride]
    valid = np.all(np.isfinite(o) & np.isfinite(r) & (o > floor) & (r > floor), axis=0)
    if m is not None:
        valid &= m
    h, w = valid.shape
    dr = np.full((h, w), np.nan, dtype=np.float32)
    db = np.full((h, w), np.nan, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log2(o[1][valid]) - np.log2(r[1][valid])
        dr[valid] = np.log2(o[0][valid]) - np.log2(r[0][valid]) - lg
        db[valid] = np.log2(o[2][valid]) - np.log2(r[2][valid]) - lg
    if not valid.any():
        nan_map = np.full((gv, gh, 2), np.nan, dtype=np.float32)
        return ChromaStability(float("nan"), None, "", (float("nan"),) * 2, nan_map, (gv, gh))
    med = (float(np.median(dr[valid])), float(np.median(db[valid])))
    ys = np.linspace(0, h, gv + 1).round().astype(int)
    xs = np.linspace(0, w, gh + 1).round().astype(int)
    dev = np.full((gv, gh, 2), np.nan, dtype=np.float32)
    for i in range(gv):
        for j in range(gh):
            cell = (slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1]))
            v = valid[cell]
            if v.any():
                dev[i, j, 0] = np.median(dr[cell][v]) - med[0]
                dev[i, j, 1] = np.median(db[cell][v]) - med[1]
    if np.all(np.isnan(dev)):
        return ChromaStability(float("nan"), None, "", med, dev, (gv, gh))
    flat = int(np.nanargmax(np.abs(dev)))
    ci, cj, ch = np.unravel_index(flat, dev.shape)
    return ChromaStability(
        max_abs_dev_ev=float(abs(dev[ci, cj, ch])),
        worst_cell=(int(ci), int(cj)),
        worst_ratio=("R/G", "B/G")[int(ch)],
        global_median_ev=med,
        deviation_map=dev,
        grid=(gv, gh),
    )


@dataclass(frozen=True)
class TruthMetrics(_ToDict):
    """An output against the known scene (simulated data).

    Attributes:
        psnr_db: PSNR over all channels, peak 1.0, as is.
        gain: least-squares global gain g minimizing ||g * output - truth||^2.
        psnr_gain_fitted_db: PSNR of g * output against truth.
        ltm_residual_ev: :func:`ltm_residual` (EV).
        halo_indicator_ev: :func:`halo_indicator` (EV; nan without strong edges).
        gradient_correlation: :func:`gradient_correlation`.
    """

    psnr_db: float
    gain: float
    psnr_gain_fitted_db: float
    ltm_residual_ev: float
    halo_indicator_ev: float
    gradient_correlation: float


def truth_metrics(
    output: np.ndarray,
    truth: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    floor: float = DEFAULT_FLOOR,
) -> TruthMetrics:
    """All scene metrics of ``output`` against the ground-truth scene.

    Shapes: output, truth (3, H, W) Camera48; mask (H, W).
    Units: dB, EV, dimensionless as per field.
    Raises: ShapeError on mismatched shapes.
    """
    o, t = np.asarray(output), np.asarray(truth)
    if o.ndim != 3 or o.shape[0] != 3 or o.shape != t.shape:
        raise ShapeError(f"truth_metrics needs two (3, H, W) images, got {o.shape}, {t.shape}")
    m = _check_mask(mask, o.shape[1:])
    sel = np.all(np.isfinite(o) & np.isfinite(t), axis=0)
    if m is not None:
        sel &= m
    ov, tv = o[:, sel].astype(np.float64), t[:, sel].astype(np.float64)
    oo = float(np.sum(ov * ov))
    gain = float(np.sum(ov * tv) / oo) if oo > 0 else float("nan")
    fitted = float("nan")
    # The log-domain metrics ignore a global gain except through ``floor``, which decides
    # which pixels count: they see the output at the truth's exposure, so every method is
    # judged on the same pixels whatever its own exposure.
    o_log = o
    if math.isfinite(gain):
        fitted = psnr(o.astype(np.float64) * gain, t, peak=1.0, mask=sel)
        if gain > 0:
            o_log = (o * np.float32(gain)).astype(np.float32)
    return TruthMetrics(
        psnr_db=psnr(o, t, peak=1.0, mask=sel),
        gain=gain,
        psnr_gain_fitted_db=fitted,
        ltm_residual_ev=ltm_residual(o_log, t, floor=floor, mask=m),
        halo_indicator_ev=halo_indicator(o_log, t, floor=floor, mask=m),
        gradient_correlation=gradient_correlation(o_log, t, floor=floor, mask=m),
    )


def superpixel_rgb(mosaic12: np.ndarray, cfa: CfaPattern) -> np.ndarray:
    """(3, H12/2, W12/2) RGB from a Bayer mosaic: R, mean of the two greens, B per 2x2 cell.

    Shapes: mosaic12 (H12, W12), both even. Units: unchanged (Mosaic12).
    """
    planes = cfa_planes(mosaic12, cfa)
    g = 0.5 * (planes["Gr"].astype(np.float32) + planes["Gb"])
    return np.stack([planes["R"].astype(np.float32), g, planes["B"].astype(np.float32)])


def anchor_halo_indicator(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    mask: np.ndarray | None = None,
) -> float:
    """Halos of an output measured against the RAW12 anchor itself, in EV.

    :func:`halo_indicator` of F(camera48) against the anchor, both as superpixel RGB on
    the 2x2-cell grid of the RAW12 mosaic. The anchor is the physical (binned) scene, so
    any mid-scale band-pass mismatch next to its strong edges is a halo the conversion
    left or made; it needs no ground truth, so it works on real pairs (used as a safety
    check). ``mask`` (H12, W12): usable anchor pixels; a cell counts if all four are.

    Returns nan when the anchor has no strong edge.
    """
    pred = forward_np(camera48, cfa)
    cell_mask = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        cell_mask = m[0::2, 0::2] & m[0::2, 1::2] & m[1::2, 0::2] & m[1::2, 1::2]
    return halo_indicator(superpixel_rgb(pred, cfa), superpixel_rgb(anchor, cfa), mask=cell_mask)
