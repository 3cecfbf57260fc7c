"""Load-generator peers: the clients of :mod:`client.peer`, cheaper per packet.

:class:`LightPartyPeer` and :class:`LightMonitorPeer` are :class:`client.peer.PartyPeer` and
:class:`client.peer.MonitorPeer` (same protocol, same transceivers, same clip) whose
connection (:class:`LightPeerConnection`) receives on :mod:`rtpkit.lightpath` (counts from the
clear RTP header, unprotects one datagram in ``sample_every`` plus what the sinks need in the
clear) into :class:`client.header_sink.HeaderSink` sinks, and sends each frame in one system
call where it can (:mod:`rtpkit.batch_send`). For the benchmark only: SRTP authentication is
sampled, not checked on every packet.
"""

from __future__ import annotations

from aiortc import RTCConfiguration

from client.header_sink import HeaderSink
from client.media import ClipSource, ClipSpec, RtpSink
from client.peer import MonitorPeer, PartyPeer, rtc_config
from rtpkit.batch_send import enable_batch_sender
from rtpkit.lightpath import (
    DEFAULT_SAMPLE_EVERY,
    LightReceiver,
    LightStats,
    enable_light_receiver,
    install_light,
    light_stats,
)
from rtpkit.passthrough import PassthroughPeerConnection, forwarding_ends
from rtpkit.rtp import MEDIA_KINDS


class LightPeerConnection(PassthroughPeerConnection):
    """A passthrough connection on the light receive path with batched frame sends; each
    transceiver's sink is handed in with :meth:`add_light_transceiver`."""

    def __init__(
        self,
        configuration: RTCConfiguration | None = None,
        *,
        sample_every: int = DEFAULT_SAMPLE_EVERY,
    ) -> None:
        super().__init__(configuration)
        self.sample_every = sample_every
        self._header_sinks: list[HeaderSink] = []

    def add_light_transceiver(self, kind: str, direction: str, sink: HeaderSink) -> None:
        transceiver = self.addTransceiver(kind, direction=direction)
        self._header_sinks.append(sink)
        self._light(transceiver, sink)

    def _light(self, transceiver: object, sink: HeaderSink) -> None:
        install_light(transceiver.receiver.transport, self.sample_every)  # type: ignore[attr-defined]
        receiver, sender = forwarding_ends(transceiver)  # type: ignore[arg-type]
        if not isinstance(receiver, LightReceiver):
            enable_light_receiver(receiver, sink)
        receiver.on_packet = sink.on_packet
        enable_batch_sender(sender)

    def _install(self) -> None:
        for transceiver, sink in zip(self.getTransceivers(), self._header_sinks, strict=True):
            self._light(transceiver, sink)

    def light_stats(self) -> LightStats | None:
        transceivers = self.getTransceivers()
        return light_stats(transceivers[0].receiver.transport) if transceivers else None


class LightPartyPeer(PartyPeer):
    """A :class:`PartyPeer` on a :class:`LightPeerConnection`."""

    def __init__(
        self,
        spec: ClipSpec,
        *,
        decode: str = "keyframes",
        sample_every: int = DEFAULT_SAMPLE_EVERY,
        sample_every_s: float = 5.0,
        config: RTCConfiguration | None = None,
    ) -> None:
        # PartyPeer's state, built here with light parts (PartyPeer.__init__ builds full ones)
        self.source = ClipSource(spec)
        self.pc = pc = LightPeerConnection(config or rtc_config(), sample_every=sample_every)
        self.decode = decode
        self.sinks: dict[str, RtpSink] = {}
        for kind in MEDIA_KINDS:
            sink = HeaderSink(kind, decode=decode, sample_every_s=sample_every_s)
            self.sinks[kind] = sink
            pc.add_light_transceiver(kind, "sendrecv", sink)
        for transceiver in pc.getTransceivers():
            _, sender = forwarding_ends(transceiver)
            self.source.stream(transceiver.kind).attach(sender)


class LightMonitorPeer(MonitorPeer):
    """A :class:`MonitorPeer` on a :class:`LightPeerConnection`."""

    def __init__(
        self,
        *,
        decode: str = "keyframes",
        sample_every: int = DEFAULT_SAMPLE_EVERY,
        sample_every_s: float = 5.0,
        config: RTCConfiguration | None = None,
    ) -> None:
        self.pc = pc = LightPeerConnection(config or rtc_config(), sample_every=sample_every)
        self.decode = decode
        self.sinks: dict[str, dict[str, RtpSink]] = {"resident": {}, "family": {}}
        for who in ("resident", "family"):
            for kind in MEDIA_KINDS:
                sink = HeaderSink(kind, decode=decode, sample_every_s=sample_every_s)
                self.sinks[who][kind] = sink
                pc.add_light_transceiver(kind, "recvonly", sink)
