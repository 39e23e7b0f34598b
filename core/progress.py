"""Progress reporting and cooperative cancellation shared by the CLI and the GUI."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import CancelledError


@dataclass(frozen=True)
class Progress:
    """One progress event.

    Attributes:
        stage: short stage name (``"read"``, ``"baseline"``, ``"write"``...).
        done: units finished in this stage.
        total: units in this stage (>= 1).
        message: optional human text.
    """

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """Completed fraction of the stage, 0..1."""
        return min(1.0, self.done / max(1, self.total))


ProgressCallback = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """A progress callback that ignores every event."""


class CancelToken:
    """Thread-safe cancel flag; long loops call :meth:`raise_if_cancelled` per unit of work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Request cancellation (callable from any thread)."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`CancelledError` if cancellation was requested."""
        if self._event.is_set():
            raise CancelledError("cancelled by the user; nothing was written")
