"""Every key in Redis, its serialized value and when it expires: what the script tests compare
to show that a refused input changed nothing."""

from __future__ import annotations

from redis.asyncio import Redis

Dump = dict[bytes, tuple[bytes | None, int]]


async def dump(redis: Redis, match: str = "*") -> Dump:
    """Each key (of ``match``, a ``SCAN`` glob: e.g. a package's space, where a shared SFU
    worker keeps writing its own) -> (``DUMP`` of its value, ``PEXPIRETIME``: -1 kept, else
    the ms it expires)."""
    out: Dump = {}
    for key in sorted([key async for key in redis.scan_iter(match=match, count=1000)]):
        out[key] = (await redis.dump(key), int(await redis.execute_command("PEXPIRETIME", key)))
    return out
