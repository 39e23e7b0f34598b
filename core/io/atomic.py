"""Atomic file writes: a failed or cancelled write leaves no partial file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from core.errors import OutputError


@contextlib.contextmanager
def atomic_write(path: str | Path, *, overwrite: bool = True) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only on success.

    Any exception inside the block (including ``CancelledError``) removes the temporary
    file and leaves an existing ``path`` untouched.

    Raises:
        OutputError: the folder is missing or not writable, or ``path`` exists and
            ``overwrite`` is False.
    """
    target = Path(path)
    if not target.parent.exists():
        raise OutputError(f"output folder {target.parent} does not exist")
    if target.exists() and not overwrite:
        raise OutputError(f"{target} already exists; pass --force to overwrite it")
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
    except OSError as err:
        raise OutputError(f"cannot write to {target.parent}: {err.strerror}") from err
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, overwrite=overwrite) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str, *, overwrite: bool = True) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)
