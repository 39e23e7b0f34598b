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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

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
    "hash_tensors",
    "load_checkpoint",
    "net_state",
    "read_payload",
    "restore_net",
    "save_checkpoint",
    "save_payload",
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


def hash_tensors(h: Any, state_dict: dict[str, torch.Tensor]) -> None:
    """Feed every tensor of ``state_dict`` into the hasher ``h`` (sorted by name: name,
    dtype, shape, raw bytes). Shared by every checkpoint format of the project."""
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())


def content_hash(config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the canonical config JSON and the sorted tensors (hex)."""
    h = hashlib.sha256()
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    hash_tensors(h, state_dict)
    return h.hexdigest()


def net_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``net``'s state dict (what a checkpoint stores)."""
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def save_payload(path: str | Path, payload: dict[str, Any]) -> None:
    """``torch.save`` ``payload`` atomically to ``path`` (folder created). ``meta`` is
    normalised to plain JSON values first."""
    payload = {**payload, "meta": json.loads(json.dumps(payload.get("meta") or {}, default=str))}
    buf = io.BytesIO()
    torch.save(payload, buf)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(target) as handle:
        handle.write(buf.getvalue())


def read_payload(
    p: Path,
    *,
    fmt: str,
    version: int,
    max_bytes: int,
    kind: str,
    fail: Callable[[Path, str], Exception],
) -> dict[str, Any]:
    """Open a versioned checkpoint file and check its envelope (not its contents).

    ``kind`` names the file in messages ("Linear48 model"); ``fail(path, reason)`` makes
    the caller's typed error. Raises it when the file is missing, larger than
    ``max_bytes``, not a torch archive, of another format or of another version.
    """
    if not p.is_file():
        raise fail(p, "not found")
    size = p.stat().st_size
    if size > max_bytes:
        raise fail(p, f"is {size / 2**20:.0f} MiB, far larger than any {kind}")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types on damaged archives
        raise fail(p, f"is damaged or not a {kind} file") from err
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise fail(p, f"is not a {kind} file")
    if payload.get("version") != version:
        raise fail(p, f"has format version {payload.get('version')!r}; this build reads {version}")
    return payload


_C = TypeVar("_C")
_N = TypeVar("_N", bound=nn.Module)


def restore_net(
    p: Path,
    payload: dict[str, Any],
    *,
    config_from_dict: Callable[[dict[str, Any]], _C],
    make_net: Callable[[_C], _N],
    digest: Callable[[_C, dict[str, torch.Tensor]], str],
    fail: Callable[[Path, str], Exception],
) -> tuple[_N, _C, str, dict[str, Any]]:
    """The network of a checked envelope: config, weights, content hash verified.

    Returns (net in eval mode, config, hash, meta). Raises ``fail(...)`` on an unusable
    config, missing weights, a hash mismatch or weights that do not fit the network.
    """
    try:
        config = config_from_dict(dict(payload["config"]))
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise fail(p, f"has an unusable configuration ({err})") from err
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise fail(p, "has no weights")
    checked = digest(config, state)
    if checked != payload.get("hash"):
        raise fail(p, "fails its content check (corrupted or modified)")
    net = make_net(config)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise fail(p, "does not match this version's network") from err
    net.eval()
    meta = payload.get("meta")
    return net, config, checked, dict(meta) if isinstance(meta, dict) else {}


def save_checkpoint(path: str | Path, net: Linear48Net, meta: dict[str, Any] | None = None) -> str:
    """Write ``net`` atomically to ``path``; returns the content hash."""
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
    return CheckpointError(f"model checkpoint {reason}", path)


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read and verify a checkpoint.

    Raises:
        CheckpointError: missing or unreadable file, not a Linear48 checkpoint, another
            version, a config the code does not accept, a hash mismatch (corrupted or
            edited) or weights that do not fit the network.
    """
    p = Path(path)
    payload = read_payload(
        p, fmt=FORMAT, version=VERSION, max_bytes=MAX_BYTES, kind="Linear48 model", fail=_fail
    )
    net, config, digest, meta = restore_net(
        p,
        payload,
        config_from_dict=ModelConfig.from_dict,
        make_net=Linear48Net,
        digest=content_hash,
        fail=_fail,
    )
    return LoadedCheckpoint(net, config, digest, p, meta)
