"""The QApplication and the one-time pyqtgraph configuration.

``imageAxisOrder='row-major'`` is set here, once, before any widget exists: every image in
the app is a NumPy array indexed [row, column] like ``core``'s arrays.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

_configured = False

#: Dark UI colours (image-inspection tools keep the surround dark and neutral).
WINDOW_BG = "#202124"
PANEL_BG = "#17181a"
TEXT = "#e3e3e3"
ACCENT = "#4f8fd8"


class RefcountGuard:
    """Work-around for a PySide6 6.12.0 bug on CPython < 3.12 (see below); GUI thread only.

    PySide6 6.12.0 drops one reference to ``None`` every time Qt calls a Python slot (a
    timer tick, a mouse move...), and emitting a signal from a non-Qt thread drops
    references to ``True``/``False``. From CPython 3.12 these objects are immortal and
    nothing happens; on 3.11 their count reaches zero after a few thousand calls and the
    interpreter aborts ("none_dealloc: deallocating None"). The guard adds the missing
    references back (writing ``ob_refcnt``, the first field of every CPython object,
    under the GIL) whenever a count falls below :data:`FLOOR`; references added this way
    are never released, so interpreter shutdown stays safe. :mod:`app.workers` never
    emits signals from threads. The proper fix is a PySide6 without the bug (or Python
    >= 3.12); remove this class then.
    """

    #: Keep at least this many references to each guarded object.
    FLOOR = 1_000_000
    #: References added each time a count falls below the floor.
    TOP_UP = 1_000_000

    def __init__(self) -> None:
        self.topped_up = 0
        self.check()

    @staticmethod
    def needed() -> bool:
        """True on CPython versions where None/True/False are not immortal."""
        return sys.implementation.name == "cpython" and sys.version_info < (3, 12)

    def check(self) -> None:
        """Top up any guarded object whose reference count fell below the floor."""
        for obj in (None, True, False):
            if sys.getrefcount(obj) < self.FLOOR:
                ctypes.c_ssize_t.from_address(id(obj)).value += self.TOP_UP
                self.topped_up += 1


_guard: RefcountGuard | None = None
_guard_timer: QTimer | None = None


def install_refcount_guard(interval_ms: int = 100) -> RefcountGuard | None:
    """Start the :class:`RefcountGuard` timer (idempotent; needs a Q(Core)Application)."""
    global _guard, _guard_timer
    if not RefcountGuard.needed():
        return None
    if _guard is None:
        _guard = RefcountGuard()
    if _guard_timer is None and QCoreApplication.instance() is not None:
        _guard_timer = QTimer()
        _guard_timer.setInterval(interval_ms)
        _guard_timer.timeout.connect(_guard.check)
        _guard_timer.start()
    return _guard


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options; idempotent, call before creating any widget."""
    global _configured
    if _configured:
        return
    pg.setConfigOptions(
        imageAxisOrder="row-major", antialias=False, background=PANEL_BG, foreground=TEXT
    )
    _configured = True


def dark_palette() -> QPalette:
    """A neutral dark palette for the Fusion style."""
    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: WINDOW_BG,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: PANEL_BG,
        QPalette.ColorRole.AlternateBase: "#25272a",
        QPalette.ColorRole.ToolTipBase: "#2b2d31",
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: "#2b2d31",
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.PlaceholderText: "#8a8d91",
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6d7075"))
    return p


def style_application(app: QApplication) -> None:
    """Fusion style with the dark palette."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette())


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    """The QApplication (re-used if one exists), styled, with pyqtgraph configured."""
    configure_pyqtgraph()
    existing = QApplication.instance()
    app = (
        existing if isinstance(existing, QApplication) else QApplication(list(argv or sys.argv[:1]))
    )
    app.setApplicationName("Linear48")
    app.setOrganizationName("Linear48")
    style_application(app)
    install_refcount_guard()
    return app
