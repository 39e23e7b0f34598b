"""Final registration stage at the RAW12 pixel level: per-colour patch Lucas-Kanade.

Convention (DESIGN §3-4, issue 3): 48MP pixels, points ``(x, y)``, pixel centres at
integers, backward warping; ``W`` maps a pixel ``q`` of the RAW12-aligned 48MP output
grid to the Camera48 position it samples (``core.geometry.warp``). RAW12 pixel
``(x12, y12)`` is centred at 48MP ``(2 x12 + 0.5, 2 y12 + 0.5)`` and reads the mean of the
2x2 48MP pixels ``2 x12 .. 2 x12 + 1`` of its own colour (the forward operator ``F``). For
a locally translational warp, ``F(warp(cam))`` at that pixel is the 2x2 box mean of
``cam_c`` centred at ``W(2 x12 + 0.5, 2 y12 + 0.5)``: one bilinear sample of the colour's
2x2-box field. So every anchor pixel is compared with its own colour, at its own
position; nothing is demosaicked and the 48MP frame is never warped.

Why not the cell luminance of the coarse levels (``registration``): a Bayer cell mixes
four colours over 4x4 48MP px, so a tone curve applied per 48MP pixel (local tone mapping
is one) makes a cell straddling an edge no longer a fixed function of the anchor cell,
and coloured edges move the cell centroid; comparing per colour at 2x2 px halves the
mixing footprint and removes the colour mixing (docs/registration.md has the figures).

Model per patch of 32x32 RAW12 px (64x64 48MP px), LINEAR domain, both sides divided by
their colour medians::

    A(i, j) = o + (beta_c + bx x + by y) * B_c(s_ij + delta)
              + kappa_x B_c,xx(s_ij + delta) + kappa_y B_c,yy(s_ij + delta)

``A`` the anchor pixel, ``c`` its colour, ``B_c`` the 2x2-box field of Camera48 colour
``c`` (``B_xx``, ``B_yy`` its second differences), ``s_ij`` its source position under the
current warp, ``(x, y)`` in [-1, 1] across the patch. Unknowns: the shift ``delta`` and the
photometric terms: offset, one gain per colour and a linear gain trend (a local tone
mapping is a smooth gain on the scale of a patch), and the sharpness terms ``kappa`` (a
resampled or differently sharpened file blurs edges symmetrically; across a colour edge
the two sides are different Bayer phases with different contrasts, and without these
terms that blur moved edges by up to 0.44 px). Before the later rounds Camera48 may be
linearized per 48MP pixel by a smooth local tone exponent (``estimate_tone``). Uniform
weights inside a patch (Huber on a robust per-patch scale): per-pixel shot-noise weights
differ by 100x across a high-contrast edge and turn any symmetric mismatch of the edge
profile (blur, halo) into a shift. The information of ``delta`` is the Schur complement
over the photometric terms, divided by the residual variance. On full-size frames the
gain may also vary bilinearly between 5x5 knots per patch (the gain mesh,
``fit_pixel_patches``): a tone-mapping gain upsampled from low resolution ramps over
~10 px at every edge, and that ramp moves edges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from core.cfa import CfaPattern
from core.edge_refine import anchor_noise_model
from core.errors import ShapeError
from core.geometry.grids import pixel_to_normalized
from core.geometry.warp import WarpParams, flow_at, source_coords

__all__ = [
    "PIXEL_PATCH",
    "PatchFields",
    "PatchShifts",
    "PixelData",
    "PixelPatches",
    "estimate_tone",
    "fit_pixel_patches",
    "patch_fields",
    "patch_periods",
    "pixel_patches",
    "prepare_pixels",
]

PIXEL_PATCH = 32
"""Patch side in RAW12 pixels (64 48MP px; 16 Bayer cells, the coarse levels' patch)."""

_MIN_VALID = 0.6
_HUBER = 2.0  # Huber threshold in robust sigmas of the patch residual
_MAX_STEP_PX = 2.0
_PRIOR_PX = 2.0  # weak prior on delta: N(0, 2 px^2) per patch
_CLIP_MARGIN_PX = 2  # RAW12 px dropped around clipped or unusable anchor pixels
#: ``periodic_patches``: lags searched (48MP px), second-peak height and the dip before it.
PERIODIC_MAX_LAG_PX = 12
PERIODIC_MIN_PEAK = 0.6
PERIODIC_MIN_DIP = 0.3
MESH_SPACING = 8
"""Knot spacing of the per-patch gain mesh, RAW12 px (16 48MP px; 5x5 knots per patch)."""
_MESH_RIDGE = 1e-3  # ridge on the knots, relative to their mean normal-matrix diagonal


@dataclass(frozen=True)
class _Options:
    """Estimator variants (switchable for ablations: ``eval_register.py --no-tone``, ...).

    Attributes:
        blur_terms: photometric model includes ``kappa_x B_xx + kappa_y B_yy`` (a
            sharpness difference between the files).
        tone: estimate a smooth local tone exponent and linearize Camera48 with it
            (``registration`` does it between pixel rounds; see ``estimate_tone``).
        gain_mesh: the patch's gain also varies bilinearly between knots every
            ``MESH_SPACING`` RAW12 px (``fit_pixel_patches``); ``registration`` turns it
            on for full-size frames only (its preset's ``gain_mesh_min_side_px``).
    """

    blur_terms: bool = True
    tone: bool = True
    gain_mesh: bool = True

    @property
    def n_photo(self) -> int:
        """Photometric unknowns: o, beta_R, beta_G, beta_B, bx, by (+ kappa_x, kappa_y);
        the gain mesh's knots come on top of these (``_Mesh``)."""
        return 8 if self.blur_terms else 6


_OPTIONS = _Options()


def options() -> _Options:
    """The estimator variant in use (module state, for ablations in benchmarks)."""
    return _OPTIONS


@dataclass(frozen=True)
class PatchShifts:
    """Local shifts of K patches (what the parametric fit and the gate consume).

    Attributes:
        delta: (K, 2) float64 source-shift correction, 48MP px: the patch wants
            ``W(q) + delta`` instead of ``W(q)``.
        info: (K, 2, 2) float64 information of ``delta`` (inverse covariance, 1/px^2);
            zero for unusable patches.
        ncc: (K,) structure match of the aligned patch after its photometric fit (-1..1).
        usable: (K,) bool: enough valid pixels and a solvable system.
        textured: (K,) bool: anchor structure well above its noise.
        info_local: (K, 6, 6) float64 information of the patch's local affine motion
            ``(delta_x, delta_y, a_xx, a_xy, a_yx, a_yy)``: the source moves by
            ``delta + A (x, y)``, ``(x, y)`` in [-1, 1] across the patch (``A`` in 48MP
            px per half patch); same photometric nuisance and noise as ``info`` (its
            top-left 2x2 block is ``info``); zero for unusable patches; None where not
            computed (cell levels). A translation alone cannot see that a shift and a
            local stretch may cancel (radial structure under a zoom, a Siemens star),
            which this matrix does.
        ncc_fine: (K,) float64 structure match with more fitted out of both sides first:
            per-CFA-phase levels and smooth trends (per-phase ramps and a quadratic, or
            the gain mesh's tents where it is on); None where not computed (cell
            levels). Faint grain matched through the anchor's noise keeps a clear score
            here, while a gain mesh fitted to the anchor's own smooth noise does not.
    """

    delta: Tensor
    info: Tensor
    ncc: Tensor
    usable: Tensor
    textured: Tensor
    info_local: Tensor | None = None
    ncc_fine: Tensor | None = None


@dataclass(frozen=True)
class PixelPatches:
    """K patches of ``size`` x ``size`` RAW12 pixels.

    Attributes:
        oy, ox: (K,) int64 top-left RAW12 pixel, even (keeps the CFA phase).
        qx, qy: (K,) float64 patch centre on the 48MP output grid (``2 ox + size - 0.5``).
        size: side in RAW12 pixels (even; ``PIXEL_PATCH`` by default).
    """

    oy: Tensor
    ox: Tensor
    qx: Tensor
    qy: Tensor
    size: int = PIXEL_PATCH


@dataclass(frozen=True)
class PixelData:
    """The anchor and Camera48 prepared for the pixel stage.

    Attributes:
        anchor: (H12, W12) float32, each colour divided by its median over usable pixels.
        valid: (H12, W12) bool: usable anchor pixels (unclipped, finite, not within
            ``_CLIP_MARGIN_PX`` of an unusable one).
        camera: (3, H48, W48) float32 Camera48 as given (a view, not a copy).
        camera_scale: (3,) float32: ``1 / median`` of each Camera48 channel over the
            same pixels, applied to the samples (colour normalization of that side).
        colours: (2, 2) int: colour (0 R, 1 G, 2 B) of each RAW12 phase ``[y % 2][x % 2]``.
        noise: (a, b): anchor noise variance ``a * A + b`` in normalized units.
    """

    anchor: Tensor
    valid: Tensor
    camera: Tensor
    camera_scale: Tensor
    colours: tuple[tuple[int, int], tuple[int, int]]
    noise: tuple[float, float]


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of a 2-D bool mask by a (2 radius + 1)^2 square (separable)."""
    rows = mask.copy()
    for r in range(1, radius + 1):
        rows[r:] |= mask[:-r]
        rows[:-r] |= mask[r:]
    out = rows.copy()
    for r in range(1, radius + 1):
        out[:, r:] |= rows[:, :-r]
        out[:, :-r] |= rows[:, r:]
    return out


def prepare_pixels(
    camera48: np.ndarray, anchor: np.ndarray, cfa: CfaPattern, unclipped: np.ndarray | None
) -> PixelData:
    """Normalize both sides per colour and mark usable anchor pixels.

    Shapes: camera48 (3, H48, W48) float32 (kept as a view), anchor (H12, W12),
    unclipped (H12, W12) bool or None. Medians of each colour are taken over the usable
    anchor pixels on the anchor side and over the 48MP pixels those pixels cover on the
    Camera48 side (both subsampled), so a different colour balance of the two files
    cancels.
    """
    a = np.asarray(anchor, dtype=np.float32)
    h12, w12 = a.shape
    ok = np.isfinite(a)
    if unclipped is not None:
        ok &= np.asarray(unclipped, dtype=bool)
    cam = np.asarray(camera48)
    if cam.dtype != np.float32 or not cam.flags.writeable:
        cam = np.array(cam, dtype=np.float32)  # torch needs a writable float32 buffer
    pat = cfa.as_array()
    step = max(1, int(math.sqrt(h12 * w12 / 4 / 250_000)))  # ~250k samples per phase
    anchor_vals: list[list[np.ndarray]] = [[], [], []]
    camera_vals: list[list[np.ndarray]] = [[], [], []]
    for py in range(2):
        for px in range(2):
            c = int(pat[py, px])
            sub = ok[py :: 2 * step, px :: 2 * step]
            anchor_vals[c].append(a[py :: 2 * step, px :: 2 * step][sub])
            rows = 2 * (py + 2 * step * np.arange(sub.shape[0]))
            cols = 2 * (px + 2 * step * np.arange(sub.shape[1]))
            camera_vals[c].append(cam[c][np.ix_(rows, cols)][sub])
    med_a = np.ones(3)
    med_c = np.ones(3)
    for c in range(3):
        va = np.concatenate(anchor_vals[c]) if anchor_vals[c] else np.zeros(0, np.float32)
        vc = np.concatenate(camera_vals[c]) if camera_vals[c] else np.zeros(0, np.float32)
        if va.size and float(np.median(va)) > 1e-9:
            med_a[c] = float(np.median(va))
        if vc.size and float(np.median(vc)) > 1e-9:
            med_c[c] = float(np.median(vc))
    a_n = np.where(ok, a, np.float32(0.0))
    for py in range(2):
        for px in range(2):
            a_n[py::2, px::2] *= np.float32(1.0 / med_a[int(pat[py, px])])
    valid = ok if ok.all() else ~_dilate(~ok, _CLIP_MARGIN_PX)
    every = slice(None, None, step)
    return PixelData(
        anchor=torch.from_numpy(a_n),
        valid=torch.from_numpy(np.ascontiguousarray(valid)),
        camera=torch.from_numpy(cam),
        camera_scale=torch.tensor(1.0 / med_c, dtype=torch.float32),
        colours=((int(pat[0, 0]), int(pat[0, 1])), (int(pat[1, 0]), int(pat[1, 1]))),
        noise=anchor_noise_model(a_n[every], valid[every]),
    )


def pixel_patches(oy: Tensor, ox: Tensor, size: int = PIXEL_PATCH) -> PixelPatches:
    """Patches of ``size`` RAW12 px from top-left RAW12 pixels (even: CFA phase kept)."""
    oy = oy.to(torch.int64)
    ox = ox.to(torch.int64)
    if bool(((oy % 2) != 0).any() or ((ox % 2) != 0).any()):
        raise ShapeError("pixel patches must start on even RAW12 pixels (CFA phase)")
    if size < 4 or size % 2:
        raise ShapeError(f"pixel patches must be an even number (>= 4) of RAW12 px, got {size}")
    c = size - 0.5
    return PixelPatches(
        oy=oy,
        ox=ox,
        qx=2.0 * ox.to(torch.float64) + c,
        qy=2.0 * oy.to(torch.float64) + c,
        size=int(size),
    )


def _source_positions(
    patches: PixelPatches,
    params: WarpParams,
    flow: np.ndarray | None,
    frame_hw: tuple[int, int],
) -> tuple[Tensor, Tensor]:
    """Source 48MP positions (K, 4, size / 2, size / 2) of every patch pixel, phase-major.

    Phase ``p = 2 py + px`` holds RAW12 pixels ``(oy + py + 2 a, ox + px + 2 b)``.
    """
    r = torch.arange(patches.size // 2, dtype=torch.float64) * 2.0
    ph = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)[None, :, None, None]
    pw = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)[None, :, None, None]
    y12 = patches.oy.to(torch.float64)[:, None, None, None] + ph + r[None, None, :, None]
    x12 = patches.ox.to(torch.float64)[:, None, None, None] + pw + r[None, None, None, :]
    qx, qy = torch.broadcast_tensors(2.0 * x12 + 0.5, 2.0 * y12 + 0.5)
    h48, w48 = frame_hw
    if flow is not None:
        fx, fy = flow_at(flow, qx, qy, frame_h=h48, frame_w=w48)
        qx, qy = qx + fx, qy + fy
    return source_coords(params, qx, qy, frame_h=h48, frame_w=w48)


def _crop_fields(data: PixelData, x0: Tensor, y0: Tensor, size: int, tone: Tensor | None) -> Tensor:
    """2x2-box fields and their derivatives of every patch's Camera48 crop.

    ``tone`` (K,) float: per-patch exponent ``e``; each 48MP pixel is first multiplied by
    ``(y / y_mean) ** e`` (``y`` its colour-normalized luminance): the inverse of a local
    power-law tone curve, applied per pixel BEFORE the 2x2 binning, as the tone mapping
    was (``estimate_tone``).
    Returns (K, 3 colours, 5 [value, d/dx, d/dy, d2/dx2, d2/dy2], F, F) float32 with
    ``F = size - 3``; element ``[..., v, u]`` is centred at 48MP
    ``(x0 + u + 1.5, y0 + v + 1.5)``. Colour-normalized.
    """
    cam = data.camera
    crops = torch.stack(
        [cam[:, y : y + size, x : x + size] for y, x in zip(y0.tolist(), x0.tolist(), strict=True)]
    )  # (K, 3, S, S); slicing beats advanced indexing here (3x)
    crops *= data.camera_scale[None, :, None, None]
    if tone is not None:
        lum = crops.mean(dim=1, keepdim=True)  # (K, 1, S, S)
        ref = lum.mean(dim=(2, 3), keepdim=True).clamp(min=1e-12)
        logr = torch.log(lum.clamp(min=0.0) + 0.01 * ref) - torch.log(ref)
        gain = torch.exp((tone.to(torch.float32)[:, None, None, None] * logr).clamp(-3.0, 3.0))
        crops *= gain
    v = crops[..., :-1, :] + crops[..., 1:, :]
    box = v[..., :-1] + v[..., 1:]  # (K, 3, S-1, S-1): 2x2 sums
    box *= 0.25
    k, f = crops.shape[0], box.shape[-1] - 2
    out = torch.empty(k, 3, 5, f, f, dtype=torch.float32)
    mid = box[..., 1:-1, 1:-1]
    out[:, :, 0] = mid
    torch.sub(box[..., 1:-1, 2:], box[..., 1:-1, :-2], out=out[:, :, 1])
    torch.sub(box[..., 2:, 1:-1], box[..., :-2, 1:-1], out=out[:, :, 2])
    out[:, :, 1:3] *= 0.5
    torch.add(box[..., 1:-1, 2:], box[..., 1:-1, :-2], out=out[:, :, 3])
    out[:, :, 3] -= 2.0 * mid
    torch.add(box[..., 2:, 1:-1], box[..., :-2, 1:-1], out=out[:, :, 4])
    out[:, :, 4] -= 2.0 * mid
    return out


@dataclass(frozen=True)
class PatchFields:
    """Camera48 crops around every patch's source region, as colour box fields.

    Attributes:
        fields: (K, 3 colours, 5 [value, d/dx, d/dy, d2/dx2, d2/dy2], F, F) float32
            (``_crop_fields``).
        x0, y0: (K,) float64 crop origins, 48MP px.
    Built once per patch set and reused while the warp moves by less than the margin.
    """

    fields: Tensor
    x0: Tensor
    y0: Tensor


def patch_fields(
    data: PixelData,
    patches: PixelPatches,
    params: WarpParams,
    flow: np.ndarray | None,
    frame_hw: tuple[int, int],
    *,
    margin_px: float = 6.0,
    tone: Tensor | None = None,
) -> PatchFields:
    """Crop Camera48 around each patch's source region under ``params`` (plus a margin).

    ``margin_px`` (48MP px) is how far the warp may still move (later rounds, per-patch
    shifts) before pixels fall outside their crop and are dropped as unusable. ``tone``:
    per-patch tone exponents to linearize with (``_crop_fields``), or None.
    """
    sx, sy = _source_positions(patches, params, flow, frame_hw)
    h48, w48 = frame_hw
    k = sx.shape[0]
    flat_x, flat_y = sx.reshape(k, -1), sy.reshape(k, -1)
    lo_x = torch.floor(flat_x.min(1).values) - (margin_px + 2)
    lo_y = torch.floor(flat_y.min(1).values) - (margin_px + 2)
    ext = max(
        float((flat_x.max(1).values - lo_x).max()), float((flat_y.max(1).values - lo_y).max())
    )
    size = min(math.ceil(ext + margin_px + 3), h48, w48)
    x0 = lo_x.clamp(0, w48 - size).to(torch.int64)
    y0 = lo_y.clamp(0, h48 - size).to(torch.int64)
    return PatchFields(
        fields=_crop_fields(data, x0, y0, size, tone),
        x0=x0.to(torch.float64),
        y0=y0.to(torch.float64),
    )


def patch_periods(
    crops: PatchFields,
    *,
    max_lag_px: int = PERIODIC_MAX_LAG_PX,
    min_peak: float = PERIODIC_MIN_PEAK,
    min_dip: float = PERIODIC_MIN_DIP,
) -> Tensor:
    """Shortest repeat of each patch's Camera48 content, 48MP px: (K,) float64, inf if none.

    A grating, a fine check or a fabric weave of period ``L`` matches itself shifted by
    ``L``: its shift is ambiguous by multiples of ``L``, and when ``L`` is a few pixels
    (finer than RAW12's colour sampling, 4 px) the coarse levels cannot pick the right
    basin either. Per patch, the normalized autocorrelation ``r`` of the green 2x2-box
    field (mean removed, unbiased: each lag divided by its overlap) is computed for lags
    ``|Lx|, |Ly| <= max_lag_px``; a patch is periodic when some lag outside the origin has
    ``r >= min_peak`` while ``r`` dips by at least ``min_dip`` below it somewhere on the
    straight segment from the origin to that lag (a second peak, not the central lobe
    of smooth content or the ridge along a single edge); its period is the shortest such
    lag. Camera48 resolves 48MP detail, so this also sees texture that RAW12 aliases.
    """
    f = crops.fields[:, 1, 0].to(torch.float32)  # (K, F, F) green box field
    k, side = f.shape[0], f.shape[-1]
    if k == 0:
        return torch.zeros(0, dtype=torch.float64)
    lag = min(max_lag_px, side // 3)
    x = f - f.mean(dim=(1, 2), keepdim=True)
    n = 2 * side
    spec = torch.fft.rfft2(x, s=(n, n))
    ac = torch.fft.irfft2(spec * spec.conj(), s=(n, n))
    ones = torch.fft.rfft2(torch.ones(side, side), s=(n, n))
    overlap = torch.fft.irfft2(ones * ones.conj(), s=(n, n)).clamp(min=1.0)
    idx = torch.arange(-lag, lag + 1) % n
    ac = ac[:, idx][:, :, idx] / overlap[idx][:, idx]  # (K, 2 lag + 1, 2 lag + 1), centred
    r = ac / ac[:, lag : lag + 1, lag : lag + 1].clamp(min=1e-20)
    # Lowest r on the segment from the origin to every lag (nearest-lag samples).
    ly, lx = torch.meshgrid(torch.arange(-lag, lag + 1), torch.arange(-lag, lag + 1), indexing="ij")
    low = r.clone()
    for t in torch.linspace(0.0, 1.0, 2 * lag + 1)[1:-1].tolist():
        sy = (torch.round(ly * t) + lag).to(torch.int64)
        sx = (torch.round(lx * t) + lag).to(torch.int64)
        low = torch.minimum(low, r[:, sy, sx])
    far = (ly.abs() + lx.abs()) >= 2
    second = far[None] & (r >= min_peak) & (r - low >= min_dip)
    length = torch.sqrt((lx * lx + ly * ly).to(torch.float64))
    lengths = torch.where(second, length[None], torch.full_like(length, math.inf)[None])
    return lengths.reshape(k, -1).min(dim=1).values


@dataclass(frozen=True)
class _Sampler:
    """Evaluates every patch pixel's colour field at its source position + delta."""

    crops: PatchFields
    sx: Tensor  # (K, 4, size / 2, size / 2) float64 source positions, phase-major
    sy: Tensor
    colours: tuple[int, int, int, int]  # colour of each phase

    def __call__(self, delta: Tensor) -> tuple[Tensor, Tensor]:
        """Fields (K, 5 [value, d/dx, d/dy, d2/dx2, d2/dy2], n = size^2) float32; inside (K, n)."""
        fields = self.crops.fields
        k = self.sx.shape[0]
        f = fields.shape[-1]
        x0, y0 = self.crops.x0[:, None, None, None], self.crops.y0[:, None, None, None]
        u = self.sx - x0 - 1.5 + delta[:, 0, None, None, None]
        v = self.sy - y0 - 1.5 + delta[:, 1, None, None, None]
        inside = (u >= 0) & (u <= f - 1) & (v >= 0) & (v <= f - 1)
        grid = torch.stack((pixel_to_normalized(u, f), pixel_to_normalized(v, f)), dim=-1)
        grid = grid.to(torch.float32)
        outs = []
        for p in range(4):
            src = fields[:, self.colours[p]]  # (K, 5, F, F)
            outs.append(
                nnf.grid_sample(
                    src, grid[:, p], mode="bilinear", padding_mode="border", align_corners=True
                )
            )  # (K, 5, size / 2, size / 2)
        out = torch.stack(outs, dim=2).reshape(k, 5, -1)  # (K, 5, n)
        return out, inside.reshape(k, -1)


def _patch_layout(
    data: PixelData, patches: PixelPatches
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Anchor values, validity, colour one-hot and coordinates, phase-major (K, n)."""
    half = patches.size // 2
    r = torch.arange(half) * 2
    ph = torch.tensor([0, 0, 1, 1])[None, :, None, None]
    pw = torch.tensor([0, 1, 0, 1])[None, :, None, None]
    iy = patches.oy[:, None, None, None] + ph + r[None, None, :, None]
    ix = patches.ox[:, None, None, None] + pw + r[None, None, None, :]
    iy, ix = torch.broadcast_tensors(iy, ix)
    k = iy.shape[0]
    a = data.anchor[iy, ix].reshape(k, -1)
    valid = data.valid[iy, ix].reshape(k, -1)
    c = data.colours
    col = torch.tensor([c[0][0], c[0][1], c[1][0], c[1][1]])[:, None].expand(4, half * half)
    onehot = torch.stack([(col == i).reshape(-1) for i in range(3)], -1).to(torch.float32)
    # Position in the patch, -1..1 (RAW12 pixel (a, b) of the 32x32 block).
    yy = (ph + r[None, None, :, None]).expand(1, 4, half, half).reshape(-1).to(torch.float32)
    xx = (pw + r[None, None, None, :]).expand(1, 4, half, half).reshape(-1).to(torch.float32)
    scale = 2.0 / (patches.size - 1)
    return a, valid, onehot, xx * scale - 1.0, yy * scale - 1.0


@dataclass(frozen=True)
class _Mesh:
    """Bilinear tent basis of the per-patch gain mesh (knots every ``MESH_SPACING``).

    Attributes:
        t: (S, m1) float32 tent weights of rows (and columns) 0..S-1 of the patch
            (``S`` = patch side in RAW12 px, ``m1`` knots per side).
        tt: (S, m1 * m1): products ``t[:, a] * t[:, c]`` (the Gram matrices' parts).
        dense: (n, m) float32 the basis at the patch pixels, phase-major, ``m = m1^2``,
            knot ``j = a * m1 + b`` (row knot ``a``, column knot ``b``).
    The normal matrices are formed through the raster: the basis is separable and each
    pixel touches 4 knots, so ``M^T diag(d) M`` costs ``S^2 m1^2``, not ``S^2 m^2``.
    """

    t: Tensor
    tt: Tensor
    dense: Tensor

    @property
    def m(self) -> int:
        """Number of knots."""
        return int(self.dense.shape[1])


def _mesh(size: int) -> _Mesh:
    """The gain mesh of a ``size`` x ``size`` RAW12 px patch (``_Mesh``)."""
    m1 = math.ceil((size - 1) / MESH_SPACING) + 1
    pos = torch.arange(size, dtype=torch.float32)
    knots = torch.linspace(0.0, size - 1.0, m1)
    t = (1.0 - (pos[:, None] - knots[None]).abs() / (knots[1] - knots[0])).clamp(min=0.0)
    tt = (t[:, :, None] * t[:, None, :]).reshape(size, m1 * m1)
    raster = (t[:, None, :, None] * t[None, :, None, :]).reshape(size, size, m1 * m1)
    dense = _from_raster(raster.movedim(-1, 0)).T.contiguous()  # (n, m)
    return _Mesh(t=t, tt=tt, dense=dense)


def _to_raster(v: Tensor, size: int) -> Tensor:
    """Phase-major (..., n) -> raster (..., size, size): row ``2 a + py``, column ``2 b + px``."""
    half = size // 2
    lead = v.shape[:-1]
    g = v.reshape(*lead, 2, 2, half, half)  # (..., py, px, a, b)
    nd = g.dim()
    g = g.permute(*range(nd - 4), nd - 2, nd - 4, nd - 1, nd - 3)  # (..., a, py, b, px)
    return g.reshape(*lead, size, size)


def _from_raster(g: Tensor) -> Tensor:
    """Raster (..., size, size) -> phase-major (..., n); the inverse of ``_to_raster``."""
    size = g.shape[-1]
    half = size // 2
    lead = g.shape[:-2]
    v = g.reshape(*lead, half, 2, half, 2)  # (..., a, py, b, px)
    nd = v.dim()
    v = v.permute(*range(nd - 4), nd - 3, nd - 1, nd - 4, nd - 2)  # (..., py, px, a, b)
    return v.reshape(*lead, size * size)


def _mesh_project(mesh: _Mesh, v: Tensor) -> Tensor:
    """``v @ M`` for phase-major ``v`` (..., n): (..., m), through the raster."""
    g = _to_raster(v, mesh.t.shape[0])
    out = mesh.t.T @ g @ mesh.t  # (..., m1, m1)
    return out.reshape(*v.shape[:-1], mesh.m)


def _mesh_gram(mesh: _Mesh, d: Tensor) -> Tensor:
    """``M^T diag(d) M`` for (K, n) ``d``: (K, m, m), through the raster."""
    m1 = mesh.t.shape[1]
    g = _to_raster(d, mesh.t.shape[0])  # (K, S, S)
    p = g @ mesh.tt  # (K, S rows, (b, d))
    h = mesh.tt.T @ p  # (K, (a, c), (b, d))
    k = d.shape[0]
    return h.reshape(k, m1, m1, m1, m1).permute(0, 1, 3, 2, 4).reshape(k, mesh.m, mesh.m)


def fit_pixel_patches(
    data: PixelData,
    patches: PixelPatches,
    params: WarpParams,
    flow: np.ndarray | None,
    frame_hw: tuple[int, int],
    *,
    fields: PatchFields | None = None,
    iters: int = 5,
    mesh: bool | None = None,
) -> PatchShifts:
    """Per-patch shift under the per-colour local photometric model (module docstring).

    Batched Gauss-Newton over all patches, ``iters`` steps from ``delta = 0``; Huber
    weights (2 robust sigmas) per patch; a weak N(0, 2 px^2) prior on ``delta`` keeps
    flat directions put (the returned information is the data's alone).
    **Gain mesh** (``mesh``): a tone-mapping gain computed at low resolution and
    upsampled varies over ~10 px at full 48MP, much faster than the patch's linear
    trend, and a gain that changes across a blurred edge moves it (by about
    ``sigma_edge^2 d ln g / dx``, towards the dark side where the dark side is lifted).
    With the mesh the gain also varies bilinearly between knots every ``MESH_SPACING``
    RAW12 px (5x5 knots per patch, a light ridge ``_MESH_RIDGE``); the shift's
    information is then the Schur complement over the knots too (less precise on soft
    or low-contrast structure, which the parametric fit weighs accordingly).
    ``fields``: crops from :func:`patch_fields` for these patches (built here if None);
    ``mesh``: use the gain mesh (None: ``options().gain_mesh``).
    Shapes: K patches -> ``PatchShifts`` with (K, ...) tensors.
    """
    k = int(patches.oy.shape[0])
    crops = fields if fields is not None else patch_fields(data, patches, params, flow, frame_hw)
    sx, sy = _source_positions(patches, params, flow, frame_hw)
    c = data.colours
    sample = _Sampler(crops=crops, sx=sx, sy=sy, colours=(c[0][0], c[0][1], c[1][0], c[1][1]))
    a, valid, onehot, xx, yy = _patch_layout(data, patches)
    ones = torch.ones_like(a)
    n_photo = _OPTIONS.n_photo
    use_mesh = _OPTIONS.gain_mesh if mesh is None else mesh
    knots = _mesh(patches.size) if use_mesh else None
    n_mesh = 0 if knots is None else knots.m
    n_par = 2 + n_photo + n_mesh
    delta = torch.zeros(k, 2, dtype=torch.float64)
    coef = torch.zeros(k, n_photo + n_mesh, dtype=torch.float64)
    coef[:, 1:4] = 1.0
    eye = torch.eye(n_par, dtype=torch.float64)

    @dataclass
    class _System:
        hess: Tensor  # (K, P, P) float64, P = n_par
        rhs: Tensor  # (K, P)
        wrr: Tensor  # (K,) Huber-weighted residual sum of squares
        wsum: Tensor  # (K,)
        ok: Tensor  # (K, n) bool
        signal: Tensor  # (K, n) gain * value
        jac: Tensor  # (K, n, 2 + n_photo) the columns without the mesh's
        w: Tensor  # (K, n)
        val: Tensor  # (K, n)

    def system(d: Tensor, cf: Tensor, huber: float = _HUBER) -> _System:
        f, inside = sample(d)
        val, gx, gy, gxx, gyy = f.unbind(1)
        ok = valid & inside
        c32 = cf.to(torch.float32)
        gain = onehot @ c32[:, 1:4, None]  # (K, n, 1)
        gain = gain[..., 0] + c32[:, 4:5] * xx + c32[:, 5:6] * yy
        if knots is not None:
            gain = gain + c32[:, n_photo:] @ knots.dense.T
        pred = c32[:, 0:1] + gain * val
        cols = [
            gain * gx,
            gain * gy,
            ones,
            onehot[:, 0] * val,
            onehot[:, 1] * val,
            onehot[:, 2] * val,
            xx * val,
            yy * val,
        ]
        if _OPTIONS.blur_terms:
            pred = pred + c32[:, 6:7] * gxx + c32[:, 7:8] * gyy
            cols += [gxx, gyy]
        r = torch.where(ok, a - pred, torch.zeros_like(a))
        absr = torch.where(ok, r.abs(), torch.full_like(r, float("nan")))
        sigma = torch.nan_to_num(1.4826 * torch.nanmedian(absr, dim=1).values, nan=1.0)
        sigma = sigma.clamp(min=1e-6)[:, None]
        w = ok.to(torch.float32) * torch.clamp(huber * sigma / r.abs().clamp(min=1e-12), max=1.0)
        jac = torch.stack(cols, dim=-1)  # (K, n, 2 + n_photo)
        jw = jac * w[..., None]
        hess = torch.zeros(k, n_par, n_par, dtype=torch.float64)
        rhs = torch.zeros(k, n_par, dtype=torch.float64)
        p0 = 2 + n_photo
        hess[:, :p0, :p0] = jw.transpose(1, 2) @ jac
        rhs[:, :p0] = (jw.transpose(1, 2) @ r[..., None])[..., 0]
        if knots is not None:
            wv = w * val
            cross = _mesh_project(knots, jac.transpose(1, 2) * wv[:, None, :])  # (K, p0, m)
            hess[:, :p0, p0:] = cross
            hess[:, p0:, :p0] = cross.transpose(1, 2)
            hess[:, p0:, p0:] = _mesh_gram(knots, wv * val)
            rhs[:, p0:] = _mesh_project(knots, wv * r)
        wrr = (w * r * r).sum(1).to(torch.float64)
        return _System(hess, rhs, wrr, w.sum(1).to(torch.float64), ok, gain * val, jac, w, val)

    def ridge(hess: Tensor) -> Tensor:
        """(K,) ridge on the mesh knots: ``_MESH_RIDGE`` of their mean diagonal."""
        blk = hess[:, 2 + n_photo :, 2 + n_photo :]
        return _MESH_RIDGE * blk.diagonal(dim1=1, dim2=2).mean(-1)

    eye_mesh = torch.eye(n_mesh, dtype=torch.float64)
    for it in range(iters):
        # Plain least squares first: robust weights computed far from the optimum would
        # down-weight exactly the misaligned edges that carry the shift (slow convergence).
        st = system(delta, coef, _HUBER if it >= iters // 2 else 1e6)
        prior = st.wrr / st.wsum.clamp(min=1.0) / _PRIOR_PX**2
        st.hess[:, 0, 0] += prior
        st.hess[:, 1, 1] += prior
        st.rhs[:, :2] -= prior[:, None] * delta
        if knots is not None:
            lam = ridge(st.hess)
            st.hess[:, 2 + n_photo :, 2 + n_photo :] += lam[:, None, None] * eye_mesh
            st.rhs[:, 2 + n_photo :] -= lam[:, None] * coef[:, n_photo:]
        damp = 1e-9 * st.hess.diagonal(dim1=1, dim2=2).sum(-1).clamp(min=1e-12)
        step = torch.nan_to_num(torch.linalg.solve(st.hess + damp[:, None, None] * eye, st.rhs))
        delta = delta + step[:, :2].clamp(-_MAX_STEP_PX, _MAX_STEP_PX)
        coef = coef + step[:, 2:]
    st = system(delta, coef)
    hess, wrr, wsum, ok, jac, w = st.hess, st.wrr, st.wsum, st.ok, st.jac, st.w
    var = (wrr / (wsum - n_par).clamp(min=1.0)).clamp(min=1e-20)
    hpp = hess[:, 2:, 2:] + 1e-9 * torch.eye(n_par - 2, dtype=torch.float64)
    if knots is not None:
        hpp[:, n_photo:, n_photo:] += ridge(hess)[:, None, None] * eye_mesh
    schur = hess[:, :2, :2] - hess[:, :2, 2:] @ torch.linalg.solve(hpp, hess[:, 2:, :2])
    info = schur / var[:, None, None]

    def cross_with(x: Tensor) -> Tensor:
        """``x^T W J`` for (K, n, q) columns ``x``: (K, q, n_par), the mesh's included."""
        xw = x * w[..., None]
        out = [(xw.transpose(1, 2) @ jac).to(torch.float64)]
        if knots is not None:
            wv = st.val[:, None, :]
            out.append(_mesh_project(knots, xw.transpose(1, 2) * wv).to(torch.float64))
        return torch.cat(out, dim=-1)

    info_local = _local_information(jac, w, xx, yy, hess, hpp, var, cross_with)
    signal = st.signal

    # Structure match and texture: anchor and aligned prediction, each with an affine
    # trend removed (per-colour level and a linear ramp), correlated over usable pixels.
    okf = ok.to(torch.float32)

    def correlate(basis: Tensor) -> tuple[Tensor, Tensor]:
        """NCC (K,) of anchor and prediction with ``basis`` (n, m) fitted out of each, and
        the anchor's remaining energy summed over the patch (K,)."""
        m = basis.shape[1]
        outer = (basis[:, :, None] * basis[:, None, :]).reshape(-1, m * m)  # (n, m^2)
        gram = (okf @ outer).reshape(-1, m, m)  # no (K, n, m) temporary
        ridge = 1e-6 * (1.0 + gram.diagonal(dim1=1, dim2=2).mean(-1))
        gram = gram + ridge[:, None, None] * torch.eye(m)

        def detrend(v: Tensor) -> Tensor:
            cf = torch.linalg.solve(gram, ((v * okf) @ basis)[..., None])[..., 0]
            return (v - cf @ basis.T) * okf

        ha, hp = detrend(a), detrend(signal)
        num = (ha * hp).sum(1)
        den = torch.sqrt((ha * ha).sum(1) * (hp * hp).sum(1)).clamp(min=1e-20)
        return (num / den).to(torch.float64), (ha * ha).sum(1)

    ramp = torch.cat((onehot, xx[:, None], yy[:, None]), dim=1)  # (n, 5)
    ncc, ha2 = correlate(ramp)
    # The fine score: per-phase levels and smooth trends fitted out of both sides first,
    # as smooth as the gain model (the mesh's tents where it is on: a fitted mesh follows
    # the anchor's own smooth noise, which the plain score would count as a match).
    phase = torch.eye(4).repeat_interleave(len(xx) // 4, 0)  # (n, 4): phase-major layout
    if knots is not None:
        fine = torch.cat((phase, knots.dense[:, 1:]), 1)  # tents sum to 1: drop one
    else:
        fine = torch.cat(
            (
                phase,
                phase * xx[:, None],
                phase * yy[:, None],
                (xx * xx)[:, None],
                (xx * yy)[:, None],
                (yy * yy)[:, None],
            ),
            1,
        )
    ncc_fine, _ = correlate(fine)
    n_ok = okf.sum(1).clamp(min=1.0)
    na, nb = data.noise
    level = (a * okf).sum(1) / n_ok
    noise = (na * level.clamp(min=0.0) + nb).to(torch.float64)
    energy = (ha2 / n_ok).to(torch.float64)
    frac = okf.mean(1).to(torch.float64)
    usable = (
        (frac >= _MIN_VALID)
        & torch.isfinite(info).all(dim=(1, 2))
        & (coef[:, 1:4].min(1).values > 0.05)
    )
    textured = usable & (energy > 4.0 * noise)
    info = torch.where(usable[:, None, None], info, torch.zeros_like(info))
    info_local = torch.where(
        usable[:, None, None], torch.nan_to_num(info_local), torch.zeros_like(info_local)
    )
    return PatchShifts(
        delta=delta,
        info=info,
        ncc=torch.nan_to_num(ncc),
        usable=usable,
        textured=textured,
        info_local=info_local,
        ncc_fine=torch.nan_to_num(ncc_fine),
    )


def _local_information(
    jac: Tensor,
    w: Tensor,
    xx: Tensor,
    yy: Tensor,
    hess: Tensor,
    hpp: Tensor,
    var: Tensor,
    cross_with: Callable[[Tensor], Tensor],
) -> Tensor:
    """Information (K, 6, 6) of a patch's local affine motion (``PatchShifts.info_local``).

    ``jac`` (K, n, 2 + n_photo) the final Jacobian without the mesh's columns (shift
    columns first), ``w`` (K, n) its robust weights, ``xx, yy`` (n,) pixel positions in
    [-1, 1], ``hess`` the full normal matrix and ``hpp`` its regularized photometric block
    (mesh included), ``var`` (K,) the residual variance, ``cross_with(x)`` the products
    ``x^T W J`` (K, q, P) with every column of the fit. The stretch columns are
    ``g_x x, g_x y, g_y x, g_y y``; the photometric terms are projected out as for the
    shift (Schur complement).
    """
    gx, gy = jac[..., 0], jac[..., 1]
    stretch = torch.stack((gx * xx, gx * yy, gy * xx, gy * yy), dim=-1)  # (K, n, 4)
    sw = stretch * w[..., None]
    ss = (sw.transpose(1, 2) @ stretch).to(torch.float64)  # (K, 4, 4)
    sm = cross_with(stretch)  # (K, 4, P)
    k = jac.shape[0]
    m = torch.zeros(k, 6, 6, dtype=torch.float64)
    m[:, :2, :2] = hess[:, :2, :2]
    m[:, 2:, :2] = sm[:, :, :2]
    m[:, :2, 2:] = sm[:, :, :2].transpose(1, 2)
    m[:, 2:, 2:] = ss
    cross = torch.cat((hess[:, :2, 2:], sm[:, :, 2:]), dim=1)  # (K, 6, P - 2)
    schur = m - cross @ torch.linalg.solve(hpp, cross.transpose(1, 2))
    schur = 0.5 * (schur + schur.transpose(1, 2))
    return schur / var[:, None, None]


def estimate_tone(
    data: PixelData,
    patches: PixelPatches,
    params: WarpParams,
    flow: np.ndarray | None,
    frame_hw: tuple[int, int],
    fit: PatchShifts,
    fields: PatchFields,
) -> tuple[Tensor, Tensor]:
    """Local tone exponent of each patch: ``A ~ B ** (1 + e)`` per colour, and its variance.

    A local tone mapping that multiplies every 48MP pixel by a power of its own luminance
    (an edge-aware operator's base layer sliced at full resolution is one: ``log g`` affine
    in ``log Y`` with smooth coefficients) makes the anchor a power of Camera48 with a
    smoothly varying exponent. Per patch, at the fitted shift, a robust (Huber) fit of
    ``log A = c_colour + tx x + ty y + (1 + e) log B`` over pixels well above the anchor
    noise; ``e`` = 0 when the files differ by a smooth gain only. The per-patch trend
    ``(tx, ty)`` keeps a smooth gain ramp from passing for a tone curve.
    Returns (e, var_e), float64 (K,); ``var_e`` is ``inf`` where a patch has too little
    luminance range to tell.
    """
    sx, sy = _source_positions(patches, params, flow, frame_hw)
    c = data.colours
    sample = _Sampler(crops=fields, sx=sx, sy=sy, colours=(c[0][0], c[0][1], c[1][0], c[1][1]))
    f, inside = sample(fit.delta)
    b = f[:, 0].to(torch.float64)
    a, valid, onehot, xx, yy = _patch_layout(data, patches)
    a = a.to(torch.float64)
    na, nb = data.noise
    sig = torch.sqrt(na * a.clamp(min=0.0) + nb)
    ok = valid & inside & (a > 8.0 * sig) & (b > 1e-6)
    la = torch.log(a.clamp(min=1e-12))
    lb = torch.log(b.clamp(min=1e-12))
    x = torch.cat(
        (onehot.to(torch.float64), xx[:, None].double(), yy[:, None].double()), dim=1
    )  # (n, 5)
    design = torch.cat((x[None].expand(lb.shape[0], -1, -1), lb[..., None]), dim=-1)  # (K, n, 6)
    w = ok.to(torch.float64)
    coef = torch.zeros(lb.shape[0], 6, dtype=torch.float64)
    var_e = torch.full((lb.shape[0],), float("inf"), dtype=torch.float64)
    for _ in range(3):
        dw = design * w[..., None]
        gram = dw.transpose(1, 2) @ design + 1e-9 * torch.eye(6, dtype=torch.float64)
        coef = torch.linalg.solve(gram, (dw.transpose(1, 2) @ la[..., None]))[..., 0]
        r = la - (design @ coef[..., None])[..., 0]
        absr = torch.where(ok, r.abs(), torch.full_like(r, float("nan")))
        s = torch.nan_to_num(1.4826 * torch.nanmedian(absr, dim=1).values, nan=1.0)
        s = s.clamp(min=1e-6)[:, None]
        w = ok.to(torch.float64) * torch.clamp(_HUBER * s / r.abs().clamp(min=1e-12), max=1.0)
        n = w.sum(1)
        res_var = (w * r * r).sum(1) / (n - 6).clamp(min=1.0)
        var_e = res_var * torch.linalg.inv(gram)[:, 5, 5]
    enough = ok.sum(1) >= 64
    var_e = torch.where(enough & torch.isfinite(var_e), var_e, torch.full_like(var_e, float("inf")))
    return coef[:, 5] - 1.0, var_e
