"""Core ML export and iOS execution plan (issue 5; not built yet)."""
