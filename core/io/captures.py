"""Frozen dataclasses the readers return and the writers take (never library objects).

Array conventions (DESIGN §2):
- Mosaic12: float32 (H12, W12), ``(raw - black[cfa]) / (white - black[cfa])``, 1.0 = clip.
- ProRAW48 linear: float32 (3, H48, W48), after LinearizationTable, BlackLevel and
  WhiteLevel, 1.0 = the file's white level, in the file's own (stored) colour space.
- Camera48: float32 (3, H48, W48) in RAW12's camera-native space on the Mosaic12 scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.cfa import CfaPattern

if TYPE_CHECKING:
    from core.io.opcodes import OpcodeList
    from core.io.pgtm import ProfileGainTableMap


@dataclass(frozen=True)
class ColorMetadata:
    """DNG colour and tone tags, as written in the file (no defaults invented).

    Matrices are (3, 3) float64, row-major as in the DNG spec: ``ColorMatrix`` maps XYZ to
    reference camera space, ``ForwardMatrix`` maps white-balanced camera to XYZ D50,
    ``CameraCalibration`` maps reference camera to individual camera. Vectors are (3,).
    ``None`` means the tag is absent.
    """

    color_matrix1: np.ndarray | None = None
    color_matrix2: np.ndarray | None = None
    calibration_illuminant1: int | None = None
    calibration_illuminant2: int | None = None
    forward_matrix1: np.ndarray | None = None
    forward_matrix2: np.ndarray | None = None
    camera_calibration1: np.ndarray | None = None
    camera_calibration2: np.ndarray | None = None
    analog_balance: np.ndarray | None = None
    as_shot_neutral: np.ndarray | None = None
    as_shot_white_xy: tuple[float, float] | None = None
    baseline_exposure: float | None = None
    baseline_noise: float | None = None
    baseline_sharpness: float | None = None
    noise_profile: tuple[float, ...] | None = None
    profile_name: str | None = None
    profile_tone_curve: np.ndarray | None = None  # (N, 2) float32 pairs in 0..1

    @property
    def baseline_exposure_ev(self) -> float:
        """BaselineExposure in EV, 0.0 when the tag is absent."""
        return float(self.baseline_exposure) if self.baseline_exposure is not None else 0.0


@dataclass(frozen=True)
class CameraIdentity:
    """Who made the file. Strings as written in the file ('' when absent)."""

    make: str = ""
    model: str = ""
    unique_camera_model: str = ""
    software: str = ""
    orientation: int = 1
    dng_version: tuple[int, int, int, int] | None = None
    datetime_original: str = ""


@dataclass(frozen=True)
class RawCapture:
    """A RAW12 Bayer capture (DESIGN §1-2).

    Attributes:
        path: source file.
        mosaic: float32 (H12, W12) Mosaic12 of the active area after DefaultCrop.
        cfa: Bayer pattern of ``mosaic`` (phase of its top-left pixel).
        black: (2, 2) float64 black level in raw units per CFA position of ``mosaic``.
        white: white level in raw units.
        color: colour/tone tags (from IFD0 and the raw IFD).
        identity: make, model, orientation...
        active_area: (top, left, bottom, right) in stored raw pixels.
        crop_origin: (x, y) of ``mosaic``'s top-left inside the active area.
        opcode_lists: parsed OpcodeList1/2/3 keyed by list number (1, 2, 3).
        stored_size: (height, width) of the raw IFD as stored.
        compression: TIFF compression code of the raw IFD.
    """

    path: Path
    mosaic: np.ndarray
    cfa: CfaPattern
    black: np.ndarray
    white: float
    color: ColorMetadata
    identity: CameraIdentity
    active_area: tuple[int, int, int, int]
    crop_origin: tuple[int, int]
    opcode_lists: dict[int, OpcodeList] = field(default_factory=dict)
    stored_size: tuple[int, int] = (0, 0)
    compression: int = 1

    @property
    def shape(self) -> tuple[int, int]:
        """(H12, W12)."""
        return (int(self.mosaic.shape[0]), int(self.mosaic.shape[1]))


@dataclass(frozen=True)
class ProRawCapture:
    """A ProRAW48 LinearRaw capture (DESIGN §1-2).

    Attributes:
        path: source file.
        image: float32 (3, H48, W48) linear values in the file's stored colour space after
            LinearizationTable, BlackLevel and WhiteLevel; 1.0 = white level.
        color: colour/tone tags.
        identity: make, model, orientation...
        pgtm: the ProfileGainTableMap when present (tag 52525, raw IFD or IFD0).
        linearization_table: (N,) uint16 table when present.
        black: (3,) black level per sample in linearized units.
        white: (3,) white level per sample in linearized units.
        bits_per_sample: stored bit depth (10, 12, 16...).
        compression: TIFF compression code of the raw IFD (7 lossless JPEG, 52546 JPEG XL).
        crop: (x, y, w, h) DefaultCrop applied to ``image`` (whole image when absent).
    """

    path: Path
    image: np.ndarray
    color: ColorMetadata
    identity: CameraIdentity
    pgtm: ProfileGainTableMap | None = None
    linearization_table: np.ndarray | None = None
    black: np.ndarray = field(default_factory=lambda: np.zeros(3))
    white: np.ndarray = field(default_factory=lambda: np.full(3, 65535.0))
    bits_per_sample: int = 16
    compression: int = 1
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def shape(self) -> tuple[int, int]:
        """(H48, W48)."""
        return (int(self.image.shape[1]), int(self.image.shape[2]))


@dataclass(frozen=True)
class CapturePair:
    """A validated RAW12 + ProRAW48 pair mapped onto common scales.

    Attributes:
        raw12: the RAW12 capture.
        proraw48: the ProRAW48 capture.
        anchor: float32 (H12, W12) Mosaic12 with RAW12's lens shading applied (flat field).
        camera48: float32 (3, H48, W48) ProRAW48 mapped into RAW12's camera space
            (Camera48 scale), before any exposure matching.
        wb_gains: (3,) white-balance gains from RAW12 (green = 1): working = camera * gains.
        color_transform: (3, 3) matrix used, camera48 = M @ proraw_linear.
        unclipped: (H12, W12) bool, anchor pixels below the sensor clip (decided on the
            raw mosaic, before shading scaled it).
        shading_applied: names of the shading opcodes applied to the anchor.
        notes: human-readable remarks gathered while pairing.
    """

    raw12: RawCapture
    proraw48: ProRawCapture
    anchor: np.ndarray
    camera48: np.ndarray
    wb_gains: np.ndarray
    color_transform: np.ndarray
    unclipped: np.ndarray | None = None
    shading_applied: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
