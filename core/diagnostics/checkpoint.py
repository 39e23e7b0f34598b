"""Versioned diagnostic-model checkpoints with a content hash, loaded once and cached.

File layout (one ``torch.save`` archive, read with ``weights_only=True``), the same pattern
as :mod:`core.model.checkpoint`::

    {"format": "linear48-diagnostic", "version": 1, "feature_version": 1,
     "config": {...DiagnosticNetConfig...}, "state_dict": {...tensors...},
     "hash": "<sha256 hex>", "meta": {...JSON...}}

The hash is SHA-256 over the canonical JSON of the config and the feature version followed
by every tensor of the state dict (sorted by name: name, dtype, shape, raw bytes). A
mismatch means the file was altered or corrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.diagnostics.features import FEATURE_VERSION
from core.diagnostics.net import DiagnosticNet, DiagnosticNetConfig
from core.model.checkpoint import (
    CheckpointError,
    hash_tensors,
    net_state,
    read_payload,
    restore_net,
    save_payload,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_DIAGNOSTIC_CHECKPOINT",
    "FORMAT",
    "VERSION",
    "DiagnosticCheckpointError",
    "LoadedDiagnosticModel",
    "clear_cache",
    "diagnostic_content_hash",
    "load_diagnostic_model",
    "save_diagnostic_checkpoint",
]

FORMAT = "linear48-diagnostic"
VERSION = 1
#: The shipped default diagnostic model.
DEFAULT_DIAGNOSTIC_CHECKPOINT = (
    Path(__file__).resolve().parents[2] / "resources" / "models" / "diagnostic.pt"
)
#: Refuse files larger than this before reading them (the model is well under 1 MiB).
MAX_BYTES = 64 * 1024 * 1024


class DiagnosticCheckpointError(CheckpointError):
    """A diagnostic checkpoint is missing, corrupted, of another format/version or does not
    match the network; one line. (A :class:`CheckpointError`, so an ``InputFileError``.)"""


@dataclass(frozen=True)
class LoadedDiagnosticModel:
    """A verified diagnostic checkpoint.

    Attributes:
        net: the network in eval mode.
        config: its architecture.
        hash: SHA-256 content hash (hex).
        path: the file it came from.
        meta: free-form JSON metadata (run name, held-out accuracy...).
    """

    net: DiagnosticNet
    config: DiagnosticNetConfig
    hash: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)


def diagnostic_content_hash(
    config: DiagnosticNetConfig, state_dict: dict[str, torch.Tensor], feature_version: int
) -> str:
    """SHA-256 over the config JSON, the feature version and the sorted tensors (hex)."""
    h = hashlib.sha256()
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    h.update(f"features={feature_version}".encode())
    hash_tensors(h, state_dict)
    return h.hexdigest()


def save_diagnostic_checkpoint(
    path: str | Path, net: DiagnosticNet, meta: dict[str, Any] | None = None
) -> str:
    """Write ``net`` atomically to ``path``; returns the content hash."""
    state = net_state(net)
    digest = diagnostic_content_hash(net.config, state, FEATURE_VERSION)
    save_payload(
        path,
        {
            "format": FORMAT,
            "version": VERSION,
            "feature_version": FEATURE_VERSION,
            "config": net.config.to_dict(),
            "state_dict": state,
            "hash": digest,
            "meta": meta,
        },
    )
    return digest


def _fail(path: Path, reason: str) -> DiagnosticCheckpointError:
    return DiagnosticCheckpointError(f"diagnostic model {reason}", path)


def _load_uncached(p: Path) -> LoadedDiagnosticModel:
    payload = read_payload(
        p,
        fmt=FORMAT,
        version=VERSION,
        max_bytes=MAX_BYTES,
        kind="Linear48 diagnostic model",
        fail=_fail,
    )
    feature_version = payload.get("feature_version")
    if feature_version != FEATURE_VERSION:
        raise _fail(
            p,
            f"was trained for feature version {feature_version!r}; this build computes "
            f"version {FEATURE_VERSION} (retrain it)",
        )
    net, config, digest, meta = restore_net(
        p,
        payload,
        config_from_dict=DiagnosticNetConfig.from_dict,
        make_net=DiagnosticNet,
        digest=lambda c, st: diagnostic_content_hash(c, st, FEATURE_VERSION),
        fail=_fail,
    )
    return LoadedDiagnosticModel(net, config, digest, p, meta)


_CACHE: dict[tuple[str, int, int], LoadedDiagnosticModel] = {}
_LOCK = threading.Lock()


def load_diagnostic_model(path: str | Path | None = None) -> LoadedDiagnosticModel:
    """Load and verify a diagnostic checkpoint (default: the shipped one), cached.

    The cache key is (resolved path, size, modification time), so a file replaced on disk
    is read again; failures are not cached.

    Raises:
        DiagnosticCheckpointError: missing or unreadable file, not a diagnostic checkpoint,
            another format or feature version, a hash mismatch (corrupted or edited) or
            weights that do not fit the network.
    """
    p = Path(path) if path is not None else DEFAULT_DIAGNOSTIC_CHECKPOINT
    if not p.is_file():
        raise _fail(p, "not found")
    try:
        st = p.stat()
    except OSError as err:
        raise _fail(p, f"cannot be read ({err.strerror})") from err
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            return hit
        loaded = _load_uncached(p)
        _CACHE[key] = loaded
        log.info("diagnostic model %s loaded (%s)", p.name, loaded.hash[:12])
        return loaded


def clear_cache() -> None:
    """Forget every cached model (tests, or after replacing a file in place)."""
    with _LOCK:
        _CACHE.clear()
