"""rtpkit.nacks.Nacks against aiortc's NackGenerator, packet by packet: the same state."""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.rtcrtpreceiver import NackGenerator
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rtpkit.nacks import Nacks


@dataclass
class Packet:
    sequence_number: int


# Steps between packets: mostly the next one, some losses, reordering, repeats and jumps
# (a wrap of the 16-bit sequence number comes with a start near it).
steps = st.lists(
    st.one_of(st.just(1), st.integers(-40, 40), st.integers(-0x9000, 0x9000)), max_size=300
)
HALF_WAY = [1, 0x8000, 1, -0x8000, 1, 2, 1]  # exactly 2^15 apart, then a loss


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 0xFFFF), moves=steps)
@example(start=0xFFF0, moves=HALF_WAY)
def test_nacks_ask_for_what_aiortc_asks_for(start: int, moves: list[int]) -> None:
    ours, theirs = Nacks(), NackGenerator()
    seq = start
    for step in moves:
        seq = (seq + step) & 0xFFFF
        packet = Packet(seq)
        assert ours.add(packet) == theirs.add(packet)  # type: ignore[arg-type]
        assert (ours.max_seq, ours.missing) == (theirs.max_seq, theirs.missing)
