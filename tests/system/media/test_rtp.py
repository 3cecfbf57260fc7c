"""Byte-level RTP helpers: VP8 descriptors, headers, frame assembly (no network)."""

from __future__ import annotations

import itertools

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given
from hypothesis import strategies as st

from client.media import ClipSpec, load_clip
from rtpkit.rtp import (
    ABS_SEND_TIME_URI,
    MID_URI,
    ExtensionWriter,
    FrameAssembler,
    rtp_header,
    seq_delta,
    vp8_descriptor_size,
    vp8_keyframe_start,
    vp8_payloads,
)

CLIP = load_clip(ClipSpec(colour="green", duration_s=1.0, keyframe_interval_s=0.5))


def test_vp8_descriptor_forms() -> None:
    assert vp8_descriptor_size(b"\x10\x00") == 1  # no extension
    assert vp8_descriptor_size(b"\x90\x80\x05\x00") == 3  # 7-bit picture id
    assert vp8_descriptor_size(b"\x90\x80\x80\x05\x00") == 4  # 15-bit picture id
    assert vp8_descriptor_size(b"\x90\xe0\x80\x05\x07\x20\x00") == 6  # + TL0PICIDX + TID
    assert vp8_descriptor_size(b"\x90\x80") == 0  # truncated
    keyframe = CLIP.video[0]
    assert vp8_keyframe_start(b"\x10" + keyframe)
    assert not vp8_keyframe_start(b"\x00" + keyframe)  # not the start of the frame
    assert not vp8_keyframe_start(b"\x10" + CLIP.video[1])  # an inter frame


def test_header_round_trips_through_aiortc_parser() -> None:
    ids = {MID_URI: 1, ABS_SEND_TIME_URI: 3}
    writer = ExtensionWriter(ids, "2")
    data = rtp_header(96, True, 65535, 0xFFFFFFFF, 0x1234, writer.build(1000.5)) + b"payload"
    params = RTCRtpParameters(
        headerExtensions=[RTCRtpHeaderExtensionParameters(id=i, uri=u) for u, i in ids.items()]
    )
    extensions = HeaderExtensionsMap()
    extensions.configure(params)
    packet = RtpPacket.parse(data, extensions)
    assert (packet.payload_type, packet.marker, packet.sequence_number) == (96, 1, 65535)
    assert (packet.timestamp, packet.ssrc, packet.payload) == (0xFFFFFFFF, 0x1234, b"payload")
    assert packet.extensions.mid == "2"
    assert packet.extensions.abs_send_time == int(1000.5 * 262144) & 0xFFFFFF
    assert rtp_header(111, False, 1, 2, 3, b"")[0] == 0x80  # no extension bit without any


def packets_of(frames: list[bytes], seq0: int, ts0: int) -> list[tuple[int, int, bool, bytes]]:
    out, seq = [], seq0
    for index, frame in enumerate(frames):
        payloads = vp8_payloads(frame, index, max_size=300)
        for i, payload in enumerate(payloads):
            out.append(
                (seq & 0xFFFF, (ts0 + index * 3000) & 0xFFFFFFFF, i == len(payloads) - 1, payload)
            )
            seq += 1
    return out


@given(
    seq0=st.integers(0, 0xFFFF),
    ts0=st.integers(0, 0xFFFFFFFF),
    swaps=st.lists(st.integers(0, 200), max_size=20),
)
def test_assembler_rebuilds_every_frame_despite_reordering_and_wraps(
    seq0: int, ts0: int, swaps: list[int]
) -> None:
    frames = CLIP.video[:10]
    packets = packets_of(frames, seq0, ts0)
    for i in swaps:  # adjacent swaps: a little reordering, as on a real network
        i %= len(packets) - 1
        packets[i], packets[i + 1] = packets[i + 1], packets[i]
    assembler = FrameAssembler(video=True)
    out = [f for p in packets for f in assembler.push(*p, arrival=0.0)]
    assert [f.data for f in out] == frames
    assert [f.keyframe for f in out] == [i in CLIP.keyframes for i in range(10)]
    assert all(seq_delta(b.timestamp, a.timestamp) or True for a, b in itertools.pairwise(out))


def test_assembler_drops_an_incomplete_frame_and_resumes_at_a_keyframe() -> None:
    frames = CLIP.video[:20]  # key frames at 0 and 15
    packets = packets_of(frames, 100, 0)
    lost = next(i for i, p in enumerate(packets) if p[1] == 3 * 3000)  # a packet of frame 3
    del packets[lost]
    assembler = FrameAssembler(video=True, max_wait_s=0.4)
    out = []
    for n, p in enumerate(packets):
        out += assembler.push(*p, arrival=n * 0.01)  # ~10 ms apart: frame 3 given up later
    timestamps = [f.timestamp // 3000 for f in out]
    assert timestamps[:3] == [0, 1, 2]
    assert 3 not in timestamps and 4 not in timestamps  # would not decode without frame 3
    assert timestamps[3:] == list(range(15, 20))
    assert assembler.dropped >= 1


def test_assembler_takes_a_late_retransmission() -> None:
    packets = packets_of(CLIP.video[:6], 10, 0)
    late = packets.pop(3)
    assembler = FrameAssembler(video=True)
    out = [f for p in packets[:6] for f in assembler.push(*p, arrival=0.0)]
    out += assembler.push(*late, arrival=0.1)  # the RTX arrives after later packets
    out += [f for p in packets[6:] for f in assembler.push(*p, arrival=0.1)]
    assert [f.data for f in out] == CLIP.video[:6]


def test_audio_frames_are_single_packets() -> None:
    assembler = FrameAssembler(video=False)
    out = [
        f for i, a in enumerate(CLIP.audio[:5]) for f in assembler.push(i, i * 960, True, a, 0.0)
    ]
    assert [f.data for f in out] == CLIP.audio[:5]
    assert list(assembler.push(2, 2 * 960, True, CLIP.audio[2], 0.0)) == []  # too late
