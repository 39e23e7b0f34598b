"""Geometry: registration of ProRAW48 onto the RAW12 anchor (DESIGN §4).

- ``grids``: the one pixel <-> normalized coordinate helper; 12MP <-> 48MP centres.
- ``warp``: the parametric warp (zoom, translation, Brown-Conrady radial/tangential),
  residual flow, the fused sampling grid and the banded one-``grid_sample`` warp.
- ``registration``: ``register`` (estimate + alignment gate) and ``apply_registration``.
- ``overlays``: checkerboard / blend / difference / edge overlays at 12MP for the GUI.
"""
