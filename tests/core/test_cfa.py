"""CFA pattern bookkeeping: names, phases after crops and flips, plane offsets."""

from __future__ import annotations

import numpy as np
import pytest

from core.cfa import CfaPattern
from core.errors import ShapeError


@pytest.mark.parametrize("name", ["RGGB", "BGGR", "GRBG", "GBRG"])
def test_name_round_trip(name: str) -> None:
    assert CfaPattern.from_name(name).name == name


def test_rawpy_pattern_folds_second_green() -> None:
    # rawpy numbers the second green 3: [[0, 1], [3, 2]] is RGGB.
    assert CfaPattern.from_array(np.array([[0, 1], [3, 2]])).name == "RGGB"


def test_shift_by_one_column_and_row() -> None:
    p = CfaPattern.from_name("RGGB")
    assert p.shifted(0, 1).name == "GRBG"
    assert p.shifted(1, 0).name == "GBRG"
    assert p.shifted(1, 1).name == "BGGR"
    assert p.shifted(2, 2).name == "RGGB"


def test_shift_matches_color_mask_crop() -> None:
    p = CfaPattern.from_name("BGGR")
    mask = p.color_mask(8, 8)
    for dy in range(2):
        for dx in range(2):
            assert np.array_equal(
                p.shifted(dy, dx).color_mask(6, 6), mask[dy : dy + 6, dx : dx + 6]
            )


def test_flip_matches_flipped_mask() -> None:
    p = CfaPattern.from_name("GRBG")
    mask = p.color_mask(4, 4)
    assert np.array_equal(p.flipped(horizontal=True).color_mask(4, 4), mask[:, ::-1])
    assert np.array_equal(p.flipped(vertical=True).color_mask(4, 4), mask[::-1, :])


@pytest.mark.parametrize(
    ("name", "gr", "gb"),
    [
        ("RGGB", (0, 1), (1, 0)),
        ("BGGR", (1, 0), (0, 1)),
        ("GRBG", (0, 0), (1, 1)),
        ("GBRG", (1, 1), (0, 0)),
    ],
)
def test_plane_offsets_name_greens_by_row(
    name: str, gr: tuple[int, int], gb: tuple[int, int]
) -> None:
    offsets = CfaPattern.from_name(name).plane_offsets()
    assert offsets["Gr"] == gr
    assert offsets["Gb"] == gb


def test_quad_expands_each_entry_to_2x2() -> None:
    q = CfaPattern.from_name("BGGR").quad()
    assert q.tolist() == [[2, 2, 1, 1], [2, 2, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]


def test_bad_patterns_are_refused() -> None:
    with pytest.raises(ShapeError, match="valid: RGGB"):
        CfaPattern.from_name("RGBW")
    with pytest.raises(ShapeError):
        CfaPattern(((0, 0), (1, 2)))
