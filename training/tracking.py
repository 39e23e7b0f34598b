"""Experiment tracking without a server: a SQLite run registry and TensorBoard scalars.

Registry (``<root>/registry.sqlite``), one row per run: name ``v{major}.{minor}_{variant}``,
config (JSON), git commit, created/updated dates (UTC ISO 8601), status (SUCCESS, WIP,
FAILED, ANALYSIS, PLANNED), checkpoint path, metrics (JSON), notes.

Scalars go to ``<root>/<name>/tb/events.out.tfevents.*``: TensorBoard's own file format
(TFRecord framing with masked CRC-32C around ``Event`` protocol buffers), written here
directly so no TensorBoard/protobuf dependency is needed; ``tensorboard --logdir <root>``
reads them. :func:`read_scalars` reads them back (tests).

The same scalars also go, one JSON object per line, to ``<root>/<name>/tb/scalars.jsonl``
(:data:`SCALARS_FILE`): ``{"tag": "loss/total", "step": 100, "value": 0.042,
"wall_time": 1795523089.5}``, ``value`` null when not finite, ``wall_time`` (UTC seconds)
absent in files rebuilt from event files. It is the plain format other tools read without
parsing protocol buffers: the GUI's Experiments tab draws its loss curves from it (app does
not import training). :func:`backfill_scalars` writes it for runs recorded before it
existed.
"""

from __future__ import annotations

import json
import math
import sqlite3
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.io.atomic import atomic_write_text

STATUSES = ("SUCCESS", "WIP", "FAILED", "ANALYSIS", "PLANNED")
DEFAULT_ROOT = Path("out") / "training"
#: The plain scalars file beside the event files (format in the module docstring).
SCALARS_FILE = "scalars.jsonl"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    git_commit TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    status TEXT NOT NULL,
    checkpoint TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}',
    notes TEXT NOT NULL DEFAULT ''
)
"""


@dataclass(frozen=True)
class RunRecord:
    """One registry row (metrics and config decoded from JSON)."""

    name: str
    config: dict[str, Any]
    git_commit: str
    created: str
    updated: str
    status: str
    checkpoint: str
    metrics: dict[str, Any]
    notes: str


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_commit(repo: Path | None = None) -> str:
    """Short commit of the working tree, ``+dirty`` when it has changes; ``unknown``
    outside a git checkout."""
    cwd = repo or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


class Registry:
    """The SQLite run registry under ``root``."""

    def __init__(self, root: str | Path = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / "registry.sqlite"
        with self._connect() as db:
            db.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def upsert(
        self,
        name: str,
        *,
        config: dict[str, Any] | None = None,
        status: str | None = None,
        checkpoint: str | None = None,
        metrics: dict[str, Any] | None = None,
        notes: str | None = None,
        commit: str | None = None,
    ) -> RunRecord:
        """Create or update a run; unspecified fields keep their value. Metrics merge."""
        if status is not None and status not in STATUSES:
            raise ConfigError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
        old = self.get(name)
        now = _now()
        merged = dict(old.metrics) if old else {}
        merged.update(metrics or {})
        rec = RunRecord(
            name=name,
            config=config if config is not None else (old.config if old else {}),
            git_commit=commit or (old.git_commit if old else git_commit()),
            created=old.created if old else now,
            updated=now,
            status=status or (old.status if old else "PLANNED"),
            checkpoint=checkpoint if checkpoint is not None else (old.checkpoint if old else ""),
            metrics=merged,
            notes=notes if notes is not None else (old.notes if old else ""),
        )
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.name,
                    json.dumps(rec.config, default=str),
                    rec.git_commit,
                    rec.created,
                    rec.updated,
                    rec.status,
                    rec.checkpoint,
                    json.dumps(rec.metrics, default=str),
                    rec.notes,
                ),
            )
        return rec

    def get(self, name: str) -> RunRecord | None:
        """The run called ``name`` or None."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()
        return _record(row) if row else None

    def all(self) -> list[RunRecord]:
        """All runs, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM runs ORDER BY created, name").fetchall()
        return [_record(r) for r in rows]


def _record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        row[0],
        json.loads(row[1]),
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        json.loads(row[7]),
        row[8],
    )


#: Metrics shown in the dashboard, in order.
DASHBOARD_METRICS = (
    ("steps", "steps"),
    ("minutes", "min"),
    ("truth_psnr_db", "truth PSNR"),
    ("anchor_psnr_db", "anchor PSNR"),
    ("ltm_residual_ev", "LTM resid."),
    ("halo_ev", "halo"),
    ("gradient_correlation", "grad. corr."),
)


def dashboard_markdown(records: list[RunRecord]) -> str:
    """The runs as a Markdown table."""
    head = ["run", "status", "commit", "updated", *(t for _, t in DASHBOARD_METRICS), "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        vals = []
        for key, _ in DASHBOARD_METRICS:
            v = r.metrics.get(key)
            vals.append(f"{v:.3f}" if isinstance(v, float) else ("" if v is None else str(v)))
        cells = [r.name, r.status, r.git_commit, r.updated, *vals, r.notes.replace("|", "/")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- TensorBoard


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli)."""
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint((number << 3) | wire) + payload


def _event(
    wall_time: float,
    step: int,
    *,
    tag: str | None = None,
    value: float = 0.0,
    file_version: str | None = None,
) -> bytes:
    msg = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step))
    if file_version is not None:
        v = file_version.encode()
        msg += _field(3, 2, _varint(len(v)) + v)
    if tag is not None:
        t = tag.encode()
        val = _field(1, 2, _varint(len(t)) + t) + _field(2, 5, struct.pack("<f", value))
        summary = _field(1, 2, _varint(len(val)) + val)
        msg += _field(5, 2, _varint(len(summary)) + summary)
    return msg


def _scalar_line(tag: str, step: int, value: float, wall_time: float | None) -> str:
    """One line of :data:`SCALARS_FILE` (non-finite values become null)."""
    rec: dict[str, Any] = {
        "tag": tag,
        "step": int(step),
        "value": float(value) if math.isfinite(value) else None,
    }
    if wall_time is not None:
        rec["wall_time"] = round(wall_time, 3)
    return json.dumps(rec) + "\n"


class ScalarWriter:
    """Append scalars to a TensorBoard event file in ``folder`` and to its
    :data:`SCALARS_FILE` (appended across resumed runs)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / f"events.out.tfevents.{int(time.time())}.linear48"
        self.scalars_path = self.folder / SCALARS_FILE
        self._handle = self.path.open("ab")
        self._jsonl = self.scalars_path.open("a", encoding="utf-8")
        self._write(_event(time.time(), 0, file_version="brain.Event:2"))

    def _write(self, record: bytes) -> None:
        header = struct.pack("<Q", len(record))
        self._handle.write(header + struct.pack("<I", _masked_crc(header)))
        self._handle.write(record + struct.pack("<I", _masked_crc(record)))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """One scalar point (both files)."""
        now = time.time()
        self._write(_event(now, step, tag=tag, value=float(value)))
        self._jsonl.write(_scalar_line(tag, step, float(value), now))

    def flush(self) -> None:
        """Flush both files to disk."""
        self._handle.flush()
        self._jsonl.flush()

    def close(self) -> None:
        """Close both files."""
        self._handle.close()
        self._jsonl.close()


def backfill_scalars(folder: str | Path) -> Path:
    """Write ``folder``'s :data:`SCALARS_FILE` from its event files (oldest file first),
    for runs recorded before the file existed; replaces an existing one.

    Returns its path. Raises: FileNotFoundError when ``folder`` holds no event file;
    ValueError when an event file fails its CRC (nothing is written then).
    """
    folder = Path(folder)
    events = sorted(folder.glob("events.out.tfevents.*"))
    if not events:
        raise FileNotFoundError(f"{folder}: no TensorBoard event files to read")
    lines = [
        _scalar_line(tag, step, value, None)
        for path in events
        for tag, step, value in read_scalars(path)
    ]
    out = folder / SCALARS_FILE
    atomic_write_text(out, "".join(lines))
    return out


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _parse(buf: bytes) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, pos = _read_varint(buf, pos)
            out.setdefault(num, []).append(v)
        elif wire == 1:
            out.setdefault(num, []).append(buf[pos : pos + 8])
            pos += 8
        elif wire == 5:
            out.setdefault(num, []).append(buf[pos : pos + 4])
            pos += 4
        else:
            n, pos = _read_varint(buf, pos)
            out.setdefault(num, []).append(buf[pos : pos + n])
            pos += n
    return out


def read_scalars(path: str | Path) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in an event file; checks every CRC."""
    data = Path(path).read_bytes()
    pos, out = 0, []
    while pos < len(data):
        header = data[pos : pos + 8]
        (n,) = struct.unpack("<Q", header)
        if struct.unpack("<I", data[pos + 8 : pos + 12])[0] != _masked_crc(header):
            raise ValueError(f"{path}: bad length CRC at byte {pos}")
        rec = data[pos + 12 : pos + 12 + n]
        if struct.unpack("<I", data[pos + 12 + n : pos + 16 + n])[0] != _masked_crc(rec):
            raise ValueError(f"{path}: bad record CRC at byte {pos}")
        pos += 16 + n
        ev = _parse(rec)
        step = int(ev.get(2, [0])[0])
        for summary in ev.get(5, []):
            for val in _parse(summary).get(1, []):
                fields_ = _parse(val)
                tag = bytes(fields_[1][0]).decode()
                (value,) = struct.unpack("<f", fields_[2][0])
                out.append((tag, step, float(value)))
    return out
