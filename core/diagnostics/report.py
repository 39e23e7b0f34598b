"""CLI helpers: diagnose a written DNG (``python main.py diagnose OUT.dng [--json]``).

:func:`diagnose_file` reads a LinearRaw DNG (a Linear48 output, or any demosaiced DNG such
as a ProRAW) and returns a plain JSON dict; :func:`format_diagnostics` turns that dict
into the lines the CLI prints.

Scale: a reader renders stored value x 2**BaselineExposure with the AsShotNeutral white
balance, so that is what is diagnosed (for a Linear48 output this equals Camera48 x
2**BaselineExposure(RAW12) x RAW12's white-balance gains; the headroom cancels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.diagnostics.advice import MethodRequest, optimize_corrections
from core.diagnostics.stability import DEFAULT_GRID, LOCAL_CAST_EV, wb_stability_captures
from core.diagnostics.types import CorrectionAdvice, SceneInfo
from core.errors import WrongKindError
from core.jsonutil import to_jsonable
from core.progress import CancelToken, Progress, ProgressCallback, no_progress

__all__ = ["diagnose_file", "format_diagnostics"]


def diagnose_file(
    path: str | Path,
    *,
    method: MethodRequest = "auto",
    raw12: str | Path | None = None,
    grid: tuple[int, int] = DEFAULT_GRID,
    checkpoint: str | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> dict[str, Any]:
    """Exposure, white-balance and saturation diagnostics of a LinearRaw DNG.

    With ``raw12`` (the RAW12 the output was converted from) the result also holds the
    per-region white-balance stability map against that anchor (``wb_stability``; None
    otherwise).

    Returns: a JSON-able dict: file, kind, size [W, H], scale (baseline_exposure_ev,
        wb_gains), method / method_requested / fallback_reason / model_hash, exposure,
        white_balance, saturation (the ``to_dict()`` of the diagnostics), notes,
        provenance (Linear48's, or None), wb_stability.
    Raises:
        FileNotReadableError, NotADngError, CorruptDataError, TruncatedFileError...: the
            reader's typed errors.
        WrongKindError: a Bayer (CFA) DNG, which has no RGB pixels to diagnose.
        PairMismatchError: ``raw12`` does not pair with the output.
        DiagnosticCheckpointError: ``method="learned"`` and the model cannot be loaded.
        CancelledError: ``cancel`` fired between stages.
    """
    from core.color import wb_gains
    from core.io.dng_writer import read_provenance
    from core.io.proraw48 import read_proraw48

    report = progress or no_progress
    token = cancel or CancelToken()
    file = Path(path)
    stages = 3 if raw12 is not None else 2
    report(Progress("diagnose", 0, stages, f"reading {file.name}"))
    try:
        out = read_proraw48(file)
    except WrongKindError as err:
        raise WrongKindError(
            f"diagnose needs a Linear48 output or another LinearRaw DNG, not a {err.actual} file",
            file,
            expected="LinearRaw",
            actual=err.actual,
        ) from err
    token.raise_if_cancelled()
    linear48 = out.identity.software.startswith("Linear48")
    gains = wb_gains(out.color)
    ev = out.color.baseline_exposure_ev
    scene = SceneInfo(
        wb_gains=(float(gains[0]), float(gains[1]), float(gains[2])),
        exposure_ev=ev,
        color=out.color,
        name=file.name,
    )
    report(Progress("diagnose", 1, stages, "diagnosing"))
    advice = optimize_corrections(out.image, scene, method=method, checkpoint=checkpoint)
    notes = list(advice.notes)
    if not linear48:
        notes.append(
            "not a Linear48 output: its stored pixels are diagnosed as they are (any local "
            "tone mapping in them is included)"
        )
    stability = None
    if raw12 is not None:
        from core.io.raw12 import read_raw12

        token.raise_if_cancelled()
        report(Progress("diagnose", 2, stages, "white-balance stability against RAW12"))
        rep = wb_stability_captures(out, read_raw12(raw12), grid=grid, threshold_ev=LOCAL_CAST_EV)
        stability = rep.to_dict()
    report(Progress("diagnose", stages, stages, "done"))
    result = {
        "file": str(file),
        "kind": "Linear48 output" if linear48 else "LinearRaw DNG",
        "size": [int(out.image.shape[2]), int(out.image.shape[1])],
        "scale": {"baseline_exposure_ev": ev, "wb_gains": np.round(gains, 5).tolist()},
        **advice_fields(advice),
        "notes": notes,
        "provenance": read_provenance(file) if linear48 else None,
        "wb_stability": stability,
    }
    out_dict: dict[str, Any] = to_jsonable(result)
    return out_dict


def advice_fields(advice: CorrectionAdvice) -> dict[str, Any]:
    """The advice's part of a :func:`diagnose_file` result (method, its provenance and the
    three diagnostics as dicts): what :func:`format_diagnostics` reads besides the file."""
    return {
        "method": advice.method,
        "method_requested": advice.method_requested,
        "fallback_reason": advice.fallback_reason,
        "model_hash": advice.model_hash,
        "exposure": advice.exposure.to_dict(),
        "white_balance": advice.white_balance.to_dict(),
        "saturation": advice.saturation.to_dict(),
    }


def _num(v: Any, fmt: str, missing: str = "n/a") -> str:
    return missing if v is None else format(float(v), fmt)


def _exposure_line(e: dict[str, Any]) -> str:
    p = e["probabilities"].get(e["label"])
    return (
        f"{e['label']} (p={_num(p, '.2f')}); key {_num(e['key_ev'], '+.1f')} EV, "
        f"p99 {_num(e['p99_ev'], '+.1f')} EV, {_num(e['clipped_fraction'], '.1%')} clipped; "
        f"correction gamma {_num(e['correction_gamma'], '.2f')}"
    )


def _wb_line(w: dict[str, Any]) -> str:
    g = w["gains"]
    head = "neutral" if w["label"] == "neutral" else f"{w['cast'] or 'slight'} cast"
    text = (
        f"{head}; correction gains R {_num(g[0], '.3f')} G 1 B {_num(g[2], '.3f')} "
        f"(temperature {_num(w['temperature_ev'], '+.3f')} EV, "
        f"tint {_num(w['tint_ev'], '+.3f')} EV)"
    )
    if w.get("as_shot_cct_k") is not None and w.get("corrected_cct_k") is not None:
        text += (
            f"; white point {w['as_shot_cct_k']:.0f} K (Duv {w['as_shot_duv']:+.4f}) -> "
            f"{w['corrected_cct_k']:.0f} K (Duv {w['corrected_duv']:+.4f})"
        )
    return text


def _saturation_line(s: dict[str, Any]) -> str:
    if not s["identifiable"]:
        return f"not judged (nearly achromatic, chroma {_num(s['chroma'], '.3f')})"
    p = s["probabilities"].get(s["label"])
    return (
        f"{s['label']} (p={_num(p, '.2f')}); chroma {_num(s['chroma'], '.3f')}; "
        f"correction x{_num(s['correction_factor'], '.2f')}"
    )


def _stability_lines(st: dict[str, Any]) -> list[str]:
    stab = st["stability"]
    gv, gh = stab["grid"]
    worst = stab.get("max_abs_dev_ev")
    if st["stable"]:
        where = ""
        if stab.get("worst_cell") is not None:
            r, c = stab["worst_cell"]
            where = f" at cell ({r}, {c}) {stab['worst_ratio']}"
        return [
            f"stable: no {gv}x{gh} cell deviates more than {st['threshold_ev']:.2f} EV "
            f"(largest {_num(worst, '.3f')} EV{where})"
        ]
    worst_first = sorted(st["flagged"], key=lambda f: -abs(f[3]))
    cells = ", ".join(f"({r}, {c}) {ratio} {dev:+.3f} EV" for r, c, ratio, dev in worst_first[:8])
    more = f" and {len(st['flagged']) - 8} more" if len(st["flagged"]) > 8 else ""
    return [
        f"LOCAL CAST: {len(st['flagged'])} cell(s) of {gv}x{gh} beyond "
        f"{st['threshold_ev']:.2f} EV: {cells}{more}"
    ]


def format_diagnostics(d: dict[str, Any]) -> str:
    """Human-readable lines for a :func:`diagnose_file` result (ends with a newline)."""
    w, h = d["size"]
    method = d["method"]
    if d.get("model_hash"):
        method += f", model {d['model_hash'][:12]}"
    if d.get("fallback_reason"):
        method += f", {d['method_requested']} requested but unavailable"
    lines = [
        f"{Path(d['file']).name}: {d['kind']}, {w}x{h} (diagnostics: {method})",
        f"  exposure:       {_exposure_line(d['exposure'])}",
        f"  white balance:  {_wb_line(d['white_balance'])}",
        f"  saturation:     {_saturation_line(d['saturation'])}",
    ]
    if d.get("wb_stability") is not None:
        for line in _stability_lines(d["wb_stability"]):
            lines.append(f"  vs RAW12:       {line}")
    for note in d.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines) + "\n"
