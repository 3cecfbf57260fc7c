"""python-socketio's Redis manager on our own client, so that it follows a failover.

python-socketio builds its own Redis client (a ``redis+sentinel://`` URL included), but gives a
publish two quick tries and then drops the message, and re-subscribes after a failure only
after 1, 2, 4 ... 60 s: after a Redis restart or a Sentinel failover, nodes would stop hearing
each other's events for up to a minute. :class:`FollowingRedisManager` publishes and listens
through :func:`core.redis_pool.connect` (retries with backoff, the master found through
the Sentinels), and re-subscribes within a second of Redis answering again. Pub/sub keeps no
messages: what another node published while this one was not subscribed is not heard here
(this node's own clients always hear it: python-socketio delivers locally first).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import socketio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.redis_pool import connect

log = logging.getLogger(__name__)

MANAGER_CONNECTIONS = 8  # the subscription holds one; publishes share the rest
RESUBSCRIBE_MAX_S = 1.0


class FollowingRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    def __init__(self, url: str, channel: str) -> None:
        super().__init__(url, channel=channel)
        self._url = url
        self._own: Redis | None = None
        self.subscribed = asyncio.Event()  # set while the subscription is live (tests)

    def _client(self) -> Redis:
        if self._own is None:
            self._own = connect(self._url, max_connections=MANAGER_CONNECTIONS)
            self.redis = self._own  # what SignalingNode closes at the end
            self.connected = True
        return self._own

    def _redis_connect(self) -> None:  # python-socketio's hook: one client, kept
        self._client()

    async def _publish(self, data: Any) -> Any:
        try:
            return await self._client().publish(self.channel, self.json.dumps(data))
        except (RedisError, OSError) as exc:  # retried through the outage already
            log.error("socket.io: cannot publish to Redis (other nodes miss it): %s", exc)
            return None

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        pause = 0.1
        while True:
            pubsub = self._client().pubsub(ignore_subscribe_messages=True)
            self.pubsub = pubsub
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                pause = 0.1
                async for message in pubsub.listen():
                    yield message
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning("socket.io: Redis subscription lost (%s); again in %.1fs", exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RESUBSCRIBE_MAX_S)
            finally:
                self.subscribed.clear()
                try:
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
                except (RedisError, OSError):
                    pass
