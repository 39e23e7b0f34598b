"""PySide6 + pyqtgraph desktop application (issue 6; not built yet)."""
