"""A shutdown with a live call: SIGINT ends it (``server_shutdown``), charges it, seals its
recording, then the process exits, in bounded time (each step has its own bound in serve)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from client.session import ProtocolClient
from core.tokens import Tokens
from loadtest.processes import ServeProcess
from tests.conftest import SECRET, Ringing, media_between
from tests.seeds import standard_seed_data
from tests.system.test_shutdown import serves  # noqa: F401 - the fixture
from visitation.seed import apply_seed, parse_seed

SHUTDOWN_BOUND_S = 30.0  # the sum of serve's step bounds is larger; a healthy one takes ~3 s


@pytest.mark.timeout(180)
async def test_sigint_with_a_live_call_ends_settles_seals_then_exits(
    serves: list[ServeProcess],  # noqa: F811
    redis_url: str,
    tmp_path: Path,
) -> None:
    isolated = redis_url.rsplit("/", 1)[0] + "/6"
    redis = Redis.from_url(isolated)
    await redis.flushdb()
    try:
        await apply_seed(redis, parse_seed(json.dumps(standard_seed_data())))
        serve = ServeProcess(tmp_path / "var", "--redis-url", isolated, "--workers", "1")
        serves.append(serve)
        await asyncio.to_thread(serve.wait_ready)
        tokens = Tokens(SECRET)
        tablet = ProtocolClient(serve.url, tokens.issue("tablet", "R1"), "R1", reconnect=False)
        family = ProtocolClient(serve.url, tokens.issue("family", "F1"), "F1", reconnect=False)
        async with tablet, family:
            call_id = await tablet.place("F1")
            incoming = await family.next("call.incoming")
            await family.accept(call_id)
            async with media_between(Ringing(tablet, family, call_id, incoming)):
                signalled = time.monotonic()
                serve.proc.send_signal(signal.SIGINT)
                ended = [await party.next("call.ended", timeout=20) for party in (tablet, family)]
        assert {e["reason"] for e in ended} == {"server_shutdown"}
        assert "charged_cents" in ended[1], ended  # the family's: settled before the goodbye
        code = await asyncio.to_thread(serve.wait_exit, SHUTDOWN_BOUND_S + 30)
        took = time.monotonic() - signalled
        assert code == 0, serve.output[-3000:]
        assert took < SHUTDOWN_BOUND_S, f"exited {took:.1f} s after SIGINT"
        # Sealed: the recording's catalog entry is final and signed.
        entry = await redis.hgetall(f"rec:{call_id}")
        assert entry.get(b"state") == b"final", entry
        assert json.loads(entry[b"manifest"]).get("signature"), entry
        assert "shutdown: closing clients, settling, sealing took" in serve.output
    finally:
        await redis.flushdb()
        await redis.aclose()
