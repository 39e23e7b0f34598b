"""One exception hierarchy for everything Linear48 reports to a user.

Each class also subclasses the builtin it refines, keeps its context as attributes and
renders as one plain line a photographer can read (``str(err)``). Third-party errors are
translated at the boundary with ``raise ... from err``.
"""

from __future__ import annotations

from pathlib import Path


class Linear48Error(Exception):
    """Root of every error Linear48 raises on purpose."""


class InputFileError(Linear48Error):
    """A file the user handed us cannot be used.

    Attributes:
        path: the offending file (``None`` when the data came from memory).
        reason: the plain-language reason, without the path.
    """

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = reason
        super().__init__(f"{self.path.name}: {reason}" if self.path else reason)


class FileNotReadableError(InputFileError, OSError):
    """The file does not exist or cannot be opened."""


class NotADngError(InputFileError, ValueError):
    """The file is not a TIFF/DNG at all (e.g. a RAF, a JPEG, random bytes)."""


class WrongKindError(InputFileError, ValueError):
    """A valid DNG of the wrong kind, e.g. a LinearRaw ProRAW where a Bayer RAW is expected.

    Attributes:
        expected: what the caller needed (``"Bayer CFA"``, ``"LinearRaw"``).
        actual: what the file holds.
    """

    def __init__(
        self, reason: str, path: str | Path | None = None, *, expected: str = "", actual: str = ""
    ) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(reason, path)


class TruncatedFileError(InputFileError, ValueError):
    """Image data (tiles or strips) extends beyond the end of the file."""


class CorruptDataError(InputFileError, ValueError):
    """Data inside the file cannot be decoded (bad JPEG stream, inconsistent tags)."""


class UnsupportedFormatError(InputFileError, ValueError):
    """A valid DNG feature Linear48 does not handle (an unknown compression, bit depth...)."""


class AbsurdSizeError(InputFileError, ValueError):
    """Declared dimensions are implausible for a camera file (zero, huge, or inconsistent)."""


class PairMismatchError(InputFileError, ValueError):
    """The two files of a pair do not belong together (size, camera, orientation).

    Attributes:
        expected: the size or property ProRAW48 should have.
        actual: what it has.
    """

    def __init__(
        self,
        reason: str,
        path: str | Path | None = None,
        *,
        expected: object = None,
        actual: object = None,
    ) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(reason, path)


class AlignmentGateError(PairMismatchError):
    """Registration's alignment gate failed: the files do not line up well enough.

    Attributes:
        reasons: the gate's plain-language reasons.
    """

    def __init__(self, reasons: list[str], path: str | Path | None = None) -> None:
        self.reasons = list(reasons)
        text = "; ".join(self.reasons) or "alignment gate failed"
        super().__init__(
            f"ProRAW48 does not line up with RAW12 ({text}); pass --allow-misaligned to convert "
            "with the global baseline only",
            path,
        )


class ShadingError(InputFileError, ValueError):
    """RAW12 lens-shading opcodes exist but cannot be parsed; reported, never guessed."""


class ShapeError(Linear48Error, ValueError):
    """An array has a shape the operation does not accept (a programming or data error)."""


class ConfigError(Linear48Error, ValueError):
    """A configuration value is invalid; the message names the field."""


class OutputError(Linear48Error, OSError):
    """The output cannot be written (disk full, permission, existing file without --force)."""


class CancelledError(Linear48Error):
    """The user cancelled a long operation; nothing was written."""
