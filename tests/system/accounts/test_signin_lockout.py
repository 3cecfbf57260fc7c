"""Guessing is slowed per account, and sign-in does not tell by its timing whether an account
exists: measured on a real node with the real Argon2 parameters."""

from __future__ import annotations

import statistics
import time

import aiohttp
from redis.asyncio import Redis

from accounts.redis_keys import LOCKOUT
from tests.conftest import Node, NodeFactory
from tests.seeds import SIGN_IN
from tests.system.accounts.conftest import post

F1 = {"email": SIGN_IN["F1"]["email"], "password": SIGN_IN["F1"]["password"]}
TRIES = 21


async def test_five_failures_lock_the_account_on_every_node_not_the_address(
    start_node: NodeFactory, mail_node: Node, redis: Redis
) -> None:
    other = await start_node()
    wrong = {**F1, "password": "not the password"}
    for _ in range(5):
        answer = await post(mail_node.url, "/api/v1/login", wrong)
        assert answer.status == 401 and answer.body["error"]["code"] == "invalid_credentials"
    # The sixth try, with the right password, on another node and a new connection: 429.
    locked = await post(other.url, "/api/v1/login", F1)
    assert locked.status == 429, locked.body
    assert locked.body["error"]["code"] == "rate_limited"
    assert 800 <= int(locked.headers["Retry-After"]) <= 900
    # The lock is the account's, not the address's: another account signs in from here.
    f2 = {"email": SIGN_IN["F2"]["email"], "password": SIGN_IN["F2"]["password"]}
    assert (await post(mail_node.url, "/api/v1/login", f2)).status == 200
    # Counted by account alone (no address in the key), the same for staff ids.
    assert [k async for k in redis.scan_iter("lockout:signin:*")] == [
        LOCKOUT("signin", f"family:{F1['email']}").encode()
    ]
    staff_wrong = {"staff_id": "S1", "password": "not the password"}
    for _ in range(5):
        assert (await post(other.url, "/api/v1/login", staff_wrong)).status == 401
    staff_right = {"staff_id": "S1", "password": SIGN_IN["S1"]["password"]}
    assert (await post(mail_node.url, "/api/v1/login", staff_right)).status == 429


async def test_an_unknown_email_locks_like_a_known_one(mail_node: Node) -> None:
    """A lockout that only known accounts had would tell which exist."""
    nobody = {"email": "nobody@example.org", "password": "not the password"}
    statuses = [(await post(mail_node.url, "/api/v1/login", nobody)).status for _ in range(6)]
    assert statuses == [401] * 5 + [429]


async def test_success_clears_the_failures(mail_node: Node) -> None:
    wrong = {**F1, "password": "not the password"}
    for _ in range(4):
        assert (await post(mail_node.url, "/api/v1/login", wrong)).status == 401
    assert (await post(mail_node.url, "/api/v1/login", F1)).status == 200
    for _ in range(4):
        assert (await post(mail_node.url, "/api/v1/login", wrong)).status == 401
    assert (await post(mail_node.url, "/api/v1/login", F1)).status == 200


async def _timed(http: aiohttp.ClientSession, body: dict[str, str]) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    async with http.post("/api/v1/login", json=body) as response:
        raw = await response.read()
    return time.perf_counter() - started, response.status, raw


async def test_an_unknown_email_costs_what_a_known_one_does(mail_node: Node, redis: Redis) -> None:
    known = {**F1, "password": "not the password"}
    unknown = {"email": "nobody.here@example.org", "password": "not the password"}
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    bodies: dict[str, set[bytes]] = {"known": set(), "unknown": set()}
    async with aiohttp.ClientSession(base_url=mail_node.url) as http:
        await _timed(http, unknown)  # warm up the connection and the code path
        for i in range(TRIES):
            # Alternate (and swap the order every other round) so drift hits both alike.
            order = ("known", "unknown") if i % 2 == 0 else ("unknown", "known")
            for which in order:
                await redis.delete(*[k async for k in redis.scan_iter("lockout:*")] or ["none"])
                elapsed, status, raw = await _timed(http, known if which == "known" else unknown)
                assert status == 401
                times[which].append(elapsed)
                bodies[which].add(raw)
    assert bodies["known"] == bodies["unknown"] and len(bodies["known"]) == 1
    known_median = statistics.median(times["known"])
    unknown_median = statistics.median(times["unknown"])
    assert known_median > 0.005  # a real Argon2 verification, not a lookup
    assert unknown_median >= 0.5 * known_median, (unknown_median, known_median)
