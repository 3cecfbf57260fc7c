"""Real ``visitation serve`` processes: two nodes on one Redis, a node crash, the embedded default."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from client.session import ProtocolClient
from core.domain import SeedFile
from core.tokens import Tokens
from loadtest.processes import ServeProcess
from tests.conftest import SECRET, Ringing, http_as, media_between
from tests.seeds import standard_seed_data
from tests.system.recorder.on_disk import recorded
from tests.waiting import eventually
from visitation.seed import apply_seed, parse_seed


@pytest.fixture
def serve_procs() -> Iterator[list[ServeProcess]]:
    procs: list[ServeProcess] = []
    yield procs
    for proc in procs:
        proc.kill()


async def test_two_nodes_share_one_redis(
    serve_procs: list[ServeProcess], redis_url: str, seeded: SeedFile, tmp_path: Path
) -> None:
    env = {"VISITATION_RING_TIMEOUT": "3"}
    node_a = ServeProcess(
        tmp_path / "a", "--redis-url", redis_url, "--workers", "0", env=env
    ).wait_ready(30)
    serve_procs.append(node_a)
    node_b = ServeProcess(
        tmp_path / "b", "--redis-url", redis_url, "--workers", "0", env=env
    ).wait_ready(30)
    serve_procs.append(node_b)
    tokens = Tokens(SECRET)
    async with (
        ProtocolClient(node_a.url, tokens.issue("tablet", "R1"), "tablet@A") as tablet,
        ProtocolClient(node_b.url, tokens.issue("family", "F1"), "family@B") as family,
    ):
        # A tablet on node A rings a family on node B, and the answer comes back.
        call_id = await tablet.place("F1")
        assert (await family.next("call.incoming"))["call_id"] == call_id
        await family.accept(call_id)
        assert await tablet.next("call.accepted") == {"call_id": call_id}
        await family.hangup(call_id)
        assert (await tablet.next("call.ended"))["by"] == "family"

        # Node A dies mid-ring (SIGKILL: no clean-up at all); node B still times the call out.
        family_2 = ProtocolClient(node_b.url, tokens.issue("family", "F2"))
        await family_2.connect()
        try:
            async with ProtocolClient(node_a.url, tokens.issue("tablet", "R2")) as tablet2:
                call_2 = await tablet2.place("F2")
                await family_2.next("call.incoming")
                node_a.kill()
            assert await family_2.next("call.canceled", timeout=10) == {"call_id": call_2}
        finally:
            await family_2.close()


async def test_serve_with_embedded_redis_answers_healthz_and_stops_cleanly(
    serve_procs: list[ServeProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "var"
    proc = ServeProcess(data_dir, "--demo", env={"REDIS_URL": ""}).wait_ready(30)
    serve_procs.append(proc)
    output = "".join(proc.output)
    assert "Demo tokens:" in output and "family       F200" in output
    assert proc.healthz()[1]["ok"] is True
    url = (data_dir / "redis" / "redis.url").read_text()
    redis = Redis.from_url(url)
    try:
        assert await redis.config_get("appendonly") == {"appendonly": "yes"}
        assert (await redis.hget("acct:F200", "balance")) == b"1000"
    finally:
        await redis.aclose()
    assert proc.terminate() == 0
    # serve stops the Redis it started before it exits: nothing answers there any more.
    assert not (data_dir / "redis" / "redis.url").exists()
    gone = Redis.from_url(url, socket_connect_timeout=2)
    try:
        with pytest.raises(RedisConnectionError):
            await gone.ping()
    finally:
        await gone.aclose()


@dataclass
class OwnNodeCall:
    node: ServeProcess
    redis: Redis
    pair: Ringing
    tokens: Tokens


@contextlib.asynccontextmanager
async def call_on_own_node(
    serve_procs: list[ServeProcess], redis_url: str, tmp_path: Path, db: int
) -> AsyncIterator[OwnNodeCall]:
    """A ``serve`` with its own SFU worker, in its own Redis database, and a connected call."""
    isolated = redis_url.rsplit("/", 1)[0] + f"/{db}"
    redis = Redis.from_url(isolated)
    await redis.flushdb()
    await apply_seed(redis, parse_seed(json.dumps(standard_seed_data())))
    node = ServeProcess(tmp_path / "var", "--redis-url", isolated, "--workers", "1").wait_ready(30)
    serve_procs.append(node)
    tokens = Tokens(SECRET)
    try:
        async with (
            ProtocolClient(node.url, tokens.issue("tablet", "R1")) as tablet,
            ProtocolClient(node.url, tokens.issue("family", "F1")) as family,
        ):
            call_id = await tablet.place("F1")
            incoming = await family.next("call.incoming")
            await family.accept(call_id)
            pair = Ringing(tablet, family, call_id, incoming)
            async with media_between(pair):
                yield OwnNodeCall(node, redis, pair, tokens)
    finally:
        await redis.flushdb()
        await redis.aclose()


async def test_a_dead_sfu_worker_ends_its_calls(
    serve_procs: list[ServeProcess], redis_url: str, tmp_path: Path
) -> None:
    """SIGKILL the worker mid-call: the call ends, and its recording is kept as incomplete."""
    async with call_on_own_node(serve_procs, redis_url, tmp_path, db=3) as call:
        pair, redis, node, tokens = call.pair, call.redis, call.node, call.tokens
        call_id = pair.call_id
        await recorded(tmp_path, call_id, 2.5)  # some call on disk before the crash
        worker = (await redis.hget(f"call:{call_id}", "worker_id") or b"").decode()
        status = json.loads(await redis.get(f"sfu:alive:{worker}") or "{}")
        killed_at = time.time()
        os.kill(int(status["pid"]), signal.SIGKILL)
        for party in (pair.tablet, pair.family):
            ended = await party.next("call.ended", timeout=15)
            assert ended["reason"] == "connection_lost"
        # Charged up to the worker's last heartbeat, not up to when its death was noticed.
        record = await redis.hgetall(f"call:{call_id}")
        assert killed_at - 1.5 < float(record[b"ended_at"]) <= killed_at
        # The recording survived the crash: marked incomplete, and what was written plays.
        async with http_as(node.url, tokens, "investigator", "I1") as http:
            # Finalizing follows call.ended (hash and sign): nothing to await but the API.
            manifest = await wait_for_manifest(http, call_id, "sha256")
            async with http.get(f"/api/v1/recordings/{call_id}/media") as response:
                data = await response.read()
        assert manifest.get("complete") is False, manifest
        assert "did not close the file" in manifest["incomplete_reason"]
        assert manifest["size"] == len(data) > 0
        with av.open(io.BytesIO(data)) as container:
            assert len(container.streams.video) == 2
            frames = sum(1 for _ in container.decode(video=0))
        assert frames > 10


async def wait_for_manifest(
    http: aiohttp.ClientSession, call_id: str, field: str = "signature"
) -> dict[str, Any]:
    """The recording's manifest once it has ``field`` (finalizing follows ``call.ended``)."""
    manifest: dict[str, Any] = {}

    async def has_field() -> bool:
        nonlocal manifest
        async with http.get(f"/api/v1/recordings/{call_id}") as response:
            manifest = await response.json()
        return bool(manifest.get(field))

    await eventually(has_field, lambda: f"{field} in {manifest}", within_s=20, interval_s=0.2)
    return manifest


async def test_a_worker_taken_for_dead_cannot_change_the_signed_recording(
    serve_procs: list[ServeProcess], redis_url: str, tmp_path: Path
) -> None:
    """A worker frozen past its alive key (SIGSTOP) is declared dead and its call's recording
    sealed and signed; thawed, it goes on writing until it finds itself fenced off. Nothing it
    writes reaches the signed file: verify stays ok."""
    async with call_on_own_node(serve_procs, redis_url, tmp_path, db=5) as call:
        pair, redis, node, tokens = call.pair, call.redis, call.node, call.tokens
        call_id = pair.call_id
        await recorded(tmp_path, call_id, 2.0)  # some call on disk
        worker = (await redis.hget(f"call:{call_id}", "worker_id") or b"").decode()
        pid = int(json.loads(await redis.get(f"sfu:alive:{worker}") or "{}")["pid"])
        os.kill(pid, signal.SIGSTOP)
        try:
            for party in (pair.tablet, pair.family):
                ended = await party.next("call.ended", timeout=15)
                assert ended["reason"] == "connection_lost"
            async with http_as(node.url, tokens, "investigator", "I1") as http:
                manifest = await wait_for_manifest(http, call_id)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert manifest["complete"] is False and manifest["size"] > 0, manifest

        # Thawed, the worker writes on, then fences itself: it closes the room and reports.
        async def fenced() -> bool:
            return bool(await redis.exists(f"sfu:recording:{call_id}"))

        await eventually(fenced, "the thawed worker fences itself", within_s=20, interval_s=0.2)
        async with http_as(node.url, tokens, "investigator", "I1") as http:
            async with http.post(f"/api/v1/recordings/{call_id}/verify") as response:
                verified = await response.json()
        assert verified["ok"] is True, verified
        assert verified["sha256"] == manifest["sha256"]


async def test_sigterm_ends_calls_with_server_shutdown(
    serve_procs: list[ServeProcess], redis_url: str, tmp_path: Path
) -> None:
    async with call_on_own_node(serve_procs, redis_url, tmp_path, db=4) as call:
        call.node.proc.send_signal(signal.SIGTERM)
        for party in (call.pair.tablet, call.pair.family):
            ended = await party.next("call.ended", timeout=15)
            assert ended["reason"] == "server_shutdown"
        assert ended["charged_cents"] == 0  # under 10 s, and the last partial minute is free
        try:
            code = await asyncio.to_thread(call.node.proc.wait, 20)
        except subprocess.TimeoutExpired:
            raise AssertionError("".join(call.node.output)[-4000:]) from None
        assert code == 0
