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
    atomic_write_text(path, json.dumps(record.to_dict(), indent=2, sort_keys=False) + "\n")
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
