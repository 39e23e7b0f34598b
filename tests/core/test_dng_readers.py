"""Linear48 output DNGs through every third-party reader DESIGN §7 names.

One small synthetic Camera48 image with known content is written as uint16 lossless-JPEG
tiles, uint16 strips and float32 (Deflate + FP predictor); each reader must open each
file and give the written pixels (decoders) or a faithful, neutral render (renderers).

A reader that is not installed is skipped locally and FAILS when the environment
variable CI is set (CI installs them all). Readers that DESIGN §7 says cannot open float
DNGs (dcraw, RawTherapee 5.9, LibRaw < 0.21 behind dcraw_emu) are strict expected
failures for float32 only: if one of them starts working, the test says so.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile

from core.io.captures import CameraIdentity, ColorMetadata
from core.io.dng_writer import DngWriteInfo, DngWriteOptions, write_linear_dng

pytestmark = pytest.mark.readers

TIMEOUT_S = 120
H, W = 336, 448
NEUTRAL = np.array([0.45, 1.0, 0.55])
CM1 = np.array([[0.9, -0.35, -0.08], [-0.45, 1.25, 0.22], [-0.06, 0.16, 0.65]])
CM2 = np.array([[0.7, -0.2, -0.05], [-0.4, 1.2, 0.2], [-0.05, 0.15, 0.6]])
COLOR = ColorMetadata(
    color_matrix1=CM1,
    color_matrix2=CM2,
    calibration_illuminant1=17,
    calibration_illuminant2=21,
    as_shot_neutral=NEUTRAL,
    baseline_exposure=-0.3,
    noise_profile=(3e-5, 3e-8),
)
IDENTITY = CameraIdentity(
    make="Apple", model="iPhone 15 Pro", unique_camera_model="iPhone16,1 back camera"
)
PATCHES = [
    (0.20, 0.10, 0.05),
    (0.05, 0.20, 0.05),
    (0.02, 0.06, 0.15),
    (0.15, 0.22, 0.05),
    (0.12, 0.08, 0.12),
    (0.04, 0.16, 0.14),
]
FORMATS: dict[str, DngWriteOptions] = {
    "uint16-tiles": DngWriteOptions(),
    "uint16-strips": DngWriteOptions(layout="strips"),
    "float32": DngWriteOptions(sample_format="float32"),
}


def scene() -> np.ndarray:
    """Camera48 (3, 336, 448) float32, not white balanced (neutral = g * AsShotNeutral).

    Rows 0-111: a gray ramp 0.005..0.35 left to right. Rows 112-223: six colour patches,
    74 px wide. Rows 224-335: a flat 18 % gray, with a 16x16 highlight at 2.0 x neutral
    in the bottom-right corner (so h = 1 EV of headroom is exercised).
    """
    img = np.zeros((3, H, W), np.float32)
    neutral = NEUTRAL.astype(np.float32)[:, None, None]
    img[:, :112, :] = np.linspace(0.005, 0.35, W, dtype=np.float32)[None, None, :] * neutral
    for k, rgb in enumerate(PATCHES):
        img[:, 112:224, 74 * k : 74 * (k + 1)] = np.array(rgb, np.float32)[:, None, None]
    img[:, 224:, :] = 0.18 * neutral
    img[:, H - 16 :, W - 16 :] = 2.0 * neutral
    return img


def sample_means(rgb: np.ndarray) -> np.ndarray:
    """(15, 3) means of inset regions, in relative coordinates (robust to small crops).

    8 ramp bins, the 6 patches, then the 18 % gray patch last. ``rgb`` is (h, w, 3).
    """
    h, w = rgb.shape[:2]

    def mean(y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
        return rgb[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)].reshape(-1, 3).mean(0)

    out = [mean(0.05, 0.28, (k + 0.5) / 8 - 0.02, (k + 0.5) / 8 + 0.02) for k in range(8)]
    pw = 74 / W
    out += [mean(0.38, 0.62, k * pw + 0.03, (k + 1) * pw - 0.03) for k in range(6)]
    out.append(mean(0.72, 0.93, 0.05, 0.9))
    return np.array(out, dtype=np.float64)


@dataclass(frozen=True)
class Written:
    """A written test file and what its raw samples must be."""

    path: Path
    info: DngWriteInfo
    linear: np.ndarray  # (H, W, 3) float64 stored values normalized to white = 1
    codes: np.ndarray | None  # (H, W, 3) uint16 for uint16 files
    stored: np.ndarray  # (H, W, 3) exactly as stored (uint16 or float32)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Written]:
    folder = tmp_path_factory.mktemp("readers")
    img = scene()
    out: dict[str, Written] = {}
    for name, options in FORMATS.items():
        path = folder / f"{name}.dng"
        info = write_linear_dng(path, img, color=COLOR, identity=IDENTITY, options=options)
        assert info.headroom_ev == 1.0
        with tifffile.TiffFile(path) as tif:
            stored = tif.pages.first.pages[0].asarray()
        codes = stored if stored.dtype == np.uint16 else None
        linear = stored / 65535.0 if codes is not None else stored.astype(np.float64)
        np.testing.assert_allclose(linear, img.transpose(1, 2, 0) / 2.0, atol=1e-5)
        out[name] = Written(path, info, linear, codes, stored)
    return out


# --------------------------------------------------------------------------- utilities


def need(program: str) -> str:
    """Path of ``program``; skip when absent, fail when absent under CI."""
    exe = shutil.which(program)
    if exe is None:
        message = f"{program} is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must install every DNG reader)")
        pytest.skip(message)
    return exe


def need_module(module: str) -> None:
    """Skip (or fail under CI) when a Python reader module is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"Python module {module} is not installed (CI must install it)")
        pytest.skip(f"Python module {module} is not installed")


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
        **kwargs,
    )  # type: ignore[call-overload]


def system_libraw_soname() -> int | None:
    """The soname major of the LibRaw dcraw_emu links (20 = LibRaw 0.20, 23 = 0.21)."""
    exe = shutil.which("dcraw_emu")
    if exe is None or shutil.which("ldd") is None:
        return None
    match = re.search(r"libraw(?:_r)?\.so\.(\d+)", run(["ldd", exe]).stdout)
    return int(match.group(1)) if match else None


def rawtherapee_version() -> tuple[int, ...] | None:
    exe = shutil.which("rawtherapee-cli")
    if exe is None:
        return None
    match = re.search(r"version (\d+)\.(\d+)", run([exe, "-v"]).stdout)
    return (int(match.group(1)), int(match.group(2))) if match else None


def srgb_to_linear(a: np.ndarray) -> np.ndarray:
    return np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)


def read_tiff_rgb(path: Path) -> np.ndarray:
    """(h, w, 3) float64 in 0..1 from an 8/16-bit or float TIFF a reader wrote."""
    img = tifffile.imread(path)
    if img.ndim == 3 and img.shape[0] in (3, 4) and img.shape[-1] not in (3, 4):
        img = img.transpose(1, 2, 0)
    img = img[..., :3]
    if img.dtype == np.uint16:
        return img / 65535.0
    if img.dtype == np.uint8:
        return img / 255.0
    return img.astype(np.float64)


def check_decoded(rgb: np.ndarray, expected: np.ndarray, atol: float) -> None:
    """A decoder's raw-colour linear output equals the stored samples (same geometry)."""
    assert rgb.shape == expected.shape, f"decoded {rgb.shape}, wrote {expected.shape}"
    err = np.abs(rgb - expected)
    assert err.max() <= atol, f"max |decoded - written| = {err.max():.2e} > {atol}"


def check_render(rgb: np.ndarray, linear: np.ndarray) -> None:
    """A renderer's linear output is faithful to the written scene.

    - size: within 16 px of the raw size (demosaic borders), same orientation;
    - a 3x3 linear map fits render ~ camera @ M over the 15 sample regions with a
      relative residual < 5 % (catches scrambled tiles, wrong channel order, clipping);
    - the gray ramp stays linear (correlation of G with the written ramp > 0.999);
    - the 18 % gray patch renders neutral within 3 % (AsShotNeutral honoured).
    """
    assert abs(rgb.shape[0] - H) <= 16 and abs(rgb.shape[1] - W) <= 16, rgb.shape
    assert np.all(np.isfinite(rgb)) and rgb.max() > 0.01, "black or non-finite render"
    got, want = sample_means(rgb), sample_means(linear)
    m, *_ = np.linalg.lstsq(want, got, rcond=None)
    residual = np.linalg.norm(want @ m - got) / np.linalg.norm(got)
    assert residual < 0.05, f"render is not a linear map of the written data ({residual:.3f})"
    ramp_corr = np.corrcoef(got[:8, 1], want[:8, 1])[0, 1]
    assert ramp_corr > 0.999, f"gray ramp not linear in the render (corr {ramp_corr:.4f})"
    gray = got[-1]
    assert abs(gray[0] / gray[1] - 1) < 0.03 and abs(gray[2] / gray[1] - 1) < 0.03, (
        f"18 % gray renders as RGB {gray / gray[1]}"
    )


def float_xfail(reason: str, *, strict: bool = True) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=strict, reason=reason)


_LIBRAW_SO = system_libraw_soname()
_OLD_SYSTEM_LIBRAW = _LIBRAW_SO is not None and _LIBRAW_SO < 23
_RT_VERSION = rawtherapee_version()


def formats_with_float_xfail(
    reason: str, *, applies: bool = True, strict: bool = True
) -> list[object]:
    """FORMATS parameters, with float32 marked as an expected failure when ``applies``."""
    params: list[object] = []
    for name in FORMATS:
        marks = [float_xfail(reason, strict=strict)] if name == "float32" and applies else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


# --------------------------------------------------------------------------- decoders


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_rawpy_libraw(written, fmt):
    need_module("rawpy")
    import rawpy

    w = written[fmt]
    with rawpy.imread(str(w.path)) as raw:
        raw_type = raw.raw_type
        raw_image = raw.raw_image.copy()
        wb = list(raw.camera_whitebalance)
        rgb = raw.postprocess(
            output_color=rawpy.ColorSpace.raw,
            gamma=(1, 1),
            no_auto_bright=True,
            user_wb=[1.0, 1.0, 1.0, 1.0],
            output_bps=16,
            user_flip=0,
        )
    assert raw_type == rawpy.RawType.Stack  # LinearRaw, not a mosaic
    if w.codes is not None:
        # LinearRaw is exposed as raw_image (H, W, 4) with the samples in planes 0..2
        np.testing.assert_array_equal(raw_image[..., :3], w.codes)
    assert wb[:3] == pytest.approx(list(1 / NEUTRAL), rel=1e-4)
    check_decoded(rgb / 65535.0, w.linear, atol=2e-4)


@pytest.mark.parametrize(
    "fmt",
    formats_with_float_xfail(
        "system LibRaw < 0.21 cannot decode float DNGs (DESIGN §7)", applies=_OLD_SYSTEM_LIBRAW
    ),
)
def test_dcraw_emu(written, fmt, tmp_path):
    exe = need("dcraw_emu")
    out = tmp_path / "dcraw_emu.tiff"
    proc = run(
        [
            exe,
            "-4",
            "-T",
            "-o",
            "0",
            "-r",
            "1",
            "1",
            "1",
            "1",
            "-Z",
            str(out),
            str(written[fmt].path),
        ]
    )
    assert proc.returncode == 0 and out.exists(), proc.stderr.strip()
    assert not re.search(r"(?i)cannot|corrupt|error", proc.stdout + proc.stderr)
    check_decoded(read_tiff_rgb(out), written[fmt].linear, atol=2e-4)


@pytest.mark.parametrize(
    "fmt", formats_with_float_xfail("dcraw 9.28 has no float DNG support (DESIGN §7)")
)
def test_dcraw(written, fmt, tmp_path):
    exe = need("dcraw")
    out = tmp_path / "dcraw.tiff"
    with open(out, "wb") as fh:
        proc = subprocess.run(
            [exe, "-4", "-T", "-o", "0", "-r", "1", "1", "1", "1", "-c", str(written[fmt].path)],
            stdout=fh,
            stderr=subprocess.PIPE,
            timeout=TIMEOUT_S,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    check_decoded(read_tiff_rgb(out), written[fmt].linear, atol=2e-4)


_DNGPY_SCRIPT = """
import json, sys
import numpy as np
import dngpy
d = dngpy.Dng(sys.argv[1])
np.save(sys.argv[2], d.raw_pixels)
print(json.dumps({"wb": list(d.get_white_balance()), "be": d.get_baseline_exposure()}))
"""


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_dngpy_adobe_sdk(written, fmt, tmp_path):
    """Adobe DNG SDK 1.7.1: no validation errors or warnings, stage-1 pixels = stored."""
    need_module("dngpy")
    w = written[fmt]
    out = tmp_path / "stage1.npy"
    # A child process: the SDK prints its validation lines from C++ straight to the fd.
    proc = run([sys.executable, "-c", _DNGPY_SCRIPT, str(w.path), str(out)])
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    sdk_lines = [ln for ln in log.splitlines() if ln.startswith("***")]
    assert sdk_lines == [], sdk_lines
    stage1 = np.load(out)
    assert stage1.shape == w.stored.shape
    np.testing.assert_array_equal(stage1, w.stored)
    meta = json.loads(log.strip().splitlines()[-1])
    assert meta["wb"] == pytest.approx(list(NEUTRAL), rel=1e-6)
    assert meta["be"] == pytest.approx(-0.3 + w.info.headroom_ev, abs=0.01)


# --------------------------------------------------------------------------- renderers


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_darktable_cli(written, fmt, tmp_path):
    exe = need("darktable-cli")
    out = tmp_path / "darktable.tif"
    proc = run(
        [
            exe,
            str(written[fmt].path),
            str(out),
            "--icc-type",
            "LIN_REC709",
            "--core",
            "--configdir",
            str(tmp_path / "conf"),
            "--cachedir",
            str(tmp_path / "cache"),
            "--library",
            ":memory:",
            "--conf",
            "plugins/imageio/format/tiff/bpp=16",
            "--conf",
            "plugins/darkroom/workflow=none",
        ]
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and out.exists(), log[-2000:]
    rawspeed = [ln for ln in log.splitlines() if "[rawspeed]" in ln]
    assert rawspeed == [], rawspeed  # else darktable fell back to the 8-bit preview
    check_render(read_tiff_rgb(out), written[fmt].linear)


@pytest.mark.parametrize(
    "fmt",
    formats_with_float_xfail(
        "RawTherapee 5.9 renders float DNGs black (DESIGN §7)",
        strict=_RT_VERSION is not None and _RT_VERSION <= (5, 9),
    ),
)
def test_rawtherapee_cli(written, fmt, tmp_path):
    exe = need("rawtherapee-cli")
    out = tmp_path / "rawtherapee.tif"
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"))
    # No -p/-d: RawTherapee's neutral profile (camera matrix and WB, no curves); the
    # output is 16-bit sRGB, linearised here.
    proc = run(
        [exe, "-q", "-Y", "-t", "-b16", "-o", str(out), "-c", str(written[fmt].path)], env=env
    )
    assert proc.returncode == 0 and out.exists(), (proc.stdout + proc.stderr)[-2000:]
    check_render(srgb_to_linear(read_tiff_rgb(out)), written[fmt].linear)


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_exiftool_validate(written, fmt):
    exe = need("exiftool")
    proc = run([exe, "-validate", "-warning", "-error", "-a", "-G1", str(written[fmt].path)])
    assert proc.returncode == 0, proc.stderr
    problems = [ln for ln in proc.stdout.splitlines() if re.search(r"\]\s+(Warning|Error)\s+:", ln)]
    assert not [p for p in problems if "Error" in p], problems
    assert not [p for p in problems if "[minor]" not in p], problems
    assert re.search(r"Validate\s+:\s+OK", proc.stdout), proc.stdout


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_exiv2(written, fmt):
    exe = need("exiv2")
    proc = run([exe, "-pa", str(written[fmt].path)])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    for key in (
        "Exif.Image.DNGVersion",
        "Exif.Image.ColorMatrix1",
        "Exif.Image.AsShotNeutral",
        "Exif.Image.BaselineExposure",
        "Xmp.xmp.CreatorTool",
    ):
        assert key in proc.stdout, f"exiv2 does not see {key}"
