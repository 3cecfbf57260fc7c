"""A family's identity review (SPEC "Accounts"): all Redis access for it.

Keys (:mod:`accounts.redis_keys`):

- ``identity:<family_id>``: the latest submission, JSON :class:`IdentityRecord` (its status
  ``pending``, ``verified`` or ``rejected``, the submission id naming its images, when it was
  submitted, and the decision: by whom, when, why);
- ``identity_review:pending``: families awaiting review, by when they submitted (oldest first).

A submission replaces a pending or rejected one; a verified family cannot submit again. A
decision is taken on a pending submission only, once. Each step is one Lua script, so two
admins deciding at once, or a family re-submitting meanwhile, cannot both win.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, Literal, cast

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from accounts.redis_keys import IDENTITY, IDENTITY_PENDING
from core.lua import script
from core.redis_text import text

IdentityStatus = Literal["pending", "verified", "rejected"]
Decision = Literal["verified", "rejected"]
PENDING: Final = IDENTITY_PENDING()
_SUBMIT: Final = script(__package__, "identity_submit.lua")
_DECIDE: Final = script(__package__, "identity_decide.lua")


class IdentityRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: IdentityStatus
    submission: str
    submitted_at: float
    reason: str | None = None
    reviewed_by: str | None = None
    reviewed_at: float | None = None


class AlreadyVerified(Exception):
    """The family is verified: there is nothing to submit."""


class NotReviewable(Exception):
    """No pending submission to decide on; the message says what there is."""


class IdentityReviews:
    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock
        self._submit = redis.register_script(_SUBMIT)
        self._decide = redis.register_script(_DECIDE)

    async def get(self, family_id: str) -> IdentityRecord | None:
        raw = await self._redis.get(IDENTITY(family_id))
        return None if raw is None else IdentityRecord.model_validate_json(raw)

    async def submit(self, family_id: str, submission: str) -> IdentityRecord | None:
        """Make ``submission`` the family's pending one; the record it replaced, if any.
        :class:`AlreadyVerified` if the family is verified (nothing changed)."""
        now = self._clock()
        record = IdentityRecord(status="pending", submission=submission, submitted_at=now)
        previous = await self._submit(
            keys=[IDENTITY(family_id), PENDING],
            args=[record.model_dump_json(), repr(now), family_id],
        )
        if previous is None:
            raise AlreadyVerified(f"family {family_id!r} is verified already")
        raw = text(previous)
        return IdentityRecord.model_validate_json(raw) if raw else None

    async def decide(
        self, family_id: str, decision: Decision, by: str, reason: str | None
    ) -> IdentityRecord:
        """Decide on the family's pending submission; :class:`NotReviewable` if none."""
        current = await self.get(family_id)
        if current is None:
            raise NotReviewable(f"family {family_id!r} has submitted no identity")
        decided = current.model_copy(
            update={
                "status": decision,
                "reason": reason,
                "reviewed_by": by,
                "reviewed_at": self._clock(),
            }
        )
        outcome = text(
            await self._decide(
                keys=[IDENTITY(family_id), PENDING],
                args=[current.submission, decided.model_dump_json(), family_id],
            )
        )
        if outcome != "ok":
            latest = await self.get(family_id)
            status = latest.status if latest is not None else "none"
            raise NotReviewable(f"family {family_id!r}'s identity is {status}, not pending")
        return decided

    async def forget(self, family_id: str) -> IdentityRecord | None:
        """Remove the family's submission (an account closed); the record it had, if any."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.getdel(IDENTITY(family_id))
            pipe.zrem(PENDING, family_id)
            raw, _ = await pipe.execute()
        return None if raw is None else IdentityRecord.model_validate_json(raw)

    async def pending(self) -> list[tuple[str, float]]:
        """Families awaiting review with when they submitted, oldest first."""
        rows = await self._redis.zrange(PENDING, 0, -1, withscores=True)
        return [(text(member), float(at)) for member, at in cast(list[tuple[bytes, float]], rows)]
