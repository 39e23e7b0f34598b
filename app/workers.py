"""Long work off the GUI thread: a thread pool running plain functions.

A task is ``fn(progress, cancel) -> result``: the same ``core`` calls the CLI makes, with
a ``core.progress`` callback and ``CancelToken``. Results, errors and progress come back
to the GUI thread through a queue drained by a GUI-thread timer; the caller's callbacks
then update the state.
Catching every exception here is deliberate: this handler and the CLI top level are the
two places that may (STYLE), and it turns any failure into a readable message instead of
a traceback window or a crash.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, QTimer

from core.errors import CancelledError, Linear48Error
from core.progress import CancelToken, Progress, ProgressCallback

log = logging.getLogger(__name__)

TaskFn = Callable[[ProgressCallback, CancelToken], Any]
#: How often the GUI thread collects task events while tasks run.
POLL_MS = 25


def describe_error(err: BaseException) -> str:
    """One readable line for any failure (full details go to the log)."""
    if isinstance(err, CancelledError):
        return "Cancelled; nothing was written."
    if isinstance(err, Linear48Error):
        return str(err)
    if isinstance(err, MemoryError):
        return "Not enough memory for this pair; close other pairs or applications and retry."
    if isinstance(err, OSError):
        return f"File error: {err.strerror or err}" + (f" ({err.filename})" if err.filename else "")
    return f"Unexpected {type(err).__name__}: {err} (details in the log)"


class TaskHandle:
    """A submitted task: its name, cancel token and whether it finished."""

    def __init__(
        self,
        name: str,
        token: CancelToken,
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.name = name
        self.token = token
        self.finished = False
        self._on_done, self._on_error, self._on_progress = on_done, on_error, on_progress

    def cancel(self) -> None:
        """Ask the task to stop at its next cancellation point."""
        self.token.cancel()


class Workers(QObject):
    """The app's thread pool (two threads: one heavy task plus quick analyses).

    A ``concurrent.futures`` pool runs the functions. Worker threads never touch Qt: they
    put (task, kind, payload) events on a thread-safe queue that a GUI-thread QTimer
    drains every :data:`POLL_MS` while tasks are live. (Emitting a Qt signal from a
    non-Qt thread corrupts reference counts of True/False/None with PySide6 6.12.0 on
    CPython 3.11 and crashes the interpreter; the queue sidesteps that entirely.)
    """

    def __init__(self, max_threads: int = 2, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="linear48")
        self._events: queue.SimpleQueue[tuple[TaskHandle, str, Any]] = queue.SimpleQueue()
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.deliver)
        self._live: set[TaskHandle] = set()

    def submit(
        self,
        name: str,
        fn: TaskFn,
        *,
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_progress: Callable[[Progress], None] | None = None,
    ) -> TaskHandle:
        """Run ``fn`` on the pool; the callbacks run on the GUI thread."""
        handle = TaskHandle(name, CancelToken(), on_done, on_error, on_progress)
        self._live.add(handle)
        emit = self._events.put

        def progress(event: Progress) -> None:
            emit((handle, "progress", event))

        def run() -> None:
            try:
                result = fn(progress, handle.token)
            except Exception as err:  # the GUI worker handler: every failure becomes a message
                if not isinstance(err, (CancelledError, Linear48Error)):
                    log.error("task %s failed", name, exc_info=err)
                emit((handle, "failed", err))
            else:
                emit((handle, "done", result))

        self._pool.submit(run)
        if not self._timer.isActive():
            self._timer.start()
        return handle

    def deliver(self) -> int:
        """Hand queued task events to their callbacks (GUI thread); returns how many."""
        n = 0
        while True:
            try:
                handle, kind, payload = self._events.get_nowait()
            except queue.Empty:
                break
            n += 1
            if kind == "progress":
                if handle._on_progress is not None and not handle.finished:
                    handle._on_progress(payload)
                continue
            handle.finished = True
            self._live.discard(handle)
            if kind == "done":
                handle._on_done(payload)
            else:
                handle._on_error(payload)
        if not self._live:
            self._timer.stop()
        return n

    @property
    def active(self) -> int:
        """Tasks submitted whose result has not been delivered yet."""
        return len(self._live)

    def wait_idle(self, timeout_s: float) -> bool:
        """Block (GUI thread) until the running functions return; events stay queued."""
        done = threading.Event()
        self._pool.submit(done.set)
        return done.wait(timeout_s)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel everything and stop the pool; True if it drained in time."""
        for h in list(self._live):
            h.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        return True
