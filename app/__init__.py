"""Linear48 desktop application (PySide6 + pyqtgraph), a client of ``core``.

Layout (STYLE "GUI: a view over state"):

- Qt-free: :mod:`app.state` (state + change signals), :mod:`app.pairing`,
  :mod:`app.analysis` (pane arrays from ``core``), :mod:`app.display` (display transform,
  pyramids, colormaps), :mod:`app.qa`, :mod:`core.signoff`, :mod:`app.experiments`.
- Qt: :mod:`app.application` (QApplication + pyqtgraph config), :mod:`app.workers`
  (thread pool), :mod:`app.actions` (action table), :mod:`app.main_window`,
  :mod:`app.panels`, and :func:`app.main.run_gui`, the entry point ``main.py gui`` calls.
"""
