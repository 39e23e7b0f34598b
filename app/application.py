"""The QApplication and the one-time pyqtgraph configuration.

``imageAxisOrder='row-major'`` is set here, once, before any widget exists: every image in
the app is a NumPy array indexed [row, column] like ``core``'s arrays.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

_configured = False

#: Dark UI colours (image-inspection tools keep the surround dark and neutral).
WINDOW_BG = "#202124"
PANEL_BG = "#17181a"
TEXT = "#e3e3e3"
ACCENT = "#4f8fd8"


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
    return app
