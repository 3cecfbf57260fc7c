"""RTP at byte level for a forwarding SFU: VP8 payload descriptors, headers, frame assembly.

Pure functions and small classes with no I/O and no aiortc state, shared by the SFU's
forwarding path (:mod:`media.forwarding`), the recorder (which assembles frames from the
packets it is given) and the client library (which sends pre-packetized clips and counts
frames at RTP level).

* VP8 (RFC 7741): the payload descriptor tells where a frame starts (``S`` bit, partition 0)
  and, right after it, the VP8 frame tag tells whether that frame is a key frame. That is
  all an SFU needs to gate a new subscriber to the first packet of a key frame.
* Headers: :func:`rtp_header` packs a fixed header plus a one-byte-form header extension
  block (RFC 8285) built by :class:`ExtensionWriter` for one subscriber's negotiated ids.
* :class:`FrameAssembler`: packets of one stream in arrival order in, whole encoded frames
  (in timestamp order, complete or dropped) out, tolerant of reordering and late RTX.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

#: The media kinds a call carries, in SDP order (one m= line each, per party).
MEDIA_KINDS: Final = ("audio", "video")

MID_URI: Final = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME_URI: Final = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
VP8_MAX_PAYLOAD: Final = 1200  # descriptor + VP8 data per packet (fits any sane path MTU)

_HEADER = struct.Struct("!BBHII")
_SEQ_TS_SSRC = struct.Struct("!HII")
_U16 = struct.Struct("!H")


class RtpIn:
    """A received RTP packet: the fields forwarding needs (aiortc ``RtpPacket`` names)."""

    __slots__ = ("marker", "payload", "payload_type", "sequence_number", "ssrc", "timestamp")

    def __init__(
        self,
        payload_type: int,
        marker: int,
        sequence_number: int,
        timestamp: int,
        ssrc: int,
        payload: bytes,
    ) -> None:
        self.payload_type = payload_type
        self.marker = marker
        self.sequence_number = sequence_number
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload

    @classmethod
    def parse(cls, data: bytes) -> RtpIn:
        """Header fields and payload of a plain RTP packet (CSRCs, extensions and padding
        skipped); raises ``ValueError`` if it is not one."""
        size = len(data)
        if size < 12 or data[0] >> 6 != 2:
            raise ValueError("not an RTP packet")
        first = data[0]
        pos = 12 + 4 * (first & 0x0F)
        if first & 0x10:
            if size < pos + 4:
                raise ValueError("truncated RTP header extension")
            pos += 4 + 4 * _U16.unpack_from(data, pos + 2)[0]
        end = size - data[-1] if first & 0x20 else size
        if pos > end:
            raise ValueError("truncated RTP packet")
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
        second = data[1]
        return cls(second & 0x7F, second >> 7, seq, ts, ssrc, data[pos:end])

    def unwrap_rtx(self, payload_type: int, ssrc: int) -> RtpIn:
        """The original packet inside a retransmission (RFC 4588)."""
        seq = _U16.unpack_from(self.payload)[0]
        return RtpIn(payload_type, self.marker, seq, self.timestamp, ssrc, self.payload[2:])


# ---------------------------------------------------------------------------- sequence maths


def seq_delta(a: int, b: int) -> int:
    """``a - b`` for 16-bit sequence numbers, in ``[-32768, 32767]``."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_delta(a: int, b: int) -> int:
    """``a - b`` for 32-bit RTP timestamps, signed."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


# ---------------------------------------------------------------------------- VP8


def is_vp8_keyframe(frame: bytes) -> bool:
    """True if ``frame`` (a whole VP8 frame) is a key frame: P bit clear + start code."""
    return len(frame) >= 10 and not frame[0] & 0x01 and frame[3:6] == b"\x9d\x01\x2a"


def vp8_descriptor_size(payload: bytes) -> int:
    """Length of the VP8 payload descriptor at the start of ``payload`` (0 if malformed)."""
    size = len(payload)
    if size < 1:
        return 0
    if not payload[0] & 0x80:  # X: no extension byte
        return 1
    if size < 2:
        return 0
    ext = payload[1]
    pos = 2
    if ext & 0x80:  # I: picture id, 7 or 15 bits
        if size <= pos:
            return 0
        pos += 2 if payload[pos] & 0x80 else 1
    if ext & 0x40:  # L: TL0PICIDX
        pos += 1
    if ext & 0x30:  # T or K: TID/Y/KEYIDX
        pos += 1
    return pos if pos <= size else 0


def vp8_frame_start(payload: bytes) -> bool:
    """First packet of a frame: ``S`` set and partition id 0."""
    return bool(payload) and payload[0] & 0x1F == 0x10


def vp8_keyframe_start(payload: bytes) -> bool:
    """First packet of a VP8 *key* frame (where a new subscriber may start)."""
    if not payload or payload[0] & 0x1F != 0x10:
        return False
    pos = vp8_descriptor_size(payload)
    return 0 < pos < len(payload) and not payload[pos] & 0x01


def vp8_payloads(frame: bytes, picture_id: int, max_size: int = VP8_MAX_PAYLOAD) -> list[bytes]:
    """Packetize one VP8 frame: descriptor with a 15-bit picture id, then the data."""
    pid = _U16.pack(0x8000 | (picture_id & 0x7FFF))
    room = max_size - 4
    chunks = [frame[i : i + room] for i in range(0, len(frame), room)] or [b""]
    first = b"\x90\x80" + pid  # X, S, PID 0 | I | M + picture id
    rest = b"\x80\x80" + pid
    return [(first if i == 0 else rest) + chunk for i, chunk in enumerate(chunks)]


def vp8_strip_descriptor(payload: bytes) -> bytes:
    return payload[vp8_descriptor_size(payload) :]


# ---------------------------------------------------------------------------- headers


def rtp_header(
    payload_type: int, marker: bool, seq: int, timestamp: int, ssrc: int, extensions: bytes
) -> bytes:
    """A 12-byte RTP header (no CSRC, no padding) followed by ``extensions`` (may be empty)."""
    first = 0x90 if extensions else 0x80
    second = payload_type | 0x80 if marker else payload_type
    return _HEADER.pack(first, second, seq, timestamp, ssrc) + extensions


class ExtensionWriter:
    """One-byte header extensions (RFC 8285) for one outgoing stream: mid + abs-send-time.

    The mid element never changes, so it is packed once; abs-send-time (6.18 fixed-point
    seconds, 24 bits) is added per packet only if the subscriber negotiated it.
    """

    __slots__ = ("_abs", "_fixed", "_pad", "_prefix")

    def __init__(self, ids: dict[str, int], mid: str | None) -> None:
        mid_id = ids.get(MID_URI)
        static = b""
        if mid_id and mid and 0 < len(mid.encode()) <= 16:
            raw = mid.encode()
            static = bytes([(mid_id << 4) | (len(raw) - 1)]) + raw
        abs_id = ids.get(ABS_SEND_TIME_URI)
        self._abs = bool(abs_id)
        size = len(static) + (4 if abs_id else 0)
        pad = -size % 4
        header = b"\xbe\xde" + _U16.pack((size + pad) // 4) if size else b""
        self._pad = b"\x00" * pad
        self._prefix = header + static + (bytes([(abs_id << 4) | 2]) if abs_id else b"")
        self._fixed = self._prefix + self._pad  # everything, when there is no abs-send-time

    def build(self, now: float) -> bytes:
        """The extension block for a packet sent at ``now`` (seconds on a steady clock)."""
        if not self._abs:
            return self._fixed
        return self._prefix + (int(now * 262144) & 0xFFFFFF).to_bytes(3, "big") + self._pad


# ---------------------------------------------------------------------------- frames


@dataclass(slots=True)
class Frame:
    """One encoded frame assembled from RTP: ``timestamp`` is unwrapped (64-bit)."""

    data: bytes
    timestamp: int
    keyframe: bool
    arrival: float
    packets: int


@dataclass(slots=True)
class _Pending:
    timestamp: int
    arrival: float
    parts: dict[int, bytes]  # extended seq -> payload
    start: int | None = None  # extended seq of the frame's first packet
    end: int | None = None  # extended seq of the marker packet


class FrameAssembler:
    """Reassembles one stream's frames from its RTP packets (VP8, or one-packet Opus frames).

    Frames come out in timestamp order. A frame still incomplete when a newer one is more
    than ``max_wait_s`` younger (by arrival) is dropped, and VP8 then resumes only at the
    next key frame (``need_keyframe``), since the frames after a gap would not decode.
    """

    def __init__(self, video: bool, *, max_wait_s: float = 0.4) -> None:
        self.video = video
        self.max_wait_s = max_wait_s
        self.frames = 0
        self.keyframes = 0
        self.dropped = 0
        self.need_keyframe = video
        self._pending: dict[int, _Pending] = {}
        self._last_ts: int | None = None  # extended timestamp of the last frame out
        self._ts_base = 0
        self._ts_prev: int | None = None
        self._seq_prev: int | None = None
        self._next_seq: int | None = None  # extended seq right after the last frame out

    def _extend_ts(self, ts: int) -> int:
        if self._ts_prev is not None:
            if ts < self._ts_prev and self._ts_prev - ts > 0x80000000:
                self._ts_base += 1 << 32
            elif ts > self._ts_prev and ts - self._ts_prev > 0x80000000:
                return self._ts_base - (1 << 32) + ts  # a late packet from before a wrap
        self._ts_prev = ts
        return self._ts_base + ts

    def _extend_seq(self, seq: int) -> int:
        if self._seq_prev is not None:
            delta = seq_delta(seq, self._seq_prev & 0xFFFF)
            extended = self._seq_prev + delta
            if delta > 0:
                self._seq_prev = extended
            return extended
        self._seq_prev = seq + (1 << 16)
        return self._seq_prev

    def reset(self) -> None:
        """The source changed (timestamps and sequence numbers jump): start over."""
        self._pending.clear()
        self._last_ts = self._ts_prev = self._seq_prev = self._next_seq = None
        self._ts_base = 0
        self.need_keyframe = self.video

    def push(
        self, seq: int, timestamp: int, marker: bool, payload: bytes, arrival: float
    ) -> list[Frame]:
        """Add one packet; returns every frame that became ready (or was given up on)."""
        ts = self._extend_ts(timestamp)
        if self._last_ts is not None and ts <= self._last_ts:
            return []  # a frame already emitted or skipped: too late
        if not self.video:
            self._last_ts = ts
            self.frames += 1
            return [Frame(payload, ts, True, arrival, 1)]
        xseq = self._extend_seq(seq)
        pending = self._pending.get(ts)
        if pending is None:
            pending = self._pending[ts] = _Pending(ts, arrival, {})
        pending.parts[xseq] = payload
        if vp8_frame_start(payload):
            pending.start = xseq
        if marker:
            pending.end = xseq
        return self._drain(arrival)

    def _drain(self, now: float) -> list[Frame]:
        ready: list[Frame] = []
        while self._pending:
            ts = min(self._pending)
            pending = self._pending[ts]
            frame = self._complete(pending)
            follows = self._next_seq is None or pending.start == self._next_seq
            if frame is None or not follows:  # incomplete, or a frame before it is missing
                if now - pending.arrival < self.max_wait_s:
                    break
                self.dropped += frame is None
                self.need_keyframe = True
            del self._pending[ts]
            self._last_ts = ts
            if frame is None:
                self._next_seq = None  # the gap is accounted for: take the next whole frame
                continue
            self._next_seq = (pending.end or 0) + 1
            if self.need_keyframe and not frame.keyframe:
                self.dropped += 1
                continue
            self.need_keyframe = False
            self.frames += 1
            self.keyframes += frame.keyframe
            ready.append(frame)
        return ready

    @staticmethod
    def _complete(pending: _Pending) -> Frame | None:
        start, end = pending.start, pending.end
        if start is None or end is None or end - start + 1 != len(pending.parts):
            return None
        parts = pending.parts
        if any(s not in parts for s in range(start, end + 1)):
            return None
        data = b"".join(vp8_strip_descriptor(parts[s]) for s in range(start, end + 1))
        return Frame(data, pending.timestamp, is_vp8_keyframe(data), pending.arrival, len(parts))
