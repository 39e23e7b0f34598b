"""Capture and DNG file formats (all file formats live here)."""
