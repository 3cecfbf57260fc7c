"""Files written into S3 (see :class:`recorder.s3_storage.S3Storage`): a recording uploaded as
it is written, and a new object uploaded whole when it is closed; how parts make a file.

A recording in progress (:class:`SpoolFile`) is a local temporary file with no name (nothing is
left behind if the process dies) that remembers which byte ranges were written since they were
last uploaded. A thread of its own uploads those ranges every ``interval_s`` as *part
objects* named ``<seq>-<offset>-<written_ms>`` (sequence number, where the bytes go in the
file, when the file was last written), at most :data:`PART_MAX` bytes each. The writer never
waits for S3: a slow or unreachable store only makes the backlog grow (logged), on local disk.
The muxer seeks back and rewrites earlier bytes when it closes the file (duration, cues): those
ranges are uploaded again, with a higher sequence number. :func:`layout` therefore reads the
file as the parts in sequence order, each later one overwriting the bytes it covers.
Closing the file uploads what is left, then writes the ``closed`` marker; if that cannot be
done within ``close_timeout_s`` the close raises ``OSError`` (the recording is incomplete).
"""

from __future__ import annotations

import bisect
import io
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Final

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = logging.getLogger(__name__)

PARTS: Final = ".parts/"  # ``<call_id>.webm.parts/``: a recording in progress
OPENED: Final = "open"  # marker: a writer opened the recording (created exclusively)
CLOSED: Final = "closed"  # marker: the writer closed it after uploading every byte
PART_MAX: Final = 8 << 20
BEHIND_BYTES: Final = 32 << 20  # a backlog this large is logged
_PART_NAME: Final = re.compile(r"^(\d+)-(\d+)-(\d+)$")

PutPart = Callable[[str, bytes], None]  # (name under the recording's parts prefix, bytes)


@dataclass(frozen=True)
class Part:
    key: str
    seq: int
    offset: int
    size: int
    written_at: float


def part_name(seq: int, offset: int, written_at: float) -> str:
    return f"{seq:010d}-{offset:015d}-{round(written_at * 1000):013d}"


def parse_part(key: str, name: str, size: int) -> Part | None:
    match = _PART_NAME.match(name)
    if match is None:
        return None
    seq, offset, written_ms = (int(g) for g in match.groups())
    return Part(key, seq, offset, size, written_ms / 1000)


@dataclass(frozen=True)
class Piece:
    """Bytes ``[start, start + length)`` of the file are bytes ``key_start...`` of ``key``."""

    start: int
    length: int
    key: str
    key_start: int

    @property
    def end(self) -> int:
        return self.start + self.length

    def cut(self, start: int, end: int) -> Piece:
        return Piece(start, end - start, self.key, self.key_start + start - self.start)


def layout(parts: Iterable[Part]) -> list[Piece]:
    """The file the parts make, as pieces in file order: the latest part wins each byte. The
    file ends at its first hole (a part that never arrived): what follows is unreadable."""
    pieces: list[Piece] = []
    starts: list[int] = []
    ends: list[int] = []
    for part in sorted(parts, key=lambda p: p.seq):
        a, b = part.offset, part.offset + part.size
        if a >= b:
            continue
        i = bisect.bisect_right(ends, a)  # the first piece ending after a
        j = bisect.bisect_left(starts, b)  # the first piece starting at or after b
        new: list[Piece] = []
        if i < j and pieces[i].start < a:
            new.append(pieces[i].cut(pieces[i].start, a))
        new.append(Piece(a, b - a, part.key, 0))
        if i < j and pieces[j - 1].end > b:
            new.append(pieces[j - 1].cut(b, pieces[j - 1].end))
        pieces[i:j] = new
        starts[i:j] = [p.start for p in new]
        ends[i:j] = [p.end for p in new]
    whole: list[Piece] = []
    for piece in pieces:
        if piece.start != (whole[-1].end if whole else 0):
            break
        whole.append(piece)
    return whole


def clip(pieces: list[Piece], start: int, end: int) -> list[Piece]:
    """The pieces holding bytes ``[start, end)``, cut to them."""
    return [
        p.cut(max(p.start, start), min(p.end, end))
        for p in pieces
        if p.end > start and p.start < end
    ]


class Ranges:
    """Disjoint byte ranges, merged as they are added (appends are the common case)."""

    def __init__(self) -> None:
        self._spans: list[tuple[int, int]] = []

    def add(self, start: int, end: int) -> None:
        spans = self._spans
        if start >= end:
            return
        if not spans or start > spans[-1][1]:
            spans.append((start, end))
            return
        i = bisect.bisect_left([e for _, e in spans], start)  # first span ending at/after start
        j = bisect.bisect_right([s for s, _ in spans], end)  # spans starting at/before end
        if i == j:  # touches none: goes between
            spans.insert(i, (start, end))
        else:
            spans[i:j] = [(min(start, spans[i][0]), max(end, spans[j - 1][1]))]

    def take(self) -> list[tuple[int, int]]:
        spans, self._spans = self._spans, []
        return spans

    @property
    def total(self) -> int:
        return sum(e - s for s, e in self._spans)


def _split(spans: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    return [(at, min(at + most, e)) for s, e in spans for at in range(s, e, most)]


class SpoolFile(io.RawIOBase):
    """A recording in progress: written locally, uploaded as it grows (see the module doc)."""

    def __init__(
        self,
        name: str,
        put: PutPart,
        *,
        interval_s: float = 2.0,
        close_timeout_s: float = 60.0,
        spool_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self._put = put
        self._interval_s = interval_s
        self._close_timeout_s = close_timeout_s
        self._file = tempfile.TemporaryFile(prefix="visitation-", dir=spool_dir)
        self._fd = self._file.fileno()
        self._lock = threading.Lock()
        self._dirty = Ranges()  # written, not uploaded yet (guarded by _lock)
        self._written_at = time.time()  # guarded by _lock
        self._pos = 0
        self._size = 0
        self._seq = 0
        self._error: OSError | None = None
        self._behind = False
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name=f"s3-upload-{name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the writer's side

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer) -> int:
        if self.closed:
            raise ValueError("write to a closed file")
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view):
            done += os.pwrite(self._fd, view[done:], self._pos + done)
        with self._lock:
            self._dirty.add(self._pos, self._pos + done)
            self._written_at = time.time()
        self._pos += done
        self._size = max(self._size, self._pos)
        return done

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        """Upload what is left and write the ``closed`` marker (``OSError`` if that cannot be
        done in time: the parts uploaded so far stay, the file is then incomplete)."""
        if self.closed:
            return
        try:
            self._closing.set()
            self._wake.set()
            self._thread.join(self._close_timeout_s)
            with self._lock:
                left = self._dirty.total
            if self._thread.is_alive() or left:
                self._abandoned = True
                self._wake.set()
                raise OSError(
                    f"{self.name}: {left} bytes of the recording not uploaded in "
                    f"{self._close_timeout_s:g} s: {self._error or 'S3 too slow'}"
                )
            marker = {"size": self._size, "parts": self._seq, "written_at": self._written_at}
            self._put(CLOSED, json.dumps(marker).encode())
        finally:
            super().close()

    # ------------------------------------------------------------ the uploader's side

    def _run(self) -> None:
        try:
            while not self._abandoned:
                self._wake.wait(self._interval_s)
                self._wake.clear()
                closing = self._closing.is_set()
                if self._upload() and closing:
                    return
        except Exception:
            log.exception("%s: the S3 uploader failed", self.name)
        finally:
            self._file.close()  # here: no pread can race with it

    def _upload(self) -> bool:
        """Upload the ranges written since the last round; ``False`` if some could not be."""
        with self._lock:
            spans = self._dirty.take()
            written_at = self._written_at
        backlog = sum(e - s for s, e in spans)
        if backlog > BEHIND_BYTES and not self._behind:
            self._behind = True
            log.warning("%s: S3 upload %.1f MiB behind", self.name, backlog / (1 << 20))
        pending = _split(spans, PART_MAX)
        for index, (start, end) in enumerate(pending):
            seq, self._seq = self._seq, self._seq + 1
            try:
                if self._abandoned:
                    raise OSError("abandoned")
                data = os.pread(self._fd, end - start, start)
                self._put(part_name(seq, start, written_at), data)
            except OSError as exc:
                with self._lock:
                    for s, e in pending[index:]:
                        self._dirty.add(s, e)
                if self._error is None:
                    log.warning("%s: S3 upload failing (kept on local disk): %s", self.name, exc)
                self._error = exc
                return False
        if self._error is not None or self._behind:
            log.info("%s: S3 upload caught up", self.name)
        self._error = None
        self._behind = False
        return True


class NewObjectFile(io.RawIOBase):
    """A new object: written to a local temporary file, uploaded whole by ``upload`` (the
    file at offset 0, the time of the last write) when closed."""

    def __init__(
        self, upload: Callable[[IO[bytes], float], None], spool_dir: str | None = None
    ) -> None:
        super().__init__()
        self._upload = upload
        self._file = tempfile.TemporaryFile(prefix="visitation-", dir=spool_dir, buffering=0)
        self._written_at = time.time()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer) -> int:
        if self.closed:
            raise ValueError("write to a closed file")
        self._written_at = time.time()
        return self._file.write(b) or 0

    def readinto(self, buffer: ReadableBuffer) -> int:
        return self._file.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._file.seek(0)
            self._upload(self._file, self._written_at)
        finally:
            self._file.close()
            super().close()
