"""The Redis-compatible server we run on, checked at start-up (``serve`` and the SFU worker).

:func:`check_server` reads ``INFO server`` and asks ``COMMAND INFO`` for the commands the project
cannot do without:

- a server older than the supported lines (Valkey >= 7.2, Redis >= 7.2) is logged as a warning
  that names its version and the risk (its line gets no security fixes, e.g. for the Lua
  use-after-free CVE-2025-49844, which lets whoever may run scripts run code on the server);
- a server without one of :data:`REQUIRED_COMMANDS` (``WAIT`` is missing on some managed
  services; Lua on others) is refused: :class:`UnsupportedRedis`, with a message saying what is
  missing and what it is for.

Valkey reports ``redis_version:7.2.4`` for compatibility and its own ``valkey_version``:
:meth:`ServerVersion.from_info` reads that one first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.asyncio import Redis

from core.config import ConfigError
from core.redis_pool import connect

log = logging.getLogger(__name__)

#: The oldest supported version of each line (older ones no longer get security fixes).
SUPPORTED: Mapping[str, tuple[int, int]] = {"valkey": (7, 2), "redis": (7, 2)}

#: Commands the project needs, and what for (a server missing one is refused).
REQUIRED_COMMANDS: Mapping[str, str] = {
    "wait": "a ledger write is acknowledged once a replica has it (WAIT durability)",
    "eval": "the ledger, the billing outbox and the timers are Lua scripts",
    "evalsha": "the ledger, the billing outbox and the timers are Lua scripts",
    "script": "the Lua scripts are loaded once (SCRIPT LOAD)",
    "xadd": "the audit log and the dead-letter queues are streams",
    "publish": "the signaling nodes talk through pub/sub",
}


class UnsupportedRedis(ConfigError):
    """The server lacks something the project needs: it must not start on it."""


@dataclass(frozen=True)
class ServerVersion:
    """Which server it is (``valkey`` or ``redis``) and its version."""

    name: str
    version: tuple[int, ...]

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> ServerVersion:
        """From an ``INFO server`` reply (as redis-py parses it)."""
        if info.get("valkey_version") is not None or info.get("server_name") == "valkey":
            return cls("valkey", _parse(info.get("valkey_version", info.get("redis_version"))))
        return cls("redis", _parse(info.get("redis_version")))

    @property
    def text(self) -> str:
        return ".".join(str(part) for part in self.version) or "unknown"

    def __str__(self) -> str:
        return f"{'Valkey' if self.name == 'valkey' else 'Redis'} {self.text}"

    @property
    def supported(self) -> bool:
        """In a line that still gets fixes (an unknown server or version counts as not)."""
        floor = SUPPORTED.get(self.name)
        return floor is not None and bool(self.version) and self.version[:2] >= floor


def _parse(value: object) -> tuple[int, ...]:
    # redis-py turns "7.2" into a float and "7" into an int: read the text back.
    found = re.match(r"\d+(?:\.\d+)*", str(value if value is not None else ""))
    return tuple(int(part) for part in found.group(0).split(".")) if found else ()


def old_server_warning(version: ServerVersion) -> str:
    """The start-up warning for a server older than the supported lines."""
    lines = " and ".join(
        f"{'Valkey' if name == 'valkey' else 'Redis'} >= {'.'.join(map(str, floor))}"
        for name, floor in SUPPORTED.items()
    )
    return (
        f"the Redis server is {version}, older than the supported lines ({lines}): its line "
        "gets no security fixes (e.g. CVE-2025-49844, a Lua use-after-free that lets whoever "
        "may run scripts run code on the server; CVE-2024-31228, a crash on long patterns), "
        "and this project runs its money and evidence through Lua scripts on it. Upgrade it."
    )


def missing_commands_message(version: ServerVersion, missing: Sequence[str]) -> str:
    """Why a server without ``missing`` is refused."""
    needs = "; ".join(f"{name.upper()}: {REQUIRED_COMMANDS[name]}" for name in missing)
    return (
        f"the Redis server ({version}) does not offer {', '.join(n.upper() for n in missing)}, "
        f"which this project needs ({needs}). Use Valkey or Redis >= 7.2 with these commands "
        "enabled (some managed services disable them)."
    )


async def missing_commands(
    client: Redis, names: Sequence[str] = tuple(REQUIRED_COMMANDS)
) -> list[str]:
    """Which of ``names`` the server does not know (``COMMAND INFO`` answers nil for those).
    A server that refuses ``COMMAND`` itself is asked ``WAIT 0 0`` (harmless) instead."""
    try:
        # One token "COMMAND INFO": redis-py has no parser for its nil entries.
        reply = await client.execute_command("COMMAND INFO", *names)  # type: ignore[no-untyped-call]
    except redis.ResponseError:
        try:
            await client.execute_command("WAIT", 0, 0)  # type: ignore[no-untyped-call]
        except redis.ResponseError:
            return ["wait"]
        return []
    return [name for name, entry in zip(names, reply, strict=False) if not entry]


async def check_server(client: Redis, what: str = "visitation") -> ServerVersion:
    """Read the server's version (a warning if older than the supported lines) and refuse
    one without a command we need (:class:`UnsupportedRedis`). Returns its version."""
    info = await client.info("server")
    version = ServerVersion.from_info(info)
    missing = await missing_commands(client)
    if missing:
        raise UnsupportedRedis(missing_commands_message(version, missing))
    if not version.supported:
        log.warning("%s: %s", what, old_server_warning(version))
    else:
        log.info("%s: the Redis server is %s", what, version)
    return version


async def check_url(url: str, what: str = "visitation") -> ServerVersion | None:
    """:func:`check_server` on a client of its own for ``url`` (Sentinel or not). A server that
    cannot be reached is no reason to refuse here (the caller copes with that as it always
    does): a warning, and None."""
    client = connect(url, max_connections=2)
    try:
        return await check_server(client, what)
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        log.warning("%s: could not check the Redis server's version: %s", what, exc)
        return None
    finally:
        await client.aclose()
