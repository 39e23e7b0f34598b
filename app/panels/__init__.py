"""Widgets bound to :class:`app.state.AppState` (no pipeline logic in here)."""
