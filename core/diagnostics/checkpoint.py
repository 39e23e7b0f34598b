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
import io
import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.diagnostics.features import FEATURE_VERSION
from core.diagnostics.net import DiagnosticNet, DiagnosticNetConfig
from core.errors import ConfigError
from core.io.atomic import atomic_write
from core.model.checkpoint import CheckpointError

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
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_diagnostic_checkpoint(
    path: str | Path, net: DiagnosticNet, meta: dict[str, Any] | None = None
) -> str:
    """Write ``net`` atomically to ``path``; returns the content hash."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    digest = diagnostic_content_hash(net.config, state, FEATURE_VERSION)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "feature_version": FEATURE_VERSION,
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


def _fail(path: Path, reason: str) -> DiagnosticCheckpointError:
    return DiagnosticCheckpointError(f"diagnostic model {reason}", path)


def _load_uncached(p: Path) -> LoadedDiagnosticModel:
    size = p.stat().st_size
    if size > MAX_BYTES:
        raise _fail(p, f"is {size / 2**20:.0f} MiB, far larger than any diagnostic model")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types on damaged archives
        raise _fail(p, "is damaged or not a Linear48 diagnostic model file") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise _fail(p, "is not a Linear48 diagnostic model file")
    if payload.get("version") != VERSION:
        raise _fail(p, f"has format version {payload.get('version')!r}; this build reads {VERSION}")
    feature_version = payload.get("feature_version")
    if feature_version != FEATURE_VERSION:
        raise _fail(
            p,
            f"was trained for feature version {feature_version!r}; this build computes "
            f"version {FEATURE_VERSION} (retrain it)",
        )
    try:
        config = DiagnosticNetConfig.from_dict(dict(payload["config"]))
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise _fail(p, f"has an unusable configuration ({err})") from err
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _fail(p, "has no weights")
    digest = diagnostic_content_hash(config, state, FEATURE_VERSION)
    if digest != payload.get("hash"):
        raise _fail(p, "fails its content check (corrupted or modified)")
    net = DiagnosticNet(config)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise _fail(p, "does not match this version's network") from err
    net.eval()
    meta = payload.get("meta")
    return LoadedDiagnosticModel(
        net, config, digest, p, dict(meta) if isinstance(meta, dict) else {}
    )


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
