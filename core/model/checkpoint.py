"""Versioned model checkpoints: config + weights + content hash (DESIGN §8: bad input).

File layout (one ``torch.save`` archive, loaded with ``weights_only=True``)::

    {"format": "linear48-model", "version": 1, "config": {...ModelConfig...},
     "state_dict": {...tensors...}, "hash": "<sha256 hex>", "meta": {...JSON...}}

The hash is SHA-256 over the canonical JSON of the config followed by every tensor of the
state dict (sorted by name: name, dtype, shape, raw bytes). It identifies the model in
reports and output provenance, and a mismatch means the file was altered or corrupted.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.errors import ConfigError, InputFileError
from core.io.atomic import atomic_write
from core.model.net import Linear48Net, ModelConfig

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "LoadedCheckpoint",
    "content_hash",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "linear48-model"
VERSION = 1
#: Refuse files larger than this before reading them (a model is well under 1 MiB).
MAX_BYTES = 256 * 1024 * 1024


class CheckpointError(InputFileError, ValueError):
    """A model checkpoint is missing, corrupted, of another format/version or does not
    match the network; the message is one line."""


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A verified checkpoint.

    Attributes:
        net: the network in eval mode with the weights loaded.
        config: its architecture.
        hash: SHA-256 content hash (hex).
        meta: free-form JSON metadata (run name, step, metrics...).
        path: the file it came from.
    """

    net: Linear48Net
    config: ModelConfig
    hash: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)


def content_hash(config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the canonical config JSON and the sorted tensors (hex)."""
    h = hashlib.sha256()
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | Path, net: Linear48Net, meta: dict[str, Any] | None = None) -> str:
    """Write ``net`` atomically to ``path``; returns the content hash."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    digest = content_hash(net.config, state)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": net.config.to_dict(),
        "state_dict": state,
        "hash": digest,
        "meta": json.loads(json.dumps(meta or {}, default=str)),
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as handle:
        handle.write(buf.getvalue())
    return digest


def _fail(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"model checkpoint {reason}", path)


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read and verify a checkpoint.

    Raises:
        CheckpointError: missing or unreadable file, not a Linear48 checkpoint, another
            version, a config the code does not accept, a hash mismatch (corrupted or
            edited) or weights that do not fit the network.
    """
    p = Path(path)
    if not p.is_file():
        raise _fail(p, "not found")
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise _fail(p, f"is {size / 2**20:.0f} MiB, far larger than any Linear48 model")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types on damaged archives
        raise _fail(p, "is damaged or not a Linear48 model file") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise _fail(p, "is not a Linear48 model file")
    if payload.get("version") != VERSION:
        raise _fail(p, f"has format version {payload.get('version')!r}; this build reads {VERSION}")
    try:
        config = ModelConfig.from_dict(dict(payload["config"]))
    except (ConfigError, KeyError, TypeError) as err:
        raise _fail(p, f"has an unusable configuration ({err})") from err
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _fail(p, "has no weights")
    digest = content_hash(config, state)
    if digest != payload.get("hash"):
        raise _fail(p, "fails its content check (corrupted or modified)")
    net = Linear48Net(config)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise _fail(p, "does not match this version's network") from err
    net.eval()
    meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    return LoadedCheckpoint(net, config, digest, p, dict(meta or {}))
