"""One call on an SFU worker: two parties, any number of silent monitors, no transcoding.

Each party (tablet, family) has one :class:`PassthroughPeerConnection` whose received
audio/video become :class:`Publisher` objects (RTP packets, see :mod:`media.forwarding`).
Every outgoing sender in the room is a *slot* fed by one party's publisher of one kind: the
other party's senders and each monitor's four senders (first audio/video pair = tablet,
second = family). A slot's subscription is retargeted when a party re-offers (reconnects), and
its sender continues the same SSRC, sequence numbers and timestamps. Monitors only add slots:
the parties' peer connections never change, so monitors are invisible to them.

A watchdog reports ``media_lost`` for a party whose media has been absent for
``media_timeout_s`` (counted from its offer if it never sent anything); ``connected`` is
reported once RTP has arrived from both parties (``closed`` is the worker's); ``quality`` when
a party's connection quality changes level, and every few seconds (:mod:`media.quality`).
Offers are checked and planned by :mod:`media.offers` before aiortc sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)

from core.tasks import Periodic
from media.control import (
    DEFAULT_MEDIA_TIMEOUT_S,
    INVALID_SDP,
    INVALID_STATE,
    PARTIES,
    PRIVILEGED,
    ControlError,
    EventType,
    Party,
)
from media.forwarding import Publisher, Subscription
from media.ice import IcePorts
from media.offers import OfferError, OfferPlan, OfferRole, plan_offer
from media.quality import RoomQuality
from rtpkit.endpoints import ForwardingSender
from rtpkit.latency import DelayHistogram
from rtpkit.passthrough import PassthroughPeerConnection, forwarding_ends

log = logging.getLogger(__name__)

RoomEventSink = Callable[[EventType, Party | None], None]
PublisherListener = Callable[[Party, Publisher], None]


@dataclass(eq=False)
class _Slot:
    """One outgoing sender fed by ``source``'s publisher of ``kind``."""

    sender: ForwardingSender
    source: Party
    kind: str
    name: str
    subscription: Subscription | None = None


@dataclass(eq=False)
class _Leg:
    """A party's (or monitor's) peer connection and the slots its senders feed."""

    pc: RTCPeerConnection
    slots: list[_Slot]
    offered_at: float  # by the room's clock
    publishers: dict[str, Publisher] = field(default_factory=dict)
    lost: bool = False
    lost_reported_at: float = 0.0

    @property
    def last_media_at(self) -> float | None:
        stamps = [p.last_packet_at for p in self.publishers.values() if p.last_packet_at]
        return max(stamps) if stamps else None


class Room:
    def __init__(
        self,
        call_id: str,
        on_event: RoomEventSink,
        *,
        privileged: bool = False,
        media_timeout_s: float = DEFAULT_MEDIA_TIMEOUT_S,
        ice_servers: list[RTCIceServer] | None = None,
        network: IcePorts | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: the monotonic time the media timeout is judged by (packets are stamped
        with ``time.monotonic``; a test moves this one on instead of waiting the timeout out)."""
        self.call_id = call_id
        self._clock = clock
        self._network = network  # port range and announced address (media.ice)
        self.privileged = privileged
        self.media_timeout_s = media_timeout_s
        self._on_event = on_event
        # The bundle policy is each offer's (media.offers.OfferPlan.configuration).
        self._config = RTCConfiguration(iceServers=ice_servers or [])
        self._parties: dict[Party, _Leg] = {}
        self._monitors: dict[str, _Leg] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._listeners: list[PublisherListener] = []
        self._watchdog = Periodic(
            f"room-watchdog-{call_id}",
            self._check_media,
            interval_s=min(0.5, media_timeout_s / 5),
            delay_first=True,
        )
        self.connected = False
        self.closed = False
        self.created_at = time.time()
        self.delay = DelayHistogram()  # added forwarding delay of every frame sent out
        self.quality = RoomQuality(lambda: self._emit("quality", None))  # sampled by the watchdog

    def start(self) -> Room:
        self._watchdog.start()
        return self

    # ---------------------------------------------------------------- publishers

    def publisher(self, party: Party, kind: str) -> Publisher | None:
        """The party's current publisher of ``kind`` (e.g. for a recorder), if it offered."""
        leg = self._parties.get(party)
        return leg.publishers.get(kind) if leg else None

    def add_publisher_listener(self, listener: PublisherListener) -> None:
        """Called with every publisher created from now on (a party re-offering makes new ones).

        A recorder adds a tap to each (see :class:`recorder.RecorderTap`).
        """
        self._listeners.append(listener)

    @property
    def watchers(self) -> list[str]:
        return sorted(self._monitors)

    # ---------------------------------------------------------------- negotiation

    async def offer(self, party: Party, sdp: str) -> str:
        """A party's offer (1 audio + 1 video, sendrecv); returns the answer SDP."""
        async with self._lock(party):
            plan = self._plan(sdp, "party")
            pc = PassthroughPeerConnection(plan.configuration(self._config), self._network)
            try:
                audio, video = await self._accept_offer(pc, plan, "sendrecv")
                answer = await self._answer(pc, plan)
            except BaseException:
                await _close_pc(pc)
                raise
            other: Party = "family" if party == "tablet" else "tablet"
            slots: list[_Slot] = []
            leg = _Leg(pc, slots, offered_at=self._clock())
            for t in (*audio, *video):
                receiver, sender = forwarding_ends(t)
                slots.append(_Slot(sender, other, t.kind, f"{other}-{t.kind}->{party}"))
                publisher = Publisher(
                    receiver, kind=t.kind, name=f"{self.call_id}:{party}:{t.kind}", delay=self.delay
                )
                publisher.on_first_packet = self._media_seen
                leg.publishers[t.kind] = publisher
            old = self._parties.get(party)
            self._parties[party] = leg
            self._wire()
            for publisher in leg.publishers.values():
                for listener in self._listeners:
                    listener(party, publisher)
            if old is not None:
                log.info("call %s: %s re-offered; replacing its connection", self.call_id, party)
                await self._close_leg(old)
            return answer

    async def watch(self, watcher_id: str, sdp: str) -> str:
        """A monitor's offer (2 audio + 2 video, recvonly); returns the answer SDP."""
        if self.privileged:
            raise ControlError(PRIVILEGED, "privileged calls cannot be monitored")
        async with self._lock(f"watch:{watcher_id}"):
            plan = self._plan(sdp, "monitor")
            pc = PassthroughPeerConnection(plan.configuration(self._config), self._network)
            try:
                audio, video = await self._accept_offer(pc, plan, "sendonly")
                slots = [
                    _Slot(
                        forwarding_ends(t)[1],
                        source,
                        t.kind,
                        f"{source}-{t.kind}->monitor:{watcher_id}",
                    )
                    for pair in (audio, video)
                    for t, source in zip(pair, PARTIES, strict=True)
                ]
                answer = await self._answer(pc, plan)
            except BaseException:
                await _close_pc(pc)
                raise
            old = self._monitors.get(watcher_id)
            monitor = _Leg(pc, slots, offered_at=self._clock())
            self._monitors[watcher_id] = monitor
            self._wire()

            @pc.on("connectionstatechange")
            async def _gone() -> None:
                if pc.connectionState in ("failed", "closed"):
                    await self._drop_monitor(watcher_id, monitor)

            if old is not None:
                await self._close_leg(old)
            return answer

    async def privatize(self) -> list[str]:
        """The call turned privileged: no monitor from now on, and every monitor's connection
        closed; returns the watchers dropped."""
        self.privileged = True
        dropped = sorted(self._monitors)
        for watcher_id in dropped:
            await self.unwatch(watcher_id)
        return dropped

    async def unwatch(self, watcher_id: str) -> bool:
        monitor = self._monitors.get(watcher_id)
        if monitor is None:
            return False
        await self._drop_monitor(watcher_id, monitor)
        return True

    async def _drop_monitor(self, watcher_id: str, monitor: _Leg) -> None:
        if self._monitors.get(watcher_id) is monitor:
            del self._monitors[watcher_id]
        await self._close_leg(monitor)

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _check_open(self) -> None:
        if self.closed:
            raise ControlError(INVALID_STATE, f"call {self.call_id} is closed")

    def _plan(self, sdp: str, role: OfferRole) -> OfferPlan:
        """The offer checked for ``role`` (see :mod:`media.offers`); ``invalid_sdp`` if not."""
        self._check_open()
        try:
            return plan_offer(sdp, role)
        except OfferError as exc:
            raise ControlError(INVALID_SDP, str(exc)) from exc

    async def _accept_offer(
        self, pc: RTCPeerConnection, plan: OfferPlan, direction: str
    ) -> tuple[list[Any], list[Any]]:
        """setRemoteDescription(offer); returns the (audio, video) transceivers in m-line order."""
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=plan.sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError & co. for what it cannot take
            raise ControlError(INVALID_SDP, f"unusable offer: {exc}") from exc
        transceivers = pc.getTransceivers()
        if [t.mid for t in transceivers] != list(plan.mids):  # plan_offer checked the shape
            raise ControlError(INVALID_SDP, f"unusable offer: m-lines {plan.mids}")
        for t in transceivers:
            t.direction = direction
        audio = [t for t in transceivers if t.kind == "audio"]
        video = [t for t in transceivers if t.kind == "video"]
        return audio, video

    async def _answer(self, pc: RTCPeerConnection, plan: OfferPlan) -> str:
        answer = await pc.createAnswer()
        await pc.setLocalDescription(
            RTCSessionDescription(sdp=plan.finish_answer(answer.sdp), type="answer")
        )
        self._check_open()  # closed while we negotiated
        return str(pc.localDescription.sdp)

    def _legs(self) -> list[_Leg]:
        return [*self._parties.values(), *self._monitors.values()]

    def _wire(self) -> None:
        """Feed every slot from its source's current publisher (subscribe or retarget)."""
        for leg in self._legs():
            for slot in leg.slots:
                publisher = self.publisher(slot.source, slot.kind)
                if publisher is None:
                    continue
                if slot.subscription is None:
                    slot.subscription = publisher.subscribe(slot.sender, name=slot.name)
                elif slot.subscription.publisher is not publisher:
                    slot.subscription.retarget(publisher)

    # ---------------------------------------------------------------- media watchdog

    def _media_seen(self, _publisher: Publisher) -> None:
        if not self.connected and all(
            p in self._parties and self._parties[p].last_media_at is not None for p in PARTIES
        ):
            self.connected = True
            self._emit("connected", None)

    async def _check_media(self) -> None:
        now = self._clock()
        for party, leg in tuple(self._parties.items()):
            last = leg.last_media_at
            since = last if last is not None else leg.offered_at
            if now - since < self.media_timeout_s:
                leg.lost = False
                continue
            # Reported again every timeout while it lasts: one lost event must not leave a
            # dead call running (and billed) until its cap. Signaling ignores repeats.
            if not leg.lost or now - leg.lost_reported_at >= self.media_timeout_s:
                leg.lost = True
                leg.lost_reported_at = now
                log.info("call %s: no media from %s for %.1fs", self.call_id, party, now - since)
                self._emit("media_lost", party)
        self.quality.tick(self._parties, now)

    def _emit(self, event: EventType, party: Party | None) -> None:
        try:
            self._on_event(event, party)
        except Exception:
            log.exception("call %s: event sink failed on %s", self.call_id, event)

    # ---------------------------------------------------------------- teardown

    async def close(self) -> None:
        """Tear down every connection and task (idempotent)."""
        if self.closed:
            return
        self.closed = True
        await self._watchdog.stop()
        legs = self._legs()
        self._parties.clear()
        self._monitors.clear()
        await asyncio.gather(*(self._close_leg(leg) for leg in legs))

    async def _close_leg(self, leg: _Leg) -> None:
        for publisher in leg.publishers.values():
            publisher.stop()
        for slot in leg.slots:
            if slot.subscription is not None:
                slot.subscription.close()
        await _close_pc(leg.pc)

    # ---------------------------------------------------------------- stats

    def stats(self) -> dict[str, Any]:
        now = self._clock()
        parties: dict[str, Any] = {}
        for party, leg in self._parties.items():
            parties[party] = {
                "frames": {k: p.frames for k, p in leg.publishers.items()},
                "packets": {k: p.packets for k, p in leg.publishers.items()},
                "bytes": sum(p.bytes for p in leg.publishers.values()),
                "keyframes": sum(p.keyframes for p in leg.publishers.values()),
                "plis_sent": sum(p.pli_throttle.sent for p in leg.publishers.values()),
                "media_age_s": None if leg.last_media_at is None else now - leg.last_media_at,
                "connection": leg.pc.connectionState,
            }
        slots = [s for leg in self._legs() for s in leg.slots]
        return {
            "call_id": self.call_id,
            "privileged": self.privileged,
            "connected": self.connected,
            "parties": parties,
            "watchers": self.watchers,
            "forwarded": sum(s.sender.packets_sent for s in slots),
            "retransmitted": sum(s.sender.retransmitted for s in slots),
            "slots": {
                s.name: {
                    "forwarded": s.sender.packets_sent,
                    "retransmitted": s.sender.retransmitted,
                    "nacks": s.sender.nacks_received,
                    "plis": s.sender.keyframe_requests,
                    "sender_reports": s.sender.sender_reports,
                }
                for s in slots
            },
            "forwarding_delay": self.delay.snapshot(),
            "quality": self.quality.as_dict(),
        }


async def _close_pc(pc: RTCPeerConnection, timeout_s: float = 5.0) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(pc.close(), timeout_s)
