"""What an idle CPU costs the next packet: the same work per datagram at several packet rates,
with idle CPUs allowed to halt and then held polling (:mod:`media.wake_latency`), side by side.

``python -m loadtest.wakeups [--rates 250,1000,4000] [--seconds 4] [--work 60]``

A sender process on one core sends evenly spaced 1,000-byte datagrams over loopback to a
uvloop receiver pinned to another core, which does ``--work`` rounds of RTP-header-like Python
work per datagram (about what the SFU does per packet, with no media stack). The receiver's CPU
time per datagram should not depend on the rate; where idle CPUs halt it does, because every
datagram wakes a sleeping core. Needs two cores, and root for the polling runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import struct
import subprocess
import sys
import time

import uvloop

from media.wake_latency import WakeLatencyLimit

_HEADER = struct.Struct("!BBHII")


def _work(rounds: int, data: bytes, seen: dict[int, bytes]) -> int:
    total = 0
    for i in range(rounds):
        _, _, seq, _, _ = _HEADER.unpack_from(data, 0)
        seen[i & 1023] = data[12:200]
        total += seq
    return total


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, rounds: int) -> None:
        self.rounds, self.count, self.seen = rounds, 0, dict[int, bytes]()
        self.first = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.count += 1
        if not self.first.done():
            self.first.set_result(None)
        _work(self.rounds, data, self.seen)


async def _receive(sock: socket.socket, rounds: int, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    transport, receiver = await loop.create_datagram_endpoint(lambda: _Receiver(rounds), sock=sock)
    await asyncio.wait_for(receiver.first, 60)  # the sender process has started
    await asyncio.sleep(0.5)  # and is under way
    count, cpu = receiver.count, time.process_time()
    await asyncio.sleep(seconds)
    count, cpu = receiver.count - count, time.process_time() - cpu
    transport.close()
    return 1e6 * cpu / max(count, 1)


def _send(port: int, rate: int, seconds: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = bytes(1000)
    due = time.monotonic()
    end = due + seconds + 1.0
    while due < end:
        sock.sendto(payload, ("127.0.0.1", port))
        due += 1 / rate
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)


_SENDER = (
    "import sys; from loadtest.wakeups import _send\n"
    "_send(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))"
)


def measure(rate: int, rounds: int, seconds: float, cores: tuple[int, int]) -> float:
    """CPU microseconds the receiver spends per datagram at ``rate`` datagrams per second."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # A process of its own, not a fork: in a process with threads (a test suite's) a forked
    # child runs after-fork handlers that can deadlock (see core.spawn).
    argv = [sys.executable, "-c", _SENDER, str(port), str(rate), str(seconds + 2.0)]
    sender = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
    mask = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(sender.pid, {cores[1]})
        os.sched_setaffinity(0, {cores[0]})
        return uvloop.run(_receive(sock, rounds, seconds))
    finally:
        os.sched_setaffinity(0, mask)
        sender.kill()
        sender.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.wakeups", description=__doc__)
    parser.add_argument("--rates", default="250,1000,4000", help="datagrams per second")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--work", type=int, default=60, help="rounds of work per datagram")
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",")]
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2 or min(rates) < 1:
        parser.error("needs two cores and rates >= 1")
    cores = (available[0], available[1])
    try:
        WakeLatencyLimit(0).close()
    except OSError as exc:
        parser.error(f"cannot hold a CPU wake-up limit ({exc}): run as root")
    print("datagrams/s  idle CPUs halt: us/datagram  idle CPUs poll: us/datagram  halt / poll")
    for rate in rates:
        halting = measure(rate, args.work, args.seconds, cores)
        with WakeLatencyLimit(0):
            polling = measure(rate, args.work, args.seconds, cores)
        print(f"{rate:<11}  {halting:<27.1f}  {polling:<27.1f}  {halting / polling:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
