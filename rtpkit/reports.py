"""RTCP bookkeeping of one outgoing stream: the sender reports sent and what came back.

The round-trip time comes from a receiver report's LSR/DLSR (RFC 3550 6.4.1): each sender report
we send is remembered by its LSR value, rather than read from the NTP time.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from aiortc.rtp import RtcpReceiverInfo

_SENT_KEPT: Final = 8  # sender reports remembered for RTT (a few seconds' worth)


class SenderReports:
    """One :class:`~rtpkit.endpoints.ForwardingSender`'s sender reports and what the remote
    receiver reported back about its stream."""

    __slots__ = ("_sent", "fraction_lost", "jitter_s", "received_at", "rtt_s")

    def __init__(self) -> None:
        self._sent: deque[tuple[int, float]] = deque(maxlen=_SENT_KEPT)
        self.rtt_s: float | None = None
        self.jitter_s: float | None = None
        self.fraction_lost: float | None = None
        self.received_at: float | None = None

    def sent(self, ntp_timestamp: int, at: float) -> None:
        """We sent a sender report with this NTP time at ``at`` (monotonic)."""
        self._sent.append(((ntp_timestamp >> 16) & 0xFFFFFFFF, at))

    def received(self, report: RtcpReceiverInfo, clock_rate: int, at: float) -> None:
        """A report block about our stream arrived at ``at``."""
        self.received_at = at
        self.fraction_lost = report.fraction_lost / 256
        self.jitter_s = report.jitter / clock_rate
        if report.lsr:
            for lsr, sent_at in self._sent:
                if lsr == report.lsr:
                    rtt = at - sent_at - report.dlsr / 65536
                    if rtt >= 0:
                        self.rtt_s = rtt
                    break
