"""AdvanceConnect ledger: per-family accounts of immutable entries, in Redis.

Every change is one Lua script run (atomic), keyed by a caller-chosen ``ref`` so that a retried
operation returns the entry it already made instead of applying twice. Integer cents only.
Behind Sentinel a change returns only once a replica has it (:mod:`billing_hooks.durability`):
else :class:`billing_hooks.durability.NotDurable`, and the caller retries the same ref.

The rules and the invariants are in ``ledger.lua``'s header; the script checks each invariant
on the account before a change and on what the change would write, and refuses a change that
would break one (``broken_invariant``, nothing written). They are, always:

- ``balance = deposits + credits - charges - refunds`` (AutoPay fundings count as deposits);
- the account's balance and held are its last entry's (the entries replay to the account);
- ``held`` is the sum of the open holds, and no hold is negative;
- ``available = balance - held >= 0``;
- a ref is applied once (a retry returns the first entry and changes nothing).

:mod:`billing_hooks.money.invariants` recomputes all of them from what is stored (an audit).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from billing_hooks.durability import Durable, required, run_durably
from billing_hooks.redis_keys import ACCOUNT, ACCOUNT_ENTRIES, ACCOUNT_HOLDS, ACCOUNT_REFS
from core.lua import script
from core.redis_text import text

EntryKind = Literal["deposit", "autopay", "credit", "hold", "release", "charge", "refund"]
OpKind = Literal[EntryKind, "close"]
OP_KINDS: Final = frozenset(get_args(EntryKind)) | {"close"}

MAX_AMOUNT_CENTS = 10**12  # far above any real amount; keeps Lua doubles and cjson exact


class LedgerError(Exception):
    """A ledger operation refused; nothing was changed. ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class LedgerChange:
    """One change to an account, as ``ledger.lua`` takes it (its ARGV[1], as JSON). Built only
    valid: anything the script would refuse as ``invalid`` is refused here first."""

    kind: OpKind
    amount_cents: int
    ref: str
    at: float
    hold_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    void_missing_hold: bool = False

    def __post_init__(self) -> None:
        amount = self.amount_cents
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise LedgerError("invalid", f"amount must be an integer of cents: {amount!r}")
        if not 0 <= amount <= MAX_AMOUNT_CENTS:
            raise LedgerError("invalid", f"amount must be 0 to {MAX_AMOUNT_CENTS} cents: {amount}")
        if self.kind not in OP_KINDS:
            raise LedgerError("invalid", f"unknown kind of change {self.kind!r}")
        if not self.ref:
            raise LedgerError("invalid", "a ledger change needs a reference")
        if self.kind in ("hold", "release") and not self.hold_id:
            raise LedgerError("invalid", f"a {self.kind} needs a hold id")

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind,
                "amount_cents": self.amount_cents,
                "ref": self.ref,
                "at": round(self.at, 3),
                "hold_id": self.hold_id,
                "meta": self.meta,
                "void_missing_hold": self.void_missing_hold,
            }
        )


def _status(status: Any) -> str:
    return status.decode() if isinstance(status, bytes) else str(status)


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    kind: str
    amount_cents: int
    balance_cents: int
    held_cents: int
    ref: str
    at: float
    hold_id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def void(self) -> bool:
        """A void marker (see ``Ledger.charge``), not a real entry."""
        return bool(self.meta.get("void"))

    @property
    def available_cents(self) -> int:
        return self.balance_cents - self.held_cents

    @classmethod
    def from_json(cls, raw: str | bytes) -> LedgerEntry:
        data = json.loads(raw)
        meta = data.get("meta")
        data["meta"] = meta if isinstance(meta, dict) else {}
        return cls(**data)


@dataclass(frozen=True)
class Balance:
    balance_cents: int
    held_cents: int
    deposits_cents: int
    credits_cents: int
    charges_cents: int
    refunds_cents: int
    status: str

    @property
    def available_cents(self) -> int:
        return self.balance_cents - self.held_cents


class Ledger:
    """All Redis access for AdvanceConnect accounts. ``clock``: now, in Unix seconds (the
    entries' ``at``)."""

    def __init__(self, redis: Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock
        self._apply = redis.register_script(script(__package__, "ledger.lua"))

    @staticmethod
    def keys(account: str) -> list[str]:
        """``ledger.lua``'s KEYS for ``account``."""
        if not account:
            raise LedgerError("invalid", "a ledger change needs an account")
        return [
            ACCOUNT(account),
            ACCOUNT_ENTRIES(account),
            ACCOUNT_REFS(account),
            ACCOUNT_HOLDS(account),
        ]

    async def _run(
        self,
        account: str,
        kind: OpKind,
        amount: int,
        ref: str,
        hold_id: str = "",
        meta: dict[str, Any] | None = None,
        pipe: Pipeline | None = None,
        void_missing_hold: bool = False,
    ) -> LedgerEntry | None:
        keys = self.keys(account)
        change = LedgerChange(
            kind, amount, ref, self._clock(), hold_id, dict(meta or {}), void_missing_hold
        )
        args = [change.to_json()]
        if pipe is not None:
            await self._apply(keys=keys, args=args, client=pipe)
            return None
        done: Durable | None = None
        if required(self._redis).replicas:  # behind Sentinel: confirmed by a replica
            done = await run_durably(self._redis, self._queue(keys, args))
            [raw] = done.results
        else:
            raw = await self._apply(keys=keys, args=args)
        if done is not None and _status(raw[0]) != "err":
            done.check(f"the {kind} {ref} on {account}")
        return self.result(account, kind, amount, raw)

    @staticmethod
    def result(account: str, kind: str, amount: int, raw: Any) -> LedgerEntry:
        """The entry a queued change made (what its script returned in a pipeline), or the
        :class:`LedgerError` of its refusal."""
        if isinstance(raw, Exception):
            raise raw
        status, payload, *detail = raw
        if _status(status) == "err":  # refused: nothing was written, confirmed or not
            reason = _status(payload)
            why = f"{reason} ({_status(detail[0])})" if detail and detail[0] else reason
            raise LedgerError(reason, f"{kind} of {amount} cents on {account} refused: {why}")
        return LedgerEntry.from_json(payload)

    def _queue(self, keys: list[str], args: list[Any]) -> Callable[[Pipeline], Awaitable[None]]:
        async def queue(pipe: Pipeline) -> None:
            await self._apply(keys=keys, args=args, client=pipe)

        return queue

    async def _apply_one(self, *args: Any, **kwargs: Any) -> LedgerEntry:
        entry = await self._run(*args, **kwargs)
        assert entry is not None
        return entry

    async def deposit(
        self, account: str, amount: int, ref: str, meta: dict[str, Any] | None = None
    ) -> LedgerEntry:
        return await self._apply_one(account, "deposit", amount, ref, meta=meta)

    async def autopay(
        self, account: str, amount: int, ref: str, meta: dict[str, Any] | None = None
    ) -> LedgerEntry:
        """An AutoPay funding: a deposit kind (counted in ``deposits_cents``)."""
        return await self._apply_one(account, "autopay", amount, ref, meta=meta)

    async def queue_deposit(self, pipe: Pipeline, account: str, amount: int, ref: str) -> None:
        """Queue an idempotent deposit on a MULTI pipeline (for all-or-nothing seeding)."""
        await self._run(account, "deposit", amount, ref, pipe=pipe)

    async def hold(
        self, account: str, hold_id: str, amount: int, meta: dict[str, Any] | None = None
    ) -> LedgerEntry:
        """Reserve ``amount`` (ref ``hold:{hold_id}``); a retry returns the first entry.

        If the hold id was voided by a settlement that came first, returns that void marker
        (``entry.void``) and reserves nothing.
        """
        return await self._apply_one(
            account, "hold", amount, f"hold:{hold_id}", hold_id=hold_id, meta=meta
        )

    async def release(self, account: str, hold_id: str) -> LedgerEntry:
        return await self._apply_one(account, "release", 0, f"release:{hold_id}", hold_id=hold_id)

    async def charge(
        self,
        account: str,
        amount: int,
        ref: str,
        hold_id: str = "",
        meta: dict[str, Any] | None = None,
        void_missing_hold: bool = False,
    ) -> LedgerEntry:
        """Charge ``amount``; with ``hold_id``, against that hold, releasing the rest of it.

        With ``void_missing_hold``, a missing hold is not an error: nothing is charged, the hold
        id is voided (a later ``hold`` with it reserves nothing) and a void marker is returned.
        """
        return await self._apply_one(
            account,
            "charge",
            amount,
            ref,
            hold_id=hold_id,
            meta=meta,
            void_missing_hold=void_missing_hold,
        )

    async def queue_charge(
        self,
        pipe: Pipeline,
        account: str,
        amount: int,
        ref: str,
        hold_id: str = "",
        meta: dict[str, Any] | None = None,
        void_missing_hold: bool = False,
    ) -> None:
        """:meth:`charge`, queued on ``pipe`` (a MULTI with other writes); its result in the
        pipeline's results is read with :meth:`result`."""
        await self._run(
            account,
            "charge",
            amount,
            ref,
            hold_id=hold_id,
            meta=meta,
            pipe=pipe,
            void_missing_hold=void_missing_hold,
        )

    async def credit(self, account: str, amount: int, ref: str) -> LedgerEntry:
        return await self._apply_one(account, "credit", amount, ref)

    async def refund(self, account: str, amount: int, ref: str) -> LedgerEntry:
        return await self._apply_one(account, "refund", amount, ref)

    async def close(
        self, account: str, ref: str, meta: dict[str, Any] | None = None
    ) -> LedgerEntry:
        """Refund the whole balance and close the account, atomically; refused with
        ``holds_outstanding`` while a hold (a call) is open. A retry returns the first entry."""
        return await self._apply_one(account, "close", 0, ref, meta={"close": True, **(meta or {})})

    async def balance(self, account: str) -> Balance:
        raw = await self._redis.hmget(
            ACCOUNT(account),
            "balance",
            "held",
            "deposits",
            "credits",
            "charges",
            "refunds",
            "status",
        )
        nums = [int(v) if v is not None else 0 for v in raw[:6]]
        status = text(raw[6]) if raw[6] is not None else "none"
        return Balance(
            balance_cents=nums[0],
            held_cents=nums[1],
            deposits_cents=nums[2],
            credits_cents=nums[3],
            charges_cents=nums[4],
            refunds_cents=nums[5],
            status=status,
        )

    async def entries(self, account: str, start: int = 0, end: int = -1) -> list[LedgerEntry]:
        raw = await self._redis.lrange(ACCOUNT_ENTRIES(account), start, end)
        return [LedgerEntry.from_json(item) for item in raw]

    async def has_ref(self, account: str, ref: str) -> bool:
        return bool(await self._redis.hexists(ACCOUNT_REFS(account), ref))

    async def find(self, account: str, ref: str, *, confirmed: bool = False) -> LedgerEntry | None:
        """The entry (or void marker) a ref produced, if that change was made. ``confirmed``:
        before an idempotent retry acknowledges what it found, a replica has it too
        (:class:`billing_hooks.durability.NotDurable` if not; nothing asked of a single Redis)."""
        key = ACCOUNT_REFS(account)
        if confirmed and required(self._redis).replicas:

            async def queue(pipe: Pipeline) -> None:
                pipe.hget(key, ref)

            done = await run_durably(self._redis, queue)
            raw = done.results[0]
            if raw is not None:
                done.check(f"the entry {ref} on {account}")
        else:
            raw = await self._redis.hget(key, ref)
        return None if raw is None else LedgerEntry.from_json(raw)
