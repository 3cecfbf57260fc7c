"""Per-party views of a call recording: one party's video + audio in its own WebM, remuxed.

Browsers play only the first video and audio track of a multi-track WebM, so the call file
(:mod:`recorder.muxer`: tablet video, tablet audio, family video, family audio) shows only the
tablet's side. A *party view* holds one party's two streams, made by demuxing the call file and
muxing that party's packets, byte for byte, into a new WebM: no decoder or encoder is ever
opened. Timestamps are kept as they are (the call clock), so the two views of a call play in
step and a flag's ``offset_s`` means the same moment in both. Muxed bit-exactly, the same call
file always gives the same view bytes (with the same FFmpeg).

**Integrity.** The evidence is the original call file: it alone is hashed, signed in the
manifest and checked by ``verify``. A party view is a convenience copy derived from it, never
signed or verified itself; anyone can re-derive it from the verified original.

**Cache.** A view is stored through the same :class:`~recorder.storage.Storage`, beside the
original, under the key :func:`view_key` (``<call_id>.tablet`` / ``<call_id>.family``). It
records the :class:`Source` it was made from (hash in the manifest, size and modification time
of the file) in a container tag, and is made again when the original changed. A view being
written has no final Matroska segment size; a reader waits for it (another node may be making
it), and one abandoned mid-write (its writer died) is deleted and made again.

All methods block (file I/O, muxing): call them from a thread.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, cast, get_args

import av
from av.container import InputContainer, OutputContainer
from av.stream import Stream

from recorder.muxer import PARTIES, TRACKS, Kind, Party
from recorder.storage import CALL_ID, Storage

log = logging.getLogger(__name__)

__all__ = [
    "PARTIES",
    "Party",
    "PartyViews",
    "Source",
    "View",
    "ViewBusyError",
    "ViewError",
    "open_reader",
    "party_streams",
    "remux_party",
    "view_key",
]

VERSION: Final = 1  # bump when the way views are made changes: old views are then remade
SOURCE_TAG: Final = "VISITATION_SOURCE"
MS: Final = Fraction(1, 1000)
_HEAD_BYTES: Final = 64  # the EBML header and the Segment's size fit in this
_UNKNOWN: Final = -1
_KNOWN_MAX: Final = 4096  # views remembered as checked (a few hundred bytes each)


class ViewError(Exception):
    """The call file cannot be split (no such party's streams, not a readable WebM)."""


class ViewBusyError(ViewError):
    """Another writer is still making this view; try again shortly."""


@dataclass(frozen=True)
class Source:
    """What a view was made from: the signed hash and the call file as it is now."""

    sha256: str
    size: int
    modified_at: float

    @classmethod
    def of(cls, storage: Storage, call_id: str, sha256: str) -> Source:
        """The call file now (``FileNotFoundError`` if it is gone)."""
        return cls(sha256, storage.size(call_id), storage.modified_at(call_id))

    @property
    def tag(self) -> str:
        return f"v{VERSION};sha256={self.sha256};size={self.size};mtime={self.modified_at!r}"


@dataclass(frozen=True)
class View:
    """A finished party view in storage."""

    key: str
    party: Party
    size: int
    modified_at: float
    source: Source

    @property
    def etag(self) -> str:
        """A strong validator: changes whenever the view's bytes may have."""
        parts = f"{self.source.tag}|{self.party}|{self.size}|{self.modified_at!r}"
        return '"' + hashlib.sha256(parts.encode()).hexdigest()[:40] + '"'


def view_key(call_id: str, party: Party) -> str:
    """The storage key of a call's party view: ``<call_id>.<party>`` (call ids are UUID hex;
    a call id too long for the suffix gets a hashed key)."""
    key = f"{call_id}.{party}"
    if CALL_ID.match(key):
        return key
    return f"view-{hashlib.sha256(call_id.encode()).hexdigest()[:48]}.{party}"


class StorageReader(io.RawIOBase):
    """A read-only, seekable file over ``Storage.read_range`` (for demuxing through storage)."""

    def __init__(self, storage: Storage, key: str, size: int) -> None:
        self._storage = storage
        self._key = key
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        data = self._storage.read_range(self._key, self._pos, want)
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


def open_reader(storage: Storage, key: str, size: int) -> io.BufferedReader:
    return io.BufferedReader(StorageReader(storage, key, size), buffer_size=1 << 20)


# ---------------------------------------------------------------------- remuxing


def party_streams(container: InputContainer, party: Party) -> tuple[Stream, Stream]:
    """The party's video and audio streams, by their titles (``"tablet video"``), else by the
    muxer's fixed order."""
    titled = {s.metadata.get("title"): s for s in container.streams}
    found: dict[Kind, Stream] = {}
    for kind in cast(tuple[Kind, ...], get_args(Kind)):
        stream = titled.get(f"{party} {kind}")
        if stream is None and len(container.streams) == len(TRACKS):
            stream = container.streams[TRACKS.index((party, kind))]
        if stream is None or stream.type != kind:
            raise ViewError(f"the recording has no {party} {kind} stream")
        found[kind] = stream
    return found["video"], found["audio"]


def _add_copy(output: OutputContainer, stream: Stream) -> Stream:
    """An output stream with ``stream``'s codec parameters, never opened (as the muxer's):
    video a codec-less mux stream of the same size, audio a copy of the template's parameters
    with its ``OpusHead`` (CodecPrivate)."""
    if isinstance(stream, av.VideoStream):
        video = stream.codec_context
        copy = output.add_mux_stream(
            video.name, width=video.width, height=video.height, time_base=MS
        )
    else:
        copy = output.add_stream_from_template(stream)
        copy.time_base = MS
        if stream.codec_context.extradata:
            copy.codec_context.extradata = stream.codec_context.extradata
    copy.metadata["title"] = stream.metadata.get("title", "")
    return copy


def remux_party(source: Any, target: Any, party: Party, title: str = "", tag: str = "") -> int:
    """Copy ``party``'s video and audio packets from the call file ``source`` into a new WebM
    written to ``target`` (a writable, seekable binary file); returns the packets copied. A call
    file cut short (a crashed writer) gives a view of what can be read."""
    with av.open(source, "r") as inp:
        video, audio = party_streams(inp, party)
        output = av.open(target, "w", format="webm", container_options={"fflags": "+bitexact"})
        try:
            if title:
                output.metadata["title"] = title
            if tag:
                output.metadata[SOURCE_TAG] = tag
            streams = {video.index: _add_copy(output, video), audio.index: _add_copy(output, audio)}
            copied = 0
            packets = inp.demux(video, audio)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.FFmpegError as exc:  # a truncated or damaged tail: keep what was read
                    log.warning("%s view: the call file ends unreadably: %s", party, exc)
                    break
                if packet.dts is None and packet.size == 0:
                    continue  # the demuxer's end-of-stream marker
                packet.stream = streams[packet.stream.index]
                output.mux_one(packet)
                copied += 1
        finally:
            output.close()
    return copied


# ---------------------------------------------------------------------- the cache


def _vint(data: bytes, at: int, *, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-size integer at ``at``: (value, length); all ones = ``_UNKNOWN``."""
    first = data[at]
    length = next((n for n in range(1, 9) if first & (0x80 >> (n - 1))), 0)
    if not length or at + length > len(data):
        raise ValueError("not an EBML number")
    value = first if keep_marker else first & ((0x80 >> (length - 1)) - 1)
    for byte in data[at + 1 : at + length]:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return _UNKNOWN, length
    return value, length


def finished_size(head: bytes) -> int | None:
    """The whole file's size as its Matroska Segment declares it (the muxer writes it when it
    closes the file), or ``None`` while it is unknown (still being written, or abandoned)."""
    try:
        at = 0
        for expected in (0x1A45DFA3, 0x18538067):  # EBML header, then the Segment
            element, n = _vint(head, at, keep_marker=True)
            size, m = _vint(head, at + n, keep_marker=False)
            if element != expected:
                return None
            if element == 0x18538067:
                return None if size == _UNKNOWN else at + n + m + size
            at += n + m + size
    except (ValueError, IndexError):
        return None
    return None


class PartyViews:
    """Makes, finds and discards the party views of call files in ``storage``.

    ``wait_s``: how long to wait for a view another writer is making; ``abandoned_s``: a view
    unfinished and untouched this long is taken as abandoned and made again.
    """

    def __init__(self, storage: Storage, *, wait_s: float = 60.0, abandoned_s: float = 30.0):
        self.storage = storage
        self.wait_s = wait_s
        self.abandoned_s = abandoned_s
        self._known: dict[str, View] = {}  # views checked already (their tag read)
        self._lock = threading.Lock()

    def get(self, call_id: str, party: Party, sha256: str) -> View:
        """The call's current view of ``party``, made now if missing or out of date.
        ``FileNotFoundError``: no call file; :class:`ViewError`: it cannot be split."""
        key = view_key(call_id, party)
        deadline = time.monotonic() + self.wait_s
        while True:
            source = Source.of(self.storage, call_id, sha256)
            found = self._current(key, party, source)
            if found is not None:
                return found
            try:
                return self._make(call_id, key, party, source)
            except FileExistsError:  # unfinished, out of date, or someone else made it first
                found = self._current(key, party, source)
                if found is not None:
                    return found
            if self._unfinished_and_alive(key):
                if time.monotonic() > deadline:
                    raise ViewBusyError(f"the {party} view of call {call_id!r} is being made")
                time.sleep(0.2)
                continue
            log.info("call %s: %s view out of date or abandoned: made again", call_id, party)
            self._forget(key)
            self.storage.delete(key)

    def discard(self, call_id: str) -> list[str]:
        """Delete the call's views (e.g. once its recording was purged); the keys deleted."""
        deleted = []
        for party in PARTIES:
            key = view_key(call_id, party)
            self._forget(key)
            if self.storage.delete(key):
                deleted.append(key)
        return deleted

    # ------------------------------------------------------------------ internals

    def _remember(self, view: View) -> View:
        with self._lock:
            self._known.pop(view.key, None)
            if len(self._known) >= _KNOWN_MAX:
                self._known.pop(next(iter(self._known)))  # the oldest
            self._known[view.key] = view
        return view

    def _forget(self, key: str) -> None:
        with self._lock:
            self._known.pop(key, None)

    def _stat(self, key: str) -> tuple[int, float] | None:
        try:
            return self.storage.size(key), self.storage.modified_at(key)
        except FileNotFoundError:
            return None

    def _head(self, key: str) -> bytes:
        try:
            return self.storage.read_range(key, 0, _HEAD_BYTES)
        except FileNotFoundError:  # deleted meanwhile
            return b""

    def _current(self, key: str, party: Party, source: Source) -> View | None:
        """The stored view if it is finished and made from ``source``."""
        stat = self._stat(key)
        if stat is None:
            return None
        size, modified_at = stat
        with self._lock:
            known = self._known.get(key)
        if known and (known.size, known.modified_at, known.source) == (size, modified_at, source):
            return known
        if finished_size(self._head(key)) != size:
            return None
        try:
            with av.open(open_reader(self.storage, key, size), "r") as container:
                tag = container.metadata.get(SOURCE_TAG)
        except av.FFmpegError:
            return None
        if tag != source.tag:
            return None
        return self._remember(View(key, party, size, modified_at, source))

    def _unfinished_and_alive(self, key: str) -> bool:
        stat = self._stat(key)
        if stat is None:
            return True  # deleted meanwhile: look again
        size, modified_at = stat
        if finished_size(self._head(key)) == size:
            return False  # finished, but from another source: out of date
        return time.time() - modified_at < self.abandoned_s

    def _make(self, call_id: str, key: str, party: Party, source: Source) -> View:
        started = time.monotonic()
        target = self.storage.open_write(key)  # FileExistsError: see get()
        try:
            with target, open_reader(self.storage, call_id, source.size) as reader:
                title = f"call {call_id}: {party} view"
                try:
                    packets = remux_party(reader, target, party, title, source.tag)
                except av.FFmpegError as exc:
                    why = f"the recording of call {call_id!r} is unreadable: {exc}"
                    raise ViewError(why) from exc
        except FileExistsError:  # stored only when closed (object storage): another won
            raise
        except BaseException:
            self.storage.delete(key)
            raise
        size, modified_at = self.storage.size(key), self.storage.modified_at(key)
        view = self._remember(View(key, party, size, modified_at, source))
        log.info(
            "call %s: %s view made (%d packets, %d bytes) in %.2f s",
            call_id, party, packets, size, time.monotonic() - started,
        )  # fmt: skip
        return view
