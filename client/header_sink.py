"""A counting sink for load generators that reads the clear RTP header of most packets.

:class:`HeaderSink` counts exactly what :class:`client.media.RtpSink` counts (packets, losses,
whole frames, key frames, the same :class:`rtpkit.rtp.FrameAssembler` rules), but most of its
packets come from :mod:`rtpkit.lightpath` as header fields only (``on_header``), their payload
still encrypted. It asks for a packet in the clear (``on_header`` returns ``False``) when its
payload matters:

* video: the first packet of each frame (the one with the lowest sequence number of its
  timestamp seen so far: a new timestamp, or an earlier packet of the current one after
  reordering), whose VP8 descriptor marks the frame start and whose frame tag says key frame
  or not; and every packet of a key frame picked for the content check (one every
  ``sample_every_s``), so that check decodes a real, whole frame;
* audio: never (one packet per frame: the header says it all).

The frame assembler then holds the real first packet of each frame and a placeholder for the
rest (not a frame start, nothing after its descriptor), so frame boundaries, gaps, key frames
and the drop-until-key-frame rule are the full path's. ``bytes`` counts only the payloads
seen in the clear.
"""

from __future__ import annotations

from typing import Final

from client.media import RtpSink
from rtpkit.rtp import Frame, RtpIn

PLACEHOLDER: Final = b"\x00"  # a VP8 descriptor byte without S: no frame start, no data


class HeaderSink(RtpSink):
    """An :class:`RtpSink` also fed packet headers without payload; see the module docstring."""

    def __init__(self, kind: str, *, decode: str = "keyframes", sample_every_s: float = 5.0):
        if decode not in ("keyframes", "none"):
            raise ValueError(f"a header sink decodes key frames or nothing, not {decode!r}")
        super().__init__(kind, decode=decode, sample_every_s=sample_every_s)
        self._video = kind == "video"
        self._run_ts = -1  # timestamp of the latest packet seen
        self._run_min = 0  # lowest sequence number seen for it (in the current run)
        self._collect_ts: int | None = None  # the key frame taken whole for the content check
        self._collect_real = 0  # its packets seen in the clear
        self.header_only = 0

    def on_header(self, seq: int, timestamp: int, marker: int, arrival: float) -> bool:
        if self._video and (
            timestamp != self._run_ts  # a new frame's first packet (as far as seen)
            or (seq - self._run_min) & 0x8000  # earlier than its packets seen so far
            or timestamp == self._collect_ts  # the key frame the content check decodes
        ):
            return False  # wanted in the clear (on_packet moves the run on)
        # RtpSink.on_packet with a placeholder payload (inlined: this runs for most packets)
        if self.first_at is None:
            self.first_at = arrival
        if self._base_seq is None:
            self._base_seq = self._max_seq = seq
        else:
            delta = ((seq - (self._max_seq & 0xFFFF) + 0x8000) & 0xFFFF) - 0x8000  # seq_delta
            if delta > 0:
                self._max_seq += delta
        self.packets += 1
        self.header_only += 1
        assembler = self._assembler
        if not self._video:
            # FrameAssembler.push for one-packet frames, without the generator and Frame
            extended = assembler._extend_ts(timestamp)
            last = assembler._last_ts
            if last is None or extended > last:
                assembler._last_ts = extended
                assembler.frames += 1
                self.first_frame.set()
                self._progress.set()
            return True
        for frame in assembler.push(seq, timestamp, bool(marker), PLACEHOLDER, arrival):
            self._frame_ready(frame, arrival)
        return True

    def on_packet(self, packet: RtpIn, keyframe_start: bool, arrival: float) -> None:
        if self._video:
            timestamp, seq = packet.timestamp, packet.sequence_number
            fresh = timestamp != self._run_ts
            if fresh:
                self._run_ts, self._run_min = timestamp, seq
            elif (seq - self._run_min) & 0x8000:
                self._run_min = seq
            if (
                keyframe_start
                and fresh  # no packet of this frame went by as a placeholder
                and self.decode == "keyframes"
                and arrival - self._sampled_at >= self.sample_every_s
            ):
                self._collect_ts, self._collect_real = timestamp, 0
            if timestamp == self._collect_ts:
                self._collect_real += 1
        super().on_packet(packet, keyframe_start, arrival)

    def _frame_ready(self, frame: Frame, arrival: float) -> None:
        collected = self._collect_ts
        if collected is not None and frame.timestamp & 0xFFFFFFFF == collected:
            self._collect_ts = None
            if frame.packets == self._collect_real:
                super()._frame_ready(frame, arrival)  # a whole real frame: decode it
                return
        self.first_frame.set()
        self._progress.set()
