"""Core ML export and the iOS execution plan (issue 5); a client of ``core`` only.

Modules (import the one you need; coremltools loads only inside the export/verify code):

- :mod:`ios_bridge.graph`: the gain/detail models as modules, ``torch.export`` tracing,
  graph counts (MACs, peak activations), FP16 emulation.
- :mod:`ios_bridge.quant`: fp32/fp16/int8/w8a8 variants and their emulation, the
  coremltools-exact int8 weight quantizer, activation calibration hooks.
- :mod:`ios_bridge.manifest`: the iOS manifest (tile plan, grid, order of operations).
- :mod:`ios_bridge.executor`: the Python reference executor of a manifest.
- :mod:`ios_bridge.calibration`: w8a8 calibration on simulated scenes.
- :mod:`ios_bridge.export`: ``export_coreml`` + ``verify_package`` (with the sign-off gate).
- :mod:`ios_bridge.parity`: FP32 vs FP16 vs INT8 per scene and per tile.
- :mod:`ios_bridge.budget`, :mod:`ios_bridge.plan`: working set / latency vs a budget.
- :mod:`ios_bridge.cli`: ``add_subcommands`` for ``main.py``.

See docs/ios_bridge.md.
"""
