"""DNG colour bookkeeping on the real iPhone 12 Pro ProRAW header and on hand-built tags."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.color import (
    native_neutral,
    neutral_xy,
    proraw_to_camera_matrix,
    stored_neutral,
    stored_to_srgb_matrix,
    wb_gains,
)
from core.io.captures import ColorMetadata
from core.io.dngfile import open_dng, read_color_metadata
from tests.conftest import real_file


@pytest.fixture(scope="module")
def iphone_color() -> ColorMetadata:
    with open_dng(real_file("proraw_iphone12pro_IMG_1361_headeronly.dng")) as handle:
        return read_color_metadata(handle)


@pytest.mark.real_data
def test_real_header_tags(iphone_color: ColorMetadata) -> None:
    c = iphone_color
    np.testing.assert_allclose(c.as_shot_neutral, [0.44897, 1.0, 0.54087], atol=1e-4)
    assert c.analog_balance is None
    assert c.calibration_illuminant1 == 17 and c.calibration_illuminant2 == 21
    assert c.baseline_exposure == pytest.approx(-0.3022, abs=1e-3)
    assert c.profile_tone_curve is not None and c.profile_tone_curve.shape == (257, 2)


@pytest.mark.real_data
def test_daylight_white_point_is_plausible(iphone_color: ColorMetadata) -> None:
    x, y = neutral_xy(iphone_color)
    # An outdoor iPhone capture: the white point sits near the daylight locus (~5000-5500 K).
    assert 0.32 < x < 0.36 and 0.33 < y < 0.37


@pytest.mark.real_data
def test_ios15_analog_balance_style_maps_to_the_same_native_neutral(
    iphone_color: ColorMetadata,
) -> None:
    # iOS 15 ProRAW: AsShotNeutral (1,1,1) with the gains moved into AnalogBalance.
    asn = iphone_color.as_shot_neutral
    assert asn is not None
    ios15 = replace(iphone_color, as_shot_neutral=np.ones(3), analog_balance=1.0 / asn)
    np.testing.assert_allclose(native_neutral(ios15), native_neutral(iphone_color), rtol=1e-9)
    np.testing.assert_allclose(stored_neutral(ios15), [1, 1, 1])
    np.testing.assert_allclose(neutral_xy(ios15), neutral_xy(iphone_color), atol=1e-6)
    mapping = proraw_to_camera_matrix(iphone_color, ios15)
    # White-balanced stored values divided by AnalogBalance = RAW12's native values.
    np.testing.assert_allclose(mapping.matrix, np.diag(asn), atol=1e-9)
    assert mapping.method == "dng-matrices"


@pytest.mark.real_data
def test_equal_metadata_maps_by_identity(iphone_color: ColorMetadata) -> None:
    mapping = proraw_to_camera_matrix(iphone_color, iphone_color)
    assert mapping.method == "identity"
    np.testing.assert_array_equal(mapping.matrix, np.eye(3))


@pytest.mark.real_data
def test_preview_matrix_renders_neutral_gray(iphone_color: ColorMetadata) -> None:
    m = stored_to_srgb_matrix(iphone_color)
    np.testing.assert_allclose(m @ stored_neutral(iphone_color), [1, 1, 1], atol=1e-9)


def test_wb_gains_green_one_and_missing_matrix_is_identity() -> None:
    c = ColorMetadata(as_shot_neutral=np.array([0.5, 1.0, 0.25]))
    np.testing.assert_allclose(wb_gains(c), [2.0, 1.0, 4.0])
    assert proraw_to_camera_matrix(c, c).method == "identity"
