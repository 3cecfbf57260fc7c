"""Recording through whole calls: the SFU worker records, signaling finalizes, investigators play."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from redis.asyncio import Redis

from client.media import dominant_colour
from client.peer import MonitorPeer, watch_call
from media.control import SfuControl
from tests.conftest import Clients, Node, Ringing, accepted, http_as, media_between
from tests.system.recorder.on_disk import recorded
from tests.waiting import eventually


@pytest.fixture
async def investigator(node: Node, clients: Clients) -> AsyncIterator[aiohttp.ClientSession]:
    async with http_as(node.url, clients.tokens, "investigator", "I1") as session:
        yield session


async def talk(pair: Ringing, packets: int) -> dict[str, Any]:
    """Both parties receive ``packets`` of each other's video through the SFU after connect
    (what a recording would be made of), then the tablet hangs up."""
    async with media_between(pair) as media:
        sinks = (media.tablet.sinks["video"], media.family.sinks["video"])
        await eventually(lambda: min(s.packets for s in sinks) >= packets, "video both ways")
        await pair.tablet.hangup(pair.call_id)
        return await pair.family.next("call.ended")


def video_colours(data: bytes) -> tuple[dict[str, str], float, list[str]]:
    """Each video stream's dominant colour, the duration, and the codecs, decoding with PyAV.

    Each stream is read from the start of a fresh demuxer: ``seek(0)`` lands on the first
    cue (the earlier video's first key frame), which can be after the other video's first."""
    with av.open(io.BytesIO(data)) as container:
        codecs = sorted(s.codec_context.name for s in container.streams)
        duration = float(container.duration or 0) / av.time_base
        videos = len(container.streams.video)
    colours: dict[str, str] = {}
    for index in range(videos):
        with av.open(io.BytesIO(data)) as container:
            for frame in container.decode(container.streams.video[index]):
                colours[f"video{index}"] = dominant_colour(
                    np.asarray(frame.to_ndarray(format="rgb24"))
                )
                break
    return colours, duration, codecs


async def test_a_call_is_recorded_signed_and_audited(
    clients: Clients, investigator: aiohttp.ClientSession, redis: Redis, recordings_dir: Path
) -> None:
    pair = await accepted(clients)
    monitor = await clients.connect("monitor", "S1")
    watcher = MonitorPeer(decode=False)
    try:
        async with media_between(pair):
            await watch_call(monitor, pair.call_id, watcher)
            await recorded(recordings_dir, pair.call_id, 2.0)
            flagged_at = time.time()
            flag = await monitor.request("monitor.flag", {"call_id": pair.call_id, "note": "note"})
            await recorded(recordings_dir, pair.call_id, 4.0)
            await pair.tablet.hangup(pair.call_id)
            ended = await pair.family.next("call.ended")
    finally:
        await watcher.close()

    async with investigator.get("/api/v1/recordings", params={"resident_id": "R1"}) as response:
        assert response.status == 200, await response.text()
        listed = await response.json()
    assert [r["call_id"] for r in listed["recordings"]] == [pair.call_id]
    # Finalizing (hash and sign) follows the hang-up, off its path: nothing to await but the API.
    manifest: dict[str, Any] = {}

    async def signed() -> bool:
        nonlocal manifest
        async with investigator.get(f"/api/v1/recordings/{pair.call_id}") as response:
            manifest = await response.json()
        return bool(manifest.get("signature"))

    await eventually(signed, lambda: f"a signed manifest: {manifest}")
    assert manifest["complete"] is True and manifest["signature"]
    assert (manifest["resident_id"], manifest["family_id"], manifest["facility_id"]) == (
        "R1",
        "F1",
        "SQ",
    )
    assert manifest["end_reason"] == "hangup"
    assert [(f["flag_id"], f["note"]) for f in manifest["flags"]] == [(flag["flag_id"], "note")]
    # The flag's offset is from connect to when it was raised (2 s of video were on disk).
    connected_at = float(await redis.hget(f"call:{pair.call_id}", "connected_at") or 0)
    assert 1.9 < manifest["flags"][0]["offset_s"], manifest["flags"]
    assert abs(manifest["flags"][0]["offset_s"] - (flagged_at - connected_at)) < 0.5

    async with investigator.get(f"/api/v1/recordings/{pair.call_id}/media") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("video/webm")
        data = await response.read()
    assert len(data) == manifest["size"]
    colours, duration, codecs = video_colours(data)
    assert codecs == ["opus", "opus", "vp8", "vp8"]
    assert sorted(colours.values()) == ["blue", "red"]  # both parties, decodable
    call = await redis.hgetall(f"call:{pair.call_id}")
    connected_for = float(call[b"ended_at"]) - float(call[b"connected_at"])
    assert abs(duration - connected_for) < 1.0, (duration, connected_for, ended)

    async with investigator.post(f"/api/v1/recordings/{pair.call_id}/verify") as response:
        verified = await response.json()
    assert verified["ok"] is True and verified["sha256"] == manifest["sha256"]
    async with investigator.get("/api/v1/audit", params={"call_id": pair.call_id}) as response:
        actions = {entry["action"] for entry in (await response.json())["entries"]}
    assert {"list", "view", "download", "verify"} <= actions

    # The worker muxed both parties without creating any decoder or encoder.
    worker = (await redis.hget(f"call:{pair.call_id}", "worker_id") or b"").decode()
    stats = await SfuControl(redis).stats(worker)
    assert (stats["decoders"], stats["encoders"]) == (0, 0), stats["codecs"]


async def test_a_privileged_call_leaves_nothing_behind(
    clients: Clients, investigator: aiohttp.ClientSession, redis: Redis, recordings_dir: Path
) -> None:
    pair = await accepted(clients, "R1", "FATTY")
    await talk(pair, 60)
    files = await asyncio.to_thread(lambda: [p.name for p in recordings_dir.rglob("*")])
    assert files and not [name for name in files if pair.call_id in name]
    async with investigator.get(f"/api/v1/recordings/{pair.call_id}") as response:
        assert response.status == 404
    assert not [k async for k in redis.scan_iter(f"rec*{pair.call_id}*")]
    assert await redis.zscore("rec:idx:all", pair.call_id) is None
    async with investigator.get("/api/v1/recordings", params={"family_id": "FATTY"}) as response:
        assert (await response.json())["recordings"] == []
