"""Load and validate a capture pair: RAW12 + ProRAW48 -> :class:`CapturePair`.

Order of work is chosen so a bad pair fails fast: RAW12 is read, ProRAW48's tags are
checked (size must be exactly 2x RAW12 after crops) before its 48MP pixels are decoded,
then ProRAW48 is mapped into RAW12's camera space and RAW12's lens shading is applied to
the anchor mosaic (DESIGN §1-3).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.color import proraw_to_camera_matrix, wb_gains
from core.errors import PairMismatchError
from core.io.captures import CapturePair, ProRawCapture, RawCapture
from core.io.opcodes import (
    FixVignetteRadialOpcode,
    GainMapOpcode,
    shading_gain_map,
    unsupported_mandatory,
)
from core.io.proraw48 import read_proraw48
from core.io.raw12 import read_raw12
from core.progress import CancelToken, Progress, ProgressCallback, no_progress

log = logging.getLogger(__name__)

#: Mosaic12 values at or above this fraction of the clip count as clipped.
CLIP_FRACTION = 0.97


def check_pair_sizes(raw12: RawCapture, proraw48: ProRawCapture) -> None:
    """ProRAW48 must be exactly twice RAW12 in both axes (after crops).

    Raises:
        PairMismatchError: naming both sizes.
    """
    h12, w12 = raw12.shape
    if proraw48.crop[2] and proraw48.crop[3]:
        w48, h48 = proraw48.crop[2], proraw48.crop[3]
    else:
        h48, w48 = proraw48.shape
    if (h48, w48) != (2 * h12, 2 * w12):
        raise PairMismatchError(
            f"ProRAW48 is {w48}x{h48} but RAW12 is {w12}x{h12}; the ProRAW must be exactly "
            "twice the RAW in each axis",
            proraw48.path,
            expected=(2 * w12, 2 * h12),
            actual=(w48, h48),
        )


def shading_for(raw12: RawCapture) -> tuple[np.ndarray | None, tuple[str, ...], tuple[str, ...]]:
    """Flat-field gain (H12, W12) from RAW12's lens-shading opcodes.

    Returns (gain or None, names of the opcodes applied, notes). Mandatory opcodes that are
    not shading (e.g. WarpRectilinear) are noted: geometry is registration's job.
    """
    lists = [raw12.opcode_lists[k] for k in sorted(raw12.opcode_lists)]
    applied: list[str] = []
    notes: list[str] = []
    for ol in lists:
        for op in ol.opcodes:
            if isinstance(op, GainMapOpcode):
                applied.append(f"OpcodeList{ol.list_id}:GainMap")
            elif isinstance(op, FixVignetteRadialOpcode):
                applied.append(f"OpcodeList{ol.list_id}:FixVignetteRadial")
        for name in unsupported_mandatory(ol):
            notes.append(
                f"mandatory opcode {name} not applied to the anchor (geometry is "
                "handled by registration)"
            )
    if not applied:
        return None, (), tuple(notes)
    top, left, bottom, right = raw12.active_area
    h12, w12 = raw12.shape
    cx, cy = raw12.crop_origin
    gain = np.ones((h12, w12), np.float32)
    for ol in lists:
        if ol.list_id == 1:  # OpcodeList1 works on the stored image (DNG spec, stage 1)
            origin, size = (left + cx, top + cy), raw12.stored_size
        else:  # OpcodeList2/3 work on the ActiveArea (stages 2 and 3)
            origin, size = (cx, cy), (bottom - top, right - left)
        gain *= shading_gain_map([ol], h12, w12, raw12.cfa, origin=origin, image_size=size)
    return gain.astype(np.float32), tuple(applied), tuple(notes)


def apply_matrix_banded(matrix: np.ndarray, image: np.ndarray, band_rows: int = 256) -> np.ndarray:
    """``matrix @ image`` per pixel, written band by band into one new float32 frame.

    Shapes: matrix (3, 3), image (3, H, W) float32 -> (3, H, W) float32. Peak memory is
    the result plus one band (an ``einsum`` over the frame plus a dtype copy would hold
    two extra 48MP frames, 1.2 GB at 8064x6048).
    """
    m = np.asarray(matrix, dtype=np.float32)
    _, h, w = image.shape
    out = np.empty((3, h, w), np.float32)
    for y0 in range(0, h, band_rows):
        y1 = min(h, y0 + band_rows)
        band = image[:, y0:y1].reshape(3, -1)
        np.matmul(m, band, out=out[:, y0:y1].reshape(3, -1))
    return out


def load_pair(
    raw12_path: str | Path,
    proraw48_path: str | Path,
    *,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> CapturePair:
    """Read, validate and map a capture pair.

    Raises:
        InputFileError subclasses from either reader; PairMismatchError when the sizes do
        not pair; CancelledError when cancelled between steps.
    """
    token = cancel or CancelToken()
    progress(Progress("read", 0, 4, "reading RAW12"))
    raw12 = read_raw12(raw12_path)
    token.raise_if_cancelled()
    progress(Progress("read", 1, 4, "checking ProRAW48"))
    header = read_proraw48(proraw48_path, decode=False)
    check_pair_sizes(raw12, header)
    token.raise_if_cancelled()
    progress(Progress("read", 2, 4, "decoding ProRAW48"))
    proraw48 = read_proraw48(proraw48_path)
    check_pair_sizes(raw12, proraw48)
    token.raise_if_cancelled()
    progress(Progress("read", 3, 4, "mapping colour and shading"))
    notes: list[str] = []
    if raw12.identity.orientation != proraw48.identity.orientation:
        notes.append(
            f"Orientation differs (RAW12 {raw12.identity.orientation}, ProRAW48 "
            f"{proraw48.identity.orientation}); both are processed in sensor "
            "orientation and RAW12's is written"
        )
    if (
        raw12.identity.model
        and proraw48.identity.model
        and (raw12.identity.model != proraw48.identity.model)
    ):
        notes.append(f"camera models differ: {raw12.identity.model} vs {proraw48.identity.model}")
    mapping = proraw_to_camera_matrix(raw12.color, proraw48.color)
    notes.append(mapping.note)
    if mapping.method == "identity":
        camera48 = proraw48.image
    else:
        camera48 = apply_matrix_banded(mapping.matrix, proraw48.image)
    np.maximum(camera48, 0.0, out=camera48)
    gain, applied, shading_notes = shading_for(raw12)
    notes.extend(shading_notes)
    anchor = raw12.mosaic if gain is None else (raw12.mosaic * gain).astype(np.float32)
    progress(Progress("read", 4, 4, "pair ready"))
    return CapturePair(
        raw12=raw12,
        proraw48=proraw48,
        anchor=anchor,
        camera48=camera48,
        wb_gains=wb_gains(raw12.color),
        color_transform=mapping.matrix,
        unclipped=raw12.mosaic < CLIP_FRACTION,
        shading_applied=applied,
        notes=tuple(notes),
    )


def release_proraw_pixels(pair: CapturePair) -> CapturePair:
    """The pair without ProRAW48's decoded pixels (``proraw48.image``), to save memory.

    Once ``camera48`` is its own array (a colour mapping or registration made it), the
    decoded ProRAW48 is a second 48MP float image (585 MB at 8064x6048) that a conversion
    never reads again. Its replacement is a read-only zero-stride view of zeros with the
    same shape (so ``proraw48.shape`` stays true) costing 4 bytes; views that display the
    ProRAW48 itself (the GUI) keep the original pair. Returns ``pair`` unchanged when the
    two images share memory.
    """
    image = pair.proraw48.image
    if np.shares_memory(image, pair.camera48) or image.strides == (0, 0, 0):
        return pair
    released = np.broadcast_to(np.zeros((), np.float32), image.shape)
    return replace(pair, proraw48=replace(pair.proraw48, image=released))
