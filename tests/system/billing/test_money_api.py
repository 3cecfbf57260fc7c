"""The money screens' API (billing_hooks/api/money_api.py) over a real aiohttp server and Redis:
the payment-method step, receipts, the close preview, statement lines with minutes x rate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from billing_hooks.metering.biller import CallCharge
from core.domain import SeedFile
from core.redis_text import text
from core.tokens import Tokens
from tests.system.billing.test_account_api import Api, account_api, assert_error

CARD = {"card_number": "4242 4242 4242 4242"}
DECLINED = {"card_number": "4000 0000 0000 0002"}


@pytest.fixture
async def api(redis: Redis, seeded: SeedFile, tokens: Tokens) -> AsyncIterator[Api]:
    async with account_api(redis, tokens) as running:
        yield running


async def snapshot(redis: Redis) -> dict[Any, Any]:
    """Every key and its value: what 'nothing changed' compares."""
    out: dict[Any, Any] = {}
    for key in sorted(await redis.keys("*")):
        kind = text(await redis.type(key))
        if kind == "string":
            out[key] = await redis.get(key)
        elif kind == "hash":
            out[key] = await redis.hgetall(key)
        elif kind == "list":
            out[key] = await redis.lrange(key, 0, -1)
        elif kind == "set":
            out[key] = await redis.smembers(key)
        elif kind == "zset":
            out[key] = await redis.zrange(key, 0, -1, withscores=True)
    return out


async def test_the_processor_describes_its_payment_form(api: Api) -> None:
    status, body = await api.call("GET", "/payment-method")
    assert status == 200 and body["available"] is True and body["method"] is None
    form = body["form"]
    assert form["processor"] == "fake" and form["kind"] == "card_number"
    assert [f["name"] for f in form["fields"]] == ["card_number"]
    assert {"number": "4242 4242 4242 4242", "outcome": "approved"} in form["test_cards"]


async def test_a_deposit_with_a_test_card_has_a_receipt(api: Api) -> None:
    status, body = await api.call(
        "POST", "/deposits", {"amount_cents": 2000, "payment_method": CARD},
        headers={"Idempotency-Key": "k-1"},
    )  # fmt: skip
    assert status == 200, body
    receipt = body["receipt"]
    assert receipt["amount_cents"] == 2000 and receipt["method"] == "card ending 4242"
    assert receipt["reference"].startswith("R") and receipt["payment_reference"]
    assert body["balance_cents"] == 3000 and receipt["balance_cents"] == 3000
    # Opened again later: the same receipt; listed newest first, beside the opening balance.
    status, again = await api.call("GET", f"/receipts/{receipt['reference']}")
    assert status == 200 and again == receipt
    status, listed = await api.call("GET", "/receipts")
    assert listed["receipts"][0] == receipt
    assert listed["receipts"][-1]["method"] == "opening balance"
    # The card is on file now: a later deposit without one names it too.
    status, body = await api.call("GET", "")
    assert body["payment_method"]["label"] == "card ending 4242"
    status, later = await api.call("POST", "/deposits", {"amount_cents": 500})
    assert later["receipt"]["method"] == "card ending 4242"
    # A retry with the same key (another card even) is the first deposit, once.
    status, retry = await api.call(
        "POST", "/deposits", {"amount_cents": 2000, "payment_method": DECLINED},
        headers={"Idempotency-Key": "k-1"},
    )  # fmt: skip
    assert status == 200 and retry["receipt"] == receipt
    assert (await api.ledger.balance("F1")).balance_cents == 3500


async def test_a_declined_card_is_refused_clearly_and_credits_nothing(
    api: Api, redis: Redis
) -> None:
    status, body = await api.call(
        "POST", "/deposits", {"amount_cents": 2000, "payment_method": DECLINED}
    )
    assert_error(status, body, 409, "payment_failed")
    assert body["error"]["message"] == (
        "Payment declined: the card was declined (card ending 0002). "
        "Nothing was charged; your balance is unchanged."
    )
    assert (await api.ledger.balance("F1")).balance_cents == 1000
    assert not api.processor.succeeded()
    status, listed = await api.call("GET", "/receipts")
    assert [r["method"] for r in listed["receipts"]] == ["opening balance"]


async def test_bad_payment_methods_change_nothing(api: Api, redis: Redis) -> None:
    before = await snapshot(redis)
    for method, code, words in [
        ({"card_number": "4242 4242 4242 4241"}, "invalid_payment_method", "not valid"),
        ({"card_number": "12"}, "invalid_payment_method", "12 to 19 digits"),
        ({"card_number": ""}, "invalid_payment_method", "enter the card number"),
        ({"cvc": "123"}, "invalid_payment_method", "unknown payment method field"),
        ({"card_number": 4242424242424242}, "invalid_request", "payment_method"),
        ({"Card": "x"}, "invalid_request", "payment_method"),
        ("4242", "invalid_request", "payment_method"),
    ]:
        status, body = await api.call(
            "POST", "/deposits", {"amount_cents": 2000, "payment_method": method}
        )
        assert_error(status, body, 422, code)
        assert words in body["error"]["message"], body
        status, body = await api.call(
            "PUT", "/settings",
            {"autopay": {"enabled": True, "amount_cents": 2000, "payment_method": method}},
        )  # fmt: skip
        assert_error(status, body, 422, code)
    # A bad amount is refused before the card is looked at.
    status, body = await api.call(
        "POST", "/deposits", {"amount_cents": 199, "payment_method": CARD}
    )
    assert_error(status, body, 422, "invalid_request")
    assert await snapshot(redis) == before
    assert not api.processor.payments and not api.processor.cards


async def test_autopay_set_up_with_a_card_and_a_bad_amount(api: Api, redis: Redis) -> None:
    before = await snapshot(redis)
    for amount in (300, 10_100, 750):
        status, body = await api.call(
            "PUT", "/settings",
            {"autopay": {"enabled": True, "amount_cents": amount, "payment_method": CARD}},
        )  # fmt: skip
        assert_error(status, body, 422, "invalid_amount")
        assert "whole dollars from $5 to $100" in body["error"]["message"]
    assert await snapshot(redis) == before  # not even the card went on file
    status, body = await api.call(
        "PUT", "/settings",
        {"autopay": {"enabled": True, "amount_cents": 2500, "payment_method": CARD}},
    )  # fmt: skip
    assert status == 200, body
    assert body["autopay"] == {"enabled": True, "amount_cents": 2500}
    assert body["payment_method"]["label"] == "card ending 4242"


async def test_the_close_preview_says_what_closing_refunds(api: Api) -> None:
    await api.call("POST", "/deposits", {"amount_cents": 500, "payment_method": CARD})
    status, preview = await api.call("GET", "/close/preview")
    assert status == 200
    assert preview["refund_cents"] == 1500 and preview["refund_to"] == "card ending 4242"
    assert preview["can_close"] is True and preview["reason"] is None
    assert (await api.ledger.balance("F1")).status == "open"  # a preview changes nothing
    status, closed = await api.call("POST", "/close")
    assert status == 200 and closed["refunded_cents"] == 1500
    assert closed["refund_to"] == "card ending 4242"
    status, preview = await api.call("GET", "/close/preview")
    assert preview["can_close"] is False and preview["refund_cents"] == 0
    assert preview["reason"] == "this account is already closed"
    # A closed account takes no card and no deposit.
    status, body = await api.call(
        "POST", "/deposits", {"amount_cents": 500, "payment_method": CARD}
    )
    assert_error(status, body, 409, "account_closed")


async def test_a_call_in_progress_keeps_the_account_open(api: Api) -> None:
    await api.ledger.hold("F1", "c-1", 300, meta={"call_id": "c-1"})
    _status, preview = await api.call("GET", "/close/preview")
    assert preview["can_close"] is False and "call is in progress" in preview["reason"]


async def test_statement_lines_show_minutes_times_rate(api: Api) -> None:
    auth = await api.biller.authorize("c-7", "F1", 25, 1800)
    assert auth.hold_cents
    await api.biller.settle(CallCharge("c-7", "F1", 150, "hangup", 25, resident_name="James Doe"))
    _status, body = await api.call("GET", "/statement")
    charge = next(e for e in body["entries"] if e["kind"] == "charge")
    assert charge["reference"] == "c-7"
    assert charge["billed_minutes"] == 3 and charge["rate_cents_per_minute"] == 25
    assert charge["amount_cents"] == 75 and charge["connected_seconds"] == 150
    deposit = next(e for e in body["entries"] if e["kind"] == "deposit")
    assert deposit["reference"] == "R000001"


async def test_receipts_of_unknown_references_are_404(api: Api) -> None:
    for reference in ("R999999", "R000000", "nope", "R1x"):
        status, body = await api.call("GET", f"/receipts/{reference}")
        assert_error(status, body, 404, "not_found")
    # Another family's receipt is not this family's.
    status, body = await api.call("GET", "/receipts/R000001", family="F2")
    assert status in (200, 404)
    if status == 200:
        assert body["reference"] == "R000001"  # F2's own opening balance


async def test_an_autopay_funding_has_a_receipt_naming_the_card(api: Api) -> None:
    status, body = await api.call(
        "PUT", "/settings",
        {"autopay": {"enabled": True, "amount_cents": 2000, "payment_method": CARD}},
    )  # fmt: skip
    assert status == 200, body
    await api.biller.authorize("c-9", "F1", 25, 1800)
    await api.biller.settle(
        CallCharge("c-9", "F1", 21 * 60, "hangup", 25)
    )  # $10.00 - $5.25 = $4.75
    await api.biller.drain()
    status, listed = await api.call("GET", "/receipts")
    autopay = listed["receipts"][0]
    assert autopay["kind"] == "autopay" and autopay["description"] == "AutoPay"
    assert autopay["amount_cents"] == 2000 and autopay["method"] == "card ending 4242"
    assert autopay["balance_cents"] == 475 + 2000
    status, again = await api.call("GET", f"/receipts/{autopay['reference']}")
    assert again == autopay
