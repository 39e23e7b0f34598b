"""CFA patterns: the 2x2 Bayer pattern of RAW12 and its 4x4 quad-Bayer expansion.

Convention: a pattern is named by its top-left 2x2 in reading order (``RGGB``); colour
indices are 0 = R, 1 = G, 2 = B (DNG ``CFAPlaneColor 0 1 2``). Per-CFA statistics use four
planes R, Gr, Gb, B, where Gr is the green on red rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from core.errors import ShapeError

_LETTERS = {"R": 0, "G": 1, "B": 2}
PLANE_NAMES: tuple[str, str, str, str] = ("R", "Gr", "Gb", "B")


class CfaName(StrEnum):
    """The four Bayer phases."""

    RGGB = "RGGB"
    BGGR = "BGGR"
    GRBG = "GRBG"
    GBRG = "GBRG"


@dataclass(frozen=True)
class CfaPattern:
    """A 2x2 Bayer pattern.

    Attributes:
        colors: ((c00, c01), (c10, c11)) with 0 = R, 1 = G, 2 = B; row-major, so
            ``colors[y % 2][x % 2]`` is the colour of mosaic pixel (x, y).
    """

    colors: tuple[tuple[int, int], tuple[int, int]]

    def __post_init__(self) -> None:
        flat = sorted(c for row in self.colors for c in row)
        if flat != [0, 1, 1, 2]:
            raise ShapeError(f"not a Bayer pattern: {self.colors}; need one R, two G, one B")

    @classmethod
    def from_name(cls, name: str | CfaName) -> CfaPattern:
        """``CfaPattern.from_name("BGGR")``; raises ShapeError naming the valid ones."""
        text = name.value if isinstance(name, CfaName) else str(name).upper()
        if text not in CfaName.__members__:
            valid = ", ".join(CfaName.__members__)
            raise ShapeError(f"unknown CFA pattern {name!r}; valid: {valid}")
        c = [_LETTERS[ch] for ch in text]
        return cls(((c[0], c[1]), (c[2], c[3])))

    @classmethod
    def from_array(cls, pattern: np.ndarray) -> CfaPattern:
        """From a 2x2 array of colour indices such as rawpy's ``raw_pattern``.

        rawpy numbers the second green 3; it is folded to 1 here.
        """
        arr = np.asarray(pattern).astype(int)
        if arr.shape != (2, 2):
            raise ShapeError(f"CFA pattern must be 2x2, got shape {arr.shape}")
        arr = np.where(arr == 3, 1, arr)
        return cls(((int(arr[0, 0]), int(arr[0, 1])), (int(arr[1, 0]), int(arr[1, 1]))))

    @property
    def name(self) -> str:
        """Reading-order letters, e.g. ``"BGGR"``."""
        letters = "RGB"
        return "".join(letters[c] for row in self.colors for c in row)

    def as_array(self) -> np.ndarray:
        """(2, 2) int array of colour indices."""
        return np.array(self.colors, dtype=np.int64)

    def quad(self) -> np.ndarray:
        """(4, 4) quad-Bayer pattern ``Q[y][x] = P[y // 2][x // 2]`` (DESIGN §3)."""
        return np.repeat(np.repeat(self.as_array(), 2, axis=0), 2, axis=1)

    def shifted(self, dy: int, dx: int) -> CfaPattern:
        """The pattern seen by a crop starting at (x=dx, y=dy) of this mosaic."""
        arr = np.roll(self.as_array(), shift=(-dy, -dx), axis=(0, 1))
        return CfaPattern.from_array(arr)

    def flipped(self, *, horizontal: bool = False, vertical: bool = False) -> CfaPattern:
        """Pattern after flipping an even-sized mosaic."""
        arr = self.as_array()
        if horizontal:
            arr = arr[:, ::-1]
        if vertical:
            arr = arr[::-1, :]
        return CfaPattern.from_array(arr)

    def plane_offsets(self) -> dict[str, tuple[int, int]]:
        """Offsets (dy, dx) of the R, Gr, Gb, B planes within the 2x2 cell.

        Gr is the green sharing a row with red; Gb the green sharing a row with blue.
        """
        arr = self.as_array()
        out: dict[str, tuple[int, int]] = {}
        for dy in range(2):
            for dx in range(2):
                c = int(arr[dy, dx])
                if c == 0:
                    out["R"] = (dy, dx)
                elif c == 2:
                    out["B"] = (dy, dx)
                else:
                    red_row = 0 in arr[dy]
                    out["Gr" if red_row else "Gb"] = (dy, dx)
        return out

    def color_mask(self, h: int, w: int) -> np.ndarray:
        """(H, W) int array: colour index of every mosaic pixel."""
        return np.tile(self.as_array(), ((h + 1) // 2, (w + 1) // 2))[:h, :w]
