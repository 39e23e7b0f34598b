"""Registration of ProRAW48 (Camera48) onto the RAW12 anchor, with an alignment gate.

Convention (DESIGN §4, issue 3): the warp ``W`` maps every pixel ``q`` of the
RAW12-aligned 48MP output grid to the Camera48 position it samples (backward warping,
``(x, y)`` order, 48MP pixels, pixel centres at integers, ``align_corners=True`` grids);
the parametric model and the residual flow are those of ``core.geometry.warp``. A 12MP
pixel ``(x12, y12)`` has its centre at ``2 x12 + 0.5`` on the 48MP grid.

Comparing like with like. Both files are reduced to the same demosaic-free luminance of a
RAW12 Bayer cell (2x2 mosaic pixels = 4x4 48MP pixels, one R, two G, one B):

- anchor side: the mean of the four colour-normalized mosaic values of each cell, on the
  cell grid ``(H12/2, W12/2)``; cell ``(i, j)`` is centred at 48MP ``(4 j + 1.5, 4 i + 1.5)``;
- Camera48 side: ``H[y, x] = 1/16 sum_{a,b<4} cam_{Q[a][b]}[y + a, x + b] / m_Q[a][b]``, the
  same cell mean evaluated at EVERY 48MP offset (``Q`` the quad-Bayer pattern); its
  sample ``(x, y)`` is centred at ``(x + 1.5, y + 1.5)``. For a locally translational warp,
  ``F(warp(cam))`` reduced to cells equals ``H`` sampled at ``W(cell centre)``, so the
  estimator never warps the 48MP frame.

Estimator (robust to local tone mapping, coarse to fine):

1. Pyramid of both sides (block means of cells; average pooling of ``H``), log domain
   (a multiplicative gain becomes an additive term).
2. Coarsest level: exhaustive integer search of the translation (gradient correlation).
3. Every cell level, down to level 0: per-patch Lucas-Kanade for a local shift ``delta``
   with a local photometric model (linear domain: offset and gain with a linear trend),
   Huber weights within the patch (clipped highlights carry no weight via the
   ``unclipped`` mask); then a weighted least-squares fit of the 8 parametric
   coefficients to the patch shifts (``_fit_params``), each patch weighted by its 2x2
   information matrix (an edge constrains only its normal), an isotropic model variance
   and Huber weights across patches, a Gaussian prior from the preset (k2, k3 centred on
   the series inverse of k1, ``_prior_rows``), clamped to the preset's bounds.
4. Pixel stage (``core.geometry.refine``): the same fit on RAW12 pixels compared per
   colour with the 2x2-box field of their own Camera48 colour, with per-colour gains, a
   gain trend, sharpness terms and, after the first round, Camera48 linearized by a
   smooth local tone exponent (``refine.estimate_tone``). The model variance of this fit
   is calibrated on the patches that pin their shift (smooth sky patches would
   otherwise outvote the textured ones).
5. Optional residual flow: matrix-weighted normalized convolution of the patch residuals
   on a coarse node grid, kept only if it reduces the misfit of held-out patches.
6. Independent check: a second patch grid offset by half a patch measures the remaining
   local shifts after the final warp; ``residual_rms_px`` is their smooth part combined
   with the warp's own uncertainty over the whole frame (extrapolation into
   structureless corners); plus the match score of each patch, gradient agreement, PSNR
   after a fitted local gain and the disagreement between the cell-level and the final
   warp at the check patches (aliased repeating texture): the alignment gate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from core.cfa import CfaPattern
from core.errors import ConfigError, Linear48Error, ShapeError
from core.geometry.grids import pixel_to_normalized
from core.geometry.refine import (
    PatchFields,
    PatchShifts,
    PixelPatches,
    estimate_tone,
    fit_pixel_patches,
    patch_fields,
    patch_periods,
    pixel_patches,
    prepare_pixels,
)
from core.geometry.refine import (
    options as refine_options,
)
from core.geometry.warp import WarpParams, flow_at, half_diagonal, source_coords, warp
from core.progress import CancelToken, Progress, ProgressCallback

log = logging.getLogger(__name__)

__all__ = [
    "PRESETS_PATH",
    "AlignmentGate",
    "GateThresholds",
    "RegistrationError",
    "RegistrationPreset",
    "RegistrationResult",
    "apply_registration",
    "load_presets",
    "register",
]

PRESETS_PATH = Path(__file__).resolve().parents[2] / "resources" / "registration_presets.json"
FlowMode = Literal["off", "auto", "on"]
_FLOW_MODES: tuple[str, ...] = ("off", "auto", "on")

_PATCH = 16  # patch side in level pixels
_LK_ITERS = 6
_MIN_VALID = 0.6  # fraction of a patch's pixels that must be usable
_NCC_MIN_FIT = 0.2  # cell patches matching worse than this are not used for the fit
# Pixel patches: only anti-correlated ones are left out. Weak, noise-dominated patches
# (dark foregrounds) match poorly one by one but are unbiased together, and the robust
# matrix-weighted fit weighs them by their information anyway (measured: dropping them
# left backlit scenes to their haloed silhouettes, 0.38 px instead of 0.06 px).
_NCC_MIN_FIT_PIXEL = 0.0
#: Model variance of the pixel-level fit from patches this precise (48MP px, 1 sigma).
_MAX_FIT_SD_PX = 0.25
_MIN_SHARP_PATCHES = 8
_NCC_MATCH = 0.5  # a patch "matches" above this score (gate figure)
_CLIP_MARGIN = 2  # cells dropped around clipped anchor cells
_LOG_FLOOR = 0.01  # log(x + 0.01 * median): noise floor of the log domain
#: Gauss-Newton steps of each pixel-level round (patch shifts, then a parametric fit).
_PIXEL_ITERS = (4, 3, 3)
#: Pixel patches (32x32 RAW12 px) used at most; enough at 48MP, and bounds the time.
_MAX_PIXEL_PATCHES = 640
#: Pixel patches start every this many cells (16 = no overlap, 8 = half-overlapping).
_PIXEL_STRIDE = 16
#: Cell patches per coarse level at most (they only need to bring the warp within a pixel).
_MAX_CELL_PATCHES = 1500

_N_PARAMS = 8  # tx, ty, a0 = zoom - 1, a1..a3 = zoom * k1..k3, p1, p2
#: Prior width (48MP px) of the edge-polarity bias of the pixel fit (``_edge_polarity``).
_EDGE_BIAS_SD_PX = 1.0
_EDGE_BIAS = True  # fit it (False: the estimator as before; ablations)
#: ... and keep it only when it is this many posterior standard deviations from zero.
_EDGE_BIAS_MIN_Z = 3.0
#: ... and at least this large (48MP px): smaller biases move the warp by less than the
#: noise of the warp's other directions that the term would free (measured on 384x288).
_EDGE_BIAS_MIN_PX = 0.25
#: Prior widths of (tx, ty, zoom, k1, k2, k3, p1, p2) when a preset gives none.
_DEFAULT_PRIOR_SIGMA: tuple[float, ...] = (64.0, 64.0, 0.04, 0.05, 0.003, 0.001, 0.002, 0.002)


class RegistrationError(Linear48Error, RuntimeError):
    """Registration cannot run on these inputs (e.g. a frame too small to register)."""


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class GateThresholds:
    """Pass/fail thresholds of the alignment gate (see docs/registration.md).

    Attributes:
        max_residual_rms_px: remaining local misalignment, RMS in 48MP px.
        min_edge_agreement: correlation of log-luminance gradients after alignment (-1..1);
            not judged when the residual was measured on pooled blocks (low texture).
        min_matched_fraction: fraction of textured patches whose structure matches.
        min_psnr_db: PSNR of the aligned cells after a fitted smooth local gain; a sanity
            check only (fine texture, noise and strong tone mapping put same-scene pairs
            as low as 17 dB on the simulator, different scenes as high as 18 dB).
        max_coarse_fine_px: largest RMS difference (48MP px) between the warp of the
            cell levels and the final pixel-level warp; more means fine texture aliased
            (a repeating pattern finer than RAW12's colour sampling).
        max_frame_error_px: largest error bound of the warp (48MP px) at any point of
            the frame, corners included (``warp_error_max_px``: the fit's standard
            deviation with a systematic patch bias propagated); more means the warp is
            extrapolated from structure that does not reach the frame's outer parts,
            and the gate reports the misalignment as unmeasured.
    """

    max_residual_rms_px: float = 0.5
    min_edge_agreement: float = 0.3
    min_matched_fraction: float = 0.5
    min_psnr_db: float = 10.0
    max_coarse_fine_px: float = 1.0
    max_frame_error_px: float = 1.25

    def as_dict(self) -> dict[str, float]:
        """Thresholds keyed by name, for the report."""
        return {
            "max_residual_rms_px": self.max_residual_rms_px,
            "min_edge_agreement": self.min_edge_agreement,
            "min_matched_fraction": self.min_matched_fraction,
            "min_psnr_db": self.min_psnr_db,
            "max_coarse_fine_px": self.max_coarse_fine_px,
            "max_frame_error_px": self.max_frame_error_px,
        }


@dataclass(frozen=True)
class RegistrationPreset:
    """Initial guess, bounds and policy of one capture mode/device (48MP pixels).

    Attributes:
        name: key in the presets file.
        description: one line for humans.
        initial: warp the search starts from.
        max_translation_px: ``|tx|, |ty|`` bound around ``initial``.
        zoom_range: (min, max) zoom.
        radial_bounds: ((lo, hi) for k1, k2, k3).
        tangential_bounds: ((lo, hi) for p1, p2).
        prior_sigma: Gaussian prior widths around ``initial`` of
            (tx, ty, zoom, k1, k2, k3, p1, p2); keeps poorly determined terms (k2, k3 on
            frames with little structure near the corners) near the initial guess.
        residual_flow: ``"off"``, ``"auto"`` (kept when it helps held-out patches) or
            ``"on"``.
        flow_nodes: long-side node count of the residual flow grid.
        gain_mesh_min_side_px: the pixel stage uses its per-patch gain mesh
            (``core.geometry.refine``) when the 48MP frame's long side is at least this
            (0: always). A local tone mapping computed at about 1000 px and upsampled
            varies over ~10 px at full 48MP, which the mesh follows; on a frame a few
            times smaller the same gain changes per pixel at the edges, where the mesh
            only trades shift for gain (docs/registration.md has the figures).
        gate: gate thresholds.
    """

    name: str
    description: str
    initial: WarpParams
    max_translation_px: float
    zoom_range: tuple[float, float]
    radial_bounds: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    tangential_bounds: tuple[tuple[float, float], tuple[float, float]]
    prior_sigma: tuple[float, ...] = _DEFAULT_PRIOR_SIGMA
    residual_flow: FlowMode = "auto"
    flow_nodes: int = 12
    gain_mesh_min_side_px: int = 4000
    gate: GateThresholds = field(default_factory=GateThresholds)

    def prior_sigma_vector(self) -> np.ndarray:
        """Prior widths in coefficient units (tx, ty, zoom - 1, zoom k1..k3, p1, p2)."""
        return np.asarray(self.prior_sigma, dtype=np.float64)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower/upper bounds of (tx, ty, zoom, k1, k2, k3, p1, p2), float64 (8,)."""
        tx, ty = self.initial.translation_px
        t = self.max_translation_px
        lo = [tx - t, ty - t, self.zoom_range[0]]
        hi = [tx + t, ty + t, self.zoom_range[1]]
        for a, b in (*self.radial_bounds, *self.tangential_bounds):
            lo.append(a)
            hi.append(b)
        return np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)


def _field(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise ConfigError(f"{where}.{key} is missing")
    return obj[key]


def _numbers(value: Any, n: int, where: str) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or len(value) != n:
        raise ConfigError(f"{where} must be a list of {n} numbers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ConfigError(f"{where} must hold finite numbers, got {value!r}")
        out.append(float(v))
    return tuple(out)


def _range(value: Any, where: str) -> tuple[float, float]:
    lo, hi = _numbers(value, 2, where)
    if lo > hi:
        raise ConfigError(f"{where} must be [low, high] with low <= high, got {value!r}")
    return lo, hi


def _parse_preset(name: str, raw: Any) -> RegistrationPreset:
    where = f"presets.{name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be an object")
    init = _field(raw, "initial", where)
    if not isinstance(init, dict):
        raise ConfigError(f"{where}.initial must be an object")
    iw = f"{where}.initial"
    pp = init.get("principal_point_px")
    try:
        initial = WarpParams(
            translation_px=_numbers(init.get("translation_px", [0, 0]), 2, f"{iw}.translation_px"),  # type: ignore[arg-type]
            zoom=_numbers([init.get("zoom", 1.0)], 1, f"{iw}.zoom")[0],
            radial=_numbers(init.get("radial", [0, 0, 0]), 3, f"{iw}.radial"),  # type: ignore[arg-type]
            tangential=_numbers(init.get("tangential", [0, 0]), 2, f"{iw}.tangential"),  # type: ignore[arg-type]
            principal_point_px=(
                None if pp is None else _numbers(pp, 2, f"{iw}.principal_point_px")  # type: ignore[arg-type]
            ),
        )
    except ConfigError as err:
        raise ConfigError(f"{iw}: {err}") from err
    b = _field(raw, "bounds", where)
    if not isinstance(b, dict):
        raise ConfigError(f"{where}.bounds must be an object")
    bw = f"{where}.bounds"
    max_t = _numbers([_field(b, "max_translation_px", bw)], 1, f"{bw}.max_translation_px")[0]
    if max_t <= 0:
        raise ConfigError(f"{bw}.max_translation_px must be > 0, got {max_t}")
    zoom_range = _range(_field(b, "zoom", bw), f"{bw}.zoom")
    if zoom_range[0] <= 0:
        raise ConfigError(f"{bw}.zoom must be positive, got {list(zoom_range)}")
    radial_raw = _field(b, "radial", bw)
    tang_raw = _field(b, "tangential", bw)
    if not isinstance(radial_raw, list) or len(radial_raw) != 3:
        raise ConfigError(f"{bw}.radial must be 3 [low, high] ranges (k1, k2, k3)")
    if not isinstance(tang_raw, list) or len(tang_raw) != 2:
        raise ConfigError(f"{bw}.tangential must be 2 [low, high] ranges (p1, p2)")
    radial = tuple(_range(r, f"{bw}.radial[{i}]") for i, r in enumerate(radial_raw))
    tang = tuple(_range(r, f"{bw}.tangential[{i}]") for i, r in enumerate(tang_raw))
    prior_raw = raw.get("prior_sigma")
    prior: tuple[float, ...] = _DEFAULT_PRIOR_SIGMA
    if prior_raw is not None:
        if not isinstance(prior_raw, dict):
            raise ConfigError(f"{where}.prior_sigma must be an object")
        pw = f"{where}.prior_sigma"
        unknown_p = set(prior_raw) - {"translation_px", "zoom", "radial", "tangential"}
        if unknown_p:
            raise ConfigError(f"{pw} has unknown field(s) {sorted(unknown_p)}")
        vals = list(prior)
        if "translation_px" in prior_raw:
            vals[0:2] = _numbers(prior_raw["translation_px"], 2, f"{pw}.translation_px")
        if "zoom" in prior_raw:
            vals[2] = _numbers([prior_raw["zoom"]], 1, f"{pw}.zoom")[0]
        if "radial" in prior_raw:
            vals[3:6] = _numbers(prior_raw["radial"], 3, f"{pw}.radial")
        if "tangential" in prior_raw:
            vals[6:8] = _numbers(prior_raw["tangential"], 2, f"{pw}.tangential")
        if not all(v > 0 for v in vals):
            raise ConfigError(f"{pw} values must be > 0, got {vals}")
        prior = tuple(vals)
    flow_mode = raw.get("residual_flow", "auto")
    if flow_mode not in _FLOW_MODES:
        raise ConfigError(
            f"{where}.residual_flow is {flow_mode!r}; valid: {', '.join(_FLOW_MODES)}"
        )
    nodes = raw.get("flow_nodes", 12)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 2 <= nodes <= 64:
        raise ConfigError(f"{where}.flow_nodes must be an integer in 2..64, got {nodes!r}")
    mesh_side = raw.get("gain_mesh_min_side_px", 4000)
    if isinstance(mesh_side, bool) or not isinstance(mesh_side, int) or mesh_side < 0:
        raise ConfigError(
            f"{where}.gain_mesh_min_side_px must be an integer >= 0, got {mesh_side!r}"
        )
    g = raw.get("gate", {})
    if not isinstance(g, dict):
        raise ConfigError(f"{where}.gate must be an object")
    defaults = GateThresholds().as_dict()
    unknown = set(g) - set(defaults)
    if unknown:
        raise ConfigError(
            f"{where}.gate has unknown field(s) {sorted(unknown)}; valid: {sorted(defaults)}"
        )
    gate_values = {
        k: _numbers([g.get(k, v)], 1, f"{where}.gate.{k}")[0] for k, v in defaults.items()
    }
    preset = RegistrationPreset(
        name=name,
        description=str(raw.get("description", "")),
        initial=initial,
        max_translation_px=max_t,
        zoom_range=zoom_range,
        radial_bounds=radial,  # type: ignore[arg-type]
        tangential_bounds=tang,  # type: ignore[arg-type]
        prior_sigma=prior,
        residual_flow=flow_mode,
        flow_nodes=nodes,
        gain_mesh_min_side_px=mesh_side,
        gate=GateThresholds(**gate_values),
    )
    lo, hi = preset.bounds()
    start = _params_vector(initial)
    if np.any(start < lo) or np.any(start > hi):
        raise ConfigError(f"{where}.initial lies outside {where}.bounds")
    return preset


def load_presets(path: str | Path | None = None) -> dict[str, RegistrationPreset]:
    """Read and validate the registration presets (``resources/registration_presets.json``).

    Raises: ConfigError naming the file and the offending field.
    """
    p = Path(path) if path is not None else PRESETS_PATH
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{p.name}: cannot read registration presets ({err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("presets"), dict):
        raise ConfigError(f"{p.name}: presets must be an object under the key 'presets'")
    try:
        return {name: _parse_preset(name, raw) for name, raw in data["presets"].items()}
    except ConfigError as err:
        raise ConfigError(f"{p.name}: {err}") from err


def _preset(preset: str | RegistrationPreset) -> RegistrationPreset:
    if isinstance(preset, RegistrationPreset):
        return preset
    presets = load_presets()
    if preset not in presets:
        raise ConfigError(f"unknown registration preset {preset!r}; valid: {', '.join(presets)}")
    return presets[preset]


# --------------------------------------------------------------------------- results


def _finite_or_none(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


@dataclass(frozen=True)
class AlignmentGate:
    """Pass/fail decision on the alignment, with what it was based on.

    Attributes:
        passed: True when every figure meets its threshold.
        thresholds: the thresholds used (``GateThresholds.as_dict()``).
        figures: the measured figures (``residual_rms_px``, ``edge_agreement``,
            ``matched_fraction``, ``psnr_db``, ...).
        reasons: one plain sentence per failed check (empty when passed).
    """

    passed: bool
    thresholds: dict[str, float]
    figures: dict[str, float]
    reasons: list[str]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite figures become ``None``)."""
        return {
            "passed": self.passed,
            "thresholds": {k: _finite_or_none(v) for k, v in self.thresholds.items()},
            "figures": {k: _finite_or_none(v) for k, v in self.figures.items()},
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class RegistrationResult:
    """Outcome of :func:`register`.

    Attributes:
        params: parametric warp in 48MP px (principal point filled in).
        flow: residual flow (2, h_lo, w_lo) float32 in 48MP px on the output grid, or None.
        residual_rms_px: remaining local misalignment after the warp, RMS in 48MP px,
            measured on patches not used for the fit.
        gate: the alignment gate.
        seconds: wall time of the registration.
        preset: name of the preset used.
        frame_hw: (H48, W48) of the frame registered.
        stats: extra figures (patch counts, per-level timings).
    """

    params: WarpParams
    flow: np.ndarray | None
    residual_rms_px: float
    gate: AlignmentGate
    seconds: float
    preset: str = "default"
    frame_hw: tuple[int, int] = (0, 0)
    stats: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report object (issue 3 fields plus context), JSON-ready."""
        h, w = self.frame_hw
        cx, cy = self.params.principal_point(h, w)
        flow_rms = (
            float(np.sqrt(np.mean(np.sum(self.flow.astype(np.float64) ** 2, axis=0))))
            if self.flow is not None
            else 0.0
        )
        return {
            "translation_px": list(self.params.translation_px),
            "zoom": self.params.zoom,
            "radial": list(self.params.radial),
            "tangential": list(self.params.tangential),
            "principal_point_px": [cx, cy],
            "residual_rms_px": _finite_or_none(self.residual_rms_px),
            "gate_passed": self.gate.passed,
            "gate": self.gate.to_json(),
            "residual_flow": None
            if self.flow is None
            else {"shape": list(self.flow.shape), "rms_px": flow_rms},
            "frame_px": [w, h],
            "preset": self.preset,
            "seconds": self.seconds,
            "convention": (
                "48MP px; output pixel q on the RAW12-aligned grid samples ProRAW48 at "
                "Wp(q + flow(q)), Wp(q) = c + |c| (zoom u (1 + k1 r^2 + k2 r^4 + k3 r^6) "
                "+ T(u)) + t, u = (q - c)/|c|, |c| = half diagonal"
            ),
        }


# --------------------------------------------------------------------------- parameters


def _params_vector(p: WarpParams) -> np.ndarray:
    """(tx, ty, zoom, k1, k2, k3, p1, p2) float64."""
    return np.array([*p.translation_px, p.zoom, *p.radial, *p.tangential], dtype=np.float64)


def _linear_coeffs(p: WarpParams) -> np.ndarray:
    """phi = (tx, ty, zoom - 1, zoom k1, zoom k2, zoom k3, p1, p2): W is linear in phi."""
    z = p.zoom
    k1, k2, k3 = p.radial
    return np.array(
        [*p.translation_px, z - 1.0, z * k1, z * k2, z * k3, *p.tangential], dtype=np.float64
    )


def _params_from_coeffs(phi: np.ndarray, pp: tuple[float, float] | None) -> WarpParams:
    z = 1.0 + float(phi[2])
    return WarpParams(
        translation_px=(float(phi[0]), float(phi[1])),
        zoom=z,
        radial=(float(phi[3] / z), float(phi[4] / z), float(phi[5] / z)),
        tangential=(float(phi[6]), float(phi[7])),
        principal_point_px=pp,
    )


def _design(qx: Tensor, qy: Tensor, c: tuple[float, float], norm: float) -> Tensor:
    """B (K, 2, 8): ``W(q) - q = B(q) phi`` (see ``_linear_coeffs``)."""
    dx, dy = qx - c[0], qy - c[1]
    ux, uy = dx / norm, dy / norm
    r2 = ux * ux + uy * uy
    one, zero = torch.ones_like(qx), torch.zeros_like(qx)
    row_x = [one, zero, dx, r2 * dx, r2 * r2 * dx, r2**3 * dx, norm * 2 * ux * uy]
    row_x.append(norm * (r2 + 2 * ux * ux))
    row_y = [zero, one, dy, r2 * dy, r2 * r2 * dy, r2**3 * dy, norm * (r2 + 2 * uy * uy)]
    row_y.append(norm * 2 * ux * uy)
    return torch.stack((torch.stack(row_x, -1), torch.stack(row_y, -1)), dim=-2)


def _local_design(
    qx: Tensor, qy: Tensor, c: tuple[float, float], norm: float, half_px: float
) -> Tensor:
    """J (K, 6, 8): the local affine motion of a patch per coefficient.

    Rows ``(delta_x, delta_y, a_xx, a_xy, a_yx, a_yy)`` as ``PatchShifts.info_local``: the
    warp change at the patch centre ``B(q) phi`` and its derivatives across the patch,
    ``a_ij = half_px d(B phi)_i / d q_j`` (``half_px`` 48MP px from the centre to the
    outermost pixel). Central differences of ``_design`` (a polynomial; 1 px steps).
    """
    b = _design(qx, qy, c, norm)
    bx = (_design(qx + 1.0, qy, c, norm) - _design(qx - 1.0, qy, c, norm)) * (0.5 * half_px)
    by = (_design(qx, qy + 1.0, c, norm) - _design(qx, qy - 1.0, c, norm)) * (0.5 * half_px)
    rows = (b[:, 0], b[:, 1], bx[:, 0], by[:, 0], bx[:, 1], by[:, 1])
    return torch.stack(rows, dim=1)


def _effective_design(
    info_local: Tensor,
    qx: Tensor,
    qy: Tensor,
    c: tuple[float, float],
    norm: float,
    half_px: float,
) -> Tensor:
    """What a patch's measured shift really responds to, per coefficient (K, 2, 8).

    A patch fits a shift with its local stretch held at zero; a warp change ``dphi``
    moves it by ``B dphi`` and stretches it by ``G dphi`` (``_local_design``), and the
    stretch leaks into the fitted shift through the cross-information ``C``:
    ``delta = B dphi + I^-1 C G dphi``, ``I6 = [[I, C], [C^T, D]]``. Where a shift and a
    stretch cancel (radial structure under a zoom or a radial term: a Siemens star) the
    patch measures nothing, and this design says so, where ``B`` alone claimed it pinned.
    """
    j = _local_design(qx, qy, c, norm, half_px)  # (K, 6, 8)
    i2 = info_local[:, :2, :2]
    cross = info_local[:, :2, 2:]
    h = i2 @ j[:, :2] + cross @ j[:, 2:]
    return torch.linalg.pinv(i2, hermitian=True) @ h


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class _Level:
    """One pyramid level: anchor cells and the Camera48 cell-luminance field.

    ``anchor``/``anchor_lin``/``valid`` (h, w): cell-mean luminance at this level (log and
    linear); cell ``(i, j)``
    centred at 48MP ``cell_px * (j, i) + (cell_px - 1) / 2``. ``field`` (hf, wf): the
    Camera48 cell luminance (linear) sampled every ``stride`` 48MP px, sample ``(x, y)``
    centred at ``stride * (x, y) + (cell_px - 1) / 2``.
    """

    anchor: Tensor
    anchor_lin: Tensor
    valid: Tensor
    field: Tensor
    cell_px: int
    stride: int


def _colour_medians(anchor: np.ndarray, valid: np.ndarray, cfa: CfaPattern) -> np.ndarray:
    """Median anchor value per colour (R, G, B) over valid pixels; floored > 0."""
    out = np.ones(3)
    colours = cfa.color_mask(*anchor.shape)
    for c in range(3):
        sel = anchor[(colours == c) & valid]
        sel = sel[:: max(1, sel.size // 200_000)]
        med = float(np.median(sel)) if sel.size else 0.0
        out[c] = med if med > 1e-6 else max(float(np.mean(np.abs(sel))) if sel.size else 0, 1e-6)
    return out


def _anchor_cells(
    anchor: np.ndarray, unclipped: np.ndarray | None, cfa: CfaPattern
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell-mean luminance (H12/2, W12/2) of the colour-normalized anchor.

    Returns (cells, valid, cell_ok): ``cell_ok`` marks cells whose four pixels are usable,
    ``valid`` the same minus a margin around unusable ones. Colour medians are taken over
    ``cell_ok`` cells (the Camera48 side uses the same cells: see ``_camera_field``).
    """
    h12, w12 = anchor.shape
    a = np.asarray(anchor, dtype=np.float32)[: h12 // 2 * 2, : w12 // 2 * 2]
    ok = (
        np.isfinite(a)
        if unclipped is None
        else (np.asarray(unclipped, bool)[: a.shape[0], : a.shape[1]] & np.isfinite(a))
    )
    cell_ok = ok[0::2, 0::2] & ok[0::2, 1::2] & ok[1::2, 0::2] & ok[1::2, 1::2]
    in_ok_cells = np.repeat(np.repeat(cell_ok, 2, axis=0), 2, axis=1)
    med = _colour_medians(np.where(ok, a, 0.0), in_ok_cells, cfa)
    weights = (1.0 / med)[cfa.color_mask(2, 2)].astype(np.float32)  # (2, 2)
    an = np.where(ok, a, 0.0)
    cells = np.zeros(cell_ok.shape, np.float32)
    for dy in range(2):
        for dx in range(2):
            cells += an[dy::2, dx::2] * weights[dy, dx]
    cells *= np.float32(0.25)
    valid = cell_ok.copy()
    # Keep whole edges or none: drop cells within _CLIP_MARGIN cells of a clipped one, so
    # no patch sees only the lower part of a highlight's edge (a truncated edge reads as
    # a gain change instead of a shift, a bias of a few tenths of a pixel).
    if not valid.all():
        bad = torch.from_numpy(~valid)[None, None].to(torch.float32)
        grown = nnf.max_pool2d(bad, 2 * _CLIP_MARGIN + 1, stride=1, padding=_CLIP_MARGIN)
        valid = ~(grown[0, 0] > 0).numpy()
    return cells, valid, cell_ok


def _camera_field(
    camera48: np.ndarray, cfa: CfaPattern, cell_ok: np.ndarray | None = None
) -> np.ndarray:
    """Cell luminance of Camera48 at every 48MP offset: (H48 - 3, W48 - 3) float32.

    ``H[y, x] = 1/16 sum_{a,b<4} cam_{Q[a][b]}[y + a, x + b] / m_{Q[a][b]}`` with ``m`` the
    channel medians; computed in row bands (box sums of 2x2, then the four Bayer blocks).
    """
    _, h48, w48 = camera48.shape
    # Channel medians over the same cells as the anchor's: a different colour weighting on
    # the two sides would move the cell centroid (R and B sit at opposite corners of the
    # cell), a bias of a tenth of a pixel or more.
    step = max(1, int(math.sqrt(h48 * w48 / 16 / 400_000)))
    sub = camera48[:, 1::4, 1::4][:, ::step, ::step]
    if cell_ok is not None:
        mask = np.asarray(cell_ok, bool)[::step, ::step]
        mask = mask[: sub.shape[1], : sub.shape[2]]
        sub = sub[:, : mask.shape[0], : mask.shape[1]]
        pick = sub[:, mask] if mask.sum() >= 64 else sub.reshape(3, -1)
    else:
        pick = sub.reshape(3, -1)
    med = np.median(pick, axis=1).astype(np.float64)
    med = np.where(med > 1e-6, med, np.maximum(np.abs(pick).mean(axis=1), 1e-6))
    pattern = cfa.as_array()
    out = np.empty((h48 - 3, w48 - 3), np.float32)
    band = 512
    for r0 in range(0, h48 - 3, band):
        r1 = min(h48 - 3, r0 + band)
        src = camera48[:, r0 : r1 + 3]
        acc = np.zeros((r1 - r0, w48 - 3), np.float32)
        for c in range(3):
            blocks = [(py, px) for py in range(2) for px in range(2) if pattern[py, px] == c]
            if not blocks:
                continue
            a = src[c]
            v = a[:-1] + a[1:]
            box = v[:, :-1] + v[:, 1:]  # (rows + 2, w48 - 1): 2x2 sums
            wgt = np.float32(1.0 / (16.0 * med[c]))
            for py, px in blocks:
                acc += box[2 * py : 2 * py + r1 - r0, 2 * px : 2 * px + w48 - 3] * wgt
        out[r0:r1] = acc
    return out


def _pyramid(
    cells: np.ndarray, cells_valid: np.ndarray, field_: np.ndarray, levels: int
) -> list[_Level]:
    """Levels 0..levels-1 (0 = full cell resolution), logs of the anchor side."""
    ta = torch.from_numpy(cells).float()
    tv = torch.from_numpy(cells_valid)
    tf = torch.from_numpy(field_)[None, None]
    med = float(torch.median(ta[tv][:: max(1, int(tv.sum()) // 200_000)])) if tv.any() else 1.0
    floor_a = _LOG_FLOOR * max(med, 1e-6)
    out: list[_Level] = []
    for lev in range(levels):
        if lev > 0:
            h, w = ta.shape[0] // 2, ta.shape[1] // 2
            ta = ta[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(dim=(1, 3))
            tv = tv[: 2 * h, : 2 * w].reshape(h, 2, w, 2).all(dim=3).all(dim=1)
            # Footprint grows from cell_px / 2 to cell_px (4 + 4 * stride_prev px).
            tf = nnf.avg_pool2d(tf, kernel_size=5, stride=2)
        log_a = torch.log(torch.clamp(ta, min=0.0) + floor_a)
        out.append(
            _Level(
                anchor=log_a,
                anchor_lin=ta,
                valid=tv,
                field=tf[0, 0],
                cell_px=4 << lev,
                stride=1 << lev,
            )
        )
    return out


def _field_floor(field_: Tensor) -> float:
    flat = field_[:: max(1, field_.shape[0] // 300), :: max(1, field_.shape[1] // 300)]
    return _LOG_FLOOR * max(float(torch.median(flat)), 1e-6)


def _sample_field(
    level: _Level, sx: Tensor, sy: Tensor, floor: float | None
) -> tuple[Tensor, Tensor]:
    """Field at source 48MP positions (any shape), float64, and validity (inside the frame).

    Linear values when ``floor`` is None, else ``log(field + floor)``.
    """
    off = (level.cell_px - 1) / 2.0
    fx = (sx - off) / level.stride
    fy = (sy - off) / level.stride
    hf, wf = level.field.shape
    inside = (fx >= 0) & (fx <= wf - 1) & (fy >= 0) & (fy <= hf - 1)
    gx = pixel_to_normalized(fx, wf)
    gy = pixel_to_normalized(fy, hf)
    grid = torch.stack((gx, gy), dim=-1).reshape(1, 1, -1, 2).to(torch.float32)
    vals = nnf.grid_sample(
        level.field[None, None], grid, mode="bilinear", padding_mode="border", align_corners=True
    ).reshape(sx.shape)
    vals = vals.to(torch.float64)
    if floor is None:
        return vals, inside
    return torch.log(torch.clamp(vals, min=0.0) + floor), inside


# --------------------------------------------------------------------------- patches


@dataclass(frozen=True)
class _Patches:
    """A set of K patches on one level: inner (PATCH x PATCH) pixels plus a 1-px margin."""

    iy: Tensor  # (K, P+2, 1) level row indices
    ix: Tensor  # (K, 1, P+2) level column indices
    qx: Tensor  # (K,) patch centre, 48MP output px
    qy: Tensor


def _structure_sums(level: _Level, oy: Tensor, ox: Tensor, p: int) -> tuple[Tensor, Tensor, Tensor]:
    """Structure-tensor sums (gx^2, gy^2, gx gy) of the log anchor over p x p patches.

    Central differences between valid cells, summed over each patch's cells with integral
    images (one pass over the level, whatever the number of candidate patches).
    """
    a, v = level.anchor.to(torch.float64), level.valid
    h, w = a.shape
    gx = torch.zeros(h, w, dtype=torch.float64)
    gy = torch.zeros(h, w, dtype=torch.float64)
    gx[:, 1:-1] = (a[:, 2:] - a[:, :-2]) * (v[:, 2:] & v[:, :-2])
    gy[1:-1, :] = (a[2:, :] - a[:-2, :]) * (v[2:, :] & v[:-2, :])

    def box(img: Tensor) -> Tensor:
        ii = nnf.pad(img.cumsum(0).cumsum(1), (1, 0, 1, 0))
        return ii[oy + p, ox + p] - ii[oy, ox + p] - ii[oy + p, ox] + ii[oy, ox]

    return box(gx * gx), box(gy * gy), box(gx * gy)


def _patch_grid(
    level: _Level, offset: int, max_patches: int, stride: int = _PATCH // 2
) -> _Patches | None:
    h, w = level.anchor.shape
    p = _PATCH
    # Patches every ``stride`` cells (half-overlapping by default); the last row/column of
    # patches touches the frame edge so the corners (where radial terms are decided) are
    # covered.
    ys = torch.unique(
        torch.cat((torch.arange(1 + offset, h - p, stride), torch.tensor([h - p - 1])))
    )
    xs = torch.unique(
        torch.cat((torch.arange(1 + offset, w - p, stride), torch.tensor([w - p - 1])))
    )
    ys, xs = ys[ys >= 1], xs[xs >= 1]
    if len(ys) == 0 or len(xs) == 0:
        return None
    oy, ox = torch.meshgrid(ys, xs, indexing="ij")
    oy, ox = oy.reshape(-1), ox.reshape(-1)
    r = torch.arange(-1, p + 1)
    iy = oy[:, None, None] + r[None, :, None]
    ix = ox[:, None, None] + r[None, None, :]
    if len(oy) > max_patches:
        # Spatially stratified: the most textured patches of each of ~16 x 12 bins, so
        # corners (where distortion terms are decided) keep their share.
        sxx, syy, sxy = _structure_sums(level, oy, ox, p)
        lam_min = 0.5 * (sxx + syy - torch.sqrt((sxx - syy) ** 2 + 4 * sxy**2))
        nby, nbx = 12, 16
        bins = (oy * nby // h) * nbx + (ox * nbx // w)
        order = torch.argsort(lam_min, descending=True, stable=True)
        order = order[torch.argsort(bins[order], stable=True)]
        sorted_bins = bins[order]
        first = torch.searchsorted(sorted_bins, sorted_bins, right=False)
        rank = torch.arange(len(order)) - first
        per_bin = max(1, max_patches // (nby * nbx))
        keep = order[rank < per_bin]
        oy, ox, iy, ix = oy[keep], ox[keep], iy[keep], ix[keep]
    cp = level.cell_px
    centre = (p - 1) / 2.0
    qx = cp * (ox.to(torch.float64) + centre) + (cp - 1) / 2.0
    qy = cp * (oy.to(torch.float64) + centre) + (cp - 1) / 2.0
    return _Patches(iy=iy[:, :, :1], ix=ix[:, :1, :], qx=qx, qy=qy)


_PatchFit = PatchShifts  # one result type for the cell and the pixel estimators


def _warped_positions(
    patches: _Patches,
    level: _Level,
    params: WarpParams,
    flow: np.ndarray | None,
    frame_hw: tuple[int, int],
) -> tuple[Tensor, Tensor]:
    """Source 48MP positions (K, P+2, P+2) of every patch pixel under the current warp."""
    cp = level.cell_px
    qx = cp * patches.ix.to(torch.float64) + (cp - 1) / 2.0
    qy = cp * patches.iy.to(torch.float64) + (cp - 1) / 2.0
    qx, qy = torch.broadcast_tensors(qx, qy)
    h48, w48 = frame_hw
    if flow is not None:
        fx, fy = flow_at(flow, qx, qy, frame_h=h48, frame_w=w48)
        qx, qy = qx + fx, qy + fy
    return source_coords(params, qx, qy, frame_h=h48, frame_w=w48)


def _lk_patches(
    patches: _Patches,
    level: _Level,
    sx0: Tensor,
    sy0: Tensor,
    noise_var: float,
) -> _PatchFit:
    """Per-patch local shift under a local photometric change, by Gauss-Newton; batched.

    Model per patch, LINEAR domain (each side divided by its patch mean):
    ``P(s + delta) = b0 + (beta + bx x + by y) A``: a local gain with a linear spatial
    trend plus an offset. Linear, not log: a local tone mapping multiplies each 48MP pixel
    by its own gain, and a cell straddling an edge mixes the two sides linearly, so across
    an edge ``P`` stays an affine function of ``A`` while ``log P`` does not (a log-domain
    model moves edges by a large fraction of a pixel). Unknowns (delta, b0, beta, bx, by);
    ESM gradients ``(gain grad A + grad P) / 2``; Huber weights from a robust per-patch
    scale. The information of ``delta`` is the Schur complement over the photometric
    terms, scaled by the residual variance.
    """
    a_full = level.anchor_lin[patches.iy, patches.ix].to(torch.float64)  # (K, P+2, P+2)
    va_full = level.valid[patches.iy, patches.ix]
    k = a_full.shape[0]
    p = _PATCH
    va = (
        va_full[:, 1:-1, 1:-1]
        & va_full[:, 1:-1, 2:]
        & va_full[:, 1:-1, :-2]
        & va_full[:, 2:, 1:-1]
        & va_full[:, :-2, 1:-1]
    ).reshape(k, -1)
    a_in = a_full[:, 1:-1, 1:-1].reshape(k, -1)
    a_mean = ((a_in * va).sum(1) / va.sum(1).clamp(min=1)).clamp(min=1e-12)
    a_full = a_full / a_mean[:, None, None]
    a = a_full[:, 1:-1, 1:-1].reshape(k, -1)
    cp = float(level.cell_px)
    gxa = (a_full[:, 1:-1, 2:] - a_full[:, 1:-1, :-2]).reshape(k, -1) / (2 * cp)
    gya = (a_full[:, 2:, 1:-1] - a_full[:, :-2, 1:-1]).reshape(k, -1) / (2 * cp)
    lin = torch.linspace(-1.0, 1.0, p, dtype=torch.float64)
    by, bx = torch.meshgrid(lin, lin, indexing="ij")
    bx, by = bx.reshape(1, -1), by.reshape(1, -1)
    delta = torch.zeros(k, 2, dtype=torch.float64)
    coef = torch.zeros(k, 4, dtype=torch.float64)  # b0, beta, bx, by
    coef[:, 1] = 1.0
    eye = torch.eye(6, dtype=torch.float64)
    step_max = cp
    p_scale: Tensor | None = None

    def evaluate(d: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        nonlocal p_scale
        pf, inside = _sample_field(
            level, sx0 + d[:, 0, None, None], sy0 + d[:, 1, None, None], None
        )
        ok = va & inside[:, 1:-1, 1:-1].reshape(k, -1)
        if p_scale is None:
            pin0 = pf[:, 1:-1, 1:-1].reshape(k, -1)
            p_scale = ((pin0 * ok).sum(1) / ok.sum(1).clamp(min=1)).clamp(min=1e-12)
        pf = pf / p_scale[:, None, None]
        gxp = (pf[:, 1:-1, 2:] - pf[:, 1:-1, :-2]).reshape(k, -1) / (2 * cp)
        gyp = (pf[:, 2:, 1:-1] - pf[:, :-2, 1:-1]).reshape(k, -1) / (2 * cp)
        return pf[:, 1:-1, 1:-1].reshape(k, -1), gxp, gyp, ok

    def system(pin: Tensor, gxp: Tensor, gyp: Tensor, ok: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        gain = coef[:, 1:2] + coef[:, 2:3] * bx + coef[:, 3:4] * by
        r = pin - coef[:, 0:1] - gain * a
        absr = torch.where(ok, r.abs(), torch.full_like(r, float("nan")))
        sigma = 1.4826 * torch.nanmedian(absr, dim=1).values
        sigma = torch.nan_to_num(sigma, nan=1.0).clamp(min=1e-6)[:, None]
        w = ok.to(torch.float64) * torch.clamp(2.0 * sigma / r.abs().clamp(min=1e-12), max=1.0)
        gx, gy = 0.5 * (gain * gxa + gxp), 0.5 * (gain * gya + gyp)
        jac = torch.stack(
            (gx, gy, -torch.ones_like(a), -a, -bx.expand_as(a) * a, -by.expand_as(a) * a), dim=-1
        )  # (K, n, 6)
        return r, w, jac

    for _ in range(_LK_ITERS):
        pin, gxp, gyp, ok = evaluate(delta)
        r, w, jac = system(pin, gxp, gyp, ok)
        jw = jac * w[..., None]
        hess = jw.transpose(1, 2) @ jac
        rhs = -(jw.transpose(1, 2) @ r[..., None])[..., 0]
        damp = 1e-9 * hess.diagonal(dim1=1, dim2=2).sum(-1).clamp(min=1e-12)
        # Weak prior delta ~ N(0, cell_px^2): flat directions (aperture, low texture) stay
        # put instead of drifting; the information returned below is the data's alone.
        prior = (w * r * r).sum(1) / w.sum(1).clamp(min=1.0) / cp**2
        hess[:, 0, 0] += prior
        hess[:, 1, 1] += prior
        rhs[:, :2] -= prior[:, None] * delta
        step = torch.nan_to_num(torch.linalg.solve(hess + damp[:, None, None] * eye, rhs))
        delta = delta + step[:, :2].clamp(-step_max, step_max)
        coef = coef + step[:, 2:]
    pin, gxp, gyp, ok = evaluate(delta)
    r, w, jac = system(pin, gxp, gyp, ok)
    jw = jac * w[..., None]
    hess = jw.transpose(1, 2) @ jac
    n_ok = w.sum(1)
    var = ((w * r * r).sum(1) / (n_ok - 6).clamp(min=1.0)).clamp(min=1e-12)
    hbb = hess[:, 2:, 2:] + 1e-9 * torch.eye(4, dtype=torch.float64)
    schur = hess[:, :2, :2] - hess[:, :2, 2:] @ torch.linalg.solve(hbb, hess[:, 2:, :2])
    info = schur / var[:, None, None]
    # Structure match: weighted correlation after removing an affine trend from each side.
    basis = torch.cat((torch.ones_like(bx), bx, by)).to(torch.float64)  # (3, n)
    bw = basis.T[None] * w[..., None]  # (K, n, 3)
    gram = basis @ bw + 1e-9 * torch.eye(3, dtype=torch.float64)

    def _hp(v: Tensor) -> Tensor:
        c = torch.linalg.solve(gram, (bw.transpose(1, 2) @ v[..., None]))[..., 0]
        return v - c @ basis

    ha, hp = _hp(a), _hp(pin)
    num = (w * ha * hp).sum(1)
    den = torch.sqrt((w * ha * ha).sum(1) * (w * hp * hp).sum(1)).clamp(min=1e-20)
    ncc = num / den
    frac = ok.to(torch.float64).mean(1)
    usable = (frac >= _MIN_VALID) & torch.isfinite(info).all(dim=(1, 2)) & (coef[:, 1] > 0.05)
    # Texture: anchor structure (log units, as the noise estimate) above the noise.
    energy = (w * ha * ha).sum(1) / n_ok.clamp(min=1.0)
    textured = usable & (energy > 4.0 * noise_var)
    info = torch.where(usable[:, None, None], info, torch.zeros_like(info))
    return _PatchFit(
        delta=delta, info=info, ncc=torch.nan_to_num(ncc), usable=usable, textured=textured
    )


def _noise_var(level: _Level) -> float:
    """Noise variance of the log anchor cells (robust, from horizontal differences)."""
    a, v = level.anchor, level.valid
    d = (a[:, 1:] - a[:, :-1])[v[:, 1:] & v[:, :-1]]
    if d.numel() < 16:
        return 1e-6
    d = d[:: max(1, d.numel() // 500_000)]
    return float((1.4826 * torch.median(d.abs())) ** 2 / 2.0) + 1e-10


# --------------------------------------------------------------------------- fitting

_ACTIVE_COARSE = [0, 1, 2, 3]
_ACTIVE_ALL = list(range(_N_PARAMS))


def _coeff_bounds(pre: RegistrationPreset) -> tuple[np.ndarray, np.ndarray]:
    """Bounds in coefficient units (phi, see ``_linear_coeffs``)."""
    lo, hi = pre.bounds()
    # zoom -> zoom - 1; k_i -> zoom k_i (bounds scaled by the zoom range's extremes).
    lo, hi = lo.copy(), hi.copy()
    zlo, zhi = pre.zoom_range
    for i in (3, 4, 5):
        cands = [lo[i] * zlo, lo[i] * zhi, hi[i] * zlo, hi[i] * zhi]
        lo[i], hi[i] = min(cands), max(cands)
    lo[2] -= 1.0
    hi[2] -= 1.0
    return lo, hi


_CHI2_2_MEDIAN = 2.0 * math.log(2.0)  # median of a chi-square with 2 degrees of freedom


def _with_model_variance(info: Tensor, model_var: float) -> Tensor:
    """``(I^-1 + v Id)^-1 = I (Id + v I)^-1``: well defined for a singular ``I`` (edges)."""
    if model_var <= 0.0:
        return info
    v = model_var
    a, b, c = info[:, 0, 0], info[:, 0, 1], info[:, 1, 1]
    det = (1.0 + v * a) * (1.0 + v * c) - (v * b) ** 2
    # I @ inverse([[1 + v a, v b], [v b, 1 + v c]]), written out (2x2, symmetric).
    w00 = (a * (1.0 + v * c) - v * b * b) / det
    w01 = b / det
    w11 = (c * (1.0 + v * a) - v * b * b) / det
    return torch.stack((torch.stack((w00, w01), -1), torch.stack((w01, w11), -1)), -2)


def _safe_inverse(n_mat: Tensor) -> Tensor:
    """Inverse of a symmetric positive semi-definite normal matrix (equilibrated, eigenvalues
    floored at 1e-12 of the unit diagonal: a direction nothing constrains gets a huge
    variance, not an error)."""
    scale = torch.sqrt(n_mat.diagonal().clamp(min=1e-30))
    m = n_mat / scale[:, None] / scale[None, :]
    vals, vecs = torch.linalg.eigh(m)
    inv_vals = 1.0 / vals.clamp(min=1e-12)
    return (vecs * inv_vals) @ vecs.T / scale[:, None] / scale[None, :]


def _model_variance(e: Tensor, info: Tensor) -> float:
    """Isotropic variance (px^2) to add to every patch so the median m^2 is chi2(2)'s."""

    def med(v: float) -> float:
        w = _with_model_variance(info, v)
        return float(torch.median((e[:, None, :] @ w @ e[..., None])[:, 0, 0]))

    if med(0.0) <= _CHI2_2_MEDIAN:
        return 0.0
    lo, hi = 0.0, max(1e-6, float((e * e).sum(1).median()))
    while med(hi) > _CHI2_2_MEDIAN and hi < 1e6:
        hi *= 4.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if med(mid) > _CHI2_2_MEDIAN else (lo, mid)
    return hi


def _prior_rows(phi: Tensor, mu: Tensor) -> tuple[Tensor, Tensor]:
    """Prior as linear rows ``R phi ~ t`` (8 rows, one per coefficient), linearized at ``phi``.

    Translation, zoom, k1 and tangential terms: ``phi_i ~ mu_i`` (the preset's initial
    guess). k2 and k3 are centred on the series inverse of a lens correction with k1 only,
    ``k2 = 3 k1^2``, ``k3 = 12 k1^3`` (plus the preset's k2, k3): when ProRAW48 is RAW12
    resampled through a low-order radial correction (what a DNG WarpRectilinear opcode
    describes: rectified pixel -> distorted position), the map from the RAW12 grid into
    ProRAW48 is its inverse, whose higher terms follow from k1. Where structure is missing
    near the corners, a prior at zero would extrapolate k2, k3 wrongly by tenths of a pixel.
    In coefficient units (``_linear_coeffs``): ``a2 = 3 a1^2 / z``, ``a3 = 12 a1^3 / z^2``.
    """
    rows = torch.eye(_N_PARAMS, dtype=torch.float64)
    tgt = mu.clone()
    z = 1.0 + float(phi[2])
    a1 = float(phi[3])
    rows[4, 3] = -6.0 * a1 / z
    tgt[4] = mu[4] - 3.0 * a1 * a1 / z
    rows[5, 3] = -36.0 * a1 * a1 / z**2
    tgt[5] = mu[5] - 24.0 * a1**3 / z**2
    return rows, tgt


def _fit_params(
    fit: _PatchFit,
    patches: _Patches | PixelPatches,
    current: WarpParams,
    frame_hw: tuple[int, int],
    pre: RegistrationPreset,
    active: list[int],
    min_ncc: float = _NCC_MIN_FIT,
    cov_out: dict[str, Tensor] | None = None,
    max_sd_px: float | None = None,
    edge_dirs: Tensor | None = None,
) -> tuple[WarpParams, bool]:
    """Fit the parametric coefficients to the patch shifts (matrix-weighted, robust).

    Each patch says: ``W(q_k) ~= W_current(q_k) + delta_k`` with information ``I_k``.
    ``edge_dirs`` (K, 2): when given (pixel stage), each patch says instead
    ``W(q_k) + beta * edge_dirs_k ~= W_current(q_k) + delta_k`` with one shared nuisance
    ``beta`` (48MP px, prior N(0, _EDGE_BIAS_SD_PX^2)) fitted jointly and marginalized
    out of the covariances (``_edge_polarity``).
    Returns the new parameters (clamped to the preset's bounds) and whether a bound was hit.
    ``max_sd_px``: calibrate the model variance on the patches whose shift standard
    deviation (largest axis) is at most this, when at least ``_MIN_SHARP_PATCHES`` are.
    ``cov_out``: when given, receives ``"cov"`` (8, 8), the posterior covariance of the
    coefficients (``_linear_coeffs`` units; zero rows for fixed ones) with the final
    robust weights and model variance.
    """
    h48, w48 = frame_hw
    keep = fit.usable & (fit.ncc >= min_ncc)
    if int(keep.sum()) < 3:
        return current, False
    qx, qy = patches.qx[keep], patches.qy[keep]
    info = fit.info[keep]
    # The model variance is calibrated on the patches that pin their shift (when there are
    # enough): smooth ones (sky gradients) can be off by pixels at a few tenths of claimed
    # precision where the photometric model absorbs a shift; when they are most of the
    # frame they would set the model variance and outvote the textured ones. With a
    # variance from the sharp patches they get the small robust weight they deserve.
    calib = torch.ones(len(qx), dtype=torch.bool)
    if max_sd_px is not None:
        sd = torch.sqrt(torch.linalg.eigvalsh(torch.linalg.pinv(info))[:, -1].clamp(min=0.0))
        if int((sd <= max_sd_px).sum()) >= _MIN_SHARP_PATCHES:
            calib = sd <= max_sd_px
    sx, sy = source_coords(current, qx, qy, frame_h=h48, frame_w=w48)
    target = torch.stack((sx, sy), -1) + fit.delta[keep] - torch.stack((qx, qy), -1)  # (K, 2)
    c = current.principal_point(h48, w48)
    bmat = _design(qx, qy, c, half_diagonal(h48, w48))  # (K, 2, 8)
    phi = torch.from_numpy(_linear_coeffs(current))
    inactive = [i for i in range(_N_PARAMS) if i not in active]
    z = target - (bmat[:, :, inactive] @ phi[inactive]) if inactive else target
    ba = bmat[:, :, active]
    prior_sigma = torch.from_numpy(pre.prior_sigma_vector())
    prior_mu = torch.from_numpy(_linear_coeffs(pre.initial))
    lo, hi = (torch.from_numpy(v) for v in _coeff_bounds(pre))
    wk = torch.ones(len(qx), dtype=torch.float64)
    free = list(range(len(active)))  # indices into ``active`` still free (active set)
    sol = phi[active].clone()
    hit = False
    model_var = 0.0
    weights = info
    # The edge-polarity column (K, 2, 1) and its prior precision, or nothing.
    vcol = None if edge_dirs is None else edge_dirs[keep].to(torch.float64)[:, :, None]
    beta = torch.zeros(1, dtype=torch.float64)
    beta_prec = torch.full((1, 1), _EDGE_BIAS_SD_PX**-2, dtype=torch.float64)
    for _ in range(8):
        for _ in range(5):
            fixed = [i for i in range(len(active)) if i not in free]
            zf = z - (ba[:, :, fixed] @ sol[fixed]) if fixed else z
            bf = ba[:, :, free]
            iw = weights * wk[:, None, None]
            idx = [active[i] for i in free]
            rest = [i for i in range(_N_PARAMS) if i not in idx]
            full = phi.clone()
            full[active] = sol
            rows, tgt = _prior_rows(full, prior_mu)
            rw = rows * prior_sigma[:, None] ** -1
            tw = tgt / prior_sigma - rw[:, rest] @ full[rest]
            prior_n = rw[:, idx].T @ rw[:, idx]
            prior_r = rw[:, idx].T @ tw
            if vcol is not None:  # joint solve with the shared edge-polarity bias
                bf = torch.cat((bf, vcol), -1)
                prior_n = torch.block_diag(prior_n, beta_prec)
                prior_r = torch.cat((prior_r, torch.zeros(1, dtype=torch.float64)))
            n_mat = (bf.transpose(1, 2) @ iw @ bf).sum(0) + prior_n
            n_rhs = (bf.transpose(1, 2) @ iw @ zf[..., None]).sum(0)[:, 0] + prior_r
            scale = torch.sqrt(n_mat.diagonal().clamp(min=1e-30))
            x = torch.linalg.solve(n_mat / scale[:, None] / scale[None, :], n_rhs / scale) / scale
            if vcol is not None:
                x, beta = x[:-1], x[-1:]
            sol[free] = x
            e = z - (ba @ sol)
            if vcol is not None:
                e = e - vcol[..., 0] * beta
            # The patch information only knows the noise; patches also carry model error
            # (edge-aware tone mapping, parallax). Add an isotropic model variance so that
            # the median Mahalanobis residual matches a 2-D Gaussian, then Huber weights.
            model_var = _model_variance(e[calib], info[calib])
            weights = _with_model_variance(info, model_var)
            m = torch.sqrt((e[:, None, :] @ weights @ e[..., None])[:, 0, 0].clamp(min=0.0))
            wk = torch.clamp(2.5 / m.clamp(min=1e-12), max=1.0)
        out = [i for i in free if not bool(lo[active[i]] <= sol[i] <= hi[active[i]])]
        if not out:
            break
        hit = True
        for i in out:
            sol[i] = torch.clamp(sol[i], lo[active[i]], hi[active[i]])
            free.remove(i)
        if not free:
            break
    if vcol is not None and free:
        # Keep the edge-polarity term only where the data pin it: a bias the fit cannot
        # tell from zero (small frames, where the warp absorbs little of it) only lets the
        # warp wander along the directions it shares with it (a bright window's edges
        # point outwards like a zoom): refit without it.
        beta_sd = float(torch.sqrt(torch.linalg.inv(n_mat)[-1, -1].clamp(min=0.0)))
        if abs(float(beta[0])) < max(_EDGE_BIAS_MIN_Z * beta_sd, _EDGE_BIAS_MIN_PX):
            return _fit_params(  # (clears cov_out's edge_bias_px)
                fit, patches, current, frame_hw, pre, active, min_ncc, cov_out, max_sd_px
            )
    phi_new = phi.clone()
    phi_new[active] = sol
    new = _params_from_coeffs(phi_new.numpy(), current.principal_point_px)
    if cov_out is not None:
        cov = torch.zeros(_N_PARAMS, _N_PARAMS, dtype=torch.float64)
        cov_local = torch.zeros(_N_PARAMS, _N_PARAMS, dtype=torch.float64)
        nf = len(free)
        # With the edge-polarity column the last row/column of n_mat is beta's: the
        # coefficients' covariance is the top-left block of the inverse (beta marginalized).
        n_inv = torch.linalg.inv(n_mat) if free else n_mat
        if free:
            idx = [active[i] for i in free]
            cov[np.ix_(idx, idx)] = n_inv[:nf, :nf]
            if fit.info_local is not None and isinstance(patches, PixelPatches):
                # The same fit seen through each patch's local affine motion: the
                # information the patches really hold about the coefficients
                # (``_local_design``), with the same robust weights, model variance
                # (on the shift) and prior; what the gate extrapolates with.
                b_eff = _effective_design(
                    fit.info_local[keep], qx, qy, c, half_diagonal(h48, w48), patches.size - 1
                )[:, :, idx]
                iw = weights * wk[:, None, None]
                prior_n = rw[:, idx].T @ rw[:, idx]
                if vcol is not None:
                    b_eff = torch.cat((b_eff, vcol), -1)
                    prior_n = torch.block_diag(prior_n, beta_prec)
                n_loc = (b_eff.transpose(1, 2) @ iw @ b_eff).sum(0) + prior_n
                cov_local[np.ix_(idx, idx)] = _safe_inverse(n_loc)[:nf, :nf]
            else:
                cov_local = cov.clone()
        cov_out["cov"] = cov
        cov_out["cov_local"] = cov_local
        gain = torch.zeros(_FRAME_GRID[0] * _FRAME_GRID[1], dtype=torch.float64)
        if free:
            idx = [active[i] for i in free]
            gx, gy = _frame_points(frame_hw)
            bq = _design(gx, gy, c, half_diagonal(h48, w48))[:, :, idx]  # (Q, 2, F)
            # Influence of patch k's shift on the warp at q: B(q) N^-1 B_k^T W_k (Q, K, 2, 2)
            # (through beta as well when the edge-polarity column is there).
            dk = bmat[:, :, idx] if vcol is None else torch.cat((bmat[:, :, idx], vcol), -1)
            right = dk.transpose(1, 2) @ (weights * wk[:, None, None])  # (K, F(+1), 2)
            left = bq @ n_inv[:nf]  # (Q, 2, F(+1))
            infl = torch.einsum("qaf,kfb->qkab", left, right)
            gain = torch.linalg.matrix_norm(infl, ord=2).sum(1)
        cov_out["bias_gain"] = gain
        if vcol is not None:
            cov_out["edge_bias_px"] = beta.clone()
        else:
            cov_out.pop("edge_bias_px", None)
    return new, hit


def _coarse_translation(
    level: _Level, params: WarpParams, frame_hw: tuple[int, int], floor: float, reach_px: float
) -> WarpParams:
    """Exhaustive integer search (level px) of the translation by gradient correlation."""
    h, w = level.anchor.shape
    cp = level.cell_px
    qx = (cp * torch.arange(w, dtype=torch.float64) + (cp - 1) / 2.0)[None, :]
    qy = (cp * torch.arange(h, dtype=torch.float64) + (cp - 1) / 2.0)[:, None]
    sx, sy = source_coords(params, qx, qy, frame_h=frame_hw[0], frame_w=frame_hw[1])
    pf, inside = _sample_field(level, sx, sy, floor)
    a, va = level.anchor.to(torch.float64), level.valid
    reach = min(math.ceil(reach_px / cp) + 1, max(1, min(h, w) // 4))

    def grads(img: Tensor, ok: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        gx = img[1:-1, 2:] - img[1:-1, :-2]
        gy = img[2:, 1:-1] - img[:-2, 1:-1]
        okg = ok[1:-1, 2:] & ok[1:-1, :-2] & ok[2:, 1:-1] & ok[:-2, 1:-1]
        return gx, gy, okg

    gxa, gya, oka = grads(a, va)
    gxp, gyp, okp = grads(pf, inside)
    best, best_score = (0, 0), -2.0
    hh, ww = gxa.shape
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            ya, yb = max(0, -dy), min(hh, hh - dy)
            xa, xb = max(0, -dx), min(ww, ww - dx)
            if yb - ya < 8 or xb - xa < 8:
                continue
            sa = (slice(ya, yb), slice(xa, xb))
            sp = (slice(ya + dy, yb + dy), slice(xa + dx, xb + dx))
            ok = (oka[sa] & okp[sp]).to(torch.float64)
            num = (ok * (gxa[sa] * gxp[sp] + gya[sa] * gyp[sp])).sum()
            den = torch.sqrt(
                (ok * (gxa[sa] ** 2 + gya[sa] ** 2)).sum()
                * (ok * (gxp[sp] ** 2 + gyp[sp] ** 2)).sum()
            )
            score = float(num / den.clamp(min=1e-20))
            if score > best_score:
                best, best_score = (dx, dy), score
    tx, ty = params.translation_px
    return WarpParams(
        translation_px=(tx + cp * best[0], ty + cp * best[1]),
        zoom=params.zoom,
        radial=params.radial,
        tangential=params.tangential,
        principal_point_px=params.principal_point_px,
    )


# --------------------------------------------------------------------------- residual flow


def _flow_nodes(frame_hw: tuple[int, int], long_nodes: int) -> tuple[int, int]:
    h, w = frame_hw
    if w >= h:
        return max(2, round(long_nodes * h / w)), long_nodes
    return long_nodes, max(2, round(long_nodes * w / h))


def _smooth_shifts(
    qx: Tensor, qy: Tensor, delta: Tensor, info: Tensor, frame_hw: tuple[int, int], nodes: int
) -> Tensor:
    """Source-shift field (2, h_lo, w_lo) from patch shifts: matrix normalized convolution."""
    h48, w48 = frame_hw
    h_lo, w_lo = _flow_nodes(frame_hw, nodes)
    nx = torch.linspace(0, w48 - 1, w_lo, dtype=torch.float64)
    ny = torch.linspace(0, h48 - 1, h_lo, dtype=torch.float64)
    gy, gx = torch.meshgrid(ny, nx, indexing="ij")
    sig = max((w48 - 1) / max(1, w_lo - 1), (h48 - 1) / max(1, h_lo - 1))
    d2 = (gx.reshape(-1, 1) - qx[None]) ** 2 + (gy.reshape(-1, 1) - qy[None]) ** 2
    g = torch.exp(-d2 / (2 * sig**2))  # (N, K)
    m = torch.einsum("nk,kab->nab", g, info)
    v = torch.einsum("nk,kab,kb->na", g, info, delta)
    reg = 1e-3 * float(m.diagonal(dim1=1, dim2=2).sum(-1).median().clamp(min=1e-12))
    f = torch.linalg.solve(m + reg * torch.eye(2, dtype=torch.float64), v[..., None])[..., 0]
    return f.T.reshape(2, h_lo, w_lo)


def _robust_cost(delta: Tensor, info: Tensor) -> float:
    m2 = (delta[:, None, :] @ info @ delta[..., None])[:, 0, 0]
    return float(torch.clamp(m2, max=25.0).sum())


def _residual_flow(
    fit: _PatchFit,
    patches: _Patches | PixelPatches,
    params: WarpParams,
    frame_hw: tuple[int, int],
    pre: RegistrationPreset,
) -> tuple[np.ndarray | None, dict[str, float]]:
    """Low-res residual flow on the output grid, or None when it does not help."""
    stats: dict[str, float] = {}
    if pre.residual_flow == "off":
        return None, stats
    keep = fit.usable & (fit.ncc >= _NCC_MATCH)
    if int(keep.sum()) < 16:
        return None, {"flow_patches": float(keep.sum())}
    qx, qy, d, inf = patches.qx[keep], patches.qy[keep], fit.delta[keep], fit.info[keep]
    idx = torch.arange(len(qx))
    gain = []
    for part in (0, 1):
        tr, te = idx % 2 == part, idx % 2 != part
        field_src = _smooth_shifts(qx[tr], qy[tr], d[tr], inf[tr], frame_hw, pre.flow_nodes)
        fx, fy = flow_at(field_src, qx[te], qy[te], frame_h=frame_hw[0], frame_w=frame_hw[1])
        pred = torch.stack((fx, fy), -1)
        before = _robust_cost(d[te], inf[te])
        after = _robust_cost(d[te] - pred, inf[te])
        gain.append(1.0 - after / max(before, 1e-12))
    stats["flow_heldout_gain"] = float(min(gain))
    if pre.residual_flow == "auto" and min(gain) < 0.2:
        return None, stats
    src = _smooth_shifts(qx, qy, d, inf, frame_hw, pre.flow_nodes)  # (2, h_lo, w_lo)
    # Source shift -> output-grid flow: divide by the local Jacobian of Wp at the nodes.
    h48, w48 = frame_hw
    h_lo, w_lo = src.shape[1:]
    nx = torch.linspace(0, w48 - 1, w_lo, dtype=torch.float64)[None, :]
    ny = torch.linspace(0, h48 - 1, h_lo, dtype=torch.float64)[:, None]
    x0, y0 = source_coords(params, nx, ny, frame_h=h48, frame_w=w48)
    x1, y1 = source_coords(params, nx + 1.0, ny, frame_h=h48, frame_w=w48)
    x2, y2 = source_coords(params, nx, ny + 1.0, frame_h=h48, frame_w=w48)
    jac = torch.stack(
        (torch.stack((x1 - x0, x2 - x0), -1), torch.stack((y1 - y0, y2 - y0), -1)), -2
    )
    out = torch.linalg.solve(jac, src.permute(1, 2, 0)[..., None])[..., 0].permute(2, 0, 1)
    stats["flow_rms_px"] = float(torch.sqrt((out**2).sum(0).mean()))
    return out.to(torch.float32).numpy(), stats


# --------------------------------------------------------------------------- gate


def _aligned_cells(
    level: _Level,
    params: WarpParams,
    flow: np.ndarray | None,
    frame_hw: tuple[int, int],
    floor: float,
) -> tuple[Tensor, Tensor]:
    """log Camera48 cell luminance at every cell of ``level`` under the warp; validity."""
    h, w = level.anchor.shape
    cp = level.cell_px
    qx = (cp * torch.arange(w, dtype=torch.float64) + (cp - 1) / 2.0)[None, :].expand(h, w)
    qy = (cp * torch.arange(h, dtype=torch.float64) + (cp - 1) / 2.0)[:, None].expand(h, w)
    h48, w48 = frame_hw
    if flow is not None:
        fx, fy = flow_at(flow, qx, qy, frame_h=h48, frame_w=w48)
        qx, qy = qx + fx, qy + fy
    sx, sy = source_coords(params, qx, qy, frame_h=h48, frame_w=w48)
    return _sample_field(level, sx, sy, floor)


def _edge_agreement(a: Tensor, p: Tensor, ok: Tensor) -> float:
    """Correlation of log-luminance gradient vectors over valid cells (-1..1)."""
    gxa, gya = a[1:-1, 2:] - a[1:-1, :-2], a[2:, 1:-1] - a[:-2, 1:-1]
    gxp, gyp = p[1:-1, 2:] - p[1:-1, :-2], p[2:, 1:-1] - p[:-2, 1:-1]
    okg = (ok[1:-1, 2:] & ok[1:-1, :-2] & ok[2:, 1:-1] & ok[:-2, 1:-1]).to(torch.float64)
    num = (okg * (gxa * gxp + gya * gyp)).sum()
    den = torch.sqrt((okg * (gxa**2 + gya**2)).sum() * (okg * (gxp**2 + gyp**2)).sum())
    return float(num / den.clamp(min=1e-20))


def _psnr_local_gain(
    a_log: Tensor, p_log: Tensor, ok: Tensor, sigma_cells: float
) -> tuple[float, float]:
    """PSNR (dB) and relative L1 of linear cells after a smooth fitted local gain."""
    okf = ok.to(torch.float64)
    d = torch.where(ok, a_log - p_log, torch.zeros_like(a_log))
    radius = max(1, round(2 * sigma_cells))
    xs = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k1 = torch.exp(-(xs**2) / (2 * sigma_cells**2))
    k1 = k1 / k1.sum()

    def blur(img: Tensor) -> Tensor:
        t = img[None, None]
        t = nnf.conv2d(
            nnf.pad(t, (radius, radius, 0, 0), mode="replicate"), k1.reshape(1, 1, 1, -1)
        )
        t = nnf.conv2d(
            nnf.pad(t, (0, 0, radius, radius), mode="replicate"), k1.reshape(1, 1, -1, 1)
        )
        return t[0, 0]

    gain = blur(d * okf) / blur(okf).clamp(min=1e-6)
    a_lin, p_lin = torch.exp(a_log), torch.exp(p_log + gain)
    if int(ok.sum()) < 16:
        return float("nan"), float("nan")
    av, pv = a_lin[ok], p_lin[ok]
    peak = float(torch.quantile(av[:: max(1, av.numel() // 1_000_000)], 0.995))
    mse = float(((av - pv) ** 2).mean())
    l1 = float((av - pv).abs().mean() / av.abs().mean().clamp(min=1e-20))
    return 10.0 * math.log10(peak**2 / max(mse, 1e-30)), l1


def _decide(figures: dict[str, float], th: GateThresholds) -> AlignmentGate:
    reasons: list[str] = []
    res = figures["residual_rms_px"]
    frame = figures.get("warp_error_max_px", float("nan"))
    if not math.isfinite(res) and frame > th.max_frame_error_px:
        reasons.append(
            "too little matching structure to measure the remaining misalignment over the "
            f"whole frame: the warp is extrapolated (up to {frame:.2f} px uncertain, limit "
            f"{th.max_frame_error_px:.2f} px) where there is no structure"
        )
    elif not math.isfinite(res):
        reasons.append("too little matching structure to measure the remaining misalignment")
    elif res > th.max_residual_rms_px:
        reasons.append(
            f"remaining misalignment {res:.2f} px RMS exceeds {th.max_residual_rms_px:.2f} px"
        )
    edge = figures["edge_agreement"]
    # On pooled blocks (low texture) the gradients are the illumination's, which tone
    # mapping flattens, and noise: the edges are not judged; that the patches of each
    # block agree with each other within their precision is the same-scene test there.
    pooled = figures.get("pooled_side", 1.0) > 1.0
    if not pooled and not edge >= th.min_edge_agreement:
        reasons.append(
            f"edges agree at {edge:.2f}, below {th.min_edge_agreement:.2f}: the two files may "
            "not show the same scene"
        )
    frac = figures["matched_fraction"]
    if math.isfinite(frac) and frac < th.min_matched_fraction:
        reasons.append(
            f"only {100 * frac:.0f} % of textured areas match (need "
            f"{100 * th.min_matched_fraction:.0f} %)"
        )
    psnr = figures["psnr_db"]
    if not psnr >= th.min_psnr_db:
        reasons.append(
            f"after alignment and a local gain the files differ by {psnr:.1f} dB PSNR "
            f"(need {th.min_psnr_db:.1f} dB)"
        )
    if figures.get("params_at_bound", 0.0) > 0:
        reasons.append("the fitted warp hit the preset's bounds")
    cf = figures.get("coarse_fine_px", 0.0)
    if cf > th.max_coarse_fine_px:
        reasons.append(
            f"the coarse and the fine alignment disagree by {cf:.2f} px: fine repeating "
            "texture the RAW12 cannot resolve"
        )
    return AlignmentGate(
        passed=not reasons, thresholds=th.as_dict(), figures=figures, reasons=reasons
    )


def _shifted(
    fit: _PatchFit,
    patches: PixelPatches,
    old: WarpParams,
    new: WarpParams,
    frame_hw: tuple[int, int],
) -> _PatchFit:
    """Patch shifts measured under ``old`` re-expressed under ``new``: ``delta - (Wn - Wo)``."""
    h48, w48 = frame_hw
    ox, oy = source_coords(old, patches.qx, patches.qy, frame_h=h48, frame_w=w48)
    nx, ny = source_coords(new, patches.qx, patches.qy, frame_h=h48, frame_w=w48)
    moved = torch.stack((nx - ox, ny - oy), dim=-1)
    return dataclasses.replace(fit, delta=fit.delta - moved)


def _without(fit: _PatchFit, drop: Tensor) -> _PatchFit:
    """``fit`` with the ``drop`` patches (K,) bool marked unusable, untextured, no information."""
    if not bool(drop.any()):
        return fit
    keep = ~drop
    local = fit.info_local
    return dataclasses.replace(
        fit,
        info=torch.where(keep[:, None, None], fit.info, torch.zeros_like(fit.info)),
        usable=fit.usable & keep,
        textured=fit.textured & keep,
        info_local=None
        if local is None
        else torch.where(keep[:, None, None], local, torch.zeros_like(local)),
    )


def _smooth_scalar(
    qx: Tensor,
    qy: Tensor,
    v: Tensor,
    var: Tensor,
    frame_hw: tuple[int, int],
    pre: RegistrationPreset,
) -> Tensor:
    """Smooth field (h_lo, w_lo) on the flow-node grid from noisy patch values.

    Gaussian normalized convolution (sigma one node spacing) weighted by ``1 / (var +
    0.1^2)`` with a pseudo-observation of 0 (weight 4 = N(0, 0.5^2)) at every node, so
    nodes without data stay near zero. Node placement as ``warp.flow_at``.
    """
    h48, w48 = frame_hw
    h_lo, w_lo = _flow_nodes(frame_hw, pre.flow_nodes)
    nx = torch.linspace(0, w48 - 1, w_lo, dtype=torch.float64)
    ny = torch.linspace(0, h48 - 1, h_lo, dtype=torch.float64)
    gy, gx = torch.meshgrid(ny, nx, indexing="ij")
    sig = max((w48 - 1) / max(1, w_lo - 1), (h48 - 1) / max(1, h_lo - 1))
    d2 = (gx.reshape(-1, 1) - qx[None]) ** 2 + (gy.reshape(-1, 1) - qy[None]) ** 2
    g = torch.exp(-d2 / (2 * sig**2))  # (N, K)
    w = torch.where(torch.isfinite(var), 1.0 / (var + 0.01), torch.zeros_like(var))
    vv = torch.where(w > 0, v, torch.zeros_like(v))
    out = (g @ (w * vv)) / (g @ w + 4.0)
    return out.reshape(h_lo, w_lo)


def _scalar_at(field_lo: Tensor, x: Tensor, y: Tensor, frame_hw: tuple[int, int]) -> Tensor:
    """Bilinear value of a node-grid scalar field at output pixels (``flow_at`` placement)."""
    two = torch.stack((field_lo, torch.zeros_like(field_lo)))
    v, _ = flow_at(two, x, y, frame_h=frame_hw[0], frame_w=frame_hw[1])
    return v


def _pixel_grid(level: _Level, offset: int, max_patches: int) -> PixelPatches | None:
    """A cell patch grid of ``level`` (same stratified choice) as RAW12 pixel patches.

    A patch of ``_PATCH`` x ``_PATCH`` cells of ``level`` is one pixel patch of
    ``_PATCH * cell_px / 2`` RAW12 px (32 at level 0).
    """
    cells = _patch_grid(level, offset, max_patches, _PIXEL_STRIDE)
    if cells is None:
        return None
    k = level.cell_px // 2  # RAW12 px per cell of this level
    return pixel_patches(k * cells.iy[:, 1, 0], k * cells.ix[:, 0, 1], size=_PATCH * k)


def _edge_polarity(crops: PatchFields) -> Tensor:
    """Signed edge direction of each pixel patch, (K, 2) in (x, y), norm <= 1.

    ``sum(grad l) / sum(|grad l|)`` over the patch's Camera48 crop at 48MP (``l`` the log
    of its colour-normalized 2x2-box luminance, floored at 1 % of the crop mean): the
    unit normal pointing to the bright side for a patch holding one edge, near 0 for
    lines, textures and flat patches (their bright-side directions cancel). An edge-aware
    tone curve reshapes an edge's profile, which moves where the photometric model puts
    that edge by an amount that follows its polarity (towards the dark or the bright
    side, alike for every edge), not the warp; ``_fit_params`` fits that as one shared
    nuisance coefficient (``docs/registration.md``).
    """
    f = crops.fields
    lum = f[:, :, 0].mean(1)  # (K, F, F)
    floor = 0.01 * lum.mean(dim=(1, 2), keepdim=True).clamp(min=1e-12)
    inv = 1.0 / (lum.clamp(min=0.0) + floor)
    gx = (f[:, :, 1].mean(1) * inv).to(torch.float64)
    gy = (f[:, :, 2].mean(1) * inv).to(torch.float64)
    mag = torch.sqrt(gx * gx + gy * gy).sum(dim=(1, 2))
    dirs = torch.stack((gx.sum(dim=(1, 2)), gy.sum(dim=(1, 2))), -1)
    return torch.where(mag[:, None] > 0, dirs / mag.clamp(min=1e-300)[:, None], 0.0)


def _warp_difference(
    a: WarpParams,
    flow_a: np.ndarray | None,
    b: WarpParams,
    flow_b: np.ndarray | None,
    frame_hw: tuple[int, int],
    x: Tensor,
    y: Tensor,
) -> float:
    """RMS of ``|W_a(q) - W_b(q)|`` (48MP px) over output points ``q = (x, y)``."""
    h48, w48 = frame_hw
    pts = []
    for params, flow in ((a, flow_a), (b, flow_b)):
        qx, qy = x, y
        if flow is not None:
            fx, fy = flow_at(flow, x, y, frame_h=h48, frame_w=w48)
            qx, qy = x + fx, y + fy
        pts.append(source_coords(params, qx, qy, frame_h=h48, frame_w=w48))
    (ax, ay), (bx, by) = pts
    return float(torch.sqrt(((ax - bx) ** 2 + (ay - by) ** 2).mean()))


def _point_std(
    cov: Tensor, params: WarpParams, qx: Tensor, qy: Tensor, frame_hw: tuple[int, int]
) -> Tensor:
    """Standard deviation (48MP px, both axes together) of the warp at points (K,) given ``cov``."""
    h48, w48 = frame_hw
    b = _design(qx, qy, params.principal_point(h48, w48), half_diagonal(h48, w48))
    var = (b @ cov @ b.transpose(1, 2)).diagonal(dim1=1, dim2=2).sum(-1)
    return torch.sqrt(var.clamp(min=0.0))


_FRAME_GRID = (13, 17)  # rows, columns of the points the gate checks the warp at


def _frame_points(frame_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """(x, y) of a 17x13 grid from edge to edge of the output frame (corners included)."""
    h48, w48 = frame_hw
    x = torch.linspace(0, w48 - 1, _FRAME_GRID[1], dtype=torch.float64)
    y = torch.linspace(0, h48 - 1, _FRAME_GRID[0], dtype=torch.float64)
    gy, gx = torch.meshgrid(y, x, indexing="ij")
    return gx.reshape(-1), gy.reshape(-1)


def _frame_std(cov: Tensor, params: WarpParams, frame_hw: tuple[int, int]) -> tuple[float, float]:
    """The warp's standard deviation (48MP px, both axes) given ``cov`` over the output
    frame: (RMS, largest) on a 17x13 grid of points from edge to edge (corners included)."""
    h48, w48 = frame_hw
    gx, gy = _frame_points(frame_hw)
    b = _design(gx, gy, params.principal_point(h48, w48), half_diagonal(h48, w48))  # (N, 2, 8)
    var = (b @ cov @ b.transpose(1, 2)).diagonal(dim1=1, dim2=2).sum(-1).clamp(min=0.0)
    return float(torch.sqrt(var.mean())), float(torch.sqrt(var.max()))


#: Systematic error (48MP px) shared by the pixel patches that the gate propagates with
#: the fit's absolute influences: on the simulator the frame error divided by that
#: influence was 0.02-0.07 px on textured scenes (tone-mapping biases of edge profiles).
_PATCH_BIAS_PX = 0.02


def _frame_error_bound(
    cov: Tensor, bias_gain: Tensor, params: WarpParams, frame_hw: tuple[int, int]
) -> float:
    """Largest error bound of the warp over the frame grid (48MP px), corners included.

    At each point ``q`` of ``_frame_points``: ``hypot(sd(q), b G(q))``, ``sd`` the
    standard deviation from ``cov`` (independent patch errors) and ``G(q) = sum_k
    ||B(q) N^-1 B_k^T W_k||`` the fit's absolute influence (``_fit_params``), times
    ``b = _PATCH_BIAS_PX``: what a bias shared by the patches becomes at ``q``. Inside
    the structure ``G`` is about 2; extrapolated from a central disc into the corners
    (Siemens star) it reaches 60-120, well-spread textured frames 10-40.
    """
    gx, gy = _frame_points(frame_hw)
    sd = _point_std(cov, params, gx, gy, frame_hw)
    bound = torch.sqrt(sd**2 + (_PATCH_BIAS_PX * bias_gain) ** 2)
    return float(bound.max())


#: Largest standard deviation (48MP px, worst direction) of a shift the gate compares at.
_CHECK_SD_PX = 0.25
#: Mean ``ncc_fine`` a pooled block's patches must reach. On the simulator, faint grain
#: matched through the anchor's noise scores 0.17-0.27 at 384x288 and about 0.1 at 48MP;
#: two different low-texture scenes 0.02-0.05 (the patch fit's own bias).
_NCC_POOLED = 0.07
#: Block sides (in check patches) tried, in order, when too few single patches are
#: confident (low-texture frames).
_POOL_SIDES = (2, 3, 4, 6)


def _pooled_blocks(
    qx: Tensor,
    qy: Tensor,
    delta: Tensor,
    info: Tensor,
    keep: Tensor,
    score: Tensor,
    side: int,
    frame_hw: tuple[int, int],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Check patches pooled in square blocks of the frame, ``side`` times the mean patch
    spacing ``sqrt(H48 W48 / K)`` wide (about ``side`` x ``side`` check patches).

    Each block's shift is the information-weighted mean of its ``keep`` patches, its
    information their summed information divided by ``max(1, chi2 / dof)``, the scatter of
    the patch shifts about that mean measured against their own precision (patches that
    do not agree make a block imprecise, whatever they claim), its ``score`` the mean of
    its patches'. Blocks with fewer than two kept patches are left out.
    Shapes: qx, qy, score (K,), delta (K, 2), info (K, 2, 2), keep (K,) bool. Returns
    block centres qx, qy (B,), shifts (B, 2), information (B, 2, 2), mean score (B,) and
    the (K,) block index of each patch (-1 when its block is left out).
    """
    h48, w48 = frame_hw
    step = side * math.sqrt(h48 * w48 / max(1, len(qx)))  # block side, 48MP px
    col = torch.floor(qx / step).to(torch.int64)
    row = torch.floor(qy / step).to(torch.int64)
    key = torch.where(keep, row * (int(col.max()) + 1) + col, -1)
    ids, inv = torch.unique(key, return_inverse=True)
    n_blocks = len(ids)
    kf = keep.to(torch.float64)

    def add(v: Tensor) -> Tensor:
        out = torch.zeros((n_blocks, *v.shape[1:]), dtype=torch.float64)
        return out.index_add_(0, inv, v * kf.reshape(-1, *([1] * (v.dim() - 1))))

    n = add(torch.ones_like(kf))
    i_sum = add(info)
    ok = (ids >= 0) & (n >= 2) & (torch.linalg.det(i_sum) > 0)
    i_reg = torch.where(ok[:, None, None], i_sum, torch.eye(2, dtype=torch.float64))
    d_blk = torch.linalg.solve(i_reg, add((info @ delta[..., None])[..., 0])[..., None])[..., 0]
    r = delta - d_blk[inv]
    chi2 = add((r[:, None, :] @ info @ r[..., None])[:, 0, 0])
    inflate = (chi2 / (2.0 * (n - 1.0)).clamp(min=1.0)).clamp(min=1.0)
    i_blk = i_sum / inflate[:, None, None]
    cx, cy, sc = (add(v) / n.clamp(min=1.0) for v in (qx, qy, score))
    where = torch.cumsum(ok.to(torch.int64), 0) - 1
    index = torch.where(ok[inv] & keep, where[inv], -1)
    return cx[ok], cy[ok], d_blk[ok], i_blk[ok], sc[ok], index


def _pooled_check(
    vfit: _PatchFit, check: PixelPatches, delta: Tensor, frame_hw: tuple[int, int]
) -> tuple[int, Tensor, Tensor, Tensor, Tensor, Tensor] | None:
    """The check patches pooled in blocks (``_gate_residual``'s low-texture measurement).

    Tries the sides of ``_POOL_SIDES`` in order and takes the first where at least half
    the blocks, and 5, are confident: shift known to ``_CHECK_SD_PX`` and mean
    ``ncc_fine`` at least ``_NCC_POOLED``. Returns (side, qx, qy, shifts, information of
    the confident blocks, (K,) mask of their patches), or None.
    """
    if vfit.ncc_fine is None:
        return None
    for side in _POOL_SIDES:
        bx, by, bd, bi, score, index = _pooled_blocks(
            check.qx, check.qy, delta, vfit.info, vfit.usable, vfit.ncc_fine, side, frame_hw
        )
        sd = torch.sqrt(torch.linalg.eigvalsh(torch.linalg.pinv(bi))[:, -1].clamp(min=0.0))
        good = (sd <= _CHECK_SD_PX) & (score >= _NCC_POOLED)
        if int(good.sum()) >= max(5, len(good) // 2):
            members = (index >= 0) & good[index.clamp(min=0)]
            return side, bx[good], by[good], bd[good], bi[good], members
    return None


def _gate_residual(
    vfit: _PatchFit,
    check: PixelPatches,
    frame_hw: tuple[int, int],
    pre: RegistrationPreset,
    figures: dict[str, float],
    bias: Tensor | None = None,
) -> tuple[float, Tensor]:
    """Remaining misalignment (RMS, 48MP px) measured on the check patches, or NaN.

    Per-patch shifts carry their own noise; the systematic misalignment is their smooth
    part: matrix-weighted smoothing on the flow-node grid (model variance included), read
    back at the confident patches (matched, shift known to ``_CHECK_SD_PX``). Where fewer
    than 5 are confident (low texture: faint grain near the anchor's noise), the patches
    are pooled in blocks (``_pooled_check``) and the same measurement runs on the
    confident blocks; ``figures["pooled_side"]`` is the block side in check patches (1 =
    single patches). ``bias`` (K, 2): the fitted edge-polarity shift of each check patch
    (a photometric effect, not misalignment), taken off their shifts first.
    Fills ``figures`` with the patch statistics. Returns the residual and the (K,) bool
    mask of the check patches it compared at.
    """
    cov = torch.linalg.pinv(vfit.info)
    std_max = torch.sqrt(torch.linalg.eigvalsh(cov)[:, -1].clamp(min=0.0))
    confident = vfit.usable & (vfit.ncc >= _NCC_MATCH) & (std_max <= _CHECK_SD_PX)
    n_conf = int(confident.sum())
    figures["confident_patches"] = float(n_conf)
    delta = vfit.delta if bias is None else vfit.delta - bias
    qx, qy, d_c, i_c = (
        check.qx[confident],
        check.qy[confident],
        delta[confident],
        vfit.info[confident],
    )
    side = 1
    if n_conf < 5:
        pooled = _pooled_check(vfit, check, delta, frame_hw)
        if pooled is None:
            return float("nan"), confident
        side, qx, qy, d_c, i_c, confident = pooled
        figures["confident_blocks"] = float(len(qx))
    figures["pooled_side"] = float(side)
    std_c = torch.sqrt(torch.linalg.eigvalsh(torch.linalg.pinv(i_c))[:, -1].clamp(min=0.0))
    w_c = _with_model_variance(i_c, _model_variance(d_c, i_c))
    smooth = _smooth_shifts(qx, qy, d_c, w_c, frame_hw, pre.flow_nodes)
    fx, fy = flow_at(smooth, qx, qy, frame_h=frame_hw[0], frame_w=frame_hw[1])
    figures["patch_rms_px"] = float(torch.sqrt((d_c**2).sum(1).mean()))
    figures["patch_noise_px"] = float(torch.sqrt((std_c**2).mean()))
    return float(torch.sqrt((fx**2 + fy**2).mean())), confident


# --------------------------------------------------------------------------- public API


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily run torch with ``n`` intra-op threads (process-wide setting)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_inputs(camera48: np.ndarray, anchor: np.ndarray, unclipped: np.ndarray | None) -> None:
    if camera48.ndim != 3 or camera48.shape[0] != 3:
        raise ShapeError(f"Camera48 must be (3, H48, W48), got {camera48.shape}")
    if anchor.ndim != 2:
        raise ShapeError(f"the anchor must be a (H12, W12) mosaic, got {anchor.shape}")
    h12, w12 = anchor.shape
    if camera48.shape[1:] != (2 * h12, 2 * w12):
        raise ShapeError(
            f"Camera48 is {camera48.shape[2]}x{camera48.shape[1]} but the anchor is "
            f"{w12}x{h12}; registration needs exactly twice the anchor in each axis"
        )
    if unclipped is not None and unclipped.shape != anchor.shape:
        raise ShapeError(f"unclipped mask {unclipped.shape} does not match anchor {anchor.shape}")
    min_side = 4 * (_PATCH + 4)
    if min(h12, w12) < min_side:
        raise RegistrationError(
            f"RAW12 of {w12}x{h12} px is too small to register (need at least {min_side} px "
            "per side)"
        )


def register(
    camera48: np.ndarray,
    anchor: np.ndarray,
    cfa: CfaPattern,
    *,
    unclipped: np.ndarray | None = None,
    preset: str | RegistrationPreset = "default",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    max_patches: int = 3000,
    threads: int | None = 1,
) -> RegistrationResult:
    """Estimate the warp that brings Camera48 onto the RAW12 anchor, and gate it.

    Convention: see the module docstring; the result's warp ``W`` gives, for every pixel
    ``q`` of the RAW12-aligned 48MP grid, the Camera48 position to sample
    (``apply_registration`` does it). Parameters are in 48MP pixels.

    Shapes: camera48 (3, H48, W48) float32 Camera48 (any exposure; only structure is
    compared); anchor (H12, W12) Mosaic12 with ``H48 = 2 H12``, ``W48 = 2 W12``;
    unclipped (H12, W12) bool, True where the anchor is below clip (clipped pixels carry
    no weight).
    Threads: the estimator works on many small tensors; ``threads`` torch threads are
    used meanwhile (1 by default: OpenMP spin-waiting on a busy 2-core machine made it 20x
    slower), restored afterwards; ``None`` leaves torch's setting alone.
    Progress: stage ``"register"``, one event per pyramid level and per final step.
    Raises: ShapeError for mismatched shapes; RegistrationError for frames too small;
    ConfigError for an unknown or invalid preset; CancelledError when cancelled.
    """
    t_start = time.perf_counter()
    _check_inputs(camera48, anchor, unclipped)
    pre = _preset(preset)
    report = progress or (lambda _p: None)

    def checkpoint(done: int, total: int, message: str) -> None:
        if cancel is not None:
            cancel.raise_if_cancelled()
        report(Progress("register", done, total, message))

    with torch.no_grad(), _torch_threads(threads):
        frame_hw = (int(camera48.shape[1]), int(camera48.shape[2]))
        cells, cells_valid, cell_ok = _anchor_cells(np.asarray(anchor), unclipped, cfa)
        cam = np.asarray(camera48, dtype=np.float32)
        field0 = _camera_field(cam, cfa, cell_ok)
        n_levels = 1
        while min(cells.shape) >> n_levels >= 3 * _PATCH and n_levels < 6:
            n_levels += 1
        levels = _pyramid(cells, cells_valid, field0, n_levels)
        del field0
        floor = _field_floor(levels[0].field)
        total = n_levels + 2
        checkpoint(0, total, "pyramids built")
        stats: dict[str, float] = {"levels": float(n_levels)}
        stats["seconds_prepare"] = time.perf_counter() - t_start

        h48, w48 = frame_hw
        init = pre.initial
        params = WarpParams(
            translation_px=init.translation_px,
            zoom=init.zoom,
            radial=init.radial,
            tangential=init.tangential,
            principal_point_px=init.principal_point(h48, w48),
        )
        top = levels[-1]
        params = _coarse_translation(top, params, frame_hw, floor, pre.max_translation_px)
        at_bound = False
        # Cell levels coarse to fine, then the finest stage on RAW12 pixels per colour
        # (core.geometry.refine), which a local tone curve and coloured edges bias less.
        for lev in range(n_levels - 1, -1, -1):
            level = levels[lev]
            cell_patches = _patch_grid(level, 0, min(max_patches, _MAX_CELL_PATCHES))
            if cell_patches is None:
                continue
            noise = _noise_var(level)
            active = _ACTIVE_ALL if lev <= 1 or lev < n_levels - 2 else _ACTIVE_COARSE
            rounds = 3 if lev in (0, n_levels - 1) else 2
            for _ in range(rounds):
                sx0, sy0 = _warped_positions(cell_patches, level, params, None, frame_hw)
                cfit = _lk_patches(cell_patches, level, sx0, sy0, noise)
                params, at_bound = _fit_params(cfit, cell_patches, params, frame_hw, pre, active)
            checkpoint(n_levels - lev, total, f"level {lev} done")
        stats["seconds_pyramid_fit"] = time.perf_counter() - t_start
        params_cells = params

        pixels = prepare_pixels(cam, np.asarray(anchor), cfa, unclipped)
        # Pixel patches of 32 RAW12 px (level-0 cell patches). Bigger patches at 48MP (64
        # or 128 RAW12 px, as many pixels in all) measured worse: 0.18 and 0.32 px instead
        # of 0.17 px on the bilateral 48MP benchmark.
        plev = levels[0]
        n_pix = min(max_patches, _MAX_PIXEL_PATCHES)
        patches = _pixel_grid(plev, 0, n_pix)
        flow: np.ndarray | None = None
        tone: Tensor | None = None  # smooth local tone exponent on the flow-node grid
        cov_out: dict[str, Tensor] = {}
        use_mesh = refine_options().gain_mesh and max(frame_hw) >= pre.gain_mesh_min_side_px
        stats["gain_mesh"] = float(use_mesh)
        if patches is not None:
            crops = patch_fields(pixels, patches, params, None, frame_hw)
            # Repeating texture (gratings, fine checks, weaves) matches itself a period
            # away: such a patch votes for whichever copy is nearest. It is left out until
            # the warp from the rest pins its position to a sixth of its period (3 sigma
            # within half a period), then it can only fall into the right basin.
            periods = patch_periods(crops)
            drop = torch.isfinite(periods)
            edge_dirs = _edge_polarity(crops) if _EDGE_BIAS else None
            stats["periodic_patches"] = float(drop.sum())
            fit: _PatchFit | None = None
            before = params
            for round_i, iters in enumerate(_PIXEL_ITERS):
                before = params
                if round_i > 0 and bool(drop.any()) and "cov" in cov_out:
                    sd = _point_std(cov_out["cov"], params, patches.qx, patches.qy, frame_hw)
                    drop &= ~(6.0 * sd < periods)
                fit = _without(
                    fit_pixel_patches(
                        pixels,
                        patches,
                        params,
                        None,
                        frame_hw,
                        fields=crops,
                        iters=iters,
                        mesh=use_mesh,
                    ),
                    drop,
                )
                if round_i == 0 and refine_options().tone:
                    # Local tone curve from the first (raw) round; later rounds compare
                    # Camera48 linearized with it (core.geometry.refine.estimate_tone).
                    e, var_e = estimate_tone(pixels, patches, params, None, frame_hw, fit, crops)
                    tone = _smooth_scalar(patches.qx, patches.qy, e, var_e, frame_hw, pre)
                    stats["tone_exponent_rms"] = float(torch.sqrt((tone**2).mean()))
                    tone_k = _scalar_at(tone, patches.qx, patches.qy, frame_hw)
                    crops = patch_fields(pixels, patches, params, None, frame_hw, tone=tone_k)
                params, at_bound = _fit_params(
                    fit,
                    patches,
                    params,
                    frame_hw,
                    pre,
                    _ACTIVE_ALL,
                    _NCC_MIN_FIT_PIXEL,
                    cov_out,
                    _MAX_FIT_SD_PX,
                    edge_dirs,
                )
            del crops
            if "edge_bias_px" in cov_out:
                stats["edge_bias_px"] = float(cov_out["edge_bias_px"][0])
            checkpoint(n_levels, total, "pixel level done")
            if fit is not None:
                # The last round's shifts, moved by the last parameter update: what the
                # final warp leaves at each patch (the update is small and smooth).
                fit = _shifted(fit, patches, before, params, frame_hw)
                flow, flow_stats = _residual_flow(fit, patches, params, frame_hw, pre)
                stats.update(flow_stats)
                stats["fit_patches"] = float((fit.usable & (fit.ncc >= _NCC_MIN_FIT_PIXEL)).sum())
        checkpoint(n_levels + 1, total, "residual flow")
        stats["seconds_flow"] = time.perf_counter() - t_start

        # Independent check on a patch grid offset by half a patch.
        check = _pixel_grid(plev, _PATCH // 2, n_pix)
        figures: dict[str, float] = {}
        residual = float("nan")
        if check is not None:
            check_tone = None if tone is None else _scalar_at(tone, check.qx, check.qy, frame_hw)
            vcrops = patch_fields(pixels, check, params, flow, frame_hw, tone=check_tone)
            vfit = fit_pixel_patches(
                pixels, check, params, flow, frame_hw, fields=vcrops, mesh=use_mesh
            )
            check_periods = patch_periods(vcrops)
            check_drop = torch.isfinite(check_periods)
            check_periodic = check_drop.clone()
            figures["periodic_fraction"] = float(check_drop.to(torch.float64).mean())
            if bool(check_drop.any()) and "cov" in cov_out:
                sd = _point_std(cov_out["cov"], params, check.qx, check.qy, frame_hw)
                check_drop &= ~(6.0 * sd < check_periods)
            vfit = _without(vfit, check_drop)
            check_bias = None
            if "edge_bias_px" in cov_out:
                check_bias = _edge_polarity(vcrops) * cov_out["edge_bias_px"]
            del vcrops
            residual, confident = _gate_residual(vfit, check, frame_hw, pre, figures, check_bias)
            if math.isfinite(residual):  # enough confident patches to compare at
                # Coarse (cell) and fine (pixel) estimates look at different frequencies:
                # texture above the per-colour Nyquist of RAW12 (zone plates, fabrics,
                # repeating patterns) aliases in the pixel stage only, its shifts agree
                # with each other so the check patches cannot see it, and the two
                # estimates then disagree by pixels where that texture is.
                plain = confident & ~check_periodic
                if int(plain.sum()) >= 5:
                    confident = plain
                qx_c, qy_c = check.qx[confident], check.qy[confident]
                figures["coarse_fine_px"] = _warp_difference(
                    params_cells, None, params, flow, frame_hw, qx_c, qy_c
                )
            if "cov_local" in cov_out and math.isfinite(residual):
                # What the check patches cannot see: the uncertainty of the fitted warp
                # over the whole frame (extrapolation into structureless corners), from
                # the information the fit patches hold about their local affine motion
                # (a shift alone claimed zoom and k1 pinned on a Siemens star, whose
                # radial structure cannot see them: 2 px off, figure 0.15 px).
                spread, worst = _frame_std(cov_out["cov_local"], params, frame_hw)
                figures["residual_measured_px"] = residual
                figures["warp_uncertainty_px"] = spread
                figures["warp_uncertainty_max_px"] = worst
                figures["warp_error_max_px"] = _frame_error_bound(
                    cov_out["cov_local"], cov_out["bias_gain"], params, frame_hw
                )
                residual = math.hypot(residual, spread)
                if figures["warp_error_max_px"] > pre.gate.max_frame_error_px:
                    # The check patches measured where the structure is; elsewhere the
                    # warp is an extrapolation that may be off by pixels: unmeasured.
                    residual = float("nan")
            n_tex = int(vfit.textured.sum())
            matched = int((vfit.textured & (vfit.ncc >= _NCC_MATCH)).sum())
            figures["matched_fraction"] = matched / n_tex if n_tex >= 8 else float("nan")
            figures["textured_patches"] = float(n_tex)
        else:
            figures["matched_fraction"] = float("nan")
        figures["residual_rms_px"] = residual
        lev_e = levels[min(1, n_levels - 1)]
        p_log, inside = _aligned_cells(lev_e, params, flow, frame_hw, floor)
        ok = lev_e.valid & inside
        figures["edge_agreement"] = _edge_agreement(lev_e.anchor.to(torch.float64), p_log, ok)
        # Same level as the edge agreement (8x8 px cells where there are levels): a local
        # gain of 16 px sigma, as 4 level-0 cells; 4x cheaper than level 0 at 48MP.
        psnr, l1 = _psnr_local_gain(
            lev_e.anchor.to(torch.float64), p_log, ok, sigma_cells=16.0 / lev_e.cell_px
        )
        figures["psnr_db"] = psnr
        figures["l1_rel"] = l1
        figures["params_at_bound"] = 1.0 if at_bound else 0.0
        gate = _decide(figures, pre.gate)
        checkpoint(total, total, "gate " + ("passed" if gate.passed else "failed"))

    seconds = time.perf_counter() - t_start
    log.info(
        "registration %s in %.1f s: %s", "passed" if gate.passed else "FAILED", seconds, params
    )
    return RegistrationResult(
        params=params,
        flow=flow,
        residual_rms_px=residual,
        gate=gate,
        seconds=seconds,
        preset=pre.name,
        frame_hw=frame_hw,
        stats=stats,
    )


def apply_registration(camera48: np.ndarray, result: RegistrationResult) -> np.ndarray:
    """The registered Camera48: ``out(q) = camera48(W(q))`` on the RAW12-aligned grid.

    One ``grid_sample`` per band of rows with the fused grid (bit-identical to the
    whole-frame warp, memory bounded by the band); identity parameters return a copy.
    Shapes: (3, H48, W48) float32 -> same.
    Raises: ShapeError when the frame is not the one registered.
    """
    if result.frame_hw != (0, 0) and tuple(camera48.shape[1:]) != result.frame_hw:
        raise ShapeError(
            f"Camera48 is {camera48.shape[2]}x{camera48.shape[1]} but the registration was "
            f"made on {result.frame_hw[1]}x{result.frame_hw[0]}"
        )
    return warp(np.asarray(camera48, dtype=np.float32), result.params, result.flow)
