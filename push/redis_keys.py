"""The push package's Redis keys (the scheme: :mod:`core.keyspace`). None renamed.

The outbox's keys are the ones :class:`billing_hooks.outbox.Outbox` derives from its stream's
name (``<stream>:seen:<id>``, ``:lease``, ``:rejections``, ``:dead``), and
:class:`push.outbox.PushOutbox` adds ``<stream>:delayed``. A subscription's record holds its
endpoint index's key name (``endpoint_key``): renaming :data:`ENDPOINT` would need those
records rewritten too.
"""

from __future__ import annotations

from typing import Final

from core.keyspace import Key, Kind

SUBSCRIPTIONS: Final = Key(
    "push:subs:{family_id}",
    Kind.HASH,
    "a family's push subscriptions: id -> JSON record (endpoint, keys, device, endpoint_key)",
)
ENDPOINT: Final = Key(
    "push:endpoint:{digest}",
    Kind.STRING,
    "which family and subscription hold an endpoint (family id, newline, id), by its SHA-256",
)
VAPID_PUBLIC: Final = Key(
    "push:vapid:public",
    Kind.STRING,
    "the VAPID public key the first node published (every node checks its own against it)",
    "24 h after it was first set",
)
OUTBOX: Final = Key("push:outbox", Kind.STREAM, "push messages due now, one per subscription")
OUTBOX_SEEN: Final = Key(
    "push:outbox:seen:{event_id+}",
    Kind.STRING,
    "a push message's id appended (a repeated event is dropped)",
    "8 days",
)
OUTBOX_LEASE: Final = Key(
    "push:outbox:lease", Kind.STRING, "the node sending the push outbox", "the lease's TTL"
)
OUTBOX_REJECTIONS: Final = Key(
    "push:outbox:rejections", Kind.HASH, "refusals so far per outbox entry"
)
OUTBOX_DEAD: Final = Key("push:outbox:dead", Kind.STREAM, "push messages given up on")
OUTBOX_DELAYED: Final = Key(
    "push:outbox:delayed", Kind.ZSET, "push messages waiting for a retry, scored by when due"
)

KEYS: Final = (
    SUBSCRIPTIONS,
    ENDPOINT,
    VAPID_PUBLIC,
    OUTBOX,
    OUTBOX_SEEN,
    OUTBOX_LEASE,
    OUTBOX_REJECTIONS,
    OUTBOX_DEAD,
    OUTBOX_DELAYED,
)
