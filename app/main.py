"""GUI entry point: ``main.py gui`` calls :func:`run_gui`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

#: Exit codes (as the CLI): 0 ok, 1 unexpected, 2 bad input, 4 bad option.
EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_CONFIG = 0, 1, 2, 4
SCREENSHOT_SIZE = (1760, 1040)
#: Tabs a screenshot can show (``tab=`` of :func:`run_gui`) -> tab index in the window
#: (``inspect-diagnostics``: the Inspect tab with the diagnostics panel beside the panes).
SCREENSHOT_TABS: dict[str, int] = {
    "inspect": 0,
    "qa": 1,
    "signoff": 2,
    "experiments": 3,
    "inspect-diagnostics": 0,
}
#: RAW12 (width, height) of the simulated QA set run for a ``tab="qa"`` screenshot.
SCREENSHOT_QA_SIZE = (256, 192)
#: How long a screenshot waits for the window (and the QA set) to be ready: generous, the
#: 1008x756 demo pair takes ~1 min on a busy 2-core machine.
SCREENSHOT_WAIT_MS = 600_000


def run_gui(
    pair_dir: Path | None = None,
    raw12: Path | None = None,
    proraw48: Path | None = None,
    demo: bool = False,
    screenshot: Path | None = None,
    tab: str = "inspect",
) -> int:
    """Open the main window; returns the process exit code.

    Args:
        pair_dir: a folder (or file) to find pairs in.
        raw12, proraw48: an explicit pair (both or neither).
        demo: open the simulator's demo pair (also when nothing else is given).
        screenshot: render the populated window (offscreen when there is no display),
            save it as PNG there and exit instead of running the event loop.
        tab: the tab shown (one of :data:`SCREENSHOT_TABS`); for ``qa`` the simulated QA
            set is run first (RAW12 :data:`SCREENSHOT_QA_SIZE`) so the table is populated;
            ``inspect-diagnostics`` shows the Inspect tab's diagnostics panel once computed.
    """
    if (raw12 is None) != (proraw48 is None):
        print("error: give both --raw12 and --proraw48", file=sys.stderr)
        return EXIT_CONFIG
    if tab not in SCREENSHOT_TABS:
        print(f"error: tab {tab!r} is not one of {', '.join(SCREENSHOT_TABS)}", file=sys.stderr)
        return EXIT_CONFIG
    if screenshot is not None and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QElapsedTimer

    from app.application import create_application
    from app.main_window import MainWindow

    app = create_application()
    window = MainWindow()
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    if raw12 is not None and proraw48 is not None:
        window.open_pair(Path(raw12), Path(proraw48))
    elif pair_dir is not None:
        window.open_paths([Path(pair_dir)])
    if demo or (pair_dir is None and raw12 is None):
        window.open_demo()
    if screenshot is None:
        return int(app.exec())
    ok = window.wait_until(
        lambda: window.ready() or (window.banner.isVisible() and window.banner.level == "error"),
        SCREENSHOT_WAIT_MS,
    )
    window.wait_until(lambda: window.workers.active == 0, 30_000)
    if ok and tab == "qa":
        box = window.qa.size_box
        sizes = [tuple(box.itemData(i)) for i in range(box.count())]
        box.setCurrentIndex(sizes.index(SCREENSHOT_QA_SIZE) if SCREENSHOT_QA_SIZE in sizes else 0)
        window.qa.run_simulated()
        ok = window.wait_until(
            lambda: bool(window.state.qa_rows) and window.state.busy is None, SCREENSHOT_WAIT_MS
        )
    if ok and tab == "inspect-diagnostics":
        window.show_diagnostics()
        ok = window.wait_until(
            lambda: window.diagnostics.ready() and window.workers.active == 0,
            SCREENSHOT_WAIT_MS,
        )
    if ok and tab == "signoff":  # the comparison runs only while its tab is shown
        window.tabs.setCurrentIndex(SCREENSHOT_TABS["signoff"])
        window.signoff.compare_all()
        ok = window.wait_until(
            lambda: window.signoff.idle() and window.signoff.shown is not None,
            SCREENSHOT_WAIT_MS,
        )
    window.tabs.setCurrentIndex(SCREENSHOT_TABS[tab])
    window.panes.fit()
    settle = QElapsedTimer()
    settle.start()
    window.wait_until(lambda: settle.elapsed() > 300, 2_000)  # pane re-render timers
    saved = window.grab().save(str(screenshot))
    error = (
        window.banner.label.text()
        if window.banner.level == "error" and window.banner.isVisible()
        else ""
    )
    window.close()
    if error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INPUT
    if not (ok and saved):
        print(
            f"error: the window was not ready in time or {screenshot} could not be saved",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
