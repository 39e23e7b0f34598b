"""Describe any DNG a user hands us: what it is, its key tags and Linear48 provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.io.dngfile import (
    PHOTOMETRIC_CFA,
    PHOTOMETRIC_LINEAR_RAW,
    TAG_PGTM,
    check_data_extents,
    check_dimensions,
    compression_name,
    open_dng,
    read_color_metadata,
    read_identity,
)


def _kind(photometric: int, samples: int, software: str) -> str:
    if photometric == PHOTOMETRIC_CFA:
        return "Bayer RAW (RAW12-like)"
    if photometric == PHOTOMETRIC_LINEAR_RAW and samples == 3:
        if software.startswith("Linear48"):
            return "Linear48 output (scene-linear LinearRaw)"
        return "LinearRaw (ProRAW48-like)"
    return f"photometric {photometric}"


def describe_dng(path: str | Path) -> dict[str, Any]:
    """A JSON-able summary of a DNG's structure and tags; never decodes pixels.

    Raises:
        The typed errors of :func:`core.io.dngfile.open_dng` for files that are not DNGs.
    """
    from core.io.dng_writer import read_provenance

    file = Path(path)
    with open_dng(file) as handle:
        h, w = check_dimensions(handle)
        color = read_color_metadata(handle)
        ident = read_identity(handle)
        raw = handle.raw
        try:
            check_data_extents(handle)
            data_ok = "complete"
        except Exception as err:  # reported, not raised: inspect must describe broken files
            data_ok = f"problem: {err}"
        bps = np.atleast_1d(raw.bitspersample).tolist()
        info: dict[str, Any] = {
            "file": str(file),
            "bytes": handle.file_size,
            "kind": _kind(int(raw.photometric), int(raw.samplesperpixel), ident.software),
            "byte_order": "big-endian" if handle.tif.byteorder == ">" else "little-endian",
            "dng_version": ".".join(map(str, ident.dng_version)) if ident.dng_version else None,
            "make": ident.make,
            "model": ident.model,
            "unique_camera_model": ident.unique_camera_model,
            "software": ident.software,
            "orientation": ident.orientation,
            "raw_ifd": "IFD0" if raw is handle.ifd0 else "SubIFD",
            "size": [w, h],
            "samples_per_pixel": int(raw.samplesperpixel),
            "bits_per_sample": bps,
            "sample_format": int(np.atleast_1d(raw.sampleformat)[0]),
            "compression": compression_name(int(raw.compression)),
            "layout": (f"tiles {raw.tilewidth}x{raw.tilelength}" if raw.is_tiled else "strips"),
            "image_data": data_ok,
            "baseline_exposure": color.baseline_exposure,
            "as_shot_neutral": None
            if color.as_shot_neutral is None
            else [round(float(v), 5) for v in color.as_shot_neutral],
            "analog_balance": None
            if color.analog_balance is None
            else [round(float(v), 5) for v in color.analog_balance],
            "calibration_illuminants": [
                color.calibration_illuminant1,
                color.calibration_illuminant2,
            ],
            "has_linearization_table": 50712 in raw.tags,
            "has_profile_gain_table_map": TAG_PGTM in raw.tags or TAG_PGTM in handle.ifd0.tags,
            "opcode_lists": [
                n for n, code in ((1, 51008), (2, 51009), (3, 51022)) if code in raw.tags
            ],
        }
    info["provenance"] = read_provenance(file)
    return info
