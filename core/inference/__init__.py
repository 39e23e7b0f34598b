"""Tiled inference (DESIGN §6): tile plans, blend weights, tiled execution."""
