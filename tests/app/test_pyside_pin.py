"""Why pyproject pins PySide6-Essentials < 6.12: 6.12.0 drops references to True/False
when a signal carrying a bool is emitted from a non-Qt thread (and to None on slot calls),
which aborts CPython 3.11 after a few thousand calls ("bool_dealloc: deallocating True or
False"). 6.11.3 is fine. The check runs in a subprocess because the failure is an abort."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = r"""
import os, sys, threading
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
app = QCoreApplication(sys.argv)
class Emitter(QObject):
    sig = Signal(bool)
e = Emitter()
got = []
e.sig.connect(lambda b: got.append(b))
def work():
    for i in range(20000):
        e.sig.emit(i % 2 == 0)
th = threading.Thread(target=work)
th.start()
def poll():
    if not th.is_alive() and len(got) == 20000:
        app.quit()
t = QTimer()
t.timeout.connect(poll)
t.start(1)
app.exec()
print("ok", len(got))
"""


@pytest.mark.gui
def test_cross_thread_bool_signals_do_not_corrupt_refcounts() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    assert proc.stdout.strip() == "ok 20000"
