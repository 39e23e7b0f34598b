"""Find RAW12/ProRAW48 pairs among files the user opened (Qt-free).

Each DNG is probed from its tags only (no pixels): Bayer CFA -> RAW12, 3-sample LinearRaw
-> ProRAW48 (Linear48's own outputs are skipped). Pairs are matched, in this order:

1. **capture time**: equal DateTimeOriginal (to the second) and ProRAW48 exactly twice
   RAW12's size;
2. **name**: the same stem once the kind tokens (``raw12``, ``proraw48``, ``raw``,
   ``proraw``) are removed, in the same folder (the simulator's ``raw12.dng`` +
   ``proraw48.dng``, or ``IMG_1_raw12.dng`` + ``IMG_1_proraw48.dng``);
3. **only candidates**: one RAW12 and one ProRAW48 left in a folder.

Whatever is left is reported unmatched; the user pairs it by hand (manual override).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.errors import InputFileError

log = logging.getLogger(__name__)

DngKind = Literal["raw12", "proraw48", "linear48", "other"]
MatchedBy = Literal["capture time", "name", "only candidates", "manual", "given"]
_KIND_TOKENS = re.compile(r"(?i)(^|[_\-. ])(raw12|proraw48|proraw|raw|dng)(?=$|[_\-. ])")
_PHOTOMETRIC_CFA, _PHOTOMETRIC_LINEAR_RAW = 32803, 34892


@dataclass(frozen=True)
class DngInfo:
    """What the pair matcher needs to know about one file."""

    path: Path
    kind: DngKind
    size: tuple[int, int]  # (width, height) of the stored raw image (before crops)
    capture_time: str  # DateTimeOriginal as written ('' when absent)


@dataclass(frozen=True)
class PairEntry:
    """One capture pair listed in the pair browser.

    Attributes:
        name: display name (the folder or common stem).
        raw12: the Bayer RAW DNG.
        proraw48: the ProRAW DNG.
        matched_by: how the two files were paired.
        capture_time: DateTimeOriginal of RAW12 ('' when absent).
    """

    name: str
    raw12: Path
    proraw48: Path
    matched_by: MatchedBy = "given"
    capture_time: str = ""


def probe(path: str | Path) -> DngInfo:
    """Classify a DNG from its tags.

    Raises:
        InputFileError subclasses from ``core.io.dngfile.open_dng`` (not a DNG, damaged...).
    """
    from core.io.dng_writer import read_provenance
    from core.io.dngfile import check_dimensions, open_dng, read_identity

    file = Path(path)
    with open_dng(file) as handle:
        h, w = check_dimensions(handle)
        ident = read_identity(handle)
        photometric = int(handle.raw.photometric)
        samples = int(handle.raw.samplesperpixel)
    kind: DngKind = "other"
    if photometric == _PHOTOMETRIC_CFA:
        kind = "raw12"
    elif photometric == _PHOTOMETRIC_LINEAR_RAW and samples == 3:
        kind = "linear48" if read_provenance(file) else "proraw48"
    return DngInfo(file, kind, (int(w), int(h)), ident.datetime_original.strip())


def name_key(path: Path) -> tuple[Path, str]:
    """(folder, stem without kind tokens), lower case: files with equal keys pair by name."""
    stem = _KIND_TOKENS.sub("", path.stem).strip("_-. ").lower()
    return (path.parent, stem)


def _sizes_pair(raw: DngInfo, pro: DngInfo) -> bool:
    """ProRAW48 about twice RAW12 (stored RAW12 sizes include padding beyond the crop;
    the exact check happens when the pair loads)."""
    return all(abs(p - 2 * r) <= 0.1 * p for p, r in zip(pro.size, raw.size, strict=True))


def _display_name(raw: Path) -> str:
    stem = name_key(raw)[1]
    return f"{raw.parent.name}/{stem}" if stem else raw.parent.name or raw.stem


def match_pairs(infos: Iterable[DngInfo]) -> tuple[list[PairEntry], list[DngInfo]]:
    """Pair RAW12 and ProRAW48 files (see the module docstring for the rules).

    Returns (pairs sorted by name, files left unmatched).
    """
    raws = [i for i in infos if i.kind == "raw12"]
    pros = [i for i in infos if i.kind == "proraw48"]
    others = [i for i in infos if i.kind not in ("raw12", "proraw48")]
    pairs: list[PairEntry] = []

    def take(raw: DngInfo, pro: DngInfo, how: MatchedBy) -> None:
        raws.remove(raw)
        pros.remove(pro)
        pairs.append(PairEntry(_display_name(raw.path), raw.path, pro.path, how, raw.capture_time))

    for raw in list(raws):
        if not raw.capture_time:
            continue
        same = [p for p in pros if p.capture_time == raw.capture_time and _sizes_pair(raw, p)]
        if len(same) == 1:
            take(raw, same[0], "capture time")
    for raw in list(raws):
        same = [p for p in pros if name_key(p.path) == name_key(raw.path)]
        if len(same) == 1:
            take(raw, same[0], "name")
    folders = {r.path.parent for r in raws}
    for folder in folders:
        r_in = [r for r in raws if r.path.parent == folder]
        p_in = [p for p in pros if p.path.parent == folder]
        if len(r_in) == 1 and len(p_in) == 1:
            take(r_in[0], p_in[0], "only candidates")
    pairs.sort(key=lambda e: e.name)
    return pairs, [*raws, *pros, *others]


def scan(paths: Iterable[str | Path], *, recursive: bool = True) -> tuple[list[DngInfo], list[str]]:
    """Probe DNG files and folders (``*.dng`` inside, recursively by default).

    Returns (probed files, one readable problem line per file that could not be probed).
    """
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            files.extend(sorted(f for f in p.glob(pattern) if f.suffix.lower() == ".dng"))
        else:
            files.append(p)
    infos: list[DngInfo] = []
    problems: list[str] = []
    for f in files:
        try:
            infos.append(probe(f))
        except InputFileError as err:
            problems.append(str(err))
    return infos, problems


def find_pairs(paths: Iterable[str | Path]) -> tuple[list[PairEntry], list[str]]:
    """Probe and pair; returns (pairs, problems incl. one line per unmatched file)."""
    infos, problems = scan(paths)
    pairs, left = match_pairs(infos)
    for info in left:
        if info.kind in ("raw12", "proraw48"):
            problems.append(f"{info.path.name}: no matching {_other(info.kind)} found")
    return pairs, problems


def _other(kind: DngKind) -> str:
    return "ProRAW48" if kind == "raw12" else "RAW12"


def manual_pair(raw12: str | Path, proraw48: str | Path) -> PairEntry:
    """A user-made pairing (checked when it loads, like every pair)."""
    raw = Path(raw12)
    return PairEntry(_display_name(raw), raw, Path(proraw48), "manual")
