"""Rate limits per subject and per address, kept in Redis (shared by every node).

The counting is the ``limits`` library's sliding-window counter on our Redis connection pool;
this module only names the limits, reads their settings and turns a refusal into a
``Retry-After``. Each limit is a ``limits`` string (``"6/minute"``, ``"20 per second"``) or
``"off"``, set with ``VISITATION_RATE_LIMIT_<NAME>`` (e.g. ``VISITATION_RATE_LIMIT_CALL_PLACE``).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from redis.asyncio import Redis

from core.redis_keys import RATE_LIMIT
from core.redis_sentinel import is_sentinel_url

KEY_PREFIX = RATE_LIMIT.space  # the library names its keys ratelimit:{...}
ENV_PREFIX = "VISITATION_RATE_LIMIT_"
OFF = "off"

LimitName = Literal[
    "http_address",
    "http_subject",
    "connect_address",
    "connect_subject",
    "events_subject",
    "call_place",
    "monitor_flag",
]


@dataclass(frozen=True)
class RateLimits:
    """How much one subject or address may do. Defaults fit one person per subject and a
    facility's tablets behind one address; tests and the benchmark raise them."""

    http_address: str = "1200/minute"  # HTTP requests from one address (pages, API)
    http_subject: str = "300/minute"  # API requests with one subject's tokens
    connect_address: str = "300/minute"  # new Socket.IO connections from one address
    connect_subject: str = "30/minute"  # new Socket.IO connections with one subject's tokens
    events_subject: str = "1200/minute"  # Socket.IO events from one subject, all sockets
    call_place: str = "6/minute"  # call.place by one tablet: a family is not rung over and over
    monitor_flag: str = "20/minute"  # monitor.flag by one monitor on one call
    sockets_per_subject: int = 5  # sockets open at once with one subject's tokens
    flags_per_call: int = 200  # flags one call keeps at most

    @classmethod
    def from_env(cls) -> RateLimits:
        values: dict[str, str | int] = {}
        for f in fields(cls):
            raw = os.environ.get(ENV_PREFIX + f.name.upper())
            if raw:
                values[f.name] = _count(f.name, raw) if f.type == "int" else raw.strip()
        limits = cls(**values)  # type: ignore[arg-type]
        limits.check()
        return limits

    def check(self) -> None:
        """Raise ValueError naming the first setting that is not a rate limit."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                if not isinstance(value, int) or value < 1:
                    raise ValueError(f"{ENV_PREFIX}{f.name.upper()}: must be a whole number >= 1")
            elif value != OFF:
                try:
                    parse(value)
                except ValueError:
                    raise ValueError(
                        f"{ENV_PREFIX}{f.name.upper()}: {value!r} is not a rate limit "
                        f"(e.g. '6/minute', '20 per second' or '{OFF}')"
                    ) from None

    def scaled(self, factor: int) -> RateLimits:
        """Every limit ``factor`` times as generous (tests, the benchmark)."""
        changes: dict[str, str | int] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int):
                changes[f.name] = value * factor
            elif value != OFF:
                item = parse(value)
                changes[f.name] = f"{item.amount * factor}/{item.multiples} {item.GRANULARITY.name}"
        return replace(self, **changes)  # type: ignore[arg-type]


def _count(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}: must be a whole number >= 1") from None


def _storage_uri(redis_url: str) -> str:
    """``limits``' name for our Redis URL: it takes any scheme not starting ``redis`` (a
    ``unix://`` socket, say) for Valkey, so a socket is spelled ``redis+unix://``. Behind
    Sentinel the node's own pool (which follows a failover) is all it uses: no address."""
    if is_sentinel_url(redis_url):
        return "async+redis://"
    if redis_url.startswith("unix://"):
        redis_url = "redis+" + redis_url
    return "async+" + redis_url


class RateLimiter:
    """``await hit(name, *who)``: None if allowed, else the seconds to wait (``Retry-After``)."""

    def __init__(self, redis: Redis, redis_url: str, limits: RateLimits) -> None:
        limits.check()
        self.limits = limits
        # On the node's own bounded pool (a documented option of the redis-py bridge).
        pool: dict[str, Any] = {"connection_pool": redis.connection_pool}
        storage = RedisStorage(
            _storage_uri(redis_url), implementation="redispy", key_prefix=KEY_PREFIX, **pool
        )
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self._items: dict[str, RateLimitItem | None] = {}
        for f in fields(limits):
            value = getattr(limits, f.name)
            if isinstance(value, str):
                self._items[f.name] = None if value == OFF else parse(value)

    async def hit(self, name: LimitName, *who: str) -> float | None:
        item = self._items[name]
        if item is None or await self._strategy.hit(item, name, *who):
            return None
        stats = await self._strategy.get_window_stats(item, name, *who)
        return float(max(1, math.ceil(stats.reset_time - time.time())))
