"""Scheduled visits' Redis keys, all in the space ``visits`` (the scheme: :mod:`core.keyspace`;
how the booking scripts use them: the headers of ``book.lua`` and ``transition.lua``)."""

from __future__ import annotations

from typing import Final

from core.keyspace import Key, Kind

VISIT: Final = Key("visits:v:{visit_id}", Kind.HASH, "a visit's record (visits.record.Visit)")
SLOT: Final = Key(
    "visits:slot:{facility_id}:{start}",
    Kind.SET,
    "the visits holding one slot of a facility (its stations), by the slot's start",
)
RESIDENT_HOLDS: Final = Key(
    "visits:holds:resident:{resident_id}",
    Kind.ZSET,
    "a resident's holding visits (member end|visit_id, scored by start): overlaps, the week",
)
FAMILY_HOLDS: Final = Key(
    "visits:holds:family:{family_id}",
    Kind.ZSET,
    "a family's holding visits (member end|visit_id, scored by start): overlaps",
)
RESIDENT_VISITS: Final = Key(
    "visits:all:resident:{resident_id}", Kind.ZSET, "every visit of a resident, by start"
)
FAMILY_VISITS: Final = Key(
    "visits:all:family:{family_id}", Kind.ZSET, "every visit of a family, by start"
)
FACILITY_VISITS: Final = Key(
    "visits:all:facility:{facility_id}", Kind.ZSET, "every visit at a facility, by start"
)
CALL_VISIT: Final = Key(
    "visits:call:{call_id}", Kind.STRING, "the visit a call was placed for", "2 days"
)

KEYS: Final = (
    VISIT,
    SLOT,
    RESIDENT_HOLDS,
    FAMILY_HOLDS,
    RESIDENT_VISITS,
    FAMILY_VISITS,
    FACILITY_VISITS,
    CALL_VISIT,
)
