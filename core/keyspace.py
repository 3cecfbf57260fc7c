"""One naming scheme for every Redis key, so a reader (or an operator with ``redis-cli``) can
tell from a key what it holds and which package owns it.

A key is ``<space>:<segment>...``: colon-separated, lower-case literal segments
(``[a-z][a-z0-9_]*``) and ``{slot}`` segments filled with ids, at least two segments, the first a
literal naming the concept's *space*. Each space belongs to one package, so two packages can
never write the same key. Every key is built by calling a :class:`Key` (``CALL("c1")`` →
``"call:c1"``); no module spells a key as an f-string. Each package lists its keys in its own
``redis_keys.py`` (``KEYS``), :mod:`visitation.keyspace` gathers them, and ``docs/keyspace.md`` is
rendered from that list (a test keeps the two the same and checks that every key a test run
leaves in Redis matches exactly one pattern).

A slot's value may not be empty and holds no ``:``, except a *rest* slot, ``{name+}``, which
may only end a pattern and takes the rest of the key (an e-mail, a library's window name, an
event id built of parts). So every key parses back into its slots without ambiguity, and
``call:{call_id}`` never matches ``call:c1:flags``. Where a key's name changes, the package
lists a :class:`Rename` and :func:`migrate` moves a deployment's data once, at start-up, before
anything reads it.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from redis.asyncio import Redis

log = logging.getLogger(__name__)

_LITERAL = re.compile(r"[a-z][a-z0-9_]*\Z")
_SLOT = re.compile(r"\{([a-z][a-z0-9_]*)\+?\}\Z")
VERSION_KEY = "system:keyspace"  # the set of renames already applied (their ``name``)


class Kind(StrEnum):
    STRING = "string"
    HASH = "hash"
    LIST = "list"
    SET = "set"
    ZSET = "zset"
    STREAM = "stream"
    CHANNEL = "channel"  # pub/sub: named like a key, never stored


def _segments(pattern: str) -> list[str]:
    return pattern.split(":")


def _slot(segment: str) -> str | None:
    found = _SLOT.match(segment)
    return found.group(1) if found else None


def _rest(segment: str) -> bool:
    return segment.endswith("+}") and _slot(segment) is not None


@dataclass(frozen=True)
class Key:
    """A family of keys: ``pattern`` such as ``"call:{call_id}:watchers"``."""

    pattern: str
    kind: Kind
    about: str
    expires: str = ""  # when Redis drops it, in words ("24 h after the call ends"); "" = kept
    slots: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        parts = _segments(self.pattern)
        if len(parts) < 2 or not _LITERAL.match(parts[0]):
            raise ValueError(f"key {self.pattern!r}: needs a literal space and one more segment")
        slots: list[str] = []
        if any(_rest(part) for part in parts[:-1]):
            raise ValueError(f"key {self.pattern!r}: a rest slot {{name+}} may only end it")
        for part in parts[1:]:
            name = _slot(part)
            if name is None and not _LITERAL.match(part):
                raise ValueError(f"key {self.pattern!r}: bad segment {part!r}")
            if name is not None:
                if name in slots:
                    raise ValueError(f"key {self.pattern!r}: slot {name!r} twice")
                slots.append(name)
        object.__setattr__(self, "slots", tuple(slots))

    @property
    def space(self) -> str:
        return _segments(self.pattern)[0]

    def __call__(self, *values: str | int) -> str:
        if len(values) != len(self.slots):
            raise TypeError(f"key {self.pattern!r} takes {len(self.slots)} values")
        texts = [str(value) for value in values]
        rest = _rest(_segments(self.pattern)[-1])
        for index, value in enumerate(texts):
            if not value or (":" in value and not (rest and index == len(texts) - 1)):
                raise ValueError(f"key {self.pattern!r}: bad {self.slots[index]} {value!r}")
        filled = iter(texts)
        return ":".join(
            next(filled) if _slot(part) is not None else part for part in _segments(self.pattern)
        )

    def glob(self) -> str:
        """The ``SCAN MATCH`` pattern of every key of this family."""
        return ":".join("*" if _slot(part) else part for part in _segments(self.pattern))

    def parse(self, key: str) -> tuple[str, ...] | None:
        """The slots' values if ``key`` is of this family, else ``None``."""
        return _parse(self.pattern, key)

    def matches(self, key: str) -> bool:
        return self.parse(key) is not None


def _parse(pattern: str, key: str) -> tuple[str, ...] | None:
    parts, got = _segments(pattern), key.split(":")
    if len(got) < len(parts) or (len(got) > len(parts) and not _rest(parts[-1])):
        return None
    if len(got) > len(parts):  # the last slot holds the ':'s
        got = [*got[: len(parts) - 1], ":".join(got[len(parts) - 1 :])]
    values: list[str] = []
    for part, value in zip(parts, got, strict=True):
        if _slot(part) is not None:
            if not value:
                return None
            values.append(value)
        elif part != value:
            return None
    return tuple(values)


@dataclass(frozen=True)
class Rename:
    """Keys once named ``old`` (a pattern with the same slots, in any order) are now ``new``.
    ``name`` identifies the step in :data:`VERSION_KEY`, so it runs once per deployment."""

    name: str
    old: str
    new: Key

    def __post_init__(self) -> None:
        old_slots = [s for s in (_slot(p) for p in _segments(self.old)) if s is not None]
        if sorted(old_slots) != sorted(self.new.slots):
            raise ValueError(f"rename {self.name}: {self.old!r} and {self.new.pattern!r} differ")

    def target(self, key: str) -> str | None:
        values = _parse(self.old, key)
        if values is None:
            return None
        old_slots = [s for s in (_slot(p) for p in _segments(self.old)) if s is not None]
        by_slot = dict(zip(old_slots, values, strict=True))
        return self.new(*(by_slot[name] for name in self.new.slots))


def collisions(keys: Sequence[Key]) -> list[tuple[Key, Key]]:
    """Pairs of families some key could belong to both of (same length, and each segment pair
    equal or one of them a slot), and pairs of families in one space from different owners are
    the caller's to check (see :func:`owners_by_space`)."""
    found: list[tuple[Key, Key]] = []
    for index, first in enumerate(keys):
        for second in keys[index + 1 :]:
            if _overlap(_segments(first.pattern), _segments(second.pattern)):
                found.append((first, second))
    return found


def _overlap(a: list[str], b: list[str]) -> bool:
    """Whether some key has both segment lists' shape (a rest slot takes 1 or more segments)."""
    if len(a) > len(b):
        a, b = b, a
    if len(a) < len(b) and not _rest(a[-1]):
        return False
    head = len(a) - 1 if len(a) < len(b) else len(a)
    return all(
        x == y or _slot(x) is not None or _slot(y) is not None
        for x, y in zip(a[:head], b[:head], strict=True)
    )


def owners_by_space(groups: Mapping[str, Sequence[Key]]) -> dict[str, set[str]]:
    """Each space and the packages whose keys use it (one each, by the scheme)."""
    owners: dict[str, set[str]] = {}
    for owner, keys in groups.items():
        for key in keys:
            owners.setdefault(key.space, set()).add(owner)
    return owners


def unknown(keys: Iterable[str], families: Sequence[Key], foreign: Sequence[str] = ()) -> list[str]:
    """The keys that match no family (a key built outside the scheme) nor a ``foreign`` glob
    (keys a library names itself under a prefix we give it, e.g. a job queue's)."""
    return sorted(
        key
        for key in keys
        if not any(family.matches(key) for family in families)
        and not any(fnmatch.fnmatchcase(key, glob) for glob in foreign)
    )


def render_markdown(
    groups: Mapping[str, Sequence[Key]], foreign: Mapping[str, Sequence[str]] | None = None
) -> str:
    """The table of every key, by owning package (``docs/keyspace.md``)."""
    lines = [
        "# The Redis keyspace",
        "",
        "Generated from each package's `keys.py` by `python -m visitation.keyspace`;",
        "`tests/unit/core/test_keyspace.py` keeps this file and the code the same.",
        "",
        "A key is `<space>:<segment>...`: lower-case literal segments and `{slot}`s filled with",
        "ids. Each space belongs to one package. See `core/keyspace.py` for the rules.",
    ]
    for owner, keys in groups.items():
        lines += ["", f"## `{owner}`", "", "| key | type | holds | expires |", "|---|---|---|---|"]
        for key in sorted(keys, key=lambda k: k.pattern):
            cells = [f"`{key.pattern}`", key.kind.value, key.about, key.expires or "kept"]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        for glob in (foreign or {}).get(owner, ()):
            lines.append(f"| `{glob}` | (a library's) | named by the library, under our prefix | |")
    return "\n".join(lines) + "\n"


async def migrate(redis: Redis, renames: Sequence[Rename]) -> dict[str, int]:
    """Apply each rename not yet applied, in order: every key of its old pattern is renamed to
    its new name (an old pattern ``x:{id}`` matches every two-segment key of ``x``: list such a
    rename after the more specific ones of its space) (``RENAMENX``: a key already written under the new name is never overwritten; the old
    one is then left and logged). Safe to run on every start and from several nodes at once.
    Returns how many keys each applied step moved."""
    moved: dict[str, int] = {}
    if not await redis.dbsize():
        return moved  # a new deployment: nothing to rename, and nothing written
    for rename in renames:
        if await redis.sismember(VERSION_KEY, rename.name):
            continue
        count = 0
        glob = ":".join("*" if _slot(p) else p for p in _segments(rename.old))
        async for raw in redis.scan_iter(match=glob, count=500):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            if rename.new.matches(key):  # already moved (SCAN may return it again)
                continue
            target = rename.target(key)
            if target is None or target == key:
                continue
            if await redis.renamenx(key, target):
                count += 1
            elif await redis.exists(key):
                log.warning(
                    "keyspace %s: %s left as is: %s already exists", rename.name, key, target
                )
        await redis.sadd(VERSION_KEY, rename.name)
        moved[rename.name] = count
        if count:
            log.info(
                "keyspace %s: %d keys %s -> %s", rename.name, count, rename.old, rename.new.pattern
            )
    return moved
