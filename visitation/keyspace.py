"""Every package's Redis keys in one list: the docs table, the collision checks and the
start-up migration read it (see :mod:`core.keyspace` for the scheme).

``python -m visitation.keyspace`` prints ``docs/keyspace.md``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import ModuleType

from redis.asyncio import Redis

from core import keyspace
from core.keyspace import Key, Rename

# One module per owning package, ground first, in the order the docs list them (and the
# renames run). Each has ``KEYS``; where names changed, ``RENAMES``; where a library names keys
# under a prefix of ours, ``FOREIGN`` (globs).
_MODULES: tuple[str, ...] = (
    "core.redis_keys",
    "billing_hooks.redis_keys",
    "recorder.redis_keys",
    "media.redis_keys",
    "accounts.redis_keys",
    "push.redis_keys",
    "transcripts.redis_keys",
    "visits.redis_keys",
    "signaling.redis_keys",
)


def _modules() -> list[ModuleType]:
    import importlib

    return [importlib.import_module(name) for name in _MODULES]


def groups() -> dict[str, tuple[Key, ...]]:
    """Each owning package's keys, by package name."""
    return {module.__name__.rsplit(".", 1)[0]: tuple(module.KEYS) for module in _modules()}


def foreign() -> dict[str, tuple[str, ...]]:
    """Each owning package's globs of keys a library names (e.g. the transcripts job queue)."""
    return {
        module.__name__.rsplit(".", 1)[0]: tuple(getattr(module, "FOREIGN", ()))
        for module in _modules()
    }


def foreign_globs() -> list[str]:
    return [glob for globs in foreign().values() for glob in globs]


def every_key() -> list[Key]:
    return [key for keys in groups().values() for key in keys]


def renames() -> list[Rename]:
    return [rename for module in _modules() for rename in getattr(module, "RENAMES", ())]


async def migrate(redis: Redis) -> dict[str, int]:
    """Rename a deployment's keys from older names (once; see :func:`core.keyspace.migrate`)."""
    return await keyspace.migrate(redis, renames())


async def migrate_url(url: str) -> dict[str, int]:
    """:func:`migrate` on a client of its own (``visitation serve``, before the node starts)."""
    from core.redis_pool import connect

    redis = connect(url)
    try:
        return await migrate(redis)
    finally:
        await redis.aclose()


def render() -> str:
    return keyspace.render_markdown(groups(), foreign())


def main(argv: Sequence[str] | None = None) -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
