"""Headless PyTorch training (issue 4; not built yet)."""
