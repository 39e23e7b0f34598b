"""GUI test setup: Qt offscreen, pyqtgraph configured once, Qt warnings fail the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"

#: Messages the offscreen platform plugin itself prints (not our code).
PLATFORM_NOISE = ("propagateSizeHints", "This plugin does not support")


@pytest.fixture(autouse=True)
def _qt_warnings_fail(request: pytest.FixtureRequest):
    """Tests marked ``gui`` fail on any Qt warning/critical message."""
    if request.node.get_closest_marker("gui") is None:
        yield
        return
    from app.application import configure_pyqtgraph, style_application

    configure_pyqtgraph()
    qapp = request.getfixturevalue("qapp")
    style_application(qapp)
    qtlog = request.getfixturevalue("qtlog")
    yield
    from PySide6.QtCore import QtMsgType

    bad = [
        r.message
        for r in qtlog.records
        if r.type in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg)
        and not any(n in r.message for n in PLATFORM_NOISE)
    ]
    assert not bad, f"Qt warnings: {bad}"


@pytest.fixture
def window(qtbot, tmp_path: Path):
    """The main window (demo, QA and sign-off folders under tmp_path), shown at 1400x900."""
    from app.main_window import MainWindow

    win = MainWindow(
        demo_folder=tmp_path / "demo",
        qa_folder=tmp_path / "qa",
        records_folder=tmp_path / "signoff",
    )
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    yield win
    win.close()
