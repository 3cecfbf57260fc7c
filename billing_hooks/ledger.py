"""AdvanceConnect ledger: per-family accounts of immutable entries, in Redis.

Every change is one Lua script run (atomic), keyed by a caller-chosen ``ref`` so that a retried
operation returns the entry it already made instead of applying twice. Integer cents only.
Behind Sentinel a change returns only once a replica has it (:mod:`billing_hooks.durability`):
else :class:`billing_hooks.durability.NotDurable`, and the caller retries the same ref.

Invariants, always: ``balance = deposits + credits - charges - refunds`` (AutoPay fundings count
as deposits) and ``available = balance - held`` with ``available >= 0``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from billing_hooks.durability import Durable, required, run_durably
from core.redis_text import text

EntryKind = Literal["deposit", "autopay", "credit", "hold", "release", "charge", "refund"]
OpKind = Literal[EntryKind, "close"]

MAX_AMOUNT_CENTS = 10**12  # far above any real amount; keeps Lua doubles and cjson exact

# Entries are written step by step, so each one's running balance replays from the one before:
#   deposit/autopay/credit: balance += amount        refund: balance -= amount
#   hold: held += amount        release: held -= amount
#   charge: balance -= amount, and held -= amount when it is against a hold (``hold_id`` set)
# ``close`` refunds the whole balance (a ``refund`` entry) and marks the account closed; a closed
# account accepts nothing but the settling of holds, and ``close`` is refused while holds are out.
# A charge against a missing hold with ``void`` = '1' charges nothing and voids the hold id, so
# a hold placed after the settlement (a racing connect) is never taken: ``hold`` then returns the
# void marker (seq 0, amount 0, meta.void) instead of reserving money no settlement would free.
_APPLY = """
local acct, entries, refs, holds = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local kind, amount, ref, now, hold_id, meta = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local void = ARGV[7] == '1'
local prior = redis.call('HGET', refs, ref)
if prior then return {'dup', prior} end
local a = redis.call('HMGET', acct, 'balance', 'held', 'deposits', 'credits', 'charges', 'refunds', 'status')
local bal, held = tonumber(a[1]) or 0, tonumber(a[2]) or 0
local dep, cred, chg, ref_total = tonumber(a[3]) or 0, tonumber(a[4]) or 0, tonumber(a[5]) or 0, tonumber(a[6]) or 0
local status = a[7] or 'open'
if status == 'closed' and kind ~= 'release' and not (kind == 'charge' and hold_id ~= '') then
  return {'err', 'closed'}
end
local out = {}
local function entry(k, amt)
  local seq = redis.call('LLEN', entries) + 1
  local e = cjson.encode({seq = seq, kind = k, amount_cents = amt, balance_cents = bal, held_cents = held,
                          ref = ref, at = tonumber(now), hold_id = hold_id, meta = cjson.decode(meta)})
  redis.call('RPUSH', entries, e)
  table.insert(out, e)
end
if kind == 'deposit' or kind == 'autopay' then
  bal = bal + amount; dep = dep + amount; entry(kind, amount)
elseif kind == 'credit' then
  bal = bal + amount; cred = cred + amount; entry(kind, amount)
elseif kind == 'hold' then
  if redis.call('HEXISTS', holds, hold_id) == 1 then return {'err', 'duplicate_hold'} end
  if bal - held < amount then return {'err', 'insufficient_funds'} end
  held = held + amount; redis.call('HSET', holds, hold_id, amount); entry(kind, amount)
elseif kind == 'release' then
  local h = tonumber(redis.call('HGET', holds, hold_id))
  if not h then return {'err', 'unknown_hold'} end
  held = held - h; redis.call('HDEL', holds, hold_id); entry(kind, h)
elseif kind == 'charge' then
  if hold_id ~= '' then
    local h = tonumber(redis.call('HGET', holds, hold_id))
    if not h and void then
      local m = cjson.decode(meta); m['void'] = true
      local marker = cjson.encode({seq = 0, kind = 'charge', amount_cents = 0, balance_cents = bal,
                                   held_cents = held, ref = ref, at = tonumber(now), hold_id = hold_id, meta = m})
      redis.call('HSETNX', refs, 'hold:' .. hold_id, marker)
      redis.call('HSET', refs, ref, marker)
      return {'ok', marker}
    end
    if not h then return {'err', 'unknown_hold'} end
    if amount > h then return {'err', 'exceeds_hold'} end
    redis.call('HDEL', holds, hold_id)
    if amount > 0 or h == 0 then
      bal = bal - amount; held = held - amount; chg = chg + amount; entry('charge', amount)
    end
    if h - amount > 0 then held = held - (h - amount); entry('release', h - amount) end
  else
    if bal - held < amount then return {'err', 'insufficient_funds'} end
    bal = bal - amount; chg = chg + amount; entry(kind, amount)
  end
elseif kind == 'refund' then
  if bal - held < amount then return {'err', 'insufficient_funds'} end
  bal = bal - amount; ref_total = ref_total + amount; entry(kind, amount)
elseif kind == 'close' then
  if held > 0 or redis.call('HLEN', holds) > 0 then return {'err', 'holds_outstanding'} end
  local amt = bal
  bal = 0; ref_total = ref_total + amt; status = 'closed'; entry('refund', amt)
else
  return {'err', 'unknown_kind'}
end
redis.call('HSET', acct, 'balance', bal, 'held', held, 'deposits', dep, 'credits', cred,
           'charges', chg, 'refunds', ref_total, 'status', status)
local last = out[#out]
redis.call('HSET', refs, ref, last)
return {'ok', last}
"""


def _status(status: Any) -> str:
    return status.decode() if isinstance(status, bytes) else str(status)


class LedgerError(Exception):
    """A ledger operation refused; nothing was changed. ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


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
    """All Redis access for AdvanceConnect accounts."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._apply = redis.register_script(_APPLY)

    @staticmethod
    def _keys(account: str) -> list[str]:
        base = f"acct:{account}"
        return [base, f"{base}:entries", f"{base}:refs", f"{base}:holds"]

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
        if (
            not isinstance(amount, int)
            or isinstance(amount, bool)
            or not 0 <= amount <= MAX_AMOUNT_CENTS
        ):
            raise LedgerError(
                "invalid", f"amount must be a non-negative integer of cents: {amount!r}"
            )
        if not ref or not account:
            raise LedgerError("invalid", "a ledger change needs an account and a reference")
        args = [
            kind,
            amount,
            ref,
            f"{time.time():.3f}",
            hold_id,
            json.dumps(meta or {}),
            "1" if void_missing_hold else "0",
        ]
        keys = self._keys(account)
        if pipe is not None:
            await self._apply(keys=keys, args=args, client=pipe)
            return None
        done: Durable | None = None
        if required(self._redis).replicas:  # behind Sentinel: confirmed by a replica
            done = await run_durably(self._redis, self._queue(keys, args))
            [(status, payload)] = done.results
        else:
            status, payload = await self._apply(keys=keys, args=args)
        if done is not None and _status(status) != "err":
            done.check(f"the {kind} {ref} on {account}")
        return self.result(account, kind, amount, [status, payload])

    @staticmethod
    def result(account: str, kind: str, amount: int, raw: Any) -> LedgerEntry:
        """The entry a queued change made (what its script returned in a pipeline), or the
        :class:`LedgerError` of its refusal."""
        if isinstance(raw, Exception):
            raise raw
        status, payload = raw
        if _status(status) == "err":  # refused: nothing was written, confirmed or not
            reason = payload.decode() if isinstance(payload, bytes) else str(payload)
            raise LedgerError(reason, f"{kind} of {amount} cents on {account} refused: {reason}")
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
            f"acct:{account}",
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
        raw = await self._redis.lrange(f"acct:{account}:entries", start, end)
        return [LedgerEntry.from_json(item) for item in raw]

    async def has_ref(self, account: str, ref: str) -> bool:
        return bool(await self._redis.hexists(f"acct:{account}:refs", ref))

    async def find(self, account: str, ref: str, *, confirmed: bool = False) -> LedgerEntry | None:
        """The entry (or void marker) a ref produced, if that change was made. ``confirmed``:
        before an idempotent retry acknowledges what it found, a replica has it too
        (:class:`billing_hooks.durability.NotDurable` if not; nothing asked of a single Redis)."""
        key = f"acct:{account}:refs"
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
