"""core.demosaic.artifacts: the CFA-period (2 px) periodic-artifact detector."""

from __future__ import annotations

import numpy as np
import pytest

from core.demosaic import (
    ARTIFACT_THRESHOLD_DB,
    cfa_peak_db,
    has_periodic_artifact,
    periodic_artifact_db,
)
from core.demosaic.evaluation import evaluation_cases
from core.errors import ShapeError


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    """A natural held-out truth image (scikit-image's cat photograph, 12MP grid, 128x96,
    linear, HDR-boosted highlights): fur texture down to the pixel, no 2 px structure."""
    (case,) = evaluation_cases(["natural"], size12=(128, 96), scenes=["natural_chelsea"])
    return case.truth


def with_grid(img: np.ndarray, amplitude: float, kind: str) -> np.ndarray:
    """``img * (1 + amplitude * s)`` with s = +-1 alternating every pixel along x
    (``"x"``), along y (``"y"``) or both (``"xy"``, a checkerboard): what a demosaicer
    that treats the four CFA sites differently prints."""
    _, h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    sign = {"x": (-1.0) ** xx, "y": (-1.0) ** yy, "xy": (-1.0) ** (xx + yy)}[kind]
    return (img * (1.0 + amplitude * sign)).astype(np.float32)


@pytest.mark.parametrize("kind", ["x", "y", "xy"])
def test_fires_on_a_synthetic_grid(clean: np.ndarray, kind: str) -> None:
    """A 5 % 2 px grid over natural content is flagged, against truth and on its own."""
    gridded = with_grid(clean, 0.05, kind)
    assert periodic_artifact_db(gridded, clean) > ARTIFACT_THRESHOLD_DB + 20
    assert has_periodic_artifact(gridded, clean)
    assert has_periodic_artifact(gridded)


def test_quiet_on_a_clean_image(clean: np.ndarray) -> None:
    """The truth against itself scores exactly 0; on its own its CFA frequencies stand
    out less than the threshold; exposure does not change the score."""
    assert periodic_artifact_db(clean, clean) == 0.0
    assert not has_periodic_artifact(clean, clean)
    assert not has_periodic_artifact(clean)
    assert periodic_artifact_db(clean * np.float32(8.0)) == pytest.approx(
        periodic_artifact_db(clean), abs=1e-6
    )


def test_quiet_on_noise_and_blur(clean: np.ndarray) -> None:
    """White noise (flat spectrum) and a blur (less energy at 2 px) are not grids; a
    0.5 % grid on top of the noise still is."""
    rng = np.random.default_rng(0)
    noisy = clean * (1.0 + 0.05 * rng.standard_normal(clean.shape)).astype(np.float32)
    assert not has_periodic_artifact(noisy, clean)
    assert has_periodic_artifact(with_grid(noisy, 0.005, "xy"), clean)
    blurred = (clean + np.roll(clean, 1, axis=2) + np.roll(clean, 1, axis=1)) / 3
    assert periodic_artifact_db(blurred, clean) < ARTIFACT_THRESHOLD_DB


def test_grows_with_grid_amplitude(clean: np.ndarray) -> None:
    """Over a noisy version of the scene (so the error is not a pure grid), a stronger
    grid scores higher."""
    rng = np.random.default_rng(1)
    noisy = clean * (1.0 + 0.02 * rng.standard_normal(clean.shape)).astype(np.float32)
    scores = [periodic_artifact_db(with_grid(noisy, a, "x"), clean) for a in (0.0, 0.002, 0.02)]
    assert scores[0] < ARTIFACT_THRESHOLD_DB < scores[1] < scores[2]


def test_shapes() -> None:
    assert cfa_peak_db(np.ones((3, 32, 34), np.float32)).shape == (3, 3)
    assert cfa_peak_db(np.ones((32, 32), np.float32)).shape == (1, 3)
    with pytest.raises(ShapeError):
        cfa_peak_db(np.ones((3, 8, 8), np.float32))
    with pytest.raises(ShapeError):
        periodic_artifact_db(np.ones((3, 32, 32)), np.ones((3, 32, 30)))
