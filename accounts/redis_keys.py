"""The accounts package's Redis keys (the scheme: :mod:`core.keyspace`).

The identity review's queue and audit log moved to a space of their own
(``identity_review``): ``identity:pending`` could be read as the record of a family named
``pending``, and ``audit`` is the recordings' log's space (:mod:`recorder.audit`).
The mail outbox's keys are the ones :class:`billing_hooks.outbox.Outbox` derives from its
stream's name (``<stream>:seen:<id>``, ``:lease``, ``:rejections``, ``:dead``).
"""

from __future__ import annotations

from typing import Final

from core.keyspace import Key, Kind, Rename

LOGIN_EMAIL: Final = Key(
    "login:email:{email+}", Kind.STRING, "the family id an e-mail (lower case) signs in as"
)
LOGIN_FAMILY: Final = Key(
    "login:family:{family_id}",
    Kind.HASH,
    "a family's e-mail, password hash (Argon2id), email_verified, phone",
)
LOGIN_STAFF: Final = Key(
    "login:staff:{staff_id}",
    Kind.HASH,
    "a staff member's password hash and second factor (totp_pending, totp, totp_step)",
)
CODE: Final = Key(
    "code:{purpose}:{digest}",
    Kind.STRING,
    "the subject of a one-time code (purpose confirm or reset), by the code's SHA-256",
    "the code's lifetime",
)
CODES_OF: Final = Key(
    "codes:{purpose}:{subject}",
    Kind.SET,
    "the digests of a subject's one-time codes of a purpose (a reset ends the others)",
    "its longest code's lifetime",
)
LOCKOUT: Final = Key(
    "lockout:{name}:{account+}",
    Kind.ZSET,
    "failed sign-ins in the lockout window (name signin: account family:<e-mail> or "
    "staff:<id>; name pin: a resident id), scored by when",
    "the window after the last failure",
)
PIN: Final = Key("pin:{resident_id}", Kind.STRING, "a resident's tablet PIN (Argon2id hash)")
IDENTITY: Final = Key(
    "identity:{family_id}",
    Kind.STRING,
    "a family's latest identity submission and its review (JSON)",
)
IDENTITY_PENDING: Final = Key(
    "identity_review:pending", Kind.ZSET, "families awaiting identity review, by submission time"
)
IDENTITY_AUDIT: Final = Key(
    "identity_review:audit",
    Kind.STREAM,
    "the append-only audit log of identity reviews (image views, decisions)",
)
IDENTITY_AUDIT_FAMILY: Final = Key(
    "identity_review:audit:family:{family_id}",
    Kind.LIST,
    "the ids of the identity audit entries about a family",
)
MAIL_OUTBOX: Final = Key("mail:outbox", Kind.STREAM, "e-mails to send, oldest first")
MAIL_OUTBOX_SEEN: Final = Key(
    "mail:outbox:seen:{event_id+}",
    Kind.STRING,
    "a queued e-mail's Message-ID (a repeated append is dropped)",
    "7 days",
)
MAIL_OUTBOX_LEASE: Final = Key(
    "mail:outbox:lease", Kind.STRING, "the node sending the mail outbox", "the lease's TTL"
)
MAIL_OUTBOX_REJECTIONS: Final = Key(
    "mail:outbox:rejections", Kind.HASH, "refusals so far per outbox entry"
)
MAIL_OUTBOX_DEAD: Final = Key(
    "mail:outbox:dead", Kind.STREAM, "e-mails the mail server refused for good"
)

KEYS: Final = (
    LOGIN_EMAIL,
    LOGIN_FAMILY,
    LOGIN_STAFF,
    CODE,
    CODES_OF,
    LOCKOUT,
    PIN,
    IDENTITY,
    IDENTITY_PENDING,
    IDENTITY_AUDIT,
    IDENTITY_AUDIT_FAMILY,
    MAIL_OUTBOX,
    MAIL_OUTBOX_SEEN,
    MAIL_OUTBOX_LEASE,
    MAIL_OUTBOX_REJECTIONS,
    MAIL_OUTBOX_DEAD,
)
# In this order: ``identity:pending`` must leave the ``identity`` space before anything
# scans it (the record's pattern would read it as a family's record).
RENAMES: Final = (
    Rename("accounts-identity-pending-v1", "identity:pending", IDENTITY_PENDING),
    Rename("accounts-identity-audit-v1", "audit:identity", IDENTITY_AUDIT),
    Rename(
        "accounts-identity-audit-family-v1",
        "audit:identity:family:{family_id}",
        IDENTITY_AUDIT_FAMILY,
    ),
)
