"""Connection quality of each party (media.quality): RTT, jitter and loss from RTCP, graded."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest
from aiortc.rtp import RtcpReceiverInfo
from prometheus_client.parser import text_string_to_metric_families

from client.peer import PartyPeer, close_all
from media.control import EventType, Party
from media.metrics import WorkerMetrics
from media.quality import LEVELS, PartyQuality, grade
from media.room import Room
from rtpkit.endpoints import ForwardingReceiver
from rtpkit.reports import SenderReports
from rtpkit.rtp import RtpIn
from tests.system.media.peers import BLUE, RED


@pytest.mark.parametrize(
    ("rtt_ms", "jitter_ms", "loss_pct", "level"),
    [
        (None, None, None, "unknown"),
        (40.0, 5.0, 0.0, "good"),
        (None, 5.0, None, "good"),  # what is known decides
        (299.9, 29.9, 1.9, "good"),
        (300.0, 5.0, 0.0, "fair"),
        (40.0, 30.0, 0.0, "fair"),
        (40.0, 5.0, 2.0, "fair"),
        (599.0, 74.0, 7.9, "fair"),
        (600.0, 5.0, 0.0, "poor"),
        (40.0, 75.0, 0.0, "poor"),
        (40.0, 5.0, 8.0, "poor"),
        (None, None, 100.0, "poor"),
    ],
)
def test_levels(
    rtt_ms: float | None, jitter_ms: float | None, loss_pct: float | None, level: str
) -> None:
    assert grade(rtt_ms, jitter_ms, loss_pct) == level
    assert [name for name, _ in LEVELS] == ["good", "fair"]


def test_rtt_from_the_sender_report_a_receiver_report_echoes() -> None:
    reports = SenderReports()
    ntp = 0x1234_5678_9ABC_DEF0
    reports.sent(ntp - (5 << 32), at=95.0)  # an older report, not the one echoed
    reports.sent(ntp, at=100.0)
    lsr = (ntp >> 16) & 0xFFFFFFFF
    echo = RtcpReceiverInfo(
        ssrc=1, fraction_lost=64, packets_lost=3, highest_sequence=9, jitter=900,
        lsr=lsr, dlsr=int(0.25 * 65536),
    )  # fmt: skip
    reports.received(echo, 90000, at=100.4)
    assert reports.rtt_s == pytest.approx(0.15, abs=1e-4)
    assert reports.jitter_s == pytest.approx(0.01)
    assert reports.fraction_lost == 0.25
    unknown = RtcpReceiverInfo(1, 0, 0, 9, 0, lsr=lsr + 1, dlsr=0)  # an SR we never sent
    reports.received(unknown, 90000, at=101.0)
    assert reports.rtt_s == pytest.approx(0.15, abs=1e-4)  # kept


class QualityLog:
    """The room's ``quality`` reports, with its qualities at each."""

    def __init__(self) -> None:
        self.room: Room | None = None
        self.reports: list[dict[Party, PartyQuality]] = []
        self._changed = asyncio.Event()

    def on_event(self, event: EventType, party: Party | None) -> None:
        if event == "quality" and self.room is not None:
            self.reports.append(dict(self.room.quality.current))
            self._changed.set()

    async def wait(
        self, predicate: Callable[[dict[Party, PartyQuality]], bool], timeout: float = 15.0
    ) -> dict[Party, PartyQuality]:
        async def reached() -> dict[Party, PartyQuality]:
            while True:
                for report in self.reports:
                    if predicate(report):
                        return report
                self.reports.clear()
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(reached(), timeout)


def drop_every(receiver: ForwardingReceiver, nth: int) -> None:
    """The receiver never sees every ``nth`` packet (as if the network lost it)."""
    counter = itertools.count(1)
    handle = receiver.handle_rtp

    def lossy(packet: RtpIn, arrival: float) -> None:
        if next(counter) % nth:
            handle(packet, arrival)

    receiver.handle_rtp = lossy  # type: ignore[method-assign]


async def test_a_party_losing_packets_is_poor_and_the_other_is_not_blamed() -> None:
    log = QualityLog()
    room = log.room = Room("Q1", log.on_event, media_timeout_s=60).start()
    room.quality.refresh_s = room.quality.sample_s  # a report at every sample
    tablet, family = PartyPeer(RED, decode=False), PartyPeer(BLUE, decode=False)
    try:
        for name, peer in (("tablet", tablet), ("family", family)):
            await peer.accept_answer(await room.offer(name, await peer.offer()))  # type: ignore[arg-type]

        def measured(report: dict[Party, PartyQuality]) -> bool:
            return all(
                report.get(p, PartyQuality()).rtt_ms is not None and report[p].loss_pct is not None
                for p in ("tablet", "family")
            )

        first = await log.wait(measured)
        for party in ("tablet", "family"):  # loopback (a busy machine may add some jitter)
            assert first[party].level in ("good", "fair"), first
            assert first[party].rtt_ms is not None and first[party].rtt_ms < 100
            assert first[party].loss_pct is not None and first[party].loss_pct < 2
        stats = room.stats()["quality"]
        assert set(stats) == {"tablet", "family"}
        assert set(stats["tablet"]) == {"level", "rtt_ms", "jitter_ms", "loss_pct"}

        for kind in ("audio", "video"):  # a quarter of the family's packets never arrive
            publisher = room.publisher("family", kind)
            assert publisher is not None
            drop_every(publisher.receiver, 4)
        lossy = await log.wait(lambda report: report["family"].level == "poor")
        assert lossy["family"].loss_pct is not None and lossy["family"].loss_pct > 8
        # The tablet receives the family's gaps through us: not its own network's fault.
        assert lossy["tablet"].loss_pct is not None and lossy["tablet"].loss_pct < 2, lossy
        assert lossy["tablet"].level != "poor", lossy

        metrics = WorkerMetrics("w1", {"Q1": room}, {}, lag_s=lambda: 0.0, load=lambda: 0.0)
        metrics.sample()
        families = {
            f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())
        }
        by_level = {
            s.labels["quality"]: s.value
            for s in families["visitation_sfu_parties_by_quality"].samples
        }
        assert by_level["poor"] == 1 and sum(by_level.values()) == 2
        rtt = families["visitation_sfu_party_rtt_seconds"].samples
        assert any(s.name.endswith("_count") and s.value > 0 for s in rtt)
    finally:
        await close_all(tablet, family)
        await room.close()
