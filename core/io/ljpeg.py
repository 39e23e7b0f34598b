"""Lossless JPEG (ITU T.81 process 14, SOF3; TIFF/DNG Compression 7) for DNG tiles.

- N-component tiles (3 for LinearRaw, 1 for a Bayer CFA) at precision = BitsPerSample
  (2..16) with predictor 1, through libjpeg-turbo (``imagecodecs.jpeg8_encode``). The
  APPn markers libjpeg writes (JFIF APP0 for one component, Adobe APP14 for RGB) are
  stripped: a DNG tile is a bare SOI, SOF3, DHT, SOS stream like Adobe's and Apple's.
- Every encoded tile can be decoded back and compared (``verify=True``), so an encoder
  bug cannot silently end up in a user's file.
- :func:`encode_tiles` encodes many tiles in a thread pool (imagecodecs releases the
  GIL), yielding them in order with a bounded number in flight, so a 48MP image is
  streamed rather than held encoded in memory.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor

import imagecodecs
import numpy as np

from core.errors import CorruptDataError, ShapeError
from core.progress import CancelToken, Progress, ProgressCallback

logger = logging.getLogger(__name__)

_SOI = b"\xff\xd8"


def strip_app_markers(stream: bytes) -> bytes:
    """Remove APP0..APP15 and COM segments from a JPEG stream before its SOS.

    Raises:
        CorruptDataError: the stream is not a well-formed JPEG header.
    """
    if stream[:2] != _SOI:
        raise CorruptDataError("lossless JPEG stream does not start with SOI")
    out = bytearray(_SOI)
    pos = 2
    while True:
        if pos + 4 > len(stream) or stream[pos] != 0xFF:
            raise CorruptDataError(f"bad JPEG marker at byte {pos}")
        marker = stream[pos + 1]
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        if marker == 0xDA:  # SOS: the entropy-coded data follows, copy the rest
            out += stream[pos:]
            return bytes(out)
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            out += stream[pos : pos + 2 + length]
        pos += 2 + length


def sof3_header(stream: bytes) -> tuple[int, int, int, int]:
    """(precision, height, width, components) from a lossless JPEG's SOF3 segment.

    Raises:
        CorruptDataError: no SOF3 before SOS.
    """
    pos = 2
    while pos + 4 <= len(stream) and stream[pos] == 0xFF:
        marker = stream[pos + 1]
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        if marker == 0xC3:
            seg = stream[pos + 4 : pos + 2 + length]
            return (
                seg[0],
                int.from_bytes(seg[1:3], "big"),
                int.from_bytes(seg[3:5], "big"),
                seg[5],
            )
        if marker == 0xDA:
            break
        pos += 2 + length
    raise CorruptDataError("no SOF3 (lossless JPEG) header found")


def encode_ljpeg(tile: np.ndarray, bits: int, *, verify: bool = True) -> bytes:
    """Encode one tile as lossless JPEG, predictor 1, precision ``bits``.

    Shapes: tile (H, W) for one component or (H, W, C) for C interleaved components
    (C = 3 for LinearRaw); uint16 codes < 2**bits.

    Returns:
        A bare SOI/SOF3/DHT/SOS/EOI stream (no APPn markers).

    Raises:
        ShapeError: wrong dtype/shape or codes that need more than ``bits`` bits.
        CorruptDataError: the encoder's output does not decode to ``tile`` (verify).
    """
    if tile.dtype != np.uint16 or tile.ndim not in (2, 3):
        raise ShapeError(
            f"lossless JPEG tile must be uint16 (H, W[, C]), got {tile.dtype} {tile.shape}"
        )
    if not 2 <= bits <= 16:
        raise ShapeError(f"lossless JPEG precision must be 2..16 bits, got {bits}")
    if bits < 16 and int(tile.max(initial=0)) >= 1 << bits:
        raise ShapeError(f"tile holds codes >= 2**{bits}; they do not fit {bits}-bit JPEG")
    tile = np.ascontiguousarray(tile)
    raw = imagecodecs.jpeg8_encode(tile, lossless=True, predictor=1, bitspersample=bits)
    if verify:
        back = imagecodecs.jpeg8_decode(raw)
        if back.shape != tile.shape or not np.array_equal(back, tile):
            raise CorruptDataError("lossless JPEG encoder output does not decode bit-exactly")
    return strip_app_markers(bytes(raw))


def decode_ljpeg(stream: bytes) -> np.ndarray:
    """Decode a lossless JPEG stream (with or without APPn markers).

    Returns:
        uint16 (H, W) for one component, (H, W, C) otherwise.

    Raises:
        CorruptDataError: the stream cannot be decoded.
    """
    try:
        # colorspace given explicitly: without the Adobe marker libjpeg would otherwise
        # guess the 3-component colour space from the component ids.
        comps = sof3_header(stream)[3]
        if comps == 3:
            return np.asarray(
                imagecodecs.jpeg8_decode(stream, colorspace="RGB", outcolorspace="RGB")
            )
        return np.asarray(imagecodecs.jpeg8_decode(stream))
    except imagecodecs.Jpeg8Error as err:
        raise CorruptDataError(f"lossless JPEG tile cannot be decoded: {err}") from err


def resolve_threads(threads: int) -> int:
    """Worker count: ``threads`` if positive, else ``os.cpu_count()`` (at least 1)."""
    return threads if threads > 0 else max(1, os.cpu_count() or 1)


def encode_tiles(
    n_tiles: int,
    encode_one: Callable[[int], bytes],
    *,
    threads: int = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    stage: str = "write",
) -> Generator[bytes, None, None]:
    """Encode ``n_tiles`` chunks in parallel and yield them in index order.

    ``encode_one(i)`` builds and encodes chunk ``i`` (it should slice its own input so
    that no more than a few tiles of intermediate data exist at once). At most
    ``2 * threads`` chunks are in flight. After each yielded chunk a Progress event
    ``(stage, done, n_tiles)`` is reported and ``cancel`` is checked.

    Raises:
        CancelledError: ``cancel`` was triggered; pending work is dropped.
    """
    workers = resolve_threads(threads)
    if workers == 1:
        for i in range(n_tiles):
            if cancel is not None:
                cancel.raise_if_cancelled()
            chunk = encode_one(i)
            if progress is not None:
                progress(Progress(stage, i + 1, n_tiles))
            yield chunk
        if cancel is not None:
            cancel.raise_if_cancelled()
        return

    def task(i: int) -> bytes:
        if cancel is not None and cancel.cancelled:
            return b""  # dropped: the consumer raises before using it
        return encode_one(i)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ljpeg")
    pending: deque[Future[bytes]] = deque()
    try:
        submitted = 0
        for done in range(n_tiles):
            while submitted < n_tiles and len(pending) < 2 * workers:
                pending.append(pool.submit(task, submitted))
                submitted += 1
            if cancel is not None:
                cancel.raise_if_cancelled()
            chunk = pending.popleft().result()
            if cancel is not None:
                cancel.raise_if_cancelled()
            if progress is not None:
                progress(Progress(stage, done + 1, n_tiles))
            yield chunk
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
