"""Read the training runs registry (SQLite, written by issue 4's training package).

Qt-free and read-only: the database is opened with ``mode=ro`` so the GUI can never lock
or change a registry the trainer is writing. The table layout is not fixed yet, so this
reads whatever ``runs`` table exists (any columns) and returns rows as dicts; with no
registry file, or no runs table, it returns an empty result and says why.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
