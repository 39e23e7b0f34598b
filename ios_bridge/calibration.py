"""w8a8 activation calibration: ``core.model.emulate.calibrate_w8a8``, re-exported.

The float32 network runs the device plan (the detail model sees tiles and the gain model
the splatted grid, exactly as on the device: ``core.model.emulate.run_emulated``, the
same steps ``ios_bridge.executor.ReferenceExecutor`` runs) over the scenes of the
quantization config's ``activations.calibration``; forward pre-hooks record each conv
input's min and max; scales are ``max|x| / 127`` rounded to float16. Deterministic for a
(model, config) pair, which is what a sign-off approves. It lives in ``core`` so that the
GUI's INT8 sign-off calibrates exactly as the export does.
"""

from __future__ import annotations

from core.model.emulate import calibrate_w8a8

__all__ = ["calibrate_w8a8"]
