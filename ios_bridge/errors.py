"""Errors of the Core ML bridge, in the ``core.errors`` hierarchy (one plain line each)."""

from __future__ import annotations

from pathlib import Path

from core.errors import InputFileError, Linear48Error


class IosBridgeError(Linear48Error):
    """Root of the errors ``ios_bridge`` raises on purpose."""


class SignoffRequiredError(IosBridgeError, PermissionError):
    """An INT8 export was refused: no sign-off record approves this model + config.

    Attributes:
        model_hash: the checkpoint's content hash.
        quantization_hash: sha256 of the quantization config that needs approval.
        reasons: why the closest record (if any) does not approve it.
    """

    def __init__(self, model_hash: str, quantization_hash: str, reasons: list[str]) -> None:
        self.model_hash = model_hash
        self.quantization_hash = quantization_hash
        self.reasons = list(reasons)
        super().__init__(
            f"INT8 export refused: no sign-off approves model {model_hash[:12]} with "
            f"quantization {quantization_hash[:8]} ({'; '.join(self.reasons) or 'no record'}); "
            "review the QA scenes (GUI or `signoff create`) or pass --force"
        )


class PackageVerificationError(IosBridgeError, ValueError):
    """A freshly written package failed its checks; nothing was kept.

    Attributes:
        package: which package (``gain`` / ``detail``).
        problems: the failed checks.
    """

    def __init__(self, package: str, problems: list[str]) -> None:
        self.package = package
        self.problems = list(problems)
        super().__init__(f"{package} package failed verification: {'; '.join(self.problems)}")


class CoreMLPackageError(InputFileError, ValueError):
    """A Core ML package or an iOS manifest cannot be read (missing, corrupt, wrong kind)."""

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        super().__init__(reason, path)


class ExportToolError(IosBridgeError, RuntimeError):
    """torch.export or coremltools failed on the network (a bug or an unsupported op)."""
