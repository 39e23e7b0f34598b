"""Every menu/toolbar action in one table, with its "enabled when" rule from the state.

The main window builds QActions from :data:`ACTIONS`, connects each to its handler
``act_<key>`` and re-evaluates the rules whenever the state changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QAction, QKeySequence

from app.state import AppState


@dataclass(frozen=True)
class ActionSpec:
    """One action: key (handler ``act_<key>``), text, shortcut, tip, enabled rule, menu."""

    key: str
    text: str
    shortcut: str
    tip: str
    enabled_when: Callable[[AppState], bool]
    menu: str


def _always(_: AppState) -> bool:
    return True


def _idle(s: AppState) -> bool:
    return s.busy is None or s.busy.name != "convert"


def _has_pair(s: AppState) -> bool:
    return s.loaded is not None


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec(
        "open_files", "Open files…", "Ctrl+O", "Open RAW12 and ProRAW48 DNGs", _idle, "File"
    ),
    ActionSpec(
        "open_folder", "Open folder…", "Ctrl+Shift+O", "Find pairs in a folder", _idle, "File"
    ),
    ActionSpec("open_demo", "Open demo pair", "", "Simulated backlit pair", _idle, "File"),
    ActionSpec(
        "repair",
        "Pair manually…",
        "",
        "Choose the ProRAW48 for the selected RAW12 (manual override)",
        lambda s: _idle(s) and s.current is not None,
        "File",
    ),
    ActionSpec(
        "convert",
        "Convert",
        "Ctrl+Return",
        "Convert the current pair to a linear DNG",
        lambda s: s.current is not None and s.busy is None,
        "Pair",
    ),
    ActionSpec(
        "cancel",
        "Cancel",
        "Escape",
        "Stop the running task (nothing is written)",
        lambda s: s.busy is not None and s.busy.cancellable,
        "Pair",
    ),
    ActionSpec(
        "set_roi", "Select region", "R", "Region for histograms and pane figures", _has_pair, "View"
    ),
    ActionSpec(
        "clear_roi",
        "Whole frame",
        "Shift+R",
        "Clear the region",
        lambda s: s.view.roi is not None,
        "View",
    ),
    ActionSpec("fit_view", "Fit", "F", "Show the whole frame", _has_pair, "View"),
    ActionSpec("zoom_100", "1:1", "1", "One image pixel per screen pixel", _has_pair, "View"),
    ActionSpec("screenshot", "Save screenshot…", "", "Save the window as PNG", _always, "File"),
    ActionSpec("quit", "Quit", "Ctrl+Q", "Quit Linear48", _always, "File"),
)


def build_actions(owner: Any, specs: tuple[ActionSpec, ...] = ACTIONS) -> dict[str, QAction]:
    """QActions for ``specs``, each triggering ``owner.act_<key>()``."""
    out: dict[str, QAction] = {}
    for spec in specs:
        action = QAction(spec.text, owner)
        if spec.shortcut:
            action.setShortcut(QKeySequence(spec.shortcut))
        action.setToolTip(f"{spec.tip} ({spec.shortcut})" if spec.shortcut else spec.tip)
        action.setStatusTip(spec.tip)
        handler = getattr(owner, f"act_{spec.key}")
        action.triggered.connect(lambda _checked=False, h=handler: h())
        out[spec.key] = action
    return out


def refresh_actions(
    actions: dict[str, QAction], state: AppState, specs: tuple[ActionSpec, ...] = ACTIONS
) -> None:
    """Apply every "enabled when" rule."""
    for spec in specs:
        actions[spec.key].setEnabled(bool(spec.enabled_when(state)))
