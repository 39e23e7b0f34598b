"""Versioned checkpoints of the learned demosaicer, loaded once and cached.

File layout (one ``torch.save`` archive, loaded with ``weights_only=True``), the same
scheme as :mod:`core.model.checkpoint` with its own format name::

    {"format": "linear48-demosaic", "version": 1, "config": {...DemosaicNetConfig...},
     "state_dict": {...tensors...}, "hash": "<sha256 hex>", "meta": {...JSON...}}

The hash is SHA-256 over the canonical config JSON followed by every tensor (sorted by
name: name, dtype, shape, raw bytes); a mismatch means the file was altered or damaged.
Every failure is a :class:`core.model.checkpoint.CheckpointError` with one plain line.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.demosaic.net import DemosaicNet, DemosaicNetConfig
from core.model.checkpoint import (
    CheckpointError,
    hash_tensors,
    net_state,
    read_payload,
    restore_net,
    save_payload,
)

__all__ = [
    "DEFAULT_DEMOSAIC_CHECKPOINT",
    "FORMAT",
    "VERSION",
    "LoadedDemosaicModel",
    "clear_cache",
    "content_hash",
    "load_demosaic_checkpoint",
    "load_demosaic_model",
    "save_demosaic_checkpoint",
]

FORMAT = "linear48-demosaic"
VERSION = 1
#: The shipped default, trained by ``training/demosaic.py``.
DEFAULT_DEMOSAIC_CHECKPOINT = (
    Path(__file__).resolve().parents[2] / "resources" / "models" / "demosaic.pt"
)
#: Refuse files larger than this before reading them (the model is about 100 KiB).
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class LoadedDemosaicModel:
    """A verified demosaic checkpoint.

    Attributes:
        net: the network in eval mode.
        config: its architecture.
        hash: SHA-256 content hash (hex).
        path: the file it came from.
        meta: free-form JSON metadata (run name, steps, held-out figures).
    """

    net: DemosaicNet
    config: DemosaicNetConfig
    hash: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)


def content_hash(config: DemosaicNetConfig, state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the format name, the canonical config JSON and the sorted tensors (hex)."""
    h = hashlib.sha256()
    h.update(FORMAT.encode())
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    hash_tensors(h, state_dict)
    return h.hexdigest()


def save_demosaic_checkpoint(
    path: str | Path, net: DemosaicNet, meta: dict[str, Any] | None = None
) -> str:
    """Write ``net`` atomically to ``path`` (folder created); returns the content hash."""
    state = net_state(net)
    digest = content_hash(net.config, state)
    save_payload(
        path,
        {
            "format": FORMAT,
            "version": VERSION,
            "config": net.config.to_dict(),
            "state_dict": state,
            "hash": digest,
            "meta": meta,
        },
    )
    return digest


def _fail(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"demosaic model {reason}", path)


def load_demosaic_checkpoint(path: str | Path) -> LoadedDemosaicModel:
    """Read and verify a demosaic checkpoint (uncached; see :func:`load_demosaic_model`).

    Raises:
        CheckpointError: missing, oversized, damaged, another format or version, an
            unusable config, a hash mismatch, or weights that do not fit the network.
    """
    p = Path(path)
    payload = read_payload(
        p,
        fmt=FORMAT,
        version=VERSION,
        max_bytes=MAX_BYTES,
        kind="Linear48 demosaic model",
        fail=_fail,
    )
    net, config, digest, meta = restore_net(
        p,
        payload,
        config_from_dict=DemosaicNetConfig.from_dict,
        make_net=DemosaicNet,
        digest=content_hash,
        fail=_fail,
    )
    return LoadedDemosaicModel(net, config, digest, p, meta)


_CACHE: dict[tuple[str, int, int], LoadedDemosaicModel] = {}
_LOCK = threading.Lock()
_CACHE_SIZE = 4


def load_demosaic_model(path: str | Path | None = None) -> LoadedDemosaicModel:
    """The demosaic model at ``path`` (default: the shipped one), loaded once and cached.

    The cache key is the resolved path with the file's size and modification time, so a
    replaced file is reloaded. Raises CheckpointError as :func:`load_demosaic_checkpoint`.
    """
    p = Path(path) if path is not None else DEFAULT_DEMOSAIC_CHECKPOINT
    try:
        st = p.stat()
    except OSError as err:
        raise _fail(p, "not found") from err
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is None:
            hit = load_demosaic_checkpoint(p)
            if len(_CACHE) >= _CACHE_SIZE:  # drop the oldest entry
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = hit
        return hit


def clear_cache() -> None:
    """Forget cached models (tests)."""
    with _LOCK:
        _CACHE.clear()
