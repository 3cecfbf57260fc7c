"""Redis behind Sentinel: the URL that names it, and clients that follow a failover.

One URL carries the whole setting everywhere a Redis URL goes (nodes, workers through
``REDIS_URL``, the Socket.IO manager, rate limits), in python-socketio's format::

    redis+sentinel://[[user]:password@]host:port,host:port,.../<db>/<master name>
                     [?sentinel_password=...]

The password is the data nodes' (``requirepass``); Sentinels are asked without one unless
``sentinel_password`` is given (Sentinels often run without a password, see compose.scale.yaml).

A client from :func:`core.redis_pool.connect` asks the Sentinels for the master whenever
it (re)connects (:class:`FollowingConnection`), through a pool that waits for a free connection
like :class:`core.redis_pool.BoundedPool`. When the master goes away, commands fail with
connection errors (or ``READONLY`` from a demoted master, which redis-py turns into one) and are
retried with backoff for up to :data:`FAILOVER_BUDGET_S`, each retry on a fresh connection to
whatever master the Sentinels name by then: the same client object keeps working
across a failover. A dead peer that sends no reset is noticed by TCP keepalive within ~11 s.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

import redis
import redis.sentinel
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelConnection
from redis.backoff import EqualJitterBackoff, ExponentialBackoff
from redis.retry import Retry as SyncRetry

SCHEME: Final = "redis+sentinel"
DEFAULT_MASTER: Final = "visitation"
FAILOVER_BUDGET_S: Final = 15.0  # a command rides out a failover this long, then fails
SENTINEL_TIMEOUT_S: Final = 2.0  # each question to one Sentinel
CONNECT_TIMEOUT_S: Final = 3.0  # a TCP connect to a data node
T = TypeVar("T")


def keepalive_options() -> dict[int, int]:
    """TCP keepalive that notices a silent peer (a host gone, a partition) in ~11 s."""
    options: dict[int, int] = {}
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            options[getattr(socket, name)] = value
    return options


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    master: str = DEFAULT_MASTER
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelUrl:
        """ValueError, naming what is wrong, for anything but a complete sentinel URL."""
        parts = urlsplit(url)
        if parts.scheme != SCHEME:
            raise ValueError(f"not a {SCHEME}:// URL")
        credentials, _, hosts = parts.netloc.rpartition("@")
        username = password = None
        if credentials:
            user, _, secret = credentials.partition(":")
            username, password = unquote(user) or None, unquote(secret) or None
        path = [p for p in parts.path.split("/") if p]
        if len(path) > 2:
            raise ValueError("the path is /<db>/<master name>")
        db_text = path[0] if path else "0"
        if not db_text.isdigit():
            raise ValueError(f"database {db_text!r} is not a number")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(query) - {"sentinel_password"}
        if unknown:
            raise ValueError(f"unknown parameter(s) {sorted(unknown)}")
        sentinel_password = query.get("sentinel_password", [""])[-1] or None
        return cls(
            sentinels=parse_hosts(hosts),
            master=path[1] if len(path) > 1 else DEFAULT_MASTER,
            db=int(db_text),
            username=username,
            password=password,
            sentinel_password=sentinel_password,
        )

    def url(self) -> str:
        auth = ""
        if self.username or self.password:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password or '', safe='')}@"
        hosts = ",".join(f"{_bracket(h)}:{p}" for h, p in self.sentinels)
        url = f"{SCHEME}://{auth}{hosts}/{self.db}/{quote(self.master, safe='')}"
        if self.sentinel_password:
            url += f"?sentinel_password={quote(self.sentinel_password, safe='')}"
        return url


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_hosts(text: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (IPv6 as ``[addr]:port``); ValueError naming a bad item."""
    out: list[tuple[str, int]] = []
    for item in (i.strip() for i in text.split(",")):
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not item or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item!r} is not host:port")
        out.append((host, int(port)))
    if not out:
        raise ValueError("no sentinel given")
    return tuple(out)


def is_sentinel_url(url: str) -> bool:
    return url.startswith(f"{SCHEME}://")


class FailoverRetry(Retry):
    """Retry connection errors and timeouts with backoff until ``budget_s`` has passed since
    the first try (a count alone would make nested retries, connect inside command, multiply)."""

    def __init__(self, budget_s: float = FAILOVER_BUDGET_S) -> None:
        super().__init__(EqualJitterBackoff(cap=1.0, base=0.05), 10_000)  # the budget ends it
        self.budget_s = budget_s

    async def call_with_retry(
        self,
        do: Callable[[], Awaitable[T]],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        deadline = time.monotonic() + self.budget_s
        failures = 0
        while True:
            try:
                return await do()
            except self._supported_errors as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                await (fail(error, failures) if with_failure_count else fail(error))
                pause = self._backoff.compute(failures)
                if time.monotonic() + pause > deadline:
                    raise
                await asyncio.sleep(pause)


class FollowingConnection(AsyncSentinelConnection):
    """A connection to the master that asks the Sentinels again whenever it reconnects.

    redis-py's own asks them only in ``connect()``; a command retried after its connection
    broke reconnects from ``send_packed_command`` through ``connect_check_health``, to the old
    address: through a failover, to a dead master and then to it demoted (READONLY), until the
    retries run out. Here that path asks the Sentinels too, and tries the socket once (the
    command's retry comes back and asks again)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call,unused-ignore]
        self._addressed = False  # connect_to() has just been given the master's address

    async def connect_to(self, address: tuple[str, int]) -> None:
        self._addressed = True
        try:
            await super().connect_to(address)  # type: ignore[no-untyped-call,unused-ignore]
        finally:
            self._addressed = False

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if not self.is_connected and self.connection_pool.is_master and not self._addressed:
            self.host, self.port = await self.connection_pool.get_master_address()
            retry_socket_connect = False
        await super().connect_check_health(
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )


class _FollowingSyncConnection(redis.sentinel.SentinelManagedConnection):
    """:class:`FollowingConnection` for blocking clients."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call,unused-ignore]
        self._addressed = False

    def connect_to(self, address: tuple[str, int]) -> None:
        self._addressed = True
        try:
            super().connect_to(address)  # type: ignore[no-untyped-call,unused-ignore]
        finally:
            self._addressed = False

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock is None and self.connection_pool.is_master and not self._addressed:
            self.host, self.port = self.connection_pool.get_master_address()
            retry_socket_connect = False
        super().connect_check_health(
            check_health=check_health, retry_socket_connect=retry_socket_connect
        )


class _FollowingSyncPool(redis.sentinel.SentinelConnectionPool):
    def close(self) -> None:
        super().close()
        self.sentinel_manager.close()


def sentinel_kwargs(parsed: SentinelUrl) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }
    if parsed.sentinel_password:
        kwargs["password"] = parsed.sentinel_password
    return kwargs


def node_kwargs(parsed: SentinelUrl) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"db": parsed.db, "socket_connect_timeout": CONNECT_TIMEOUT_S}
    if parsed.username:
        kwargs["username"] = parsed.username
    if parsed.password:
        kwargs["password"] = parsed.password
    return kwargs


def connect_sync(url: str, *, socket_timeout: float) -> redis.Redis:
    """A blocking client of the master (a heartbeat thread's): each command tries twice,
    quickly; its caller tries again at its next beat."""
    parsed = SentinelUrl.parse(url)
    manager = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call,unused-ignore]
        list(parsed.sentinels), sentinel_kwargs=sentinel_kwargs(parsed)
    )
    client: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call,unused-ignore]
        parsed.master,
        connection_pool_class=_FollowingSyncPool,
        connection_class=_FollowingSyncConnection,
        socket_timeout=socket_timeout,
        retry=SyncRetry(ExponentialBackoff(cap=0.5, base=0.05), 1),
        socket_keepalive=True,
        socket_keepalive_options=keepalive_options(),
        **node_kwargs(parsed),
    )
    return client
