"""Read the training runs registry and each run's scalar curves (Qt-free, read-only).

Registry: the SQLite file ``python -m training`` writes (``training/tracking.py``), opened
with ``mode=ro`` so the GUI can never lock or change a registry the trainer is writing.
Any ``runs`` table is read (any columns) and returned as dicts; with no registry file, or
no runs table, the result is empty and says why.

Curves: the trainer writes every scalar (loss terms, model scale...) twice, to TensorBoard
event files and to ``<registry folder>/<run>/tb/scalars.jsonl``, one JSON object per line
``{"tag": "loss/total", "step": 100, "value": 0.042, "wall_time": ...}`` (value null when
not finite). The GUI reads the plain file: ``app`` does not import ``training`` and
TensorBoard is not a dependency. Runs recorded before that file existed have no curves
here; :func:`read_curves` says so.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The scalars file beside a run's event files (``training.tracking.SCALARS_FILE``; a test
#: checks the two agree).
SCALARS_FILE = "scalars.jsonl"
#: A scalars file larger than this is not read (a run logs a few MB at most).
MAX_SCALARS_BYTES = 256 * 1024 * 1024

#: Where the GUI looks first (relative to the working folder).
DEFAULT_REGISTRY_PATHS: tuple[Path, ...] = (
    Path("out/training/registry.sqlite"),  # where `python -m training` writes it
    Path("runs/registry.sqlite"),
    Path("runs/registry.db"),
    Path("runs.sqlite"),
)


@dataclass(frozen=True)
class RunsTable:
    """Runs read from a registry.

    Attributes:
        path: the database (None when none was found).
        columns: column names in table order.
        rows: one dict per run.
        note: why the table is empty, when it is.
    """

    path: Path | None
    columns: tuple[str, ...] = ()
    rows: tuple[dict[str, Any], ...] = ()
    note: str = ""
    tables: tuple[str, ...] = field(default_factory=tuple)


def find_registry(candidates: tuple[Path, ...] = DEFAULT_REGISTRY_PATHS) -> Path | None:
    """The first existing registry file among ``candidates``."""
    return next((p for p in candidates if p.is_file()), None)


def read_runs(path: Path | None, *, table: str = "runs") -> RunsTable:
    """Read all rows of ``table`` from the SQLite file ``path`` (read-only)."""
    if path is None or not Path(path).is_file():
        return RunsTable(None, note="no experiment registry yet (training writes it, issue 4)")
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True, timeout=2.0) as con:
            names = tuple(
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
            )
            if table not in names:
                return RunsTable(
                    Path(path), note=f"no '{table}' table in {Path(path).name}", tables=names
                )
            cur = con.execute(f'SELECT * FROM "{table}"')  # table name checked above
            cols = tuple(d[0] for d in cur.description)
            rows = tuple(dict(zip(cols, r, strict=True)) for r in cur.fetchall())
    except sqlite3.Error as err:
        return RunsTable(Path(path), note=f"{Path(path).name}: not a readable registry ({err})")
    return RunsTable(Path(path), cols, rows, "" if rows else "the registry has no runs yet", names)


def json_object(value: Any) -> dict[str, Any] | None:
    """``value`` decoded when it is the JSON text of an object (registry ``config`` and
    ``metrics`` columns), else None."""
    if not isinstance(value, str) or not value.startswith("{"):
        return None
    try:
        obj = json.loads(value)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


@dataclass(frozen=True)
class Curve:
    """One scalar tag over training steps.

    Attributes:
        tag: TensorBoard tag, e.g. ``loss/total``.
        steps: (n,) int64 optimizer steps, strictly increasing.
        values: (n,) float64 values in the unit the trainer logged; NaN where not finite.
    """

    tag: str
    steps: np.ndarray
    values: np.ndarray

    @property
    def group(self) -> str:
        """The tag's prefix (``loss``, ``model``...) or ``other``; one plot per group."""
        return self.tag.split("/", 1)[0] if "/" in self.tag else "other"

    @property
    def name(self) -> str:
        """The tag without its group prefix (the legend entry)."""
        return self.tag.split("/", 1)[1] if "/" in self.tag else self.tag


@dataclass(frozen=True)
class RunCurves:
    """The curves of one run.

    Attributes:
        run: run name.
        path: the scalars file looked for.
        curves: tag -> curve, in first-logged order (empty when none could be read).
        note: why there are no curves, or what was skipped; empty when all is well.
    """

    run: str
    path: Path | None
    curves: dict[str, Curve] = field(default_factory=dict)
    note: str = ""

    def groups(self) -> dict[str, list[Curve]]:
        """Curves by :attr:`Curve.group`, ``loss`` first, then in first-logged order."""
        out: dict[str, list[Curve]] = {}
        for c in sorted(self.curves.values(), key=lambda c: c.group != "loss"):
            out.setdefault(c.group, []).append(c)
        return out


def scalars_path(registry: Path, run: str) -> Path:
    """Where the trainer writes ``run``'s scalars: ``<registry folder>/<run>/tb/``."""
    return Path(registry).parent / run / "tb" / SCALARS_FILE


def read_curves(registry: Path | None, run: str) -> RunCurves:
    """Read ``run``'s scalars file (see the module docstring).

    Lines that are not a valid record (e.g. the last line while the trainer is writing it)
    are skipped and counted in the note. When a step was logged twice (a run resumed from
    an earlier checkpoint), the value written last is kept. Never raises for a bad file:
    the note says what is wrong.
    """
    if registry is None:
        return RunCurves(run, None, note="no registry open")
    path = scalars_path(registry, run)
    if not path.is_file():
        return RunCurves(
            run,
            path,
            note=f"no curves recorded for {run}: {path} does not exist (runs trained before "
            "Linear48 wrote it have TensorBoard event files only)",
        )
    try:
        size = path.stat().st_size
        if size > MAX_SCALARS_BYTES:
            return RunCurves(
                run, path, note=f"{path.name} is {size / 2**20:.0f} MiB, too large to plot"
            )
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        return RunCurves(run, path, note=f"{path.name}: cannot be read ({err.strerror or err})")
    points: dict[str, dict[int, float]] = {}
    bad = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            tag, step, value = rec["tag"], rec["step"], rec["value"]
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        numeric = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        whole = isinstance(step, int) and not isinstance(step, bool)
        if not (isinstance(tag, str) and tag and whole and numeric):
            bad += 1
            continue
        v = math.nan if value is None else float(value)
        points.setdefault(tag, {})[step] = v if math.isfinite(v) else math.nan
    curves: dict[str, Curve] = {}
    for tag, by_step in points.items():
        steps = np.array(sorted(by_step), np.int64)
        values = np.array([by_step[int(s)] for s in steps], np.float64)
        curves[tag] = Curve(tag, steps, values)
    notes = []
    if not curves:
        notes.append(f"no curves recorded for {run}: {path.name} holds no scalars")
    if bad:
        notes.append(f"{bad} unreadable line{'s' if bad != 1 else ''} in {path.name} skipped")
    return RunCurves(run, path, curves, "; ".join(notes))


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average of a noisy curve.

    ``s_i = (w * m_{i-1} + (1 - w) * v_i) / (1 - w^k)`` with ``m`` the running average and
    ``k`` the number of finite values so far, so the first points are not pulled to zero.
    Shapes: (n,) -> (n,) float64; NaN inputs stay NaN and do not update the average;
    ``weight`` 0 returns the values unchanged.

    Raises: ValueError when ``weight`` is not in [0, 1).
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight {weight} is not in [0, 1)")
    v = np.asarray(values, np.float64)
    out = np.full(v.shape, np.nan)
    last, k = 0.0, 0
    for i, x in enumerate(v):
        if not math.isfinite(x):
            continue
        k += 1
        last = weight * last + (1.0 - weight) * x
        out[i] = last / (1.0 - weight**k)
    return out
