"""DNG colour handling: camera neutrals, white-balance gains, camera-to-camera mapping.

Conventions (DNG 1.6 spec, chapter 6): ``ColorMatrix`` (CM) maps XYZ to the reference
camera, ``CameraCalibration`` (CC) the reference camera to this camera, ``AnalogBalance``
(AB) native camera values to *stored* values. So ``XYZ -> stored = AB @ CC @ CM(xy)``
with CM/CC interpolated between the two calibration illuminants by inverse correlated
colour temperature at the white point ``xy``. ``AsShotNeutral`` is a neutral in stored
values; iOS 15+ ProRAW stores (1, 1, 1) there and moves the white-balance gains into
AnalogBalance, so neutrals are always computed from both tags, never read alone.

The DNG interpolation itself (xy <-> neutral iteration, CCT weighting) comes from
``colour_hdri`` (colour-science), imported lazily.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from core.io.captures import ColorMetadata

log = logging.getLogger(__name__)

#: Correlated colour temperature (K) of EXIF LightSource codes used as calibration
#: illuminants (DNG spec table; the same values the Adobe SDK uses).
ILLUMINANT_CCT: dict[int, float] = {
    1: 5500.0,  # Daylight
    2: 4150.0,  # Fluorescent
    3: 2850.0,  # Tungsten
    4: 5500.0,  # Flash
    9: 5500.0,  # Fine weather
    10: 6500.0,  # Cloudy
    11: 7500.0,  # Shade
    12: 6430.0,  # Daylight fluorescent
    13: 5000.0,  # Day white fluorescent
    14: 4150.0,  # Cool white fluorescent
    15: 3450.0,  # White fluorescent
    16: 2940.0,  # Warm white fluorescent
    17: 2856.0,  # Standard light A
    18: 4874.0,  # Standard light B
    19: 6774.0,  # Standard light C
    20: 5503.0,  # D55
    21: 6504.0,  # D65
    22: 7504.0,  # D75
    23: 5003.0,  # D50
    24: 3200.0,  # ISO studio tungsten
}

#: XYZ (D65) -> linear sRGB, used only for previews.
XYZ_TO_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)


def _cct(code: int | None) -> float:
    return ILLUMINANT_CCT.get(int(code), 5000.0) if code is not None else 6504.0


def _has_matrix(color: ColorMetadata) -> bool:
    return color.color_matrix1 is not None


def _dng_args(
    color: ColorMetadata,
) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    cm1 = np.asarray(color.color_matrix1, dtype=np.float64)
    cm2 = np.asarray(
        color.color_matrix2 if color.color_matrix2 is not None else cm1, dtype=np.float64
    )
    cc1 = np.asarray(
        color.camera_calibration1 if color.camera_calibration1 is not None else np.eye(3),
        dtype=np.float64,
    )
    cc2 = np.asarray(
        color.camera_calibration2 if color.camera_calibration2 is not None else cc1,
        dtype=np.float64,
    )
    ab = (
        np.asarray(color.analog_balance, dtype=np.float64)
        if color.analog_balance is not None
        else np.ones(3)
    )
    cct1 = _cct(color.calibration_illuminant1)
    cct2 = _cct(color.calibration_illuminant2) if color.color_matrix2 is not None else cct1
    return cct1, cct2, cm1, cm2, cc1, cc2, ab


def stored_neutral(color: ColorMetadata) -> np.ndarray:
    """The white-balance neutral in *stored* values, (3,) with green = 1.

    AsShotNeutral when present; else derived from AsShotWhiteXY through the colour
    matrices; else (1, 1, 1).
    """
    if color.as_shot_neutral is not None:
        n = np.asarray(color.as_shot_neutral, dtype=np.float64)
    elif color.as_shot_white_xy is not None and _has_matrix(color):
        n = xyz_to_stored(color, np.asarray(color.as_shot_white_xy)) @ _xy_to_xyz(
            np.asarray(color.as_shot_white_xy)
        )
    else:
        n = np.ones(3)
    return n / n[1]


def native_neutral(color: ColorMetadata) -> np.ndarray:
    """Neutral in native (pre-AnalogBalance) camera values, green = 1."""
    n = stored_neutral(color)
    if color.analog_balance is not None:
        n = n / np.asarray(color.analog_balance, dtype=np.float64)
    return n / n[1]


def wb_gains(color: ColorMetadata) -> np.ndarray:
    """White-balance gains (3,) for stored values, green = 1: working = stored * gains."""
    n = stored_neutral(color)
    return (1.0 / n) * n[1]


#: CIE 1931 chromaticity of D65, the white assumed when a file gives none.
D65_XY = (0.3127, 0.3290)


def xy_to_xyz(xy: np.ndarray) -> np.ndarray:
    """(x, y) chromaticity -> XYZ with Y = 1."""
    return _xy_to_xyz(xy)


def _xy_to_xyz(xy: np.ndarray) -> np.ndarray:
    x, y = float(xy[0]), float(xy[1])
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def neutral_xy(color: ColorMetadata) -> np.ndarray:
    """Chromaticity (x, y) of the as-shot white point (DNG iteration via colour_hdri)."""
    if not _has_matrix(color):
        return np.array([0.3127, 0.3290])
    if color.as_shot_neutral is None and color.as_shot_white_xy is not None:
        return np.asarray(color.as_shot_white_xy, dtype=np.float64)
    import colour_hdri

    cct1, cct2, cm1, cm2, cc1, cc2, ab = _dng_args(color)
    return np.asarray(
        colour_hdri.camera_neutral_to_xy(stored_neutral(color), cct1, cct2, cm1, cm2, cc1, cc2, ab),
        dtype=np.float64,
    )


def xyz_to_stored(color: ColorMetadata, xy: np.ndarray | None = None) -> np.ndarray:
    """(3, 3) matrix XYZ -> stored camera values at white point ``xy`` (default: as shot)."""
    if not _has_matrix(color):
        raise ValueError("no ColorMatrix1")
    import colour_hdri

    cct1, cct2, cm1, cm2, cc1, cc2, ab = _dng_args(color)
    white = neutral_xy(color) if xy is None else xy
    return np.asarray(
        colour_hdri.matrix_XYZ_to_camera_space(white, cct1, cct2, cm1, cm2, cc1, cc2, ab),
        dtype=np.float64,
    )


@dataclass(frozen=True)
class CameraMapping:
    """How ProRAW48's stored values were mapped into RAW12's camera space.

    Attributes:
        matrix: (3, 3), camera48 = matrix @ proraw_stored (per pixel).
        method: ``"dng-matrices"`` or ``"identity"`` (no usable colour tags).
        note: human-readable remark.
    """

    matrix: np.ndarray
    method: str
    note: str


def proraw_to_camera_matrix(raw12: ColorMetadata, proraw: ColorMetadata) -> CameraMapping:
    """Matrix taking ProRAW48 stored values to RAW12 stored (camera-native) values.

    ``M = XYZ->stored_raw12(xy_raw12) @ inv(XYZ->stored_proraw(xy_proraw))``. When both
    files carry the same matrices and calibrations this is ``AB_raw12 @ inv(AB_proraw)``
    up to the interpolation weights, i.e. the identity up to white balance. The result is
    normalised so that a neutral stays at the same green level (exposure is matched
    separately by one global ratio).
    """
    if not (_has_matrix(raw12) and _has_matrix(proraw)):
        return CameraMapping(
            np.eye(3), "identity", "ColorMatrix missing in one file; assumed the same camera space"
        )
    m = xyz_to_stored(raw12) @ np.linalg.inv(xyz_to_stored(proraw))
    # Normalise: ProRAW's neutral must land on RAW12's neutral with the same green.
    mapped = m @ stored_neutral(proraw)
    m = m / mapped[1]
    if np.allclose(m, np.eye(3), atol=1e-6):
        return CameraMapping(np.eye(3), "identity", "colour metadata equal: identity mapping")
    return CameraMapping(m, "dng-matrices", "mapped through both files' DNG colour matrices")


def stored_to_srgb_matrix(color: ColorMetadata) -> np.ndarray:
    """(3, 3) stored camera values -> linear sRGB for previews.

    Rows are scaled so the as-shot neutral (green = 1) maps to (1, 1, 1): white balance is
    folded in, and a neutral keeps its green level.
    """
    if not _has_matrix(color):
        return np.eye(3)
    cam_to_xyz = np.linalg.inv(xyz_to_stored(color))
    m = XYZ_TO_SRGB @ cam_to_xyz
    neutral = stored_neutral(color)
    white = m @ neutral
    return np.diag(1.0 / white) @ m
