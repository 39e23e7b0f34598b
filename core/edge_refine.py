"""Edge-aware RAW-consistency refinement: a bilateral-grid gain fitted to the RAW12 anchor.

The model's output ``L`` should satisfy ``F(L) ~ anchor`` (DESIGN §3). What mismatch is
left is fitted as a gain, but not as a spatially smooth field (baseline B's estimator):
local tone mapping that was edge-aware (a bilateral base layer, exposure fusion) has a
gain that *steps* at luminance edges, and a smooth correction blurs that step into a
halo on both sides of the edge. Here the correction lives on a bilateral grid, indexed by
position *and* log luminance, and is sliced per 48MP pixel by that pixel's own luminance,
so it can step wherever the image steps:

1. ``p = F(L)`` on the RAW12 grid; every usable RAW12 pixel (unclipped, finite, not dark)
   is splatted into the grid at its position (nearest node; cells of ``cell12`` RAW12 px)
   and its log2 luminance (a tent over two bins of ``bin_ev``; the luminance of the 2x2
   48MP pixels it bins), with the weighted least-squares sums ``sum w a p`` and ``sum w p^2``,
   ``w = 1 / var(a)`` from the anchor's own noise model ``var = s a + o``
   (:func:`anchor_noise_model`, measured on the anchor): shadows, where a gain ratio is
   mostly read noise, count for what they carry.
2. Both sums are blurred with a Gaussian (``sigma_cells`` cells, ``sigma_bins`` bins);
   per grid node ``g = (sum w a p + tau g_c) / (sum w p^2 + tau)``: the least-squares
   gain, pulled where the node holds little data (``tau = 1 / coarse_prior_sd^2``)
   towards a coarse level ``g_c``, the same estimate from sums blurred 3x wider in
   position and luminance (itself pulled to 1, no correction, with ``1 / prior_sd^2``);
   clamped to +-4 EV. The coarse level is what nodes without data of their own should
   say: in read-noise-limited shadows the fine nodes fitted noise (mottle that reads as
   a halo at 50-400 px), and on texture finer than the RAW12 grid the anchor only has
   data at the quads' mean luminance, which no 48MP pixel has, so the pattern's own
   pixels were left uncorrected (the checkers scene fell back to the gain field).
3. Each 48MP pixel takes the trilinear interpolation of ``log2 g`` at its position and its
   own log2 luminance; every channel is multiplied by it (a colour-neutral gain).

Measured on the held-out simulated set (15 scenes, RAW12 512x384, two rounds; README "The
two-head model"), smooth refinement -> this one without its coarse level -> with it: LTM
residual 0.093 -> 0.030 -> 0.027 EV, halo indicator at LTM bands (16-128 and 50-400 px at
48MP) 0.071 / 0.071 -> 0.046 / 0.038 -> 0.042 / 0.031 EV, anchor PSNR 41.3 -> 43.05 ->
43.11 dB, truth PSNR 34.2 -> 35.5 -> 36.0 dB.

Before the fit, :func:`smooth_model_gain` takes the network's own gain variation between
8 and 64 px at each luminance out (shadow mottle the anchor is too noisy to correct; the
fit then puts back what the anchor supports at those scales).

Memory: the grid is (H12 / cell12 + 2) x (W12 / cell12 + 2) x (range / bin_ev + 2)
float32 (a 48MP frame with a 14 EV range: ~45 M nodes, 180 MB, two such sums while
fitting, plus a quarter of that for each of the coarse level's two pooled sums); splatting
and slicing run in row bands, so no other frame-sized temporary is made.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from core.cfa import CfaPattern
from core.errors import ShapeError
from core.forward import forward_np
from core.metrics import LUMA_WEIGHTS

__all__ = [
    "BilateralGain",
    "GridOptions",
    "SmoothOptions",
    "anchor_noise_model",
    "apply_bilateral_gain",
    "edge_aware_refine",
    "fit_bilateral_gain",
    "smooth_model_gain",
]

#: Anchor pixels at or above this fraction of the clip carry no gain information.
CLIP_FRACTION = 0.97
#: A prediction below this (Mosaic12 scale) is too dark to say anything about a gain.
DARK_FLOOR = 1e-4
#: Log2 luminance floor of the slicing guide, EV.
LOG_FLOOR_EV = -20.0
#: The grid spans at most this many EV of luminance (outliers are clamped onto its ends).
MAX_RANGE_EV = 24.0
#: Rows per band (RAW12 rows when splatting; 48MP rows when slicing).
_BAND_ROWS = 256


@dataclass(frozen=True)
class GridOptions:
    """Bilateral-grid parameters of the refinement.

    Attributes:
        cell12: cell size in RAW12 pixels (2 * cell12 48MP pixels).
        bin_ev: luminance bin width, EV.
        sigma_cells, sigma_bins: Gaussian blur of the least-squares sums, in cells / bins.
        coarse_sigma_cells, coarse_sigma_bins: blur of the same sums for the coarse level
            each node is pulled towards (0 cells: no coarse level, nodes are pulled to 1).
        coarse_prior_sd: gain standard deviation of that pull; dimensionless.
        prior_sd: gain standard deviation of the prior pulling the coarse level (or, without
            one, each node) to 1 (no correction) where it holds little data; dimensionless.
    """

    cell12: int = 4
    bin_ev: float = 0.25
    sigma_cells: float = 1.0
    sigma_bins: float = 1.0
    prior_sd: float = 1.0
    coarse_sigma_cells: float = 3.0
    coarse_sigma_bins: float = 3.0
    coarse_prior_sd: float = 0.5

    def __post_init__(self) -> None:
        if (
            self.cell12 < 1
            or self.bin_ev <= 0
            or min(self.sigma_cells, self.sigma_bins) < 0
            or min(self.coarse_sigma_cells, self.coarse_sigma_bins) < 0
            or min(self.prior_sd, self.coarse_prior_sd) <= 0
        ):
            raise ShapeError(
                f"invalid grid options {self}: need cell12 >= 1, bin_ev > 0, "
                "sigmas >= 0, prior sds > 0"
            )


@dataclass(frozen=True)
class BilateralGain:
    """A log2 gain on a bilateral grid.

    Attributes:
        log2_gain: float32 (gh, gw, nb): node (i, j, k) sits at RAW12 pixel
            (y12, x12) = (i * cell12, j * cell12) and log2 luminance ``lo_ev + k * bin_ev``.
        lo_ev: log2 luminance of bin 0, EV (luminance on the Camera48 scale).
        bin_ev: bin width, EV.
        cell12: cell size in RAW12 pixels (2 * cell12 48MP pixels).
    """

    log2_gain: np.ndarray
    lo_ev: float
    bin_ev: float
    cell12: int


def anchor_noise_model(anchor: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """Noise variance model ``s * A + o`` of the normalized anchor (shot + read noise).

    From differences of same-colour horizontal neighbours, binned by level (robust variance
    per bin, so texture inflates it little); a line through the bins, weighted by relative
    error so the dark bins (where read noise sets the floor) count as much as the bright.

    Shapes: anchor, valid (H12, W12). Units: (s, o) on the Mosaic12 scale; o > 0.
    """
    d = anchor[:, 2:] - anchor[:, :-2]
    lev = 0.5 * (anchor[:, 2:] + anchor[:, :-2])
    ok = valid[:, 2:] & valid[:, :-2]
    d, lev = d[ok], lev[ok]
    if d.size < 64:
        return 0.0, 1e-6
    step = max(1, d.size // 400_000)
    d, lev = d[::step], lev[::step]
    edges = np.quantile(lev, np.linspace(0.0, 1.0, 11))
    xs, vs = [], []
    for lo, hi in itertools.pairwise(edges):
        sel = (lev >= lo) & (lev <= hi)
        if sel.sum() < 16:
            continue
        xs.append(float(np.mean(lev[sel])))
        vs.append(float((1.4826 * np.median(np.abs(d[sel]))) ** 2 / 2.0))
    if len(xs) < 2:
        return 0.0, max(vs[0] if vs else 1e-6, 1e-12)
    x, v = np.asarray(xs), np.asarray(vs)
    if float(np.ptp(x)) <= 1e-6 * max(float(np.abs(x).max()), 1e-12):
        return 0.0, max(float(np.median(v)), 1e-12)  # one level only: no slope to fit
    s, o = np.polyfit(x, v, 1, w=1.0 / np.maximum(v, 1e-20))
    if s < 0:
        s, o = 0.0, float(np.min(v))
    o = max(float(o), 0.5 * float(v[int(np.argmin(x))]))
    return float(s), max(o, 1e-12)


def _luma_rows(camera48: np.ndarray, y0: int, y1: int) -> np.ndarray:
    """Luminance (float32, non-finite -> 0) of rows y0:y1 of a (3, H, W) frame."""
    wr, wg, wb = LUMA_WEIGHTS
    y = camera48[1, y0:y1].astype(np.float32) * np.float32(wg)
    y += camera48[0, y0:y1] * np.float32(wr)
    y += camera48[2, y0:y1] * np.float32(wb)
    return np.nan_to_num(y, copy=False, nan=0.0, posinf=0.0)


def _log2_floored(y: np.ndarray) -> np.ndarray:
    """log2 of ``max(y, 2**LOG_FLOOR_EV)``, in place."""
    np.maximum(y, np.float32(2.0**LOG_FLOOR_EV), out=y)
    return np.log2(y, out=y)


def _lum12(camera48: np.ndarray) -> np.ndarray:
    """log2 of the mean luminance of each RAW12 pixel's 2x2 48MP pixels: (H12, W12)."""
    h48, w48 = camera48.shape[1:]
    out = np.empty((h48 // 2, w48 // 2), np.float32)
    for y0 in range(0, h48, 2 * _BAND_ROWS):
        y1 = min(h48, y0 + 2 * _BAND_ROWS)
        quad = _luma_rows(camera48, y0, y1).reshape((y1 - y0) // 2, 2, w48 // 2, 2)
        out[y0 // 2 : y1 // 2] = _log2_floored(quad.mean(axis=(1, 3)))
    return out


def _bin_range(log2_lum: np.ndarray, bin_ev: float) -> tuple[float, float, int]:
    """(lo, hi, bins) of a grid's luminance axis: the 0.1-99.9 percentiles of ``log2_lum``
    (EV) widened by 1 EV each side, at least one bin and at most ``MAX_RANGE_EV`` wide;
    ``bins`` nodes of ``bin_ev`` cover it with one spare at each end."""
    lo = float(np.percentile(log2_lum, 0.1)) - 1.0
    hi = float(np.percentile(log2_lum, 99.9)) + 1.0
    hi = min(max(hi, lo + bin_ev), lo + MAX_RANGE_EV)
    return lo, hi, math.ceil((hi - lo) / bin_ev) + 2


def _pool2(a: np.ndarray) -> np.ndarray:
    """Sum over 2x2 blocks of nodes in position (bins kept), divided by 4: (ceil(gh/2), ...)."""
    gh, gw, nb = a.shape
    out = np.zeros(((gh + 1) // 2, (gw + 1) // 2, nb), np.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            sub = a[dy::2, dx::2]
            out[: sub.shape[0], : sub.shape[1]] += sub
    out *= np.float32(0.25)
    return out


def _coarse_level(
    num: np.ndarray, den: np.ndarray, opt: GridOptions, tau: np.float32
) -> np.ndarray:
    """The coarse gain level ``(G num + tau) / (G den + tau)`` on a 2x coarser position grid.

    ``G`` blurs by ``coarse_sigma_cells`` (in fine cells) and ``coarse_sigma_bins``. The sums
    are pooled 2x2 first (a quarter of the memory and of the blur's work; the pooling adds
    a 2-cell box to a 3-cell Gaussian). Shapes: (gh, gw, nb) in, (ceil(gh/2), ceil(gw/2), nb)
    out, float32.
    """
    sig = (opt.coarse_sigma_cells / 2, opt.coarse_sigma_cells / 2, opt.coarse_sigma_bins)
    n = _pool2(num)
    ndimage.gaussian_filter(n, sig, mode="constant", output=n)
    n += tau
    d = _pool2(den)
    ndimage.gaussian_filter(d, sig, mode="constant", output=d)
    d += tau
    n /= d
    return n


def _add_upsampled(num: np.ndarray, coarse: np.ndarray, tau: np.float32) -> None:
    """``num += tau * coarse`` upsampled bilinearly in position to num's grid, in row bands.

    Fine node ``i`` sits at coarse coordinate ``(i - 0.5) / 2`` (the centre of its 2x2
    block), clamped at the borders.
    """
    gh, gw, _ = num.shape
    ph, pw, _ = coarse.shape

    def axis(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = np.clip((np.arange(n) - 0.5) / 2.0, 0.0, m - 1.0)
        i0 = np.floor(c).astype(np.int64)
        return i0, np.minimum(i0 + 1, m - 1), (c - i0).astype(np.float32)

    y0, y1, wy = axis(gh, ph)
    x0, x1, wx = axis(gw, pw)
    wx3 = wx[None, :, None]
    for r0 in range(0, gh, 64):
        r1 = min(gh, r0 + 64)
        wyb = wy[r0:r1, None, None]
        rows = coarse[y0[r0:r1]] * (1 - wyb) + coarse[y1[r0:r1]] * wyb
        rows *= tau
        num[r0:r1] += rows[:, x0] * (1 - wx3) + rows[:, x1] * wx3


def fit_bilateral_gain(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    unclipped: np.ndarray | None = None,
    options: GridOptions | None = None,
) -> BilateralGain:
    """Fit the bilateral-grid gain with ``anchor ~ g * F(camera48)`` (module docstring).

    Shapes: camera48 (3, H48, W48) float32 Camera48 (Mosaic12 scale); anchor, unclipped
        (H48/2, W48/2); ``options`` default :class:`GridOptions`.
    Raises: ShapeError on mismatched shapes.
    """
    opt = options or GridOptions()
    cell12, bin_ev = opt.cell12, opt.bin_ev
    if camera48.ndim != 3 or camera48.shape[0] != 3:
        raise ShapeError(f"camera48 must be (3, H, W), got {camera48.shape}")
    h12, w12 = anchor.shape
    if camera48.shape[1:] != (2 * h12, 2 * w12):
        raise ShapeError(f"anchor {anchor.shape} is not half of camera48 {camera48.shape[1:]}")
    if unclipped is not None and unclipped.shape != anchor.shape:
        raise ShapeError(f"unclipped {unclipped.shape} does not match anchor {anchor.shape}")
    pred = forward_np(camera48, cfa)
    valid = (
        (anchor < CLIP_FRACTION if unclipped is None else unclipped)
        & np.isfinite(anchor)
        & np.isfinite(pred)
        & (pred > DARK_FLOOR)
        & (pred < 64.0)
    )
    s_noise, o_noise = anchor_noise_model(anchor, valid)
    lum = _lum12(camera48)
    finite = lum[valid] if valid.any() else lum.ravel()
    lo, hi, nb = _bin_range(finite, bin_ev)
    gh, gw = (h12 - 1) // cell12 + 2, (w12 - 1) // cell12 + 2
    num = np.zeros((gh, gw, nb), np.float32)
    den = np.zeros((gh, gw, nb), np.float32)
    # Each RAW12 pixel goes to its nearest node in position (the Gaussian below is the
    # spatial prefilter; a tent there cost 4x the bincounts for the same fit) and to its
    # two neighbouring bins in luminance (a tent: the slicing interpolates in luminance).
    ix = np.rint(np.arange(w12) / cell12).astype(np.int64)
    for y0 in range(0, h12, _BAND_ROWS):
        y1 = min(h12, y0 + _BAND_ROWS)
        v = valid[y0:y1]
        p = np.where(v, pred[y0:y1], 0.0)
        wgt = np.where(v, 1.0 / (s_noise * np.maximum(p, 0.0) + o_noise), 0.0)
        wap = wgt * np.where(v, anchor[y0:y1], 0.0) * p
        wpp = wgt * p * p
        iy = np.rint(np.arange(y0, y1) / cell12).astype(np.int64)[:, None]
        zs = (np.clip(lum[y0:y1], lo, hi) - lo) / bin_ev
        iz = np.floor(zs).astype(np.int64)
        fz = zs - iz
        # This band's grid rows only (bincount over them, added into the frame's sums).
        g0, g1 = int(iy[0, 0]), int(iy[-1, 0]) + 1
        size = (g1 - g0) * gw * nb
        cell = ((iy - g0) * gw + ix[None]) * nb
        for dz in (0, 1):
            wt = fz if dz else 1 - fz
            flat = (cell + iz + dz).ravel()
            num[g0:g1] += np.bincount(flat, (wt * wap).ravel(), minlength=size).reshape(
                g1 - g0, gw, nb
            )
            den[g0:g1] += np.bincount(flat, (wt * wpp).ravel(), minlength=size).reshape(
                g1 - g0, gw, nb
            )
    tau = np.float32(1.0 / opt.prior_sd**2)
    coarse = _coarse_level(num, den, opt, tau) if opt.coarse_sigma_cells > 0 else None
    sig = (opt.sigma_cells, opt.sigma_cells, opt.sigma_bins)
    ndimage.gaussian_filter(num, sig, mode="constant", output=num)
    ndimage.gaussian_filter(den, sig, mode="constant", output=den)
    if coarse is None:
        num += tau
        den += tau
    else:
        tau = np.float32(1.0 / opt.coarse_prior_sd**2)
        _add_upsampled(num, coarse, tau)
        del coarse
        den += tau
    num /= den
    del den
    np.maximum(num, np.float32(2.0**-4), out=num)
    gain = np.log2(num, out=num)
    np.clip(gain, -4.0, 4.0, out=gain)
    return BilateralGain(gain.astype(np.float32), lo, float(bin_ev), int(cell12))


def apply_bilateral_gain(
    camera48: np.ndarray,
    grid: BilateralGain,
    *,
    out: np.ndarray | None = None,
    guide: np.ndarray | None = None,
) -> tuple[np.ndarray, float, float]:
    """Multiply every pixel by the grid's gain sliced at its position and own luminance.

    Row bands of 48MP pixels; each pixel's grid coordinates are
    ``((y48 - 0.5) / 2 / cell12, (x48 - 0.5) / 2 / cell12, (log2 Y - lo_ev) / bin_ev)``
    (the 12MP <-> 48MP pixel-centre relation of DESIGN §4), interpolated trilinearly
    (``grid_sample``, border). ``Y`` is the luminance of ``guide`` when given (same shape),
    else of ``camera48``. ``out`` may be ``camera48`` itself (in place).
    Returns (image, min, max of the applied log2 gain).
    Shapes: (3, H48, W48) in and out.
    """
    if guide is not None and guide.shape != camera48.shape:
        raise ShapeError(f"guide {guide.shape} does not match {camera48.shape}")
    lum_src = camera48 if guide is None else guide
    h48, w48 = camera48.shape[1:]
    if out is None:
        out = np.empty_like(camera48, dtype=np.float32)
    gh, gw, nb = grid.log2_gain.shape
    vol = torch.from_numpy(np.ascontiguousarray(grid.log2_gain.transpose(2, 0, 1)))[None, None]
    gx = torch.from_numpy(
        ((np.arange(w48, dtype=np.float32) - 0.5) / 2 / grid.cell12) * (2.0 / max(gw - 1, 1)) - 1.0
    )
    lo_g, hi_g = math.inf, -math.inf
    z_scale = 2.0 / max(nb - 1, 1) / grid.bin_ev
    for y0 in range(0, h48, _BAND_ROWS):
        y1 = min(h48, y0 + _BAND_ROWS)
        lum = torch.from_numpy(_log2_floored(_luma_rows(lum_src, y0, y1)))
        gz = (lum - grid.lo_ev) * z_scale - 1.0
        gy = ((torch.arange(y0, y1, dtype=torch.float32) - 0.5) / 2 / grid.cell12) * (
            2.0 / max(gh - 1, 1)
        ) - 1.0
        coords = torch.stack(
            [gx[None].expand(y1 - y0, w48), gy[:, None].expand(y1 - y0, w48), gz], dim=-1
        )
        g = torch.nn.functional.grid_sample(
            vol, coords[None, None], mode="bilinear", padding_mode="border", align_corners=True
        )[0, 0, 0]
        lo_g, hi_g = min(lo_g, float(g.min())), max(hi_g, float(g.max()))
        mult = torch.exp2(g).numpy()
        for c in range(3):
            np.multiply(camera48[c, y0:y1], mult, out=out[c, y0:y1])
    np.maximum(out, 0.0, out=out)
    return out, lo_g, hi_g


def edge_aware_refine(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    unclipped: np.ndarray | None = None,
    iterations: int = 1,
    inplace: bool = False,
    options: GridOptions | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Fit and apply the bilateral-grid gain ``iterations`` times (module docstring).

    Camera48 in, Camera48 out (into ``camera48`` itself when ``inplace``); ``options``
    as in :func:`fit_bilateral_gain`. Returns (image, stats) with ``refine_log2_min`` /
    ``refine_log2_max``: the range of the applied log2 gain (summed over iterations).
    Shapes: camera48 (3, H48, W48); anchor, unclipped (H48/2, W48/2).
    """
    out = camera48 if inplace else np.array(camera48, dtype=np.float32, copy=True)
    lo_t = hi_t = 0.0
    for _ in range(max(1, iterations)):
        grid = fit_bilateral_gain(out, anchor, cfa, unclipped=unclipped, options=options)
        out, lo, hi = apply_bilateral_gain(out, grid, out=out)
        lo_t, hi_t = lo_t + lo, hi_t + hi
    return out, {"refine_log2_min": lo_t, "refine_log2_max": hi_t}


@dataclass(frozen=True)
class SmoothOptions:
    """Mid-scale smoothing of the network's gain (:func:`smooth_model_gain`).

    Attributes:
        cell12: cell size in RAW12 pixels (2 * cell12 48MP pixels).
        bin_ev: luminance bin width, EV.
        sigma_fine_cells, sigma_coarse_cells: the two spatial Gaussians (cells) whose
            difference is the band taken out; sigma_coarse_cells 0 turns the step off.
        sigma_bins: luminance Gaussian of both, in bins.
    """

    cell12: int = 4
    bin_ev: float = 1.0
    sigma_fine_cells: float = 1.0
    sigma_coarse_cells: float = 8.0
    sigma_bins: float = 0.5

    def __post_init__(self) -> None:
        if (
            self.cell12 < 1
            or self.bin_ev <= 0
            or min(self.sigma_fine_cells, self.sigma_bins) < 0
            or self.sigma_coarse_cells < 0
            or (self.sigma_coarse_cells and self.sigma_coarse_cells <= self.sigma_fine_cells)
        ):
            raise ShapeError(
                f"invalid smoothing options {self}: need cell12 >= 1, bin_ev > 0, sigmas >= 0, "
                "sigma_coarse_cells 0 or above sigma_fine_cells"
            )


def smooth_model_gain(
    output: np.ndarray,
    camera48: np.ndarray,
    *,
    options: SmoothOptions | None = None,
    inplace: bool = False,
) -> tuple[np.ndarray, dict[str, float]]:
    """Take the network's gain variation at mid scales out, before the RAW refinement.

    The network's gain ``G = log2(Y_out / Y_in)`` (``Y`` luminance, ``Y_in`` of
    ``camera48``, the ProRAW48 it was applied to) is averaged on a bilateral grid (position
    x log2 ``Y_in``; cells of ``cell12`` RAW12 px, bins of ``bin_ev``) twice, with a fine
    (``sigma_fine_cells``) and a coarse (``sigma_coarse_cells``) spatial Gaussian; each
    pixel is multiplied by ``2 ** (G_coarse - G_fine)`` sliced at its position and its
    ProRAW luminance. What the fine average keeps below its scale (the detail head, the
    gain's steps at luminance edges) stays; what varies between the two scales at one
    luminance goes: in read-noise-limited shadows the gain head turns the noisy ratio
    guide / ProRAW into mottle of 0.1-0.3 EV over 30-60 px (backlit foregrounds, night
    skies), which the anchor there is too noisy to correct and which the halo indicator's
    tone-mapping bands read as halos. The RAW-consistency refinement
    (:func:`edge_aware_refine`) runs afterwards and puts back what the anchor supports at
    those scales. Measured on both held-out sets (README, "The two-head model").

    The coarse level is computed on a 2x2-pooled grid (a quarter of the memory). Memory: the
    grid's two sums and their blurring (a 48MP frame with a 14 EV range: ~13 M nodes,
    ~50 MB each); splatting and slicing run in row bands. Defaults (cells of 8 48MP px,
    1 EV bins, sigma 1 / 8 cells, 0.5 bins) were chosen on the first held-out set and
    checked on the second; 0.5 EV bins measured the same and took twice the grid.
    Shapes: output, camera48 (3, H48, W48) float32; returns (image, stats) with
    ``smooth_log2_min`` / ``smooth_log2_max``: the range of the applied log2 gain.
    Raises: ShapeError on mismatched shapes or odd sizes.
    """
    opt = options or SmoothOptions()
    if output.ndim != 3 or output.shape[0] != 3 or output.shape != camera48.shape:
        raise ShapeError(f"output {output.shape} and camera48 {camera48.shape} must be (3, H, W)")
    h48, w48 = output.shape[1:]
    if h48 % 2 or w48 % 2:
        raise ShapeError(f"48MP frame {h48}x{w48} must have even sides")
    out = output if inplace else np.array(output, dtype=np.float32, copy=True)
    if opt.sigma_coarse_cells <= 0:
        return out, {"smooth_log2_min": 0.0, "smooth_log2_max": 0.0}
    cell48 = 2 * opt.cell12
    sample = _log2_floored(_luma_rows(camera48[:, ::4, ::4], 0, (h48 + 3) // 4))
    lo, hi, nb = _bin_range(sample, opt.bin_ev)
    gh, gw = (h48 // 2 - 1) // opt.cell12 + 2, (w48 // 2 - 1) // opt.cell12 + 2
    num = np.zeros((gh, gw, nb), np.float32)
    den = np.zeros((gh, gw, nb), np.float32)
    # The node nearest to each 48MP pixel centre (12MP coordinate (x48 - 0.5) / 2), and a
    # tent over two luminance bins (the slicing interpolates in luminance).
    # int32 indices and float32 weights, 128-row bands: the band temporaries, not the grid,
    # set this step's memory at 48MP.
    ix = np.clip(np.rint((np.arange(w48) - 0.5) / cell48), 0, gw - 1).astype(np.int32)
    floor = np.float32(2.0 ** (LOG_FLOOR_EV + 1))
    rows = _BAND_ROWS // 2
    for y0 in range(0, h48, rows):
        y1 = min(h48, y0 + rows)
        y_in = _luma_rows(camera48, y0, y1)
        y_out = _luma_rows(out, y0, y1)
        ok = (y_in > floor) & (y_out > floor)
        lin = _log2_floored(y_in)
        g = _log2_floored(y_out)
        g -= lin
        np.clip(g, -8.0, 8.0, out=g)
        g *= ok
        iy = np.clip(np.rint((np.arange(y0, y1) - 0.5) / cell48), 0, gh - 1).astype(np.int32)
        np.clip(lin, lo, hi, out=lin)
        lin -= np.float32(lo)
        lin /= np.float32(opt.bin_ev)  # now the bin coordinate
        iz = np.floor(lin).astype(np.int32)
        fz = lin - iz.astype(np.float32)  # weight of bin iz + 1
        g0, g1 = int(iy[0]), int(iy[-1]) + 1
        size = (g1 - g0) * gw * nb
        flat = (((iy[:, None] - g0) * gw + ix[None]) * nb + iz).ravel()
        del iz
        w1 = (fz * ok).ravel()
        w0 = ok.ravel() - w1
        for dz, wt in ((0, w0), (1, w1)):
            num[g0:g1] += np.bincount(flat + dz, wt * g.ravel(), minlength=size).reshape(
                g1 - g0, gw, nb
            )
            den[g0:g1] += np.bincount(flat + dz, wt, minlength=size).reshape(g1 - g0, gw, nb)
    # Coarse level on the 2x2-pooled grid (its Gaussian in pooled cells).
    sig_c = (opt.sigma_coarse_cells / 2, opt.sigma_coarse_cells / 2, opt.sigma_bins)
    n_c = ndimage.gaussian_filter(_pool2(num), sig_c, mode="constant")
    d_c = ndimage.gaussian_filter(_pool2(den), sig_c, mode="constant")
    eps = np.float32(1e-3)  # a thousandth of one pixel's weight: empty nodes read 0
    n_c /= d_c + eps
    del d_c
    sig_f = (opt.sigma_fine_cells, opt.sigma_fine_cells, opt.sigma_bins)
    ndimage.gaussian_filter(num, sig_f, mode="constant", output=num)
    ndimage.gaussian_filter(den, sig_f, mode="constant", output=den)
    # delta = G_coarse - G_fine, only where the fine level has data of its own.
    has = den > np.float32(0.01)
    den += eps
    num /= den
    del den
    np.negative(num, out=num)
    _add_upsampled(num, n_c, np.float32(1.0))
    del n_c
    num *= has
    del has
    grid = BilateralGain(num, lo, float(opt.bin_ev), int(opt.cell12))
    out, lo_g, hi_g = apply_bilateral_gain(out, grid, out=out, guide=camera48)
    return out, {"smooth_log2_min": lo_g, "smooth_log2_max": hi_g}
