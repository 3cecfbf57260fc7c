"""Fan-out of one publisher's RTP packets to many subscribers, with gating and PLI relay.

A :class:`Publisher` wraps one :class:`rtpkit.endpoints.ForwardingReceiver` (a party's audio or
video). Every packet it receives is handed, synchronously and in arrival order, to each
:class:`Subscription` (one subscriber's :class:`rtpkit.endpoints.ForwardingSender`, which
rewrites and sends it at once) and to each tap (the recorder). Nothing is queued, decoded or
re-packetized, so the added delay is the time to rewrite, protect and ``sendto``.

* Key-frame gating: a new video subscription forwards nothing until the first packet of a key
  frame (VP8 payload descriptor), and asks the publisher for one.
* PLI relay: a subscriber's PLI/FIR -> :meth:`Publisher.request_keyframe` ->
  :class:`PliThrottle` -> the publisher's receiver sends RTCP PLI. At most one PLI per
  ``pli_interval`` per publisher; requests made meanwhile are coalesced into one trailing PLI,
  dropped if a key frame arrives first.
* Re-publishing: a party that re-offers gets a new publisher; :meth:`Subscription.retarget`
  moves a subscription to it and the sender continues its SSRC, sequence numbers and
  timestamps (no gap a decoder would take for loss, no timestamp jump backwards).
* Sender reports: each subscriber's sender maps its stream onto the publisher's latest
  sender report, so a browser keeps the two parties' audio and video in sync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from rtpkit.endpoints import ForwardingReceiver, ForwardingSender
from rtpkit.latency import DelayHistogram
from rtpkit.rtp import RtpIn

log = logging.getLogger(__name__)

DEFAULT_PLI_INTERVAL = 0.5

#: ``tap(packet, keyframe_start, arrival)``: called for every packet, in the event loop.
PacketTap = Callable[[RtpIn, bool, float], None]


class PliThrottle:
    """Rate-limits keyframe requests to one per ``interval`` seconds (trailing edge).

    ``send()`` returning ``False`` means nothing was sent; that does not start a
    quiet period.
    """

    def __init__(
        self,
        send: Callable[[], object],
        interval: float = DEFAULT_PLI_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._wanted = False
        self._timer: asyncio.TimerHandle | None = None
        self.requested = 0
        self.sent = 0

    def request(self) -> None:
        self.requested += 1
        self._wanted = True
        now = self._clock()
        if self._last is None or now - self._last >= self._interval:
            self._fire(now)
        elif self._timer is None:
            delay = self._last + self._interval - now
            self._timer = asyncio.get_running_loop().call_later(delay, self._deferred)

    def keyframe_seen(self) -> None:
        """Every pending request is satisfied by a keyframe that went through."""
        self._wanted = False

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deferred(self) -> None:
        self._timer = None
        if self._wanted:
            self._fire(self._clock())

    def _fire(self, now: float) -> None:
        try:
            result = self._send()
        except Exception:
            log.exception("keyframe request failed")
            return
        if result is False:
            return  # nothing sent (e.g. publisher SSRC unknown yet): don't throttle
        self._last = now
        self.sent += 1


class Subscription:
    """One subscriber's sender fed by a publisher (re-targetable)."""

    __slots__ = ("_publisher", "gated", "name", "sender", "skipped", "waiting_for_keyframe")

    def __init__(self, publisher: Publisher, sender: ForwardingSender, name: str) -> None:
        self._publisher = publisher
        self.sender = sender
        self.name = name
        self.gated = publisher.kind == "video"
        self.waiting_for_keyframe = self.gated
        self.skipped = 0  # packets not forwarded while waiting for a key frame
        sender.on_keyframe_request = self.request_keyframe
        sender.on_ready = self._sender_ready
        sender.clock_source = self._clock_source
        sender.delay = publisher.delay

    @property
    def publisher(self) -> Publisher:
        return self._publisher

    @property
    def forwarded(self) -> int:
        return int(self.sender.packets_sent)

    def _clock_source(self) -> tuple[int, int, float] | None:
        return self._publisher.receiver.last_sr

    def _sender_ready(self) -> None:
        if self.waiting_for_keyframe:  # a key frame sent before DTLS was up never arrived
            self._publisher.request_keyframe()

    def request_keyframe(self) -> None:
        """PLI/FIR from this subscriber's decoder: relayed upstream (throttled)."""
        self._publisher.request_keyframe()

    def retarget(self, publisher: Publisher) -> None:
        """Follow another publisher of the same kind; the stream continues seamlessly."""
        if publisher.kind != self._publisher.kind:
            raise ValueError(f"cannot retarget a {self._publisher.kind} subscription")
        self._publisher._detach(self)
        self._publisher = publisher
        self.sender.restart()
        self.sender.delay = publisher.delay
        self.waiting_for_keyframe = self.gated
        publisher._attach(self)

    def close(self) -> None:
        self._publisher._detach(self)


class Publisher:
    """One received track fanned out to subscriptions and taps; see the module docstring."""

    def __init__(
        self,
        receiver: ForwardingReceiver,
        *,
        kind: str,
        name: str = "",
        pli_interval: float = DEFAULT_PLI_INTERVAL,
        delay: DelayHistogram | None = None,
    ) -> None:
        self.receiver = receiver
        self.kind = kind
        self.name = name or kind
        self.delay = delay  # shared by the senders it feeds: their added delay
        self._subs: tuple[Subscription, ...] = ()
        self._taps: tuple[PacketTap, ...] = ()
        self._pli = PliThrottle(receiver.request_keyframe, pli_interval)
        self._pli_interval = pli_interval
        self._asked_at = 0.0
        self._ended = False
        self.packets = 0
        self.bytes = 0
        self.frames = 0  # marker bits (video) / packets (audio)
        self.keyframes = 0
        self.first_packet_at: float | None = None
        self.last_packet_at: float | None = None
        self.last_keyframe_at: float | None = None
        self.on_first_packet: Callable[[Publisher], None] | None = None
        receiver.on_packet = self._on_packet

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return self._subs

    @property
    def pli_throttle(self) -> PliThrottle:
        return self._pli

    @property
    def ended(self) -> bool:
        return self._ended

    def subscribe(self, sender: ForwardingSender, *, name: str = "") -> Subscription:
        """Feed ``sender`` from now on (video from the next key frame, requested now)."""
        subscription = Subscription(self, sender, name)
        self._attach(subscription)
        return subscription

    def _attach(self, subscription: Subscription) -> None:
        self._subs = (*self._subs, subscription)
        if subscription.waiting_for_keyframe:
            self.request_keyframe()

    def _detach(self, subscription: Subscription) -> None:
        self._subs = tuple(s for s in self._subs if s is not subscription)

    def add_tap(self, tap: PacketTap) -> Callable[[], None]:
        """Call ``tap(packet, keyframe_start, arrival)`` for every packet; returns a remover."""
        self._taps = (*self._taps, tap)

        def remove() -> None:
            self._taps = tuple(t for t in self._taps if t is not tap)

        return remove

    def request_keyframe(self) -> None:
        if self.kind == "video" and not self._ended:
            self._pli.request()

    def _on_packet(self, packet: RtpIn, keyframe_start: bool, arrival: float) -> None:
        if self._ended:
            return
        self.packets += 1
        self.bytes += len(packet.payload)
        self.last_packet_at = arrival
        if self.first_packet_at is None:
            self.first_packet_at = arrival
            if self.on_first_packet is not None:
                self.on_first_packet(self)
        if packet.marker or self.kind == "audio":
            self.frames += 1
        if keyframe_start:
            self.keyframes += 1
            self.last_keyframe_at = arrival
            self._pli.keyframe_seen()
        waiting = False
        for sub in self._subs:
            if not sub.waiting_for_keyframe:
                sub.sender.forward(packet, arrival)
            elif keyframe_start and sub.sender.forward(packet, arrival):
                sub.waiting_for_keyframe = False  # opens only once it really went out
            else:
                sub.skipped += 1
                waiting = True
        if waiting and arrival - self._asked_at >= self._pli_interval:
            # Someone still waits for a key frame: ask again (a PLI can be lost too).
            self._asked_at = arrival
            self.request_keyframe()
        for tap in self._taps:
            try:
                tap(packet, keyframe_start, arrival)
            except Exception:
                log.exception("packet tap failed on %s", self.name)

    def stop(self) -> None:
        """Stop forwarding (the receiver is closed with its peer connection)."""
        self._ended = True
        self._pli.close()
        self.receiver.on_packet = None
        self._subs = ()
