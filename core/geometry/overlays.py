"""Registration overlays for inspection: arrays at 12MP, drawn later by the GUI.

Convention: both files are compared like with like on the RAW12 grid (H12, W12):
ProRAW48 (Camera48) is brought to the mosaic through the forward operator F (DESIGN §3)
after the registration warp (``core.geometry.warp``: output pixel q on the RAW12-aligned
48MP grid samples Camera48 at W(q); 12MP pixel (x12, y12) is centred at 48MP
2 x12 + 0.5), so every overlay pixel is a RAW12 photosite and its F-image counterpart.
Each CFA colour is divided by its median (each file its own), then the F-image is
multiplied by a smooth local gain (anchor / F-image, block means of 16 x 16 Bayer cells,
bilinearly upsampled) so the local tone mapping does not dominate the comparison. Values
are linear, scaled so the anchor's 99.5th percentile is 1 and clipped to [0, 1]; no
display gamma (the GUI shapes previews).

Keys of :func:`registration_overlays` (``<kind>_before`` always, ``<kind>_after`` with a
registration result): ``checkerboard`` (anchor and F-image in alternating tiles),
``blend`` (their mean), ``difference`` (0.5 + (F-image - anchor) / 2 / ``diff_range``,
so 0.5 is no difference), all float32 (H12, W12); ``edges`` float32 RGB (H12, W12, 3):
red = RAW12 edges, green = warped ProRAW48 edges, yellow where they coincide.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf

from core.cfa import CfaPattern
from core.errors import ShapeError
from core.forward import forward_np
from core.geometry.registration import RegistrationResult
from core.geometry.warp import DEFAULT_BAND_PIXELS, fused_grid, warp_image

__all__ = ["registered_mosaic", "registration_overlays"]

_GAIN_CELLS = 16  # local-gain block size, in Bayer cells (2x2 RAW12 pixels)


def registered_mosaic(
    camera48: np.ndarray, cfa: CfaPattern, result: RegistrationResult | None
) -> np.ndarray:
    """``F(registered Camera48)`` on the RAW12 grid, computed in bands (bounded memory).

    Shapes: camera48 (3, H48, W48) -> (H48/2, W48/2) float32. ``result=None``: F(camera48).
    """
    cam = np.asarray(camera48, dtype=np.float32)
    if result is None or (result.params.is_identity and result.flow is None):
        return forward_np(cam, cfa)
    _, h48, w48 = cam.shape
    out = np.empty((h48 // 2, w48 // 2), np.float32)
    rows = max(2, (DEFAULT_BAND_PIXELS // max(1, w48)) // 2 * 2)  # even: keeps the CFA phase
    for r0 in range(0, h48, rows):
        r1 = min(h48, r0 + rows)
        grid = fused_grid(
            result.params, result.flow, r1 - r0, w48, src_h=h48, src_w=w48, row0=r0, frame_h=h48
        )
        band = warp_image(cam, grid)
        out[r0 // 2 : r1 // 2] = forward_np(band, cfa.shifted(r0 % 2, 0))
    return out


def _colour_normalized(mosaic: np.ndarray, cfa: CfaPattern, ok: np.ndarray) -> np.ndarray:
    colours = cfa.color_mask(*mosaic.shape)
    out = np.empty_like(mosaic, dtype=np.float32)
    for c in range(3):
        sel = colours == c
        vals = mosaic[sel & ok]
        med = float(np.median(vals[:: max(1, vals.size // 200_000)])) if vals.size else 1.0
        out[sel] = mosaic[sel] / max(med, 1e-6)
    return out


def _cell_blocks(img: np.ndarray, ok: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Masked block means over k x k Bayer cells (2k x 2k pixels): (sum, weight) arrays."""
    t = torch.from_numpy(np.where(ok, img, 0.0).astype(np.float32))[None, None]
    w = torch.from_numpy(ok.astype(np.float32))[None, None]
    size = 2 * k
    s = nnf.avg_pool2d(t, size, stride=size, ceil_mode=True)
    n = nnf.avg_pool2d(w, size, stride=size, ceil_mode=True)
    return s[0, 0].numpy(), n[0, 0].numpy()


def _local_gain(anchor_n: np.ndarray, pred_n: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Smooth gain anchor / prediction (H12, W12): block ratio, bilinear upsampling."""
    sa, na = _cell_blocks(anchor_n, ok, _GAIN_CELLS)
    sp, _ = _cell_blocks(pred_n, ok, _GAIN_CELLS)
    ratio = np.where((na > 0.05) & (sp > 1e-9), sa / np.maximum(sp, 1e-9), np.nan)
    fill = float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else 1.0
    ratio = np.where(np.isfinite(ratio), ratio, fill).astype(np.float32)
    up = nnf.interpolate(
        torch.from_numpy(ratio)[None, None],
        size=anchor_n.shape,
        mode="bilinear",
        align_corners=False,  # block-centred samples (half-pixel convention)
    )
    return up[0, 0].numpy()


def _luma_edges(img: np.ndarray, scale: float | None) -> tuple[np.ndarray, float]:
    """Gradient magnitude of the 2x2-box (demosaic-free) luminance, scaled to [0, 1]."""
    t = torch.from_numpy(img.astype(np.float32))[None, None]
    luma = nnf.avg_pool2d(nnf.pad(t, (0, 1, 0, 1), mode="replicate"), 2, stride=1)[0, 0]
    gx = torch.zeros_like(luma)
    gy = torch.zeros_like(luma)
    gx[:, 1:-1] = 0.5 * (luma[:, 2:] - luma[:, :-2])
    gy[1:-1, :] = 0.5 * (luma[2:, :] - luma[:-2, :])
    mag = torch.sqrt(gx * gx + gy * gy).numpy()
    if scale is None:
        scale = float(np.percentile(mag[::3, ::3], 99.0)) or 1.0
    return np.clip(mag / scale, 0.0, 1.0).astype(np.float32), scale


def _overlay_set(
    anchor_d: np.ndarray, pred_d: np.ndarray, tile_px: int, diff_range: float
) -> dict[str, np.ndarray]:
    h, w = anchor_d.shape
    yy, xx = np.mgrid[0:h, 0:w]
    tiles = ((yy // tile_px + xx // tile_px) % 2).astype(bool)
    diff = 0.5 + 0.5 * np.clip((pred_d - anchor_d) / diff_range, -1.0, 1.0)
    ea, scale = _luma_edges(anchor_d, None)
    ep, _ = _luma_edges(pred_d, scale)
    edges = np.stack((ea, ep, np.zeros_like(ea)), axis=-1)
    return {
        "checkerboard": np.where(tiles, pred_d, anchor_d).astype(np.float32),
        "blend": (0.5 * (anchor_d + pred_d)).astype(np.float32),
        "difference": diff.astype(np.float32),
        "edges": edges.astype(np.float32),
    }


def registration_overlays(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    result: RegistrationResult | None,
    *,
    unclipped: np.ndarray | None = None,
    tile_px: int = 32,
    diff_range: float = 0.25,
) -> dict[str, np.ndarray]:
    """Checkerboard, blend, signed difference and edge overlays, before/after registration.

    Convention: see the module docstring (12MP RAW12 grid, F-image vs anchor, colour and
    local-gain normalized, linear, [0, 1]).
    Shapes: camera48 (3, H48, W48), anchor (H12, W12) with H48 = 2 H12, W48 = 2 W12;
    returns ``{"checkerboard_before": (H12, W12), ..., "edges_before": (H12, W12, 3)}`` and
    the ``_after`` set when ``result`` is given. ``tile_px``: checkerboard tile in 12MP px;
    ``diff_range``: difference (in display units) mapped to 0 or 1.
    Raises: ShapeError for mismatched shapes.
    """
    if (
        anchor.ndim != 2
        or camera48.ndim != 3
        or camera48.shape[1:]
        != (
            2 * anchor.shape[0],
            2 * anchor.shape[1],
        )
    ):
        raise ShapeError(
            f"overlays need Camera48 (3, 2 H12, 2 W12) and anchor (H12, W12), got "
            f"{camera48.shape} and {anchor.shape}"
        )
    a = np.asarray(anchor, dtype=np.float32)
    ok = np.isfinite(a) if unclipped is None else np.asarray(unclipped, bool) & np.isfinite(a)
    anchor_n = _colour_normalized(np.where(np.isfinite(a), a, 0.0), cfa, ok)
    scale = float(np.percentile(anchor_n[ok][::7], 99.5)) if ok.any() else 1.0
    scale = scale if scale > 0 else 1.0
    anchor_d = np.clip(anchor_n / scale, 0.0, 1.0)
    out: dict[str, np.ndarray] = {}
    stages: list[tuple[str, RegistrationResult | None]] = [("before", None)]
    if result is not None:
        stages.append(("after", result))
    for name, res in stages:
        pred = registered_mosaic(camera48, cfa, res)
        pred_n = _colour_normalized(pred, cfa, ok)
        pred_n *= _local_gain(anchor_n, pred_n, ok)
        pred_d = np.clip(pred_n / scale, 0.0, 1.0)
        for key, arr in _overlay_set(anchor_d, pred_d, tile_px, diff_range).items():
            out[f"{key}_{name}"] = arr
    return out
