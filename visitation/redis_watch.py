"""Whether a node still has its Redis, for ``/healthz`` and for ``serve``'s supervisor.

:class:`RedisHealth` pings Redis every second on a client of its own with no retries (the node's
clients retry each command for ~5 s, which would hide an outage and hold a health check that
long); ``/healthz`` reads its last answer, so it never waits on Redis. Past ``budget_s``
without an answer (beyond the node's retry budget) the node is unhealthy, and says for how
long.

:class:`EmbeddedRedisKeeper` is ``serve``'s, when the Redis is the embedded one it started: if
that Redis dies (its process gone) or stays unreachable past the budget, it is restarted once
on the same port, password and AOF; if it does not come back, ``on_fatal`` is told why (serve
then exits non-zero, and a supervisor such as systemd restarts it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from core.tasks import Periodic

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_BUDGET_S = 10.0  # twice the node's Redis retry budget (core.redis_pool.RETRIES)
PROBE_TIMEOUT_S = 1.0


@dataclass
class RedisHealth:
    """The last answers of Redis to a plain ping (see the module's doc)."""

    url: str
    budget_s: float = DEFAULT_BUDGET_S
    interval_s: float = 1.0
    clock: Callable[[], float] = time.monotonic
    down_since: float | None = field(default=None, init=False)
    _client: Redis | None = field(default=None, init=False, repr=False)
    _periodic: Periodic | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        self._client = Redis.from_url(
            self.url, socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S
        )
        self._periodic = Periodic("redis-health", self.probe, self.interval_s, delay_first=False)
        self._periodic.start()

    async def stop(self) -> None:
        if self._periodic is not None:
            await self._periodic.stop()
        if self._client is not None:
            await self._client.aclose()

    async def probe(self) -> bool:
        """One ping; records when answers stopped."""
        assert self._client is not None, "start() first"
        try:
            await asyncio.wait_for(self._client.ping(), PROBE_TIMEOUT_S * 2)
        except (RedisError, OSError, TimeoutError):
            if self.down_since is None:
                self.down_since = self.clock()
                log.warning("redis does not answer")
            return False
        if self.down_since is not None:
            log.info("redis answers again after %.1f s", self.clock() - self.down_since)
        self.down_since = None
        return True

    @property
    def down_for(self) -> float:
        return 0.0 if self.down_since is None else self.clock() - self.down_since

    @property
    def lost(self) -> bool:
        """Unreachable beyond the budget."""
        return self.down_for > self.budget_s

    def reason(self) -> str | None:
        """Why the node is unhealthy for Redis, or None."""
        if not self.lost:
            return None
        return f"redis unreachable for {self.down_for:.0f} s"


REDIS_HEALTH = web.AppKey("redis_health", RedisHealth)
HEALTHZ_PATH = "/healthz"


def lost_body(reason: str) -> dict[str, object]:
    """``/healthz``'s answer (503) once Redis is lost."""
    return {"ok": False, "redis": False, "sfu_workers": 0, "reason": reason}


@web.middleware
async def healthz_first(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: ``/healthz`` answers 503 with the reason at once when Redis is lost, before
    the other middlewares, which need Redis (the address rate limit would answer 500)."""
    if request.path == HEALTHZ_PATH:
        health = request.app.get(REDIS_HEALTH)
        reason = health.reason() if health is not None else None
        if reason is not None:
            return web.json_response(lost_body(reason), status=503)
    return await handler(request)


def install_health(app: web.Application, health: RedisHealth) -> None:
    """Before the app starts: ``/healthz`` reads ``health`` (see :func:`healthz_first`)."""
    app[REDIS_HEALTH] = health
    app.middlewares.insert(0, healthz_first)


@dataclass
class EmbeddedRedisKeeper:
    """Restarts the embedded Redis once when it dies; ``on_fatal(reason)`` if it cannot."""

    embedded: EmbeddedRedis
    health: RedisHealth
    on_fatal: Callable[[str], None]
    interval_s: float = 1.0
    fatal: str | None = field(default=None, init=False)
    restarts: int = field(default=0, init=False)
    _periodic: Periodic | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        self._periodic = Periodic("embedded-redis", self.check, self.interval_s, delay_first=True)
        self._periodic.start()

    async def stop(self) -> None:
        if self._periodic is not None:
            await self._periodic.stop()

    async def check(self) -> None:
        if self.fatal is not None or not self.embedded.owned:
            return
        dead = not await asyncio.to_thread(self.embedded.alive)
        if not dead and not self.health.lost:
            return
        why = "its process died" if dead else self.health.reason()
        log.error("embedded redis lost (%s): restarting it once", why)
        try:
            await asyncio.to_thread(self.embedded.restart)
        except EmbeddedRedisError as exc:
            self.fatal = f"embedded redis lost ({why}) and could not be restarted: {exc}"
            log.critical("%s", self.fatal)
            self.on_fatal(self.fatal)
            return
        self.restarts += 1
        await self.health.probe()
