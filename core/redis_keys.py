"""The ground layer's Redis keys (the scheme: :mod:`core.keyspace`): the directory of domain
records, the facilities' day statistics, token revocations and the rate limits' windows.

Core owns the spaces ``facility``, ``resident``, ``family``, ``contact``, ``contacts``,
``contact_requests``, ``residents``, ``staff``, ``directory``, ``stats``, ``revoked``,
``revoked_token`` and ``ratelimit``. Three keys were outside the scheme and are renamed (see
:data:`RENAMES`): the bare ``staff`` and ``facilities`` indexes and ``revoked-token:{id}``.
"""

from __future__ import annotations

from typing import Final

from core.keyspace import VERSION_KEY, Key, Kind, Rename

# -- the directory (core/directory.py): domain records, JSON values --------------------------
FACILITY: Final = Key("facility:{facility_id}", Kind.STRING, "a facility (JSON)")
RESIDENT: Final = Key("resident:{resident_id}", Kind.STRING, "a resident (JSON)")
FAMILY: Final = Key(
    "family:{family_id}", Kind.STRING, "a family's profile (JSON; its balance is the ledger's)"
)
CONTACT: Final = Key(
    "contact:{resident_id}:{family_id}",
    Kind.STRING,
    "a family's contact with a resident: its status (JSON)",
)
STAFF: Final = Key("staff:{staff_id}", Kind.STRING, "a staff member: role, facilities (JSON)")
CONTACTS_OF: Final = Key(
    "contacts:of:{resident_id}", Kind.SET, "the family ids of a resident's contacts"
)
CONTACTS_FOR: Final = Key(
    "contacts:for:{family_id}", Kind.SET, "the resident ids of a family's contacts"
)
RESIDENTS_IN: Final = Key("residents:in:{facility_id}", Kind.SET, "a facility's resident ids")
CONTACT_REQUESTS: Final = Key(
    "contact_requests:{facility_id}",
    Kind.ZSET,
    "contacts families asked for at a facility: member resident_id:family_id, scored by when",
)
FACILITIES: Final = Key("directory:facilities", Kind.SET, "every facility id")
STAFF_INDEX: Final = Key("directory:staff", Kind.SET, "every staff id (seeded or added)")

# -- a facility's day in numbers (core/facility_stats.py) ------------------------------------
FACILITY_DAY: Final = Key(
    "stats:{facility_id}:{day}",
    Kind.HASH,
    "a facility's local day: calls settled, connected seconds, revenue, refusals by reason",
    "40 days after its last write",
)
FACILITY_DAY_CALLS: Final = Key(
    "stats:{facility_id}:{day}:calls",
    Kind.SET,
    "the call ids counted in that day (a retried settlement counts once)",
    "40 days after its last write",
)

# -- revoked tokens (core/revocation.py) -------------------------------------------------------
REVOKED: Final = Key(
    "revoked:{role}:{subject}",
    Kind.STRING,
    "when every token of a subject was revoked (Unix seconds); older tokens are refused",
)
REVOKED_TOKEN: Final = Key(
    "revoked_token:{token_id}",
    Kind.STRING,
    "one revoked token (a logout)",
    "when the token would have expired",
)

# -- rate limits (core/rate_limits.py, written by the `limits` library) ----------------------
RATE_LIMIT: Final = Key(
    "ratelimit:{window+}",
    Kind.STRING,
    "a sliding window's hit counter ({LIMITER/<limit>/<who>/...}, and its previous window /-1)",
    "two windows of its limit",
)

# -- the keyspace itself (core/keyspace.py) -------------------------------------------------
KEYSPACE_RENAMES: Final = Key(
    VERSION_KEY, Kind.SET, "the key renames already applied to this deployment (their names)"
)

KEYS: Final = (
    KEYSPACE_RENAMES,
    FACILITY,
    RESIDENT,
    FAMILY,
    CONTACT,
    STAFF,
    CONTACTS_OF,
    CONTACTS_FOR,
    RESIDENTS_IN,
    CONTACT_REQUESTS,
    FACILITIES,
    STAFF_INDEX,
    FACILITY_DAY,
    FACILITY_DAY_CALLS,
    REVOKED,
    REVOKED_TOKEN,
    RATE_LIMIT,
)
RENAMES: Final = (
    Rename("core-facilities-v1", "facilities", FACILITIES),
    Rename("core-staff-index-v1", "staff", STAFF_INDEX),
    Rename("core-revoked-token-v1", "revoked-token:{token_id}", REVOKED_TOKEN),
)
