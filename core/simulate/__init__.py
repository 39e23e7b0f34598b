"""Capture-pair simulator: scenes, tone mapping operators, synthetic RAW12/ProRAW48 files."""
