"""Sending a whole frame in one system call, for load generators: UDP GSO.

A VP8 frame is packetized into payloads of one size but the last
(:func:`rtpkit.rtp.vp8_payloads`); with the same header extensions and SRTP trailer, its
protected packets have one size but the last too. That is exactly what Linux's UDP generic
segmentation offload (``UDP_SEGMENT``, Linux 4.18+) takes: one ``sendmsg`` with the packets
back to back and the segment size, which the kernel splits into datagrams (on loopback it
even carries them as one buffer to the receiving socket). Python's standard library has no
``sendmmsg``, but ``socket.sendmsg`` with that control message is the same batching for one
frame, without a compiled extension.

:class:`BatchSender` is a :class:`rtpkit.endpoints.ForwardingSender` whose ``send_frame``
does that (SRTP protection per packet as before; NACK history, counters and sequence numbers
as :meth:`ForwardingSender._emit` keeps them). It sends through a duplicate of the ICE
socket's descriptor (uvloop's transport exposes none it would let us call ``sendmsg`` on).
Anything else (one-packet frames, a TURN relay, ICE-TCP, a kernel without GSO, a full socket
buffer) goes packet by packet through :func:`rtpkit.fastpath.send_rtp`'s way. Opt-in: only
the benchmark's clients use it (:mod:`client.light_peer`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import time
from typing import Any, Final

from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from pylibsrtp import Error as SrtpError

from rtpkit import fastpath
from rtpkit.endpoints import HISTORY_SIZE, ForwardingSender
from rtpkit.rtp import rtp_header

log = logging.getLogger(__name__)

UDP_SEGMENT: Final = getattr(socket, "UDP_SEGMENT", 103)  # linux/udp.h
MAX_SEGMENTS: Final = 32  # the kernel takes 64 (UDP_MAX_SEGMENTS)
MAX_BATCH_BYTES: Final = 60_000  # one GSO buffer stays under the 64 KiB datagram limit
_GSO_ATTR: Final = "_visitation_gso"
_gso_works = hasattr(socket.socket, "sendmsg")


def _gso_socket(dtls: RTCDtlsTransport, transport: Any) -> socket.socket | None:
    """A socket on ``transport``'s descriptor for ``sendmsg`` (cached on ``dtls``)."""
    cached: tuple[Any, socket.socket] | None = getattr(dtls, _GSO_ATTR, None)
    if cached is not None:
        if cached[0] is transport:
            return cached[1]
        close_gso(dtls)
    try:
        fd = transport.get_extra_info("socket").fileno()
        sock = socket.socket(fileno=os.dup(fd))  # shares the non-blocking file description
    except (AttributeError, OSError) as exc:
        log.debug("no GSO socket: %s", exc)
        return None
    setattr(dtls, _GSO_ATTR, (transport, sock))
    return sock


def close_gso(dtls: RTCDtlsTransport) -> None:
    """Close ``dtls``'s duplicate socket, if any (the ICE socket itself stays as it is)."""
    cached: tuple[Any, socket.socket] | None = getattr(dtls, _GSO_ATTR, None)
    if cached is not None:
        setattr(dtls, _GSO_ATTR, None)
        cached[1].close()


def _groups(packets: list[bytes]) -> list[list[bytes]]:
    """Runs of packets that one GSO send may carry: one size, the last maybe shorter."""
    groups: list[list[bytes]] = []
    group: list[bytes] = []
    size = total = 0
    last_short = False
    for packet in packets:
        n = len(packet)
        if group and (
            n > size or len(group) >= MAX_SEGMENTS or total + n > MAX_BATCH_BYTES or last_short
        ):
            groups.append(group)
            group = []
        if not group:
            size, total = n, 0
        group.append(packet)
        total += n
        last_short = n < size
    if group:
        groups.append(group)
    return groups


def send_batch(dtls: RTCDtlsTransport, packets: list[bytes]) -> int:
    """Protect and send plain RTP ``packets`` in as few system calls as the path allows;
    the number sent (all or none per group)."""
    global _gso_works
    tx = fastpath._srtp(dtls, "_tx_srtp")
    if tx is None or dtls._state is not State.CONNECTED:
        return 0
    try:
        protected = [tx.protect(p) for p in packets]
    except (SrtpError, ValueError):
        return 0
    if len(protected) == 1:  # audio, small video frames: nothing to batch
        return int(fastpath._send(dtls, protected[0]))
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        return 0
    transport = fastpath.direct_udp(pair)
    sock = None
    if _gso_works and transport is not None and not transport.is_closing():
        sock = _gso_socket(dtls, transport)
    if sock is None:
        return sum(fastpath._send(dtls, p) for p in protected)
    sent = 0
    for group in _groups(protected):
        if len(group) == 1:
            sent += fastpath._send(dtls, group[0])
            continue
        segment = [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("=H", len(group[0])))]
        try:
            sock.sendmsg(group, segment, 0, pair.remote_addr)
            sent += len(group)
        except BlockingIOError:  # socket buffer full: let the transport queue them
            sent += sum(fastpath._send(dtls, p) for p in group)
        except OSError as exc:  # no GSO here (old kernel, odd device): never again
            log.info("UDP GSO unavailable (%s); sending packet by packet", exc)
            _gso_works = False
            sent += sum(fastpath._send(dtls, p) for p in group)
    return sent


class BatchSender(ForwardingSender):
    """A :class:`ForwardingSender` whose locally packetized frames go out batched."""

    def send_frame(self, payloads: list[bytes], timestamp: int) -> bool:
        if not self._ready:
            return False
        now = time.monotonic()
        ts = timestamp & 0xFFFFFFFF
        ext = self._ext.build(now)
        pt, ssrc, seq = self._pt, self._ssrc, self._seq
        history = self._history if self._keep_history else None
        last = len(payloads) - 1
        packets = []
        for i, payload in enumerate(payloads):
            seq = (seq + 1) & 0xFFFF
            marker = i == last
            packets.append(rtp_header(pt, marker, seq, ts, ssrc, ext) + payload)
            if history is not None:
                history[seq % HISTORY_SIZE] = (seq, ts, marker, payload)
        self._seq, self._ts, self._sent_at = seq, ts, now
        sent = send_batch(self._dtls, packets)
        if sent:
            self.packets_sent += sent
            self.octets_sent += sum(len(p) for p in payloads[:sent])
        return True

    async def stop(self) -> None:
        await super().stop()
        with contextlib.suppress(OSError):
            close_gso(self._dtls)


def enable_batch_sender(sender: ForwardingSender) -> BatchSender:
    """Turn a forwarding sender (started or not) into a :class:`BatchSender`."""
    sender.__class__ = BatchSender
    assert isinstance(sender, BatchSender)
    return sender
