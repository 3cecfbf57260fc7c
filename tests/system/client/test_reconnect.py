"""The Python SDK reconnects by itself after a disconnect it did not ask for (a node restart, a
Socket.IO disconnect the server made), with backoff and jitter; not after its session is over
(``session.expired``, or a reconnect refused for a revoked token); never with reconnect=False.
200 clients of a restarted node come back spread over the backoff window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from client.backoff import Backoff
from client.session import ProtocolClient
from core.domain import SeedFile
from core.revocation import Revocations
from core.tokens import Tokens
from tests.system.client.restartable import RestartableNode
from tests.waiting import eventually


@pytest.fixture
async def restartable(
    redis_url: str, seeded: SeedFile, tmp_path: Path, recordings_dir: Path
) -> AsyncIterator[RestartableNode]:
    node = RestartableNode(redis_url, tmp_path / "var", recordings_dir)
    await node.start()
    yield node
    await node.stop()


@pytest.fixture
async def opened() -> AsyncIterator[list[ProtocolClient]]:
    """Clients a test opens; all closed (reconnects cancelled) at teardown."""
    clients: list[ProtocolClient] = []
    yield clients
    await asyncio.gather(*(client.close() for client in clients))


async def open_client(
    opened: list[ProtocolClient], url: str, token: str, name: str, **options: object
) -> ProtocolClient:
    client = ProtocolClient(url, token, name, **options)  # type: ignore[arg-type]
    opened.append(client)
    return await client.connect()


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(initial_s=1.0, max_s=8.0, jitter=0.5)
    assert [backoff.delay(n, lambda: 0.5) for n in range(6)] == [1, 2, 4, 8, 8, 8]
    assert backoff.delay(0, lambda: 0.0) == 0.5 and backoff.delay(0, lambda: 1.0) == 1.5
    assert backoff.delay(10, lambda: 0.999) < 12.0 and backoff.delay(10, lambda: 0.0) == 4.0
    assert backoff.delay(1000, lambda: 0.5) == 8.0  # no overflow however long the outage
    with pytest.raises(ValueError):
        Backoff(initial_s=2.0, max_s=1.0)


async def test_clients_come_back_after_a_restart_and_the_next_call_rings(
    restartable: RestartableNode, tokens: Tokens, opened: list[ProtocolClient]
) -> None:
    family = await open_client(opened, restartable.url, tokens.issue("family", "F1"), "F1")
    tablet = await open_client(opened, restartable.url, tokens.issue("tablet", "R1"), "R1")
    await restartable.stop()
    await eventually(lambda: not family.online.is_set() and not tablet.online.is_set(), "down")
    assert family.reconnecting and tablet.reconnecting
    await restartable.start()
    await asyncio.gather(family.wait_reconnected(), tablet.wait_reconnected())
    assert family.reconnected.is_set() and (family.reconnects, tablet.reconnects) == (1, 1)
    call_id = await tablet.place("F1")
    assert (await family.next("call.incoming"))["call_id"] == call_id
    assert (await family.request("session.info"))["id"] == "F1"


async def test_a_disconnect_the_server_made_is_reconnected(
    restartable: RestartableNode, tokens: Tokens, opened: list[ProtocolClient]
) -> None:
    """python-socketio's own reconnection gives up after a Socket.IO disconnect from the
    server (a load balancer draining a node does that); ours does not."""
    family = await open_client(opened, restartable.url, tokens.issue("family", "F1"), "F1")
    assert restartable.node is not None
    await restartable.node.sio.disconnect(family.sio.get_sid())
    await family.wait_reconnected()
    assert (await family.request("session.info"))["id"] == "F1"


async def test_an_expired_session_stays_offline(
    restartable: RestartableNode, tokens: Tokens, redis: Redis, opened: list[ProtocolClient]
) -> None:
    family = await open_client(opened, restartable.url, tokens.issue("family", "F1"), "F1")
    await Revocations(redis).revoke("family", "F1")
    assert await family.next("session.expired", timeout=5) == {}
    await eventually(lambda: not family.sio.connected, "the server closed the session")
    assert family.expired.is_set()
    assert not family.reconnecting and family.reconnect_failures == 0


async def test_a_reconnect_refused_for_its_token_ends_the_session(
    restartable: RestartableNode, tokens: Tokens, redis: Redis, opened: list[ProtocolClient]
) -> None:
    """Revoked while the node was down: the reconnect is refused ("token revoked"), and the
    client stops there, as after session.expired."""
    fast = Backoff(initial_s=0.2, max_s=0.5)
    family = await open_client(
        opened, restartable.url, tokens.issue("family", "F1"), "F1", backoff=fast
    )
    await restartable.stop()
    await eventually(lambda: family.reconnect_failures >= 1, "a reconnect attempt failed")
    await Revocations(redis).revoke("family", "F1")
    await restartable.start()
    await asyncio.wait_for(family.expired.wait(), 10)
    await eventually(lambda: not family.reconnecting, "the reconnect loop ended")
    assert family.reconnects == 0 and not family.sio.connected


async def test_reconnect_off_stays_offline(
    restartable: RestartableNode, tokens: Tokens, opened: list[ProtocolClient]
) -> None:
    family = await open_client(
        opened, restartable.url, tokens.issue("family", "F1"), "F1", reconnect=False
    )
    await restartable.stop()
    await eventually(lambda: not family.online.is_set(), "disconnected")
    await restartable.start()
    assert not family.reconnecting and not family.sio.connected and family.reconnects == 0


CLIENTS = 200
MISSED_ATTEMPTS = 3  # the node comes back once every client has failed this many attempts


def densest_second(moments: list[float]) -> int:
    """The most moments within any window of one second."""
    moments = sorted(moments)
    densest, first = 0, 0
    for last, moment in enumerate(moments):
        while moment - moments[first] > 1.0:
            first += 1
        densest = max(densest, last - first + 1)
    return densest


@pytest.mark.timeout(240)
async def test_200_clients_come_back_spread_over_the_backoff_window(
    restartable: RestartableNode, tokens: Tokens, opened: list[ProtocolClient]
) -> None:
    """Every client's reconnect is timed: they come back over seconds, not in one burst.

    The node stays down until every client has missed a few attempts, as a real restart
    (serve takes seconds to start): by then each client is at its own point of a widening,
    jittered backoff (1 s, 2 s, 4 s, 8 s nominal, each +-50 %)."""
    subjects = [("family", f"F{1 + n % 2}") for n in range(CLIENTS)]
    for n, (role, subject) in enumerate(subjects):
        await open_client(opened, restartable.url, tokens.issue(role, subject), f"{subject}#{n}")
    await restartable.stop()
    await eventually(
        lambda: all(client.reconnect_failures >= MISSED_ATTEMPTS for client in opened),
        lambda: (
            f"{sum(c.reconnect_failures >= MISSED_ATTEMPTS for c in opened)} of "
            f"{CLIENTS} clients missed {MISSED_ATTEMPTS} attempts"
        ),
        within_s=60,
        interval_s=0.05,
    )
    await restartable.start()
    back_at = time.monotonic()
    await asyncio.gather(*(client.wait_reconnected(1, timeout=90) for client in opened))
    moments = [client.reconnected_at[0] - back_at for client in opened]
    span = max(moments) - min(moments)
    densest = densest_second(moments)
    summary = f"span {span:.1f} s, at most {densest} of {CLIENTS} within one second"
    print(f"200 clients back after a restart: {summary}")
    assert span >= 1.5, summary
    assert densest <= 0.4 * CLIENTS, summary
    # And all of them work again.
    infos = await asyncio.gather(*(client.request("session.info") for client in opened))
    assert {info["id"] for info in infos} == {"F1", "F2"}
