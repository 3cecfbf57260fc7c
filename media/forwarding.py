"""Fan-out of one encoded publisher track to many subscribers, with PLI relay.

``EncodedPublisher`` pumps :class:`av.Packet` frames from a source track (e.g. a
:class:`media.passthrough.PassthroughReceiver`'s track) into any number of
:class:`SubscriberTrack` objects. Each subscriber is a MediaStreamTrack that an
aiortc sender (a :class:`media.passthrough.PassthroughSender`) packetizes as is.

* Bounded per-subscriber queues: dispatch never awaits, so a slow subscriber can
  only hurt itself. Audio drops the oldest frame; video drops its backlog and
  resynchronises at the next keyframe (dropping single P-frames would corrupt
  every following frame until then) and asks upstream for one.
* Keyframe gating: a new video subscriber receives nothing until a keyframe and
  triggers a keyframe request upstream.
* PLI relay: a subscriber's remote decoder sends PLI -> PassthroughSender calls
  ``SubscriberTrack.request_keyframe()`` -> ``EncodedPublisher.request_keyframe()``
  -> :class:`PliThrottle` -> publisher receiver's RTCP PLI. At most one PLI per
  ``pli_interval`` per publisher track; requests made during the quiet period are
  coalesced into one trailing PLI, dropped if a keyframe arrives meanwhile.
* Added delay: a publisher given a :class:`media.latency.DelayHistogram` records, for every
  frame a subscriber hands to its sender, the time since the frame was complete in the
  pass-through receiver (``packet.opaque``, a ``time.monotonic()`` stamp).
* Recorder hook: ``subscribe()`` (keyframe-aligned, queued) or ``add_tap()``
  (synchronous callback for every frame).
* Re-publishing: an aiortc sender's RTP loop exits for good once its track raises
  MediaStreamError, so a subscriber made with ``persistent=True`` idles when its
  publisher ends and can be ``retarget()``-ed to a new publisher (party reconnects)
  with timestamps rebased to stay monotonic; the sender never notices.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from media.latency import DelayHistogram

logger = logging.getLogger(__name__)

DEFAULT_PLI_INTERVAL = 0.5
DEFAULT_VIDEO_QUEUE = 60  # ~2 s at 30 fps
DEFAULT_AUDIO_QUEUE = 50  # 1 s of 20 ms Opus frames

PacketTap = Callable[["av.Packet[Any]"], None]


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
            logger.exception("keyframe request failed")
            return
        if result is False:
            return  # nothing sent (e.g. publisher SSRC unknown yet): don't throttle
        self._last = now
        self.sent += 1


class SubscriberTrack(MediaStreamTrack):
    """One subscriber's view of a publisher: a bounded queue of encoded frames."""

    def __init__(
        self,
        publisher: EncodedPublisher,
        maxsize: int,
        wait_for_keyframe: bool,
        name: str,
        persistent: bool = False,
    ) -> None:
        super().__init__()
        self.kind = publisher.kind
        self.name = name
        self._publisher = publisher
        self._queue: collections.deque[av.Packet[Any]] = collections.deque()
        self._maxsize = maxsize
        self._wakeup = asyncio.Event()
        self._ended = False
        self._persistent = persistent
        self._gate = wait_for_keyframe
        self._last_pts: int | None = None
        self._pts_offset = 0
        self._rebase = False
        self.waiting_for_keyframe = wait_for_keyframe
        self.forwarded = 0
        self.dropped = 0
        self.skipped = 0  # frames discarded while waiting for a keyframe
        self.keyframe_requests = 0
        self.subscribed_at = time.monotonic()
        self.first_keyframe_at: float | None = None
        self.first_frame = asyncio.Event()

    @property
    def publisher(self) -> EncodedPublisher:
        return self._publisher

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _offer(self, packet: av.Packet[Any]) -> None:
        """Called synchronously by the publisher for each frame; never blocks."""
        if self._ended:
            return
        if self.waiting_for_keyframe:
            if not packet.is_keyframe:
                self.skipped += 1
                return
            self.waiting_for_keyframe = False
            if self.first_keyframe_at is None:
                self.first_keyframe_at = time.monotonic()
        if len(self._queue) >= self._maxsize:
            if self.kind == "video":
                self.dropped += len(self._queue)
                self._queue.clear()
                if not packet.is_keyframe:
                    self.dropped += 1
                    self.waiting_for_keyframe = True
                    self._publisher.request_keyframe()
                    return
            else:
                self._queue.popleft()
                self.dropped += 1
        self._queue.append(packet)
        self._wakeup.set()

    def _end(self) -> None:
        self._ended = True
        self._wakeup.set()

    def _publisher_ended(self) -> None:
        if not self._persistent:
            self._end()

    def retarget(self, publisher: EncodedPublisher) -> None:
        """Follow another publisher of the same kind; the aiortc sender is untouched."""
        if publisher.kind != self.kind:
            raise ValueError(f"cannot retarget a {self.kind} subscriber to {publisher.kind}")
        self._publisher._unsubscribe(self)
        self._publisher = publisher
        self._queue.clear()
        self._rebase = True
        self.waiting_for_keyframe = self._gate
        publisher._attach(self)

    def _rebased(self, packet: av.Packet[Any]) -> av.Packet[Any]:
        if packet.pts is None:
            return packet
        if self._rebase:
            self._rebase = False
            if self._last_pts is not None:
                step = max(1, round(0.02 / packet.time_base))  # keep pts strictly increasing
                self._pts_offset = self._last_pts + step - packet.pts
        if self._pts_offset:
            copy = av.Packet(bytes(packet))  # packets are shared: never mutate them
            copy.pts = copy.dts = packet.pts + self._pts_offset
            copy.time_base, copy.is_keyframe = packet.time_base, packet.is_keyframe
            packet = copy
        self._last_pts = packet.pts
        return packet

    async def recv(self) -> av.Packet[Any]:
        while not self._queue:
            if self._ended or self.readyState != "live":
                raise MediaStreamError
            self._wakeup.clear()
            await self._wakeup.wait()
        packet = self._queue.popleft()
        delay = self._publisher.delay
        if delay is not None and isinstance(stamp := packet.opaque, float):
            delay.record(time.monotonic() - stamp)
        packet = self._rebased(packet)
        self.forwarded += 1
        if not self.first_frame.is_set():
            self.first_frame.set()
        return packet

    def request_keyframe(self) -> None:
        """PLI from this subscriber's remote decoder; relayed upstream (throttled)."""
        self.keyframe_requests += 1
        self._publisher.request_keyframe()

    def stop(self) -> None:
        super().stop()
        self._publisher._unsubscribe(self)
        self._end()


class EncodedPublisher:
    """One encoded source track fanned out to subscribers; see module docstring."""

    def __init__(
        self,
        source: MediaStreamTrack,
        *,
        request_keyframe: Callable[[], object] | None = None,
        pli_interval: float = DEFAULT_PLI_INTERVAL,
        name: str = "",
        delay: DelayHistogram | None = None,
    ) -> None:
        self.source = source
        self.delay = delay
        self.kind = source.kind
        self.name = name or f"{source.kind}:{source.id}"
        self._subscribers: set[SubscriberTrack] = set()
        self._taps: list[PacketTap] = []
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._pli = PliThrottle(request_keyframe or (lambda: None), pli_interval)
        self._can_request = request_keyframe is not None and self.kind == "video"
        self.packets = 0
        self.bytes = 0
        self.keyframes = 0
        self.last_keyframe_at: float | None = None

    @property
    def subscribers(self) -> frozenset[SubscriberTrack]:
        return frozenset(self._subscribers)

    @property
    def pli_throttle(self) -> PliThrottle:
        return self._pli

    @property
    def ended(self) -> bool:
        return self._ended

    def start(self) -> EncodedPublisher:
        if self._task is None and not self._ended:
            self._task = asyncio.ensure_future(self._pump())
        return self

    def subscribe(
        self,
        *,
        maxsize: int | None = None,
        wait_for_keyframe: bool = True,
        name: str = "",
        persistent: bool = False,
    ) -> SubscriberTrack:
        """A new subscriber track; video starts at the next keyframe (requested now)."""
        if maxsize is None:
            maxsize = DEFAULT_VIDEO_QUEUE if self.kind == "video" else DEFAULT_AUDIO_QUEUE
        gated = wait_for_keyframe and self.kind == "video"
        track = SubscriberTrack(self, maxsize, gated, name, persistent)
        self._attach(track)
        return track

    def _attach(self, track: SubscriberTrack) -> None:
        if self._ended:
            track._publisher_ended()
            return
        self._subscribers.add(track)
        self.start()
        if track.waiting_for_keyframe:
            self.request_keyframe()

    def add_tap(self, tap: PacketTap) -> Callable[[], None]:
        """Call ``tap(packet)`` synchronously for every frame; returns a remover."""
        self._taps.append(tap)
        self.start()

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._taps.remove(tap)

        return remove

    def request_keyframe(self) -> None:
        if self._can_request and not self._ended:
            self._pli.request()

    def _unsubscribe(self, track: SubscriberTrack) -> None:
        self._subscribers.discard(track)

    def _dispatch(self, packet: av.Packet[Any]) -> None:
        self.packets += 1
        self.bytes += packet.size
        if packet.is_keyframe and self.kind == "video":
            self.keyframes += 1
            self.last_keyframe_at = time.monotonic()
            self._pli.keyframe_seen()
        for subscriber in tuple(self._subscribers):
            subscriber._offer(packet)
        for tap in tuple(self._taps):
            try:
                tap(packet)
            except Exception:
                logger.exception("packet tap failed on %s", self.name)

    async def _pump(self) -> None:
        try:
            while True:
                frame = await self.source.recv()
                if not isinstance(frame, av.Packet):
                    raise TypeError(f"{self.name}: expected encoded av.Packet, got {type(frame)}")
                self._dispatch(frame)
        except MediaStreamError:
            pass
        finally:
            self._finish()

    def _finish(self) -> None:
        self._ended = True
        self._pli.close()
        for subscriber in tuple(self._subscribers):
            subscriber._publisher_ended()
        self._subscribers.clear()

    async def stop(self) -> None:
        """Stop pumping and end every subscriber (does not stop the source track)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._finish()
