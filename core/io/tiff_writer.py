"""A small, explicit TIFF/DNG structure writer (classic TIFF, < 4 GiB).

We do not use tifffile's writer: DNG readers are picky about details it decides for us
(DESIGN §7), so here every entry is spelled out by the caller:

- an :class:`Ifd` is a list of :class:`Entry` (any TIFF type), optional image data given
  as already-encoded byte chunks (tiles or strips), and optional child IFDs written
  behind a ``SubIFDs`` tag of type LONG;
- entries are written in ascending tag order; a duplicate tag is a programming error;
- values longer than 4 bytes go out of line, word aligned; either byte order.

File layout written by :func:`write_tiff`::

    header | IFD0 + its values | SubIFD0 + values | ... | image data of IFD0 | of SubIFD0 ...

All IFDs come first: their sizes are known before any image data exists, because the
number of chunks of each IFD is declared up front (:class:`ImageData.n_chunks`). The
chunks themselves are pulled from an iterable and written as they are produced, then the
``*Offsets`` / ``*ByteCounts`` arrays are patched in place with a seek. So a 48MP image
can be streamed tile by tile without holding all encoded tiles in memory; the handle
must be seekable (a regular file, or ``io.BytesIO``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction
from typing import BinaryIO, Literal

import numpy as np

ByteOrder = Literal["<", ">"]


class TiffType(IntEnum):
    """TIFF field types (TIFF 6.0 §2, plus IFD from the TIFF supplement)."""

    BYTE = 1
    ASCII = 2
    SHORT = 3
    LONG = 4
    RATIONAL = 5
    SBYTE = 6
    UNDEFINED = 7
    SSHORT = 8
    SLONG = 9
    SRATIONAL = 10
    FLOAT = 11
    DOUBLE = 12
    IFD = 13


# numpy dtype code and element size of each type (rationals are pairs of 32-bit ints).
_NUMPY_CODE: dict[TiffType, str] = {
    TiffType.BYTE: "u1",
    TiffType.ASCII: "u1",
    TiffType.SHORT: "u2",
    TiffType.LONG: "u4",
    TiffType.RATIONAL: "u4",
    TiffType.SBYTE: "i1",
    TiffType.UNDEFINED: "u1",
    TiffType.SSHORT: "i2",
    TiffType.SLONG: "i4",
    TiffType.SRATIONAL: "i4",
    TiffType.FLOAT: "f4",
    TiffType.DOUBLE: "f8",
    TiffType.IFD: "u4",
}
_SIZE: dict[TiffType, int] = {
    TiffType.BYTE: 1,
    TiffType.ASCII: 1,
    TiffType.SHORT: 2,
    TiffType.LONG: 4,
    TiffType.RATIONAL: 8,
    TiffType.SBYTE: 1,
    TiffType.UNDEFINED: 1,
    TiffType.SSHORT: 2,
    TiffType.SLONG: 4,
    TiffType.SRATIONAL: 8,
    TiffType.FLOAT: 4,
    TiffType.DOUBLE: 8,
    TiffType.IFD: 4,
}
_INT_RANGE: dict[TiffType, tuple[int, int]] = {
    TiffType.BYTE: (0, 0xFF),
    TiffType.SHORT: (0, 0xFFFF),
    TiffType.LONG: (0, 0xFFFFFFFF),
    TiffType.SBYTE: (-0x80, 0x7F),
    TiffType.SSHORT: (-0x8000, 0x7FFF),
    TiffType.SLONG: (-0x80000000, 0x7FFFFFFF),
    TiffType.IFD: (0, 0xFFFFFFFF),
}

# Tags the writer owns: it fills them from ImageData / sub_ifds.
TAG_STRIP_OFFSETS = 273
TAG_ROWS_PER_STRIP = 278
TAG_STRIP_BYTE_COUNTS = 279
TAG_TILE_OFFSETS = 324
TAG_TILE_BYTE_COUNTS = 325
TAG_SUB_IFDS = 330
_OWNED_TAGS = frozenset(
    {TAG_STRIP_OFFSETS, TAG_STRIP_BYTE_COUNTS, TAG_TILE_OFFSETS, TAG_TILE_BYTE_COUNTS, TAG_SUB_IFDS}
)
_MAX_OFFSET = 0xFFFFFFFF


def to_rational(value: float, *, signed: bool) -> tuple[int, int]:
    """Closest (numerator, denominator) that fits a TIFF (S)RATIONAL.

    Exact for dyadic values such as 1/64 EV steps; 0.6722 -> 3361/5000.

    Raises:
        ValueError: non-finite value, a negative one for RATIONAL, or out of range.
    """
    if not np.isfinite(value):
        raise ValueError(f"cannot store {value} as a TIFF rational")
    if value < 0 and not signed:
        raise ValueError(f"RATIONAL cannot hold negative {value}; use SRATIONAL")
    limit = 0x7FFFFFFF if signed else 0xFFFFFFFF
    if abs(value) > limit:
        raise ValueError(f"{value} does not fit a 32-bit rational")
    max_den = limit if abs(value) < 1 else max(1, int(limit // abs(value)))
    frac = Fraction(float(value)).limit_denominator(max_den)
    return frac.numerator, frac.denominator


@dataclass(frozen=True)
class Entry:
    """One IFD entry with its value already serialised in one byte order.

    Build entries with :func:`entry`, :func:`ascii_entry` or :func:`bytes_entry` rather
    than directly. ``payload`` holds ``count`` values of ``type`` in ``byteorder``.
    """

    tag: int
    type: TiffType
    count: int
    payload: bytes
    byteorder: ByteOrder

    def __post_init__(self) -> None:
        if not 0 < self.tag <= 0xFFFF:
            raise ValueError(f"TIFF tag {self.tag} out of range")
        if len(self.payload) != self.count * _SIZE[self.type]:
            raise ValueError(
                f"tag {self.tag}: payload of {len(self.payload)} bytes does not "
                f"hold {self.count} values of type {self.type.name}"
            )


def entry(
    tag: int, type_: TiffType, values: float | Sequence[float] | np.ndarray, byteorder: ByteOrder
) -> Entry:
    """A numeric entry: ``values`` (scalar or sequence) stored as ``type_``.

    Integer types are range checked (never silently wrapped); RATIONAL/SRATIONAL take
    floats and are converted with :func:`to_rational`.

    Raises:
        ValueError: empty values, a value out of the type's range, or a non-numeric type.
    """
    if type_ in (TiffType.ASCII, TiffType.UNDEFINED):
        raise ValueError(f"tag {tag}: use ascii_entry / bytes_entry for {type_.name}")
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError(f"tag {tag}: no values")
    if type_ in (TiffType.RATIONAL, TiffType.SRATIONAL):
        signed = type_ == TiffType.SRATIONAL
        pairs = [to_rational(float(v), signed=signed) for v in arr]
        out = np.array(pairs, dtype=np.int64).ravel()
        payload = out.astype(byteorder + _NUMPY_CODE[type_]).tobytes()
        return Entry(tag, type_, int(arr.size), payload, byteorder)
    if type_ in _INT_RANGE:
        lo, hi = _INT_RANGE[type_]
        if not np.all(arr == np.round(arr)) or arr.min() < lo or arr.max() > hi:
            raise ValueError(f"tag {tag}: values {arr[:8]} do not fit {type_.name}")
    payload = arr.astype(byteorder + _NUMPY_CODE[type_]).tobytes()
    return Entry(tag, type_, int(arr.size), payload, byteorder)


def ascii_entry(tag: int, text: str, byteorder: ByteOrder) -> Entry:
    """An ASCII entry, NUL terminated as TIFF requires.

    Raises:
        ValueError: ``text`` is not 7-bit ASCII or contains a NUL.
    """
    if "\0" in text:
        raise ValueError(f"tag {tag}: ASCII value contains NUL")
    try:
        raw = text.encode("ascii") + b"\0"
    except UnicodeEncodeError as err:
        raise ValueError(f"tag {tag}: {text!r} is not ASCII") from err
    return Entry(tag, TiffType.ASCII, len(raw), raw, byteorder)


def bytes_entry(
    tag: int, data: bytes, byteorder: ByteOrder, type_: TiffType = TiffType.UNDEFINED
) -> Entry:
    """An opaque BYTE or UNDEFINED entry (XMP packet, opcode list, PGTM blob...)."""
    if type_ not in (TiffType.BYTE, TiffType.UNDEFINED):
        raise ValueError(f"tag {tag}: bytes_entry needs BYTE or UNDEFINED, got {type_.name}")
    if not data:
        raise ValueError(f"tag {tag}: empty value")
    return Entry(tag, type_, len(data), bytes(data), byteorder)


@dataclass
class ImageData:
    """Image data of one IFD as a sequence of already-encoded chunks.

    Attributes:
        layout: ``"tiles"`` (TileOffsets/TileByteCounts) or ``"strips"``
            (StripOffsets/StripByteCounts; RowsPerStrip is the caller's entry).
        n_chunks: number of chunks ``chunks`` will yield, in TIFF order (row-major tiles,
            top-to-bottom strips). Declared up front so IFD sizes are known early.
        chunks: iterable of encoded chunks, consumed once while writing (a generator
            that encodes lazily streams the image).
    """

    layout: Literal["tiles", "strips"]
    n_chunks: int
    chunks: Iterable[bytes]

    def __post_init__(self) -> None:
        if self.layout not in ("tiles", "strips"):
            raise ValueError(f"layout must be 'tiles' or 'strips', got {self.layout!r}")
        if self.n_chunks < 1:
            raise ValueError("an image needs at least one chunk")

    @property
    def tags(self) -> tuple[int, int]:
        """(offsets tag, byte-counts tag) for this layout."""
        if self.layout == "tiles":
            return TAG_TILE_OFFSETS, TAG_TILE_BYTE_COUNTS
        return TAG_STRIP_OFFSETS, TAG_STRIP_BYTE_COUNTS


@dataclass
class Ifd:
    """One image file directory.

    Attributes:
        entries: the caller's entries, in any order; the writer sorts them by tag.
            Must not contain the tags the writer owns (strip/tile offsets and byte
            counts, SubIFDs).
        image: image data for this IFD, or None.
        sub_ifds: child IFDs; written behind a SubIFDs tag of type LONG.
    """

    entries: list[Entry] = field(default_factory=list)
    image: ImageData | None = None
    sub_ifds: list[Ifd] = field(default_factory=list)

    def walk(self) -> list[Ifd]:
        """This IFD and all its descendants, depth first (the order they are written)."""
        out = [self]
        for child in self.sub_ifds:
            out.extend(child.walk())
        return out


def _align(pos: int, to: int = 2) -> int:
    return pos + (-pos) % to


@dataclass
class _Placed:
    """An IFD's planned position and the positions of its patchable value arrays."""

    ifd: Ifd
    offset: int
    entries: list[Entry]
    value_pos: dict[int, int]  # tag -> file position of its value (inline or out of line)
    end: int


def _plan(ifds: list[Ifd], start: int, byteorder: ByteOrder) -> list[_Placed]:
    """Fix every IFD's position, adding writer-owned entries as zero placeholders."""
    placed: list[_Placed] = []
    pos = start
    for ifd in ifds:
        tags = [e.tag for e in ifd.entries]
        dup = sorted({t for t in tags if tags.count(t) > 1})
        if dup:
            raise ValueError(f"duplicate TIFF tags {dup}")
        owned = _OWNED_TAGS.intersection(tags)
        if owned:
            raise ValueError(f"tags {sorted(owned)} are written by the TIFF writer itself")
        entries = list(ifd.entries)
        if ifd.image is not None:
            off_tag, cnt_tag = ifd.image.tags
            zeros = [0] * ifd.image.n_chunks
            entries.append(entry(off_tag, TiffType.LONG, zeros, byteorder))
            entries.append(entry(cnt_tag, TiffType.LONG, zeros, byteorder))
        if ifd.sub_ifds:
            entries.append(entry(TAG_SUB_IFDS, TiffType.LONG, [0] * len(ifd.sub_ifds), byteorder))
        entries.sort(key=lambda e: e.tag)
        pos = _align(pos)
        ifd_offset = pos
        value_pos: dict[int, int] = {}
        data_pos = ifd_offset + 2 + 12 * len(entries) + 4
        for k, ent in enumerate(entries):
            if len(ent.payload) <= 4:
                value_pos[ent.tag] = ifd_offset + 2 + 12 * k + 8
            else:
                data_pos = _align(data_pos)
                value_pos[ent.tag] = data_pos
                data_pos += len(ent.payload)
        placed.append(_Placed(ifd, ifd_offset, entries, value_pos, data_pos))
        pos = data_pos
    return placed


def _serialise(p: _Placed, byteorder: ByteOrder) -> bytes:
    """IFD bytes from ``p.offset`` to ``p.end`` (next-IFD offset 0)."""
    buf = bytearray(p.end - p.offset)
    struct.pack_into(byteorder + "H", buf, 0, len(p.entries))
    for k, ent in enumerate(p.entries):
        at = 2 + 12 * k
        struct.pack_into(byteorder + "HHI", buf, at, ent.tag, int(ent.type), ent.count)
        if len(ent.payload) > 4:  # the entry holds the value's file offset
            struct.pack_into(byteorder + "I", buf, at + 8, p.value_pos[ent.tag])
        vpos = p.value_pos[ent.tag] - p.offset
        buf[vpos : vpos + len(ent.payload)] = ent.payload
    return bytes(buf)


def write_tiff(handle: BinaryIO, ifd0: Ifd, *, byteorder: ByteOrder = "<") -> int:
    """Write a classic TIFF with ``ifd0`` (and its SubIFD tree) to a seekable handle.

    Image chunks are pulled from each IFD's ``ImageData.chunks`` in order and written as
    they come (each chunk starts on a word boundary); the offsets and byte counts are
    patched afterwards. An exception raised by a chunk iterator (e.g. CancelledError)
    propagates unchanged; the caller's atomic write then discards the file.

    Returns:
        Total bytes written (the file size).

    Raises:
        ValueError: duplicate or writer-owned tags, a chunk count that differs from the
            declared ``n_chunks``, or a file that would exceed 4 GiB.
    """
    if byteorder not in ("<", ">"):
        raise ValueError(f"byteorder must be '<' or '>', got {byteorder!r}")
    base = handle.tell()
    ifds = ifd0.walk()
    placed = _plan(ifds, 8, byteorder)
    by_id = {id(p.ifd): p for p in placed}
    # SubIFDs values are known now: patch them into the planned entries' payloads.
    for p in placed:
        if p.ifd.sub_ifds:
            sub_offsets = [by_id[id(c)].offset for c in p.ifd.sub_ifds]
            p.entries = [
                entry(TAG_SUB_IFDS, TiffType.LONG, sub_offsets, byteorder)
                if e.tag == TAG_SUB_IFDS
                else e
                for e in p.entries
            ]
    header = (b"II" if byteorder == "<" else b"MM") + struct.pack(byteorder + "HI", 42, 8)
    handle.write(header)
    pos = 8
    for p in placed:
        handle.write(b"\0" * (p.offset - pos))
        handle.write(_serialise(p, byteorder))
        pos = p.end
    # Image data, streamed.
    for p in placed:
        image = p.ifd.image
        if image is None:
            continue
        offsets: list[int] = []
        counts: list[int] = []
        for chunk in image.chunks:
            if len(offsets) >= image.n_chunks:
                raise ValueError(f"more than the declared {image.n_chunks} image chunks")
            if not chunk:
                raise ValueError("empty image chunk")
            if pos % 2:
                handle.write(b"\0")
                pos += 1
            handle.write(chunk)
            offsets.append(pos)
            counts.append(len(chunk))
            pos += len(chunk)
            if pos > _MAX_OFFSET:
                raise ValueError("file would exceed the 4 GiB limit of classic TIFF")
        if len(offsets) != image.n_chunks:
            raise ValueError(f"declared {image.n_chunks} image chunks, got {len(offsets)}")
        off_tag, cnt_tag = image.tags
        handle.seek(base + p.value_pos[off_tag])
        handle.write(np.asarray(offsets, dtype=byteorder + "u4").tobytes())
        handle.seek(base + p.value_pos[cnt_tag])
        handle.write(np.asarray(counts, dtype=byteorder + "u4").tobytes())
        handle.seek(base + pos)
    return pos
