"""A strip of thumbnails for the investigator's view, made from a recording's keyframes.

Each VP8 keyframe decodes on its own, so a thumbnail is one keyframe decoded, scaled down and
encoded as a small JPEG: no other frame is decoded. This is done only for an investigator's
view of a signed recording; forwarding and recording never decode or encode anything.

Keyframes are picked spread over the call (at most ``count``, at least ``duration / count``
apart), in one pass over the file (demuxed through :class:`~recorder.storage.Storage`, so it
works wherever the recording lives). Offsets are on the call clock, like flags' ``offset_s``:
a thumbnail's ``offset_s`` is where the players seek to show it.

All functions block (file I/O, decoding): call them from a thread.
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

import av
from av.video.reformatter import VideoReformatter

from recorder.muxer import Party
from recorder.party_view import ViewError, open_reader, party_streams
from recorder.storage import Storage

log = logging.getLogger(__name__)

COUNT: Final = 12
WIDTH: Final = 160  # pixels; the height keeps the picture's aspect ratio


@dataclass(frozen=True)
class Thumbnail:
    offset_s: float
    width: int
    height: int
    jpeg: bytes

    def public(self) -> dict[str, Any]:
        src = "data:image/jpeg;base64," + base64.b64encode(self.jpeg).decode()
        return {"offset_s": self.offset_s, "width": self.width, "height": self.height, "src": src}


def _jpeg(frame: av.VideoFrame, width: int) -> Thumbnail | None:
    height = max(2, round(frame.height * width / max(1, frame.width) / 2) * 2)
    # A reformatter of its own, freed on return: frame.reformat() would keep one in this
    # (executor) thread's locals, with swscale slice threads, and a fork elsewhere in the
    # process that runs Python in the child would free it there and hang (core/spawn.py).
    small = VideoReformatter().reformat(frame, width=width, height=height, format="yuvj420p")
    small.pts = 0
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    data = b"".join(bytes(p) for p in [*encoder.encode(small), *encoder.encode(None)])
    return Thumbnail(0.0, width, height, data) if data else None


def _decode_keyframe(packet: av.Packet[Any]) -> av.VideoFrame | None:
    decoder = av.CodecContext.create("vp8", "r")  # a keyframe needs no earlier frame
    try:
        frames = [*decoder.decode(packet), *decoder.decode(None)]
    except av.FFmpegError:
        return None  # a damaged keyframe: no thumbnail for it
    return next((f for f in frames if isinstance(f, av.VideoFrame)), None)


def keyframe_thumbnails(
    source: Any, party: Party, duration_s: float, *, count: int = COUNT, width: int = WIDTH
) -> list[Thumbnail]:
    """Up to ``count`` thumbnails of ``party``'s video in the call file ``source`` (a path or
    a readable, seekable binary file), spread over ``duration_s``, oldest first."""
    gap = max(0.0, duration_s) / count
    out: list[Thumbnail] = []
    next_at = float("-inf")
    with av.open(source, "r") as inp:
        video, _audio = party_streams(inp, party)
        packets = inp.demux(video)
        while len(out) < count:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.FFmpegError as exc:  # a truncated tail: what was read so far
                log.warning("thumbnails: the call file ends unreadably: %s", exc)
                break
            if not packet.size or not packet.is_keyframe or packet.pts is None:
                continue
            offset = float(packet.pts * packet.time_base)
            if offset < next_at:
                continue
            frame = _decode_keyframe(packet)
            made = _jpeg(frame, width) if frame is not None else None
            if made is not None:
                out.append(Thumbnail(round(offset, 3), made.width, made.height, made.jpeg))
                next_at = offset + gap
    return out


class Thumbnails:
    """Thumbnails of signed recordings, kept for the last ``keep`` (recording, party) asked."""

    def __init__(self, storage: Storage, keep: int = 64) -> None:
        self._storage = storage
        self._keep = keep
        self._cache: OrderedDict[tuple[str, Party, str], list[Thumbnail]] = OrderedDict()

    def get(self, call_id: str, party: Party, sha256: str, duration_s: float) -> list[Thumbnail]:
        """Raises ``FileNotFoundError`` without media, :class:`ViewError` if the file has no
        such party's video."""
        key = (call_id, party, sha256)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        size = self._storage.size(call_id)
        with open_reader(self._storage, call_id, size) as reader:
            try:
                made = keyframe_thumbnails(reader, party, duration_s)
            except av.FFmpegError as exc:
                raise ViewError(f"the recording cannot be read: {exc}") from None
        self._cache[key] = made
        while len(self._cache) > self._keep:
            self._cache.popitem(last=False)
        return made
