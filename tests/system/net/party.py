"""A tablet or a family device for the network tests, run inside a namespace::

    ip netns exec NS python -m tests.system.net.party --url URL --token TOKEN --role family

Built on the client library (``client/``): connects, places (tablet, ``--contact``) or accepts
(family) a call, or watches one (monitor, ``--call-id``), sends its clip with the STUN/TURN servers ``session.info`` hands it, and
prints JSON lines on stdout: ``joined`` (with the selected ICE pair), ``media`` (frames
received so far, whenever they grow, at most every 0.3 s), ``connected``, ``ended``. Reads
commands on stdin: ``reoffer`` (a new connection, a new socket, ``rtc.offer`` on the same
call: what an app does when its network changed), ``hangup``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from typing import Any

from client.media import ClipSpec
from client.peer import MonitorPeer, PartyPeer, join_call, rtc_ice_servers, watch_call
from client.session import ProtocolClient

CLIPS = {"tablet": ClipSpec("red"), "family": ClipSpec("blue")}


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def selected_pair(peer: PartyPeer | MonitorPeer) -> dict[str, Any] | None:
    """The nominated ICE pair (aioice-private state, for the test's eyes only)."""
    ice = peer.pc.getTransceivers()[0].receiver.transport.transport
    connection = ice._connection
    pair = connection._nominated.get(1)
    if pair is None:
        return None
    local, remote = pair.local_candidate, pair.remote_candidate
    return {
        "local_type": local.type,
        "local": f"{local.host}:{local.port}",
        "remote_type": remote.type,
        "remote": f"{remote.host}:{remote.port}",
        "turn_transport": connection.turn_transport if local.type == "relay" else None,
    }


def candidate_lines(sdp: str) -> list[str]:
    return sorted(
        {x[len("a=candidate:") :] for x in sdp.splitlines() if x.startswith("a=candidate:")}
    )


def keep_turn(servers: list[dict[str, Any]], transport: str | None) -> list[dict[str, Any]]:
    """Only the TURN URLs over ``transport`` (aiortc uses the first TURN URL it supports)."""
    if transport is None:
        return servers
    kept = []
    for server in servers:
        urls = [u for u in server["urls"] if u.startswith("turn") and f"transport={transport}" in u]
        if urls:
            kept.append({**server, "urls": urls})
    return kept


class Party:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.client = ProtocolClient(args.url, args.token, args.role)
        self.peer: PartyPeer | None = None
        self.monitor: MonitorPeer | None = None
        self.call_id = ""
        self.counted = {"video": 0, "audio": 0}  # frames of the connections closed so far
        self.done = asyncio.Event()
        self.closing: list[asyncio.Future[None]] = []

    def frames(self) -> dict[str, int]:
        if self.monitor is not None:  # what it gets of the party it gets least of, per kind
            sinks = self.monitor.sinks
            return {k: min(sinks[who][k].frames for who in sinks) for k in self.counted}
        current = {k: s.frames for k, s in self.peer.sinks.items()} if self.peer else {}
        return {k: n + current.get(k, 0) for k, n in self.counted.items()}

    async def join(self) -> None:
        servers = keep_turn(await self.client.ice_servers(), self.args.turn_only)
        peer = PartyPeer(CLIPS[self.args.role], decode=False, ice_servers=rtc_ice_servers(servers))
        await join_call(self.client, self.call_id, peer)
        emit(
            "candidates",
            local=candidate_lines(peer.pc.localDescription.sdp),
            remote=candidate_lines(peer.pc.remoteDescription.sdp),
        )
        old, self.peer = self.peer, peer
        if old is not None:
            for kind, sink in old.sinks.items():
                self.counted[kind] += sink.frames
            # In the background: its sockets lost their address, so closing it (a TURN
            # allocation to delete, DTLS to close) only ends in timeouts.
            self.closing.append(asyncio.ensure_future(asyncio.wait_for(old.close(), 20)))
        await self._wait_connected(peer)
        emit("joined", call_id=self.call_id, pair=selected_pair(peer), servers=servers)

    async def watch(self) -> None:
        servers = keep_turn(await self.client.ice_servers(), self.args.turn_only)
        self.monitor = MonitorPeer(decode=False, ice_servers=rtc_ice_servers(servers))
        await watch_call(self.client, self.call_id, self.monitor)
        await self._wait_connected(self.monitor)
        emit("joined", call_id=self.call_id, pair=selected_pair(self.monitor), servers=servers)

    async def _wait_connected(self, peer: PartyPeer | MonitorPeer) -> None:
        changed = asyncio.Event()
        peer.pc.on("iceconnectionstatechange", changed.set)
        async with asyncio.timeout(30):
            while (state := peer.pc.iceConnectionState) not in ("completed", "connected"):
                if state in ("failed", "closed"):
                    raise RuntimeError(f"ICE {state}")
                changed.clear()
                await changed.wait()

    async def run(self) -> None:
        await self.client.connect(timeout=15)
        emit("ready")
        if self.args.role == "monitor":
            self.call_id = self.args.call_id
            await self.watch()
        elif self.args.role == "tablet":
            self.call_id = await self.client.place(self.args.contact)
            await self.client.next("call.accepted", timeout=60)
        else:
            self.call_id = str((await self.client.next("call.incoming", timeout=60))["call_id"])
            await self.client.accept(self.call_id)
        if self.args.role != "monitor":
            await self.join()
        tasks = [
            asyncio.ensure_future(self._report()),
            asyncio.ensure_future(self._commands()),
            asyncio.ensure_future(self._events()),
        ]
        await self.done.wait()
        for task in tasks:
            task.cancel()
        for peer in (self.peer, self.monitor):
            if peer is not None:
                await peer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close(), 3)

    async def _report(self) -> None:
        last: dict[str, int] = {}
        while True:
            await asyncio.sleep(0.3)
            now = self.frames()
            if now != last:
                emit("media", frames=now)
                last = now

    async def _events(self) -> None:
        if self.monitor is not None:
            ended = await self.client.next("monitor.call_ended", timeout=600)
            emit("ended", frames=self.frames(), **ended)
            self.done.set()
            return
        emit("connected", **(await self.client.next("call.connected", timeout=60)))
        ended = await self.client.next("call.ended", timeout=600)
        emit("ended", frames=self.frames(), **ended)
        self.done.set()

    async def _commands(self) -> None:
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = line.strip()
            if command == "reoffer":
                await self._reconnect()
                await self.join()
                emit("reoffered", call_id=self.call_id)
            elif command == "hangup":
                await self.client.hangup(self.call_id)

    async def _reconnect(self) -> None:
        """A new signaling socket too: the old one's TCP connection died with the address."""
        old = self.client
        with contextlib.suppress(Exception):
            await asyncio.wait_for(old.close(), 2)
        self.client = ProtocolClient(self.args.url, self.args.token, self.args.role)
        self.client.received = old.received
        self.client._events = old._events  # events already queued stay queued
        await self.client.connect(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.system.net.party")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--role", choices=("tablet", "family", "monitor"), required=True)
    parser.add_argument("--call-id", default="", help="the call a monitor watches")
    parser.add_argument("--contact", default="F1")
    parser.add_argument("--turn-only", choices=("udp", "tcp"), default=None)
    # ICE and TURN decisions on stderr: the test shows them when it fails.
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    for name in ("aioice.ice", "aioice.turn"):
        logging.getLogger(name).setLevel(logging.INFO)
    party = Party(parser.parse_args())
    try:
        asyncio.run(party.run())
    except Exception as exc:
        emit("error", error=repr(exc))
        raise


if __name__ == "__main__":
    main()
