"""The SFU's per-packet send cost, side by side: :func:`rtpkit.fastpath.send_rtp` (every
lookup per packet) against :class:`rtpkit.outlet.Outlet` (kept and re-checked by identity).

``python -m loadtest.send_path [--packets 1000] [--rounds 15]``

Two real aiortc peer connections over loopback (ICE, DTLS, SRTP keys); the sending side's
transport then sends RTP packets (1,100-byte payloads) through each path in alternating
rounds (each with new sequence numbers: SRTP refuses repeats), timed by the thread's CPU
clock while the loop does nothing else (the receiving side reads them between rounds). Both
include the kernel's ``sendto`` (on loopback also the receiving socket's enqueue), so the
difference is the Python per packet. Prints the median and best round per path and their
ratio.
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
from rtpkit.outlet import outlet
from rtpkit.rtp import rtp_header


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

        def fresh() -> list[bytes]:  # new sequence numbers each round: SRTP refuses repeats
            return [
                rtp_header(96, False, seq & 0xFFFF, 90 * seq, 0x5EED, b"") + b"\x90" * 1100
                for seq in itertools.islice(numbers, packets)
            ]

        fast = outlet(dtls)
        paths: dict[str, Callable[[bytes], bool]] = {
            "fastpath.send_rtp": lambda packet: fastpath.send_rtp(dtls, packet),
            "Outlet.send_rtp": fast.send_rtp,
        }
        results: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):
            for name, send in paths.items():
                data = fresh()
                started = time.thread_time()
                sent = sum(send(packet) for packet in data)
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
    lines = ["path                 median us/packet   best us/packet"]
    medians = {name: statistics.median(times) for name, times in results.items()}
    for name, times in results.items():
        lines.append(f"{name:20} {medians[name]:16.2f}   {min(times):14.2f}")
    base, ours = medians["fastpath.send_rtp"], medians["Outlet.send_rtp"]
    lines.append(f"Outlet / fastpath: {ours / base:.2f} (saves {base - ours:.2f} us per packet)")
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
