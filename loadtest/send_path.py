"""The SFU's per-packet send cost, side by side: :func:`rtpkit.fastpath.send_rtp` (every
lookup per packet), :class:`rtpkit.outlet.Outlet` on its pure-Python path (kept and re-checked
by identity) and the same outlet compiled (:mod:`rtpkit._srtpsend`: header, protection and
``sendto`` in one C call).

``python -m loadtest.send_path [--packets 1000] [--rounds 15]``

Two real aiortc peer connections over loopback (ICE, DTLS, SRTP keys); the sending side's
transport then sends RTP packets (1,100-byte payloads, the SFU's mid and abs-send-time header
extensions) through each path in alternating rounds (each with new sequence numbers: SRTP
refuses repeats), timed by the thread's CPU clock while the loop does nothing else (the
receiving side reads them between rounds). Each path starts from the header fields and the
payload, as :meth:`rtpkit.endpoints.ForwardingSender._emit` has them. All include the
kernel's ``sendto`` (on loopback also the receiving socket's enqueue), so the differences are
the work above it. Prints the median and best round per path and their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from collections.abc import Callable

import uvloop
from aiortc import RTCPeerConnection

from rtpkit import fastpath
from rtpkit.outlet import COMPILED, Outlet
from rtpkit.rtp import ABS_SEND_TIME_URI, MID_URI, ExtensionWriter, rtp_header

FASTPATH = "fastpath.send_rtp"
PYTHON = "Outlet.send (Python)"
C = "Outlet.send (compiled)"


async def connected_pair() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    sender, receiver = RTCPeerConnection(), RTCPeerConnection()
    sender.addTransceiver("video", direction="sendonly")
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    deadline = time.monotonic() + 20
    while sender.connectionState != "connected":
        if time.monotonic() > deadline or sender.connectionState == "failed":
            raise RuntimeError(f"the peers did not connect: {sender.connectionState}")
        await asyncio.sleep(0.02)
    return sender, receiver


async def measure(packets: int, rounds: int) -> dict[str, list[float]]:
    sender, receiver = await connected_pair()
    try:
        dtls = sender.getTransceivers()[0].sender.transport
        fastpath.enlarge_socket_buffers(dtls)
        numbers = itertools.count(1)

        payload = b"\x90" * 1100
        ext = ExtensionWriter({MID_URI: 1, ABS_SEND_TIME_URI: 2}, "0").build(time.monotonic())

        def fresh() -> list[int]:  # new sequence numbers each round: SRTP refuses repeats
            return list(itertools.islice(numbers, packets))

        python, compiled = Outlet(dtls, compiled=False), Outlet(dtls)
        paths: dict[str, Callable[[int], bool]] = {
            FASTPATH: lambda n: fastpath.send_rtp(
                dtls, rtp_header(96, False, n & 0xFFFF, 90 * n, 0x5EED, ext) + payload
            ),
            PYTHON: lambda n: python.send(96, False, n & 0xFFFF, 90 * n, 0x5EED, ext, payload),
        }
        if COMPILED:
            paths[C] = lambda n: compiled.send(96, False, n & 0xFFFF, 90 * n, 0x5EED, ext, payload)
        results: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):
            for name, send in paths.items():
                data = fresh()
                started = time.thread_time()
                sent = sum(send(n) for n in data)
                spent = time.thread_time() - started
                if sent != packets:
                    raise RuntimeError(f"{name} sent {sent} of {packets}")
                results[name].append(spent / packets * 1e6)
                await asyncio.sleep(0.1)  # the receiver drains its socket
        return results
    finally:
        await sender.close()
        await receiver.close()


def report(results: dict[str, list[float]]) -> str:
    lines = [f"{'path':24} median us/packet   best us/packet"]
    medians = {name: statistics.median(times) for name, times in results.items()}
    for name, times in results.items():
        lines.append(f"{name:24} {medians[name]:16.2f}   {min(times):14.2f}")
    base, ours = medians[FASTPATH], medians[PYTHON]
    lines.append(f"Outlet / fastpath: {ours / base:.2f} (saves {base - ours:.2f} us per packet)")
    if C in medians:
        c = medians[C]
        lines.append(f"compiled / Outlet: {c / ours:.2f} (saves {ours - c:.2f} us per packet)")
    else:
        lines.append("compiled: not built here (rtpkit._srtpsend); the outlet runs in Python")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    if args.packets < 1 or args.rounds < 1:
        parser.error("--packets and --rounds must be at least 1")
    print(report(uvloop.run(measure(args.packets, args.rounds))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
