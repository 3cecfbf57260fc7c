"""The SFU's per-stream rewrite (``ForwardingSender.forward``): SSRC, sequence number and
timestamp offsets, across 16-bit and 32-bit wraparound and source switches.

The sender is built without a peer connection: only its forwarding state is prepared, and the
one network call (its outlet's ``send``, :mod:`rtpkit.outlet`) goes to a list that keeps
the bytes sent, which are then parsed as RTP. No sockets, no DTLS, no event loop.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given
from hypothesis import strategies as st

from rtpkit.endpoints import ForwardingSender
from rtpkit.rtp import RtpIn, rtp_header, seq_delta, ts_delta

OUT_SSRC = 0x5EED5EED
PT = 96
CLOCK = 90_000


class Wire:
    """What the sender put on the wire, parsed back."""

    def __init__(self) -> None:
        self.packets: list[RtpIn] = []

    def send(
        self, pt: int, marker: bool, seq: int, ts: int, ssrc: int, ext: bytes, payload: bytes
    ) -> bool:
        self.packets.append(RtpIn.parse(rtp_header(pt, marker, seq, ts, ssrc, ext) + payload))
        return True


@contextmanager
def sender(seq: int, ts: int) -> Iterator[tuple[ForwardingSender, Wire]]:
    """A ready sender whose last sent packet had ``seq`` and ``ts`` (its random start)."""
    fs = object.__new__(ForwardingSender)
    fs._RTCRtpSender__transport = None  # type: ignore[attr-defined]  # read by _prepare
    fs._prepare()
    fs._ready = True
    fs._ssrc = OUT_SSRC
    fs._pt = PT
    fs._clock_rate = CLOCK
    fs._seq, fs._ts = seq, ts
    wire = Wire()
    fs._outlet = wire  # type: ignore[assignment]  # the one network call
    yield fs, wire


def packet(seq: int, ts: int, ssrc: int = 0x1111, pt: int = 111) -> RtpIn:
    return RtpIn(pt, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, b"\x90\x80payload")


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
# Timestamp steps between packets: repeats (same frame), 20 ms audio, 33 ms video, a pause.
ts_steps = st.lists(st.sampled_from([0, 960, 3000, 3003, 90_000]), min_size=1, max_size=60)


@given(out_seq=u16, out_ts=u32, in_seq=u16, in_ts=u32, steps=ts_steps)
def test_one_source_is_renumbered_consecutively_through_wraparound(
    out_seq: int, out_ts: int, in_seq: int, in_ts: int, steps: list[int]
) -> None:
    with sender(out_seq, out_ts) as (fs, wire):
        ts = in_ts
        for i, step in enumerate(steps):
            ts += step
            assert fs.forward(packet(in_seq + i, ts), arrival=10.0 + i * 0.02)
    out = wire.packets
    assert [p.ssrc for p in out] == [OUT_SSRC] * len(out)
    assert {p.payload_type for p in out} == {PT}
    assert out[0].sequence_number == (out_seq + 1) & 0xFFFF
    for before, after, step in zip(out, out[1:], steps[1:], strict=False):
        assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF
        assert after.timestamp == (before.timestamp + step) & 0xFFFFFFFF
    assert ts_delta(out[0].timestamp, out_ts) >= 1  # ahead of what the stream sent before


def test_sixteen_and_thirty_two_bit_wraps_explicitly() -> None:
    with sender(0xFFFD, 0xFFFFFF00) as (fs, wire):
        for i in range(5):
            fs.forward(packet(0xFFFE + i, 0xFFFFFFF0 + i * 3000), arrival=1.0)
    assert [p.sequence_number for p in wire.packets] == [0xFFFE, 0xFFFF, 0, 1, 2]
    ts = [p.timestamp for p in wire.packets]
    assert all(ts_delta(b, a) == 3000 for a, b in itertools.pairwise(ts))
    assert ts[-1] < ts[0]  # the 32-bit timestamp wrapped too


@given(
    out_seq=u16,
    out_ts=u32,
    first=st.tuples(u16, u32, st.integers(1, 50)),
    second=st.tuples(u16, u32, st.integers(1, 50)),
    gap_s=st.floats(0.0, 5.0),
)
def test_switching_sources_keeps_the_output_continuous(
    out_seq: int,
    out_ts: int,
    first: tuple[int, int, int],
    second: tuple[int, int, int],
    gap_s: float,
) -> None:
    """A re-offer or a new publisher: unrelated SSRC, sequence and timestamp, yet the
    subscriber sees one stream, its numbering one on and its clock advanced by the gap."""
    with sender(out_seq, out_ts) as (fs, wire):
        seq_a, ts_a, count_a = first
        for i in range(count_a):
            fs.forward(packet(seq_a + i, ts_a + i * 3000, ssrc=0xAAAA), arrival=100.0 + i * 0.033)
        last_arrival = 100.0 + (count_a - 1) * 0.033
        fs.restart()
        seq_b, ts_b, count_b = second
        for i in range(count_b):
            arrival = last_arrival + gap_s + i * 0.033
            fs.forward(packet(seq_b + i, ts_b + i * 3000, ssrc=0xBBBB), arrival=arrival)
    out = wire.packets
    assert len(out) == count_a + count_b
    assert {p.ssrc for p in out} == {OUT_SSRC}
    seqs = [p.sequence_number for p in out]
    assert all(seq_delta(b, a) == 1 for a, b in itertools.pairwise(seqs))
    edge_before, edge_after = out[count_a - 1], out[count_a]
    # the time between the last packet sent and the new source's first, on the stream clock
    expected_step = max(1, int(((last_arrival + gap_s) - last_arrival) * CLOCK))
    assert ts_delta(edge_after.timestamp, edge_before.timestamp) == expected_step
    for a, b in zip(out[count_a:], out[count_a + 1 :], strict=False):
        assert ts_delta(b.timestamp, a.timestamp) == 3000


def test_a_late_packet_from_before_the_switch_is_dropped_not_sent_backwards() -> None:
    with sender(100, 5000) as (fs, wire):
        fs.forward(packet(4000, 1000, ssrc=0xAAAA), arrival=1.0)
        fs.restart()
        assert fs.forward(packet(7000, 90_000, ssrc=0xBBBB), arrival=1.1)
        assert fs.forward(packet(7001, 93_000, ssrc=0xBBBB), arrival=1.13)
        assert not fs.forward(packet(6999, 87_000, ssrc=0xBBBB), arrival=1.14)  # reordered
    assert [p.sequence_number for p in wire.packets] == [101, 102, 103]


def test_a_retransmitted_gap_fills_in_below_the_high_water_mark() -> None:
    """Reordering within one source keeps its own number; the stream's latest stays the max."""
    with sender(10, 0) as (fs, wire):
        fs.forward(packet(500, 0), arrival=1.0)
        fs.forward(packet(502, 6000), arrival=1.1)
        fs.forward(packet(501, 3000), arrival=1.2)  # late, still after the rebase point
        fs.restart()
        fs.forward(packet(9, 777), arrival=1.3)
    assert [p.sequence_number for p in wire.packets] == [11, 13, 12, 14]


def test_nothing_is_sent_before_the_transport_is_ready() -> None:
    with sender(0, 0) as (fs, wire):
        fs._ready = False
        assert not fs.forward(packet(1, 1), arrival=1.0)
    assert wire.packets == []
