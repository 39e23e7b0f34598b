"""INT8 sign-off records: plain JSON files the INT8 export gate reads (Qt-free).

One record approves (or rejects) one exact model hash with one exact quantization config,
scene by scene. Format (``schema`` = :data:`SCHEMA`)::

    {
      "schema": "linear48.int8-signoff/1",
      "reviewer": "A. Reviewer",
      "date": "2025-01-31T14:02:11+00:00",          # ISO 8601, UTC
      "model_hash": "sha256:…",                      # checkpoint content hash
      "quantization": {"mode": "w8a8", ...},         # the config exported, verbatim
      "quantization_hash": "…",                      # sha256 of its canonical JSON
      "scenes": [
        {"scene": "backlit", "verdict": "approved" | "rejected",
         "metrics": {"max_abs_diff": 0.0012, ...},   # FP16 vs INT8 figures; {} if none
         "note": "…"}
      ],
      "notes": "…"
    }

:func:`gate_accepts` is the export gate's test: the record matches the model hash and the
quantization config and approves every required scene. It lives in ``core`` because both
the GUI (which writes records) and the INT8 export gate in ``ios_bridge`` (issue 5) read
it, and clients of ``core`` never import each other.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from core.errors import CorruptDataError, FileNotReadableError
from core.io.atomic import atomic_write_text

SCHEMA = "linear48.int8-signoff/1"
Verdict = Literal["approved", "rejected"]
VERDICTS: tuple[str, ...] = ("approved", "rejected")


def canonical_json(obj: Any) -> str:
    """Sorted-key, compact JSON (the form hashed)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def quantization_hash(config: dict[str, Any]) -> str:
    """sha256 hex of the quantization config's canonical JSON."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


@dataclass(frozen=True)
class SceneVerdict:
    """A reviewer's decision on one scene.

    Attributes:
        scene: QA scene name.
        verdict: ``approved`` or ``rejected``.
        metrics: FP16-vs-INT8 figures shown when deciding (empty when none were available).
        note: the reviewer's note.
    """

    scene: str
    verdict: Verdict
    metrics: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class SignoffRecord:
    """A sign-off of one model hash + quantization config (see the module docstring)."""

    reviewer: str
    date: str
    model_hash: str
    quantization: dict[str, Any]
    scenes: tuple[SceneVerdict, ...]
    notes: str = ""
    schema: str = SCHEMA

    @property
    def quantization_hash(self) -> str:
        """sha256 of the quantization config."""
        return quantization_hash(self.quantization)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to disk."""
        return {
            "schema": self.schema,
            "reviewer": self.reviewer,
            "date": self.date,
            "model_hash": self.model_hash,
            "quantization": self.quantization,
            "quantization_hash": self.quantization_hash,
            "scenes": [
                {"scene": s.scene, "verdict": s.verdict, "metrics": s.metrics, "note": s.note}
                for s in self.scenes
            ],
            "notes": self.notes,
        }


def now_iso() -> str:
    """Current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def make_record(
    reviewer: str,
    model_hash: str,
    quantization: dict[str, Any],
    scenes: Iterable[SceneVerdict],
    *,
    notes: str = "",
    date: str | None = None,
) -> SignoffRecord:
    """Build and validate a record.

    Raises:
        ValueError: naming the field that is empty or wrong.
    """
    record = SignoffRecord(
        reviewer.strip(),
        date or now_iso(),
        model_hash.strip(),
        dict(quantization),
        tuple(scenes),
        notes,
    )
    problems = validate(record)
    if problems:
        raise ValueError("; ".join(problems))
    return record


def validate(record: SignoffRecord) -> list[str]:
    """Readable problems with a record (empty = valid)."""
    out: list[str] = []
    if record.schema != SCHEMA:
        out.append(f"schema: {record.schema!r} is not {SCHEMA!r}")
    if not record.reviewer:
        out.append("reviewer: empty")
    if not record.model_hash:
        out.append("model_hash: empty")
    if not isinstance(record.quantization, dict) or not record.quantization:
        out.append("quantization: empty")
    try:
        datetime.fromisoformat(record.date)
    except ValueError:
        out.append(f"date: {record.date!r} is not ISO 8601")
    if not record.scenes:
        out.append("scenes: none reviewed")
    seen: set[str] = set()
    for s in record.scenes:
        if s.verdict not in VERDICTS:
            out.append(f"scenes[{s.scene}].verdict: {s.verdict!r} is not approved or rejected")
        if s.scene in seen:
            out.append(f"scenes: {s.scene} listed twice")
        seen.add(s.scene)
        for k, v in s.metrics.items():
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                out.append(f"scenes[{s.scene}].metrics.{k}: {v!r} is not a finite number")
    return out


def record_filename(record: SignoffRecord) -> str:
    """``signoff_<model12>_<quant8>_<date>.json`` (safe characters only)."""
    model = "".join(c for c in record.model_hash.split(":")[-1] if c.isalnum())[:12] or "model"
    stamp = "".join(c for c in record.date if c.isdigit())[:14]
    return f"signoff_{model}_{record.quantization_hash[:8]}_{stamp}.json"


def write_record(record: SignoffRecord, folder: str | Path) -> Path:
    """Write ``record`` atomically into ``folder`` (created); returns the path.

    Raises:
        ValueError: the record is not valid; OutputError: it cannot be written.
    """
    problems = validate(record)
    if problems:
        raise ValueError("; ".join(problems))
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    path = out / record_filename(record)
    # Two records of one model + config within the same second share a name: never
    # overwrite a record (a rejection must not vanish under a later approval).
    n = 2
    while path.exists():
        path = out / f"{record_filename(record)[: -len('.json')]}_{n}.json"
        n += 1
    atomic_write_text(
        path, json.dumps(record.to_dict(), indent=2, sort_keys=False) + "\n", overwrite=False
    )
    return path


def read_record(path: str | Path) -> SignoffRecord:
    """Read and validate a record.

    Raises:
        FileNotReadableError: missing/unreadable file.
        CorruptDataError: not JSON, wrong schema, missing fields, or a hash that does not
            match its quantization config.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise FileNotReadableError(
            f"cannot read sign-off record ({err.strerror or err})", p
        ) from err
    try:
        obj = json.loads(text)
        record = SignoffRecord(
            reviewer=str(obj["reviewer"]),
            date=str(obj["date"]),
            model_hash=str(obj["model_hash"]),
            quantization=dict(obj["quantization"]),
            scenes=tuple(
                SceneVerdict(
                    str(s["scene"]),
                    s["verdict"],
                    {str(k): float(v) for k, v in s.get("metrics", {}).items()},
                    str(s.get("note", "")),
                )
                for s in obj["scenes"]
            ),
            notes=str(obj.get("notes", "")),
            schema=str(obj.get("schema", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CorruptDataError(f"not a sign-off record ({err})", p) from err
    problems = validate(record)
    stored_hash = obj.get("quantization_hash")
    if stored_hash is not None and stored_hash != record.quantization_hash:
        problems.append("quantization_hash does not match the quantization config")
    if problems:
        raise CorruptDataError("invalid sign-off record: " + "; ".join(problems), p)
    return record


def gate_accepts(
    record: SignoffRecord,
    model_hash: str,
    quantization: dict[str, Any],
    required_scenes: Iterable[str],
) -> tuple[bool, list[str]]:
    """The INT8 export gate's test. Returns (accepted, reasons it is not)."""
    reasons: list[str] = []
    if record.model_hash != model_hash:
        reasons.append(f"record is for model {record.model_hash}, not {model_hash}")
    if record.quantization_hash != quantization_hash(quantization):
        reasons.append("record is for a different quantization config")
    verdicts = {s.scene: s.verdict for s in record.scenes}
    for scene in required_scenes:
        v = verdicts.get(scene)
        if v is None:
            reasons.append(f"{scene}: not reviewed")
        elif v != "approved":
            reasons.append(f"{scene}: {v}")
    return (not reasons, reasons)


def find_records(folder: str | Path) -> list[tuple[Path, SignoffRecord | str]]:
    """Every ``signoff_*.json`` in ``folder``: (path, record or the reason it is unreadable)."""
    out: list[tuple[Path, SignoffRecord | str]] = []
    base = Path(folder)
    if not base.is_dir():
        return out
    for p in sorted(base.glob("signoff_*.json")):
        try:
            out.append((p, read_record(p)))
        except (CorruptDataError, FileNotReadableError) as err:
            out.append((p, str(err)))
    return out


# --------------------------------------------------------------------------- issue 5 additions
# What the INT8 export gate (ios_bridge) and the GUI share: the scenes a record must
# approve, the canonical quantization configs a record signs, and the record lookup.

#: Natural scenes of the QA set (issue 6); ``app.qa.QA_NATURAL`` is the same tuple.
QA_NATURAL_SCENES: tuple[str, ...] = (
    "backlit",
    "bright_window",
    "mixed_lighting",
    "city_lights",
    "foliage",
)

#: Schema tag of the quantization configs below (part of what is hashed and signed).
QUANT_SCHEMA = "linear48.quant/1"
#: Quantized export modes that need a sign-off (``fp16`` needs none).
QUANT_MODES: tuple[str, ...] = ("int8", "w8a8")
#: Scenes the w8a8 activation calibration runs on: simulated, seed 100 (not the QA seeds),
#: dark-to-bright natural scenes plus a smooth and a fine pattern.
CALIBRATION_SCENES: tuple[str, ...] = (
    "backlit",
    "bright_window",
    "mixed_lighting",
    "city_lights",
    "foliage",
    "natural_coffee",
    "gradient_sky",
    "siemens_star",
)


def required_scenes() -> tuple[str, ...]:
    """Scenes every INT8 sign-off must approve: :data:`QA_NATURAL_SCENES` plus every
    simulator pattern scene (the QA set of ``app.qa.qa_scenes``)."""
    from core.simulate.scenes import scene_names

    return (*QA_NATURAL_SCENES, *scene_names("pattern"))


def default_quantization(mode: str) -> dict[str, Any]:
    """The canonical quantization config of an INT8 export mode (what a record signs).

    ``int8``: weights only, per output channel, symmetric int8, every conv weight
    (coremltools ``linear_quantize_weights``, FP16 compute). ``w8a8``: the same weights
    plus int8 per-tensor symmetric activations at every conv input, scales from the
    min/max of :data:`CALIBRATION_SCENES` (RAW12 256x192, seed 100) run through the tiled
    reference executor. The export computes exactly this; changing any field changes
    :func:`quantization_hash` and needs a new sign-off.

    Raises:
        ValueError: ``mode`` is not one of :data:`QUANT_MODES`.
    """
    if mode not in QUANT_MODES:
        raise ValueError(f"quantization mode {mode!r} is not one of {', '.join(QUANT_MODES)}")
    weights = {
        "dtype": "int8",
        "mode": "linear_symmetric",
        "granularity": "per_channel",
        "axis": 0,
        "ops": "conv",
        "weight_threshold": 0,
    }
    config: dict[str, Any] = {
        "schema": QUANT_SCHEMA,
        "mode": mode,
        "compute_precision": "fp16",
        "weights": weights,
    }
    if mode == "int8":
        config["tool"] = "coremltools.optimize.coreml.linear_quantize_weights"
    else:
        config["tool"] = "ios_bridge post-training calibration (quantized_decomposed ops)"
        config["activations"] = {
            "dtype": "int8",
            "mode": "linear_symmetric",
            "granularity": "per_tensor",
            "where": "conv inputs",
            "observer": "min_max",
            "calibration": {
                "scenes": list(CALIBRATION_SCENES),
                "raw12_size": [256, 192],
                "seed": 100,
                "tile_px": 256,
                "overlap_px": 48,
            },
        }
    return config


def normalize_model_hash(text: str) -> str:
    """``"sha256:ABC…"`` and ``"abc…"`` -> ``"abc…"`` (lower-case hex, no prefix)."""
    value = text.strip().lower()
    return value.split(":", 1)[1] if value.startswith("sha256:") else value


def find_accepting_record(
    folder: str | Path,
    model_hash: str,
    quantization: dict[str, Any],
    required: Iterable[str] | None = None,
) -> tuple[tuple[Path, SignoffRecord] | None, list[str]]:
    """The first record in ``folder`` that the export gate accepts.

    ``model_hash`` matches with or without a ``sha256:`` prefix (:func:`normalize_model_hash`).
    ``required`` defaults to :func:`required_scenes`.

    Returns: ((path, record), []) when one accepts; otherwise (None, reasons) where the
        reasons are the closest record's (fewest problems), each prefixed with its file
        name, or a single reason when the folder holds no readable record.
    """
    scenes = tuple(required_scenes() if required is None else required)
    records = find_records(folder)
    if not records:
        return None, [f"no sign-off records (signoff_*.json) in {folder}"]
    best: tuple[tuple[bool, int], list[str]] | None = None
    wanted = normalize_model_hash(model_hash)
    for path, rec in records:
        if isinstance(rec, str):
            reasons = [f"{path.name}: unreadable ({rec})"]
        else:
            same_model = normalize_model_hash(rec.model_hash) == wanted
            ok, why = gate_accepts(
                rec, rec.model_hash if same_model else model_hash, quantization, scenes
            )
            if ok:
                return (path, rec), []
            reasons = [f"{path.name}: {r}" for r in why]
        rank = (isinstance(rec, str), len(reasons))  # readable records first, then fewest
        if best is None or rank < best[0]:
            best = (rank, reasons)
    return None, best[1] if best else []
