"""Atomic writes: a failure inside the block leaves neither a partial file nor a temp file."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import CancelledError, OutputError
from core.io.atomic import atomic_write, atomic_write_text


def test_success_replaces_target(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert list(tmp_path.iterdir()) == [target]


def test_failure_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(CancelledError), atomic_write(target) as handle:
        handle.write(b"partial")
        raise CancelledError("stop")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_no_overwrite_and_missing_folder(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(OutputError, match="already exists"):
        atomic_write_text(target, "new", overwrite=False)
    with pytest.raises(OutputError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "b.txt", "x")
    assert target.read_text() == "old"
