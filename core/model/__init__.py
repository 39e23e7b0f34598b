"""The two-head de-LTM model (DESIGN §5): network, checkpoints and inference."""

from core.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.model.infer import LoadedModel, ModelOutput, load_default_model, load_model, predict
from core.model.net import Linear48Net, ModelConfig

__all__ = [
    "CheckpointError",
    "Linear48Net",
    "LoadedModel",
    "ModelConfig",
    "ModelOutput",
    "load_checkpoint",
    "load_default_model",
    "load_model",
    "predict",
    "save_checkpoint",
]
