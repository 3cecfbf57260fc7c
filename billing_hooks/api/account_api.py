"""The family account HTTP API (PROTOCOL.md "HTTP API", role ``family``).

Every handler runs behind one guard: bearer-token auth (401), the family role (403), and errors
as ``{"error": {"code", "message"}}`` with 400/401/403/404/409/422, never a stack trace; 503
``ledger_unavailable`` (with ``Retry-After``) when a change could not be confirmed as kept. Input is
validated completely before anything is written, so bad input changes nothing.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from redis.asyncio import Redis
from redis.exceptions import LockError

from billing_hooks.api.money_api import MethodFields, Money
from billing_hooks.api.statement import StatementError, build, months, parse_month
from billing_hooks.api.statement_pdf import render
from billing_hooks.durability import RETRY_AFTER_S, NotDurable
from billing_hooks.metering.biller import Biller
from billing_hooks.money.autopay import AutoPaySettings, check_autopay_amount
from billing_hooks.money.funding import BillingError
from billing_hooks.money.ledger import Ledger, LedgerEntry
from billing_hooks.money.payments import PAYMENTS_UNAVAILABLE
from billing_hooks.money.receipts import PaymentMethods
from billing_hooks.redis_keys import FAMILY_LOCK, NOTIFY_PREVIEW
from core.directory import Directory
from core.domain import Family
from core.http_api import (
    AiohttpHandler,
    ApiError,
    error_response,
    guarded,
    parse_body,
)
from core.tokens import Claims, Tokens

log = logging.getLogger(__name__)

PREFIX = "/api/v1/account"
LEDGER_UNAVAILABLE = "ledger_unavailable"  # 503: not confirmed by a replica (Redis failover)
MAX_BLOCKS = 1000
_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_BLOCK = r"^([A-Za-z0-9_.\-]{1,64}|all)$"
_STATUS = {
    "invalid_amount": 422,
    "account_closed": 409,
    "call_in_progress": 409,
    "idempotency_conflict": 409,
    "payment_failed": 409,
    "invalid_payment_method": 422,
    PAYMENTS_UNAVAILABLE: 503,
}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DepositIn(_In):
    amount_cents: StrictInt = Field(ge=200, le=10_000)
    payment_method: MethodFields | None = None  # the processor's form (money_api.py)


class AutoPayIn(_In):
    enabled: StrictBool | None = None
    amount_cents: StrictInt | None = None
    payment_method: MethodFields | None = None


NotificationPreviewT = Literal["full", "private"]


class SettingsIn(_In):
    allow_video_calls: StrictBool | None = None
    autopay: AutoPayIn | None = None
    notification_preview: NotificationPreviewT | None = None


class NotificationPreview:
    """What a family's push notifications may show (PROTOCOL v1.2): ``full`` (the default) or
    ``private`` (no names: only the type, the call or visit, and times; see push.messages)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    @staticmethod
    def _key(family_id: str) -> str:
        return NOTIFY_PREVIEW(family_id)

    async def get(self, family_id: str) -> NotificationPreviewT:
        raw = await self._redis.get(self._key(family_id))
        value = raw.decode() if isinstance(raw, bytes) else raw
        return "private" if value == "private" else "full"

    async def set(self, family_id: str, value: NotificationPreviewT) -> None:
        await self._redis.set(self._key(family_id), value)


class BlockIn(_In):
    facility_id: Annotated[str, Field(pattern=_BLOCK)]


def _limit(request: web.Request, default: int = 200) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ApiError(422, "invalid_request", "limit must be an integer from 1 to 1000")
    return int(raw)


def _entry_json(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "kind": entry.kind,
        "amount_cents": entry.amount_cents,
        "balance_cents": entry.balance_cents,
        "held_cents": entry.held_cents,
        "available_cents": entry.available_cents,
        "ref": entry.ref,
        "call_id": entry.meta.get("call_id") or None,
    }


Handler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]


def _accepted(accept: str) -> str:
    """A statement's format from an ``Accept`` header (JSON unless CSV or PDF is asked for)."""
    if "application/pdf" in accept:
        return "pdf"
    if "text/csv" in accept:
        return "csv"
    return "json"


class AccountApi:
    def __init__(
        self, redis: Redis, ledger: Ledger, directory: Directory, tokens: Tokens, biller: Biller
    ) -> None:
        self._redis = redis
        self._ledger = ledger
        self._directory = directory
        self._tokens = tokens
        self._biller = biller
        self._preview = NotificationPreview(redis)
        self.money = Money(ledger, biller, PaymentMethods(redis))

    def guard(self, handler: Handler) -> AiohttpHandler:
        """Family-only, with billing refusals mapped to their HTTP status."""

        async def run(request: web.Request, claims: Claims) -> web.StreamResponse:
            try:
                return await handler(request, claims.subject)
            except BillingError as exc:
                return error_response(_STATUS.get(exc.code, 409), exc.code, exc.message)
            except NotDurable as exc:  # maybe done, not confirmed: the same key again settles it
                log.warning("%s %s not acknowledged: %s", request.method, request.path, exc)
                return error_response(
                    503,
                    LEDGER_UNAVAILABLE,
                    "the change could not be confirmed as recorded; retry it with the same "
                    "Idempotency-Key (it is applied once)",
                    {"Retry-After": str(RETRY_AFTER_S)},
                )

        return guarded(self._tokens, {"family"}, run)

    async def _family(self, family_id: str) -> Family:
        family = await self._directory.family(family_id)
        if family is None:
            raise ApiError(404, "not_found", f"no family account {family_id!r}")
        return family

    async def _view(self, family: Family) -> dict[str, Any]:
        account = await self._ledger.balance(family.id)
        autopay = await self._biller.autopay_settings(family.id)
        return {
            "family_id": family.id,
            "name": family.name,
            "balance_cents": account.available_cents,
            "allow_video_calls": family.allow_video_calls,
            "verified": family.verified,
            "autopay": autopay.to_json(),
            "status": "closed" if account.status == "closed" else "open",
            "blocks": list(family.blocks),
            "notification_preview": await self._preview.get(family.id),
            "payment_method": await self.money.methods.on_file(family.id),
        }

    async def _update_family(self, family_id: str, change: Callable[[Family], Family]) -> Family:
        """Read-modify-write of the family profile under a per-family lock."""
        try:
            async with self._redis.lock(FAMILY_LOCK(family_id), timeout=5, blocking_timeout=5):
                family = await self._family(family_id)
                updated = change(family)
                if updated != family:
                    await self._directory.save_family(updated)
                return updated
        except LockError:
            raise ApiError(409, "busy", "the account is being changed; try again") from None

    # -- handlers ----------------------------------------------------------------------------

    async def account(self, request: web.Request, family_id: str) -> web.StreamResponse:
        return web.json_response(await self._view(await self._family(family_id)))

    async def deposit(self, request: web.Request, family_id: str) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _KEY.match(key):
            raise ApiError(400, "invalid_request", "Idempotency-Key: 1-128 of A-Z a-z 0-9 _ . : -")
        body = await parse_body(request, DepositIn, " (a deposit is 200..10000 integer cents)")
        await self._family(family_id)
        entry, receipt = await self.money.deposit(
            family_id, body.amount_cents, key or uuid.uuid4().hex, body.payment_method
        )
        return web.json_response(
            {
                "deposit": _entry_json(entry),
                "balance_cents": entry.available_cents,
                "receipt": receipt.to_json(),
            }
        )

    async def statement(self, request: web.Request, family_id: str) -> web.StreamResponse:
        if "month" in request.query:
            return await self._monthly(request, family_id)
        limit = _limit(request)
        await self._family(family_id)
        entries = await self._ledger.entries(family_id, -limit, -1)
        account = await self._ledger.balance(family_id)
        lines = [_entry_json(e) for e in entries]
        return web.json_response(
            {
                "family_id": family_id,
                "balance_cents": account.available_cents,
                "entries": await self.money.statement_lines(family_id, entries, lines),
            }
        )

    async def _monthly(self, request: web.Request, family_id: str) -> web.StreamResponse:
        """``?month=YYYY-MM`` (PROTOCOL v1.2): the month's statement, as JSON, or as CSV or PDF
        with ``?format=csv|pdf`` or ``Accept: text/csv|application/pdf``; ``?tz=`` the time
        zone its month and dates are in (default UTC)."""
        month, tz = request.query["month"], request.query.get("tz", "UTC")
        fmt = request.query.get("format") or _accepted(request.headers.get("Accept", ""))
        if fmt not in ("json", "csv", "pdf"):
            raise ApiError(422, "invalid_request", "format must be json, csv or pdf")
        try:
            parse_month(month, tz)
        except StatementError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        family = await self._family(family_id)
        entries = await self._ledger.entries(family_id)
        calls = await self._biller.calls(family_id, limit=1_000_000)
        statement = build(family_id, family.name, month, tz, entries, calls)
        name = f"statement-{family_id}-{month}"
        if fmt == "csv":
            return web.Response(
                text=statement.to_csv(),
                content_type="text/csv",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        if fmt == "pdf":
            return web.Response(
                body=render(statement),
                content_type="application/pdf",
                headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
            )
        return web.json_response(statement.to_json())

    async def statement_months(self, request: web.Request, family_id: str) -> web.StreamResponse:
        """The months a statement has lines for, newest first (``?tz=`` as above)."""
        tz = request.query.get("tz", "UTC")
        try:
            _, _, zone = parse_month("2026-01", tz)
        except StatementError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        await self._family(family_id)
        return web.json_response({"months": months(await self._ledger.entries(family_id), zone)})

    async def calls(self, request: web.Request, family_id: str) -> web.StreamResponse:
        limit = _limit(request, 100)
        await self._family(family_id)
        return web.json_response({"calls": await self._biller.calls(family_id, limit)})

    async def settings(self, request: web.Request, family_id: str) -> web.StreamResponse:
        body = await parse_body(request, SettingsIn)
        await self._family(family_id)
        autopay: AutoPaySettings | None = None
        if body.autopay is not None:
            now = await self._biller.autopay_settings(family_id)
            enabled = now.enabled if body.autopay.enabled is None else body.autopay.enabled
            amount = body.autopay.amount_cents
            amount = now.amount_cents if amount is None else amount
            if body.autopay.amount_cents is not None:
                check_autopay_amount(body.autopay.amount_cents)
            if enabled and amount is None:
                raise ApiError(422, "invalid_amount", "autopay.amount_cents: needed to enable it")
            if enabled and not self._biller.payments_available:
                raise BillingError(
                    PAYMENTS_UNAVAILABLE,
                    "AutoPay is unavailable: this server has no payment processor configured",
                )
            if enabled and (await self._ledger.balance(family_id)).status == "closed":
                raise BillingError("account_closed", "this account is closed: AutoPay cannot start")
            autopay = AutoPaySettings(enabled, amount)
        if body.autopay is not None and body.autopay.payment_method is not None:
            # Checked last of all, so a refusal above leaves the method on file as it was.
            await self.money.attach(family_id, body.autopay.payment_method)
        allow = body.allow_video_calls
        if allow is not None:
            await self._update_family(
                family_id, lambda f: f.model_copy(update={"allow_video_calls": allow})
            )
        if autopay is not None:
            await self._biller.set_autopay(family_id, autopay)
        if body.notification_preview is not None:
            await self._preview.set(family_id, body.notification_preview)
        return web.json_response(await self._view(await self._family(family_id)))

    async def block(self, request: web.Request, family_id: str) -> web.StreamResponse:
        body = await parse_body(request, BlockIn)
        target = body.facility_id
        await self._family(family_id)
        if target != "all" and await self._directory.facility(target) is None:
            raise ApiError(404, "not_found", f"no facility {target!r}")

        def add(family: Family) -> Family:
            if target in family.blocks:
                return family
            if len(family.blocks) >= MAX_BLOCKS:
                raise ApiError(422, "invalid_request", f"at most {MAX_BLOCKS} blocks")
            return family.model_copy(update={"blocks": [*family.blocks, target]})

        family = await self._update_family(family_id, add)
        return web.json_response({"family_id": family_id, "blocks": list(family.blocks)})

    async def unblock(self, request: web.Request, family_id: str) -> web.StreamResponse:
        target = request.match_info["facility_id"]
        if not re.match(_BLOCK, target):
            raise ApiError(404, "not_found", f"no facility {target!r}")

        def remove(family: Family) -> Family:
            kept = [] if target == "all" else [b for b in family.blocks if b != target]
            return family.model_copy(update={"blocks": kept})

        family = await self._update_family(family_id, remove)
        return web.json_response({"family_id": family_id, "blocks": list(family.blocks)})

    async def close(self, request: web.Request, family_id: str) -> web.StreamResponse:
        await self._family(family_id)
        refund_to = (await self.money.close_preview(family_id))["refund_to"]
        entry = await self._biller.close(family_id)
        return web.json_response(
            {
                "family_id": family_id,
                "status": "closed",
                "refunded_cents": entry.amount_cents,
                "balance_cents": 0,
                "refund_to": refund_to,
            }
        )

    async def payment_method(self, request: web.Request, family_id: str) -> web.StreamResponse:
        await self._family(family_id)
        return web.json_response(await self.money.payment_method(family_id))

    async def receipts(self, request: web.Request, family_id: str) -> web.StreamResponse:
        limit = _limit(request, 100)
        await self._family(family_id)
        found = await self.money.receipts.list(family_id, limit)
        return web.json_response({"receipts": [r.to_json() for r in found]})

    async def receipt(self, request: web.Request, family_id: str) -> web.StreamResponse:
        reference = request.match_info["reference"]
        await self._family(family_id)
        found = await self.money.receipts.get(family_id, reference)
        if found is None:
            raise ApiError(404, "not_found", f"no receipt {reference[:40]!r} on this account")
        return web.json_response(found.to_json())

    async def close_preview(self, request: web.Request, family_id: str) -> web.StreamResponse:
        await self._family(family_id)
        return web.json_response(await self.money.close_preview(family_id))


def add_account_routes(
    app: web.Application,
    *,
    redis: Redis,
    ledger: Ledger,
    directory: Directory,
    tokens: Tokens,
    biller: Biller,
) -> None:
    """Mount the family account API on ``app`` (before it starts)."""
    api = AccountApi(redis, ledger, directory, tokens, biller)
    router = app.router
    router.add_get(PREFIX, api.guard(api.account))
    router.add_post(f"{PREFIX}/deposits", api.guard(api.deposit))
    router.add_get(f"{PREFIX}/statement", api.guard(api.statement))
    router.add_get(f"{PREFIX}/statement/months", api.guard(api.statement_months))
    router.add_get(f"{PREFIX}/calls", api.guard(api.calls))
    router.add_put(f"{PREFIX}/settings", api.guard(api.settings))
    router.add_post(f"{PREFIX}/blocks", api.guard(api.block))
    router.add_delete(f"{PREFIX}/blocks/{{facility_id}}", api.guard(api.unblock))
    router.add_post(f"{PREFIX}/close", api.guard(api.close))
    router.add_get(f"{PREFIX}/close/preview", api.guard(api.close_preview))
    router.add_get(f"{PREFIX}/payment-method", api.guard(api.payment_method))
    router.add_get(f"{PREFIX}/receipts", api.guard(api.receipts))
    router.add_get(f"{PREFIX}/receipts/{{reference}}", api.guard(api.receipt))
