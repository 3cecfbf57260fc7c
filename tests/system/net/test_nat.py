"""Calls across NATs, in network namespaces (see :mod:`tests.system.net.lab`): a family behind a
masquerading NAT reaching the SFU through its announced address; a family whose UDP to the
SFU is dropped, relayed by coturn over UDP and over TCP; a family whose network changes
mid-call, re-offering on the same call while the call, its billing and its recording go on.

The server is a real ``visitation serve`` behind a 1:1 cloud NAT that forwards only the
media port range (and the signaling port): a worker socket outside ``--rtc-ports`` or an
answer without the announced address would get no media across.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest

from tests.system.net.conftest import Deployment
from tests.system.net.lab import FAMILY_LTE, FAMILY_WLAN, INTERNET, MEDIA_PORTS, PUBLIC_SERVER
from tests.system.net.procs import Proc

FRAMES = 20  # video and audio frames each side must receive, at every stage


def in_range(address: str) -> bool:
    first, last = (int(p) for p in MEDIA_PORTS.split("-"))
    return first <= int(address.rsplit(":", 1)[1]) <= last


def grew(since: dict[str, int], by: int = FRAMES) -> Any:
    """An event filter: frames of both kinds at least ``by`` above ``since``."""
    return lambda e: all(e["frames"][k] >= since.get(k, 0) + by for k in ("video", "audio"))


@dataclass
class Call:
    tablet: Proc
    family: Proc
    call_id: str
    tablet_pair: dict[str, Any]
    family_pair: dict[str, Any]

    async def media_both_ways(
        self,
        since_tablet: dict[str, int] | None = None,
        since_family: dict[str, int] | None = None,
        timeout: float = 20,
    ) -> None:
        await asyncio.gather(
            self.tablet.event("media", timeout, grew(since_tablet or {})),
            self.family.event("media", timeout, grew(since_family or {})),
        )

    async def hang_up(self) -> dict[str, Any]:
        await self.tablet.send("hangup")
        await self.tablet.event("ended", timeout=15)
        return await self.family.event("ended", timeout=15)


@contextlib.asynccontextmanager
async def call(deployment: Deployment, *family_args: str) -> AsyncIterator[Call]:
    """The family (at home, behind its NAT) takes a call from the tablet (on the server's LAN);
    yields once each side's ICE connection is up."""
    family = tablet = None
    try:
        family = await deployment.party("family", "F1", "fam", *family_args)
        tablet = await deployment.party("tablet", "R1", "srv")
        joined = await asyncio.gather(
            tablet.event("joined", timeout=45), family.event("joined", timeout=45)
        )
        assert joined[0]["call_id"] == joined[1]["call_id"]
        yield Call(tablet, family, joined[0]["call_id"], joined[0]["pair"], joined[1]["pair"])
    finally:
        for proc in (tablet, family):
            if proc is not None:
                await proc.stop(timeout=5)


@pytest.fixture
async def deployment_at_home(deployment: Deployment) -> AsyncIterator[Deployment]:
    """The deployment with the family on its home Wi-Fi, and no firewall rule left behind."""
    deployment.lab.family_on_wlan()
    yield deployment
    deployment.lab.unblock("home", "block")
    deployment.lab.family_on_wlan()


async def test_a_family_behind_nat_reaches_the_sfu_at_its_announced_address(
    deployment_at_home: Deployment,
) -> None:
    async with call(deployment_at_home) as c:
        # Straight to the announced address, on a port of the range (the cloud NAT forwards
        # nothing else); the tablet on the server's own network uses the local address.
        assert c.family_pair["remote"].startswith(f"{PUBLIC_SERVER}:"), c.family_pair
        assert in_range(c.family_pair["remote"]), c.family_pair
        assert c.family_pair["local"].startswith(f"{FAMILY_WLAN}:"), c.family_pair
        assert c.tablet_pair["remote"].startswith("10.200.0.2:"), c.tablet_pair
        await c.media_both_ways()
        ended = await c.hang_up()
    assert ended["reason"] == "hangup"


@pytest.mark.parametrize(
    ("transport", "rule"),
    [
        ("udp", f"ip daddr {PUBLIC_SERVER} meta l4proto udp drop"),  # UDP to the SFU only
        ("tcp", 'iifname "lan" meta l4proto udp drop'),  # a Wi-Fi that lets no UDP out
    ],
)
async def test_a_family_without_udp_to_the_sfu_is_relayed_by_coturn(
    deployment_at_home: Deployment, transport: str, rule: str
) -> None:
    deployment_at_home.lab.block("home", "block", rule)
    # With UDP blocked altogether, the app must use the TCP TURN URL (aiortc takes only the
    # first TURN URL it supports, and a STUN query would just time out).
    args = ("--turn-only", "tcp") if transport == "tcp" else ()
    async with call(deployment_at_home, *args) as c:
        pair = c.family_pair
        assert "relay" in (pair["local_type"], pair["remote_type"]), pair
        if transport == "tcp":
            assert (pair["local_type"], pair["turn_transport"]) == ("relay", "tcp"), pair
        assert pair["local"].startswith(f"{INTERNET}:") or pair["remote"].startswith(
            f"{INTERNET}:"
        ), pair
        await c.media_both_ways()
        ended = await c.hang_up()
    assert ended["reason"] == "hangup"


def video_packet_times(path: Path) -> list[list[float]]:
    """Each video stream's packet times (s), demuxed without decoding."""
    times: list[list[float]] = []
    with av.open(str(path)) as container:
        streams = list(container.streams.video)
        by_index = {s.index: i for i, s in enumerate(streams)}
        times = [[] for _ in streams]
        for packet in container.demux(*streams):
            if packet.pts is not None and packet.time_base is not None:
                times[by_index[packet.stream.index]].append(float(packet.pts * packet.time_base))
    return times


async def wait_for_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(path.exists):
        assert time.monotonic() < deadline, f"no {path} in {timeout}s"
        await asyncio.sleep(0.2)  # a file appearing has nothing to await


async def test_a_family_whose_network_changes_re_offers_and_the_call_goes_on(
    deployment_at_home: Deployment,
) -> None:
    lab = deployment_at_home.lab
    async with call(deployment_at_home) as c:
        connected = await c.family.event("connected", timeout=20)
        await c.media_both_ways()
        # Off the Wi-Fi, onto mobile data behind another NAT: the old address is gone.
        lab.family_to_lte()
        moved_at = time.monotonic()
        tablet_before = c.tablet.events_of("media")[-1]["frames"]
        await c.family.send("reoffer")
        reoffered = await c.family.event("joined", 45, lambda e: e["t"] > moved_at)
        pair = reoffered["pair"]
        assert pair["local"].startswith(f"{FAMILY_LTE}:"), pair
        assert pair["remote"].startswith(f"{PUBLIC_SERVER}:") and in_range(pair["remote"]), pair
        family_after = c.family.events_of("media")[-1]["frames"]
        await c.media_both_ways(since_tablet=tablet_before, since_family=family_after)
        # Past the free first 10 s, so that the call is billed.
        await c.tablet.event("media", 30, lambda e: e["t"] > connected["t"] + 11)
        hung_up_at = time.monotonic()
        ended = await c.hang_up()
    assert ended["reason"] == "hangup", ended
    assert ended["duration_s"] >= hung_up_at - connected["t"] - 1, ended
    assert ended["charged_cents"] > 0, ended
    recording = deployment_at_home.recordings / f"{c.call_id}.webm"
    await wait_for_file(recording, timeout=30)
    for times in await asyncio.to_thread(video_packet_times, recording):
        # Each party's video from the start to the end, with no hole but the switch.
        assert times and times[0] < 2.0 and times[-1] > ended["duration_s"] - 3, times[-5:]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert max(gaps) < 8.0, max(gaps)
