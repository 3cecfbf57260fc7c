"""The family's money screens in Chromium (issue 32 §4): a deposit paid through the processor
adapter's payment-method step (the fake processor's test cards: one approved, one declined),
its receipt opened again after a reload, AutoPay set up (and a bad amount refused with the
server's own message), statement lines as minutes x rate, and closing the account with the
refund shown before confirming. Every message is next to the action that caused it."""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.async_api import Page, expect

from billing_hooks import FakeProcessor
from billing_hooks.metering.biller import CallCharge
from tests.system.web.conftest import Pages, WebNode, api_as, screenshot

APPROVED = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"


async def account(server: WebNode, family: str) -> dict[str, Any]:
    async with api_as(server, "family", family) as http, http.get("/api/v1/account") as response:
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def right_after(page: Page, message: str, action: str) -> None:
    """The message ``message`` (a selector) is shown next to ``action``'s control: it follows
    it in the same form or card, not at the bottom of the page."""
    near = await page.evaluate(
        """([message, action]) => {
            const [m, a] = [document.querySelector(message), document.querySelector(action)];
            const box = a.closest("form, .card");
            const follows = a.compareDocumentPosition(m) & Node.DOCUMENT_POSITION_FOLLOWING;
            const gap = m.getBoundingClientRect().top - a.getBoundingClientRect().bottom;
            return box.contains(m) && Boolean(follows) && gap >= 0 && gap < 200;
        }""",
        [message, action],
    )
    assert near, f"{message} is not next to {action}"


def processor(server: WebNode) -> FakeProcessor:
    fake = server.node.billing.biller.processor
    assert isinstance(fake, FakeProcessor)
    return fake


async def test_deposit_with_a_test_card_and_its_receipt_again_later(
    pages: Pages, server: WebNode
) -> None:
    family = await pages.open("/family", "family", "F1")
    await expect(family.locator("#balance")).to_have_text("$10.00")
    await family.click("#tabs [data-go=deposit]")
    card = family.locator("#deposit-method input[data-pm=card_number]")
    await expect(card).to_be_visible()  # the adapter's step: the fake asks for a test card
    await expect(family.locator("#deposit-method")).to_contain_text("4242 4242 4242 4242")
    submit = "#deposit-form button[type=submit]"
    error = family.locator("#deposit-error")

    # No card yet: asked for before anything is sent.
    await family.fill("#amount", "20")
    await family.click(submit)
    await expect(error).to_have_text("Enter the card number.")

    # A declined test card: a clear error by the button, the balance unchanged.
    await card.fill(DECLINED)
    await family.click(submit)
    await expect(error).to_have_text(
        "Payment declined: the card was declined (card ending 0002). "
        "Nothing was charged; your balance is unchanged."
    )
    await right_after(family, "#deposit-error", submit)
    await screenshot(family, "family-deposit-declined")
    assert (await account(server, "F1"))["balance_cents"] == 1000
    assert not processor(server).succeeded()

    # A card that is not one (bad digits): the server's reason, nothing changed.
    await card.fill("4242 4242 4242 4241")
    await family.click(submit)
    await expect(error).to_have_text("that card number is not valid: check the digits")

    # The approved test card: a receipt right under the button.
    await card.fill(APPROVED)
    await family.click(submit)
    receipt = family.locator("#deposit-receipt")
    await expect(receipt).to_be_visible()
    await expect(error).to_be_hidden()
    await expect(family.locator("#deposit-done")).to_have_text("Added $20.00. New balance $30.00.")
    await expect(receipt.locator("[data-field=amount] dd")).to_have_text("$20.00")
    await expect(receipt.locator("[data-field=method] dd")).to_have_text("card ending 4242")
    reference = await receipt.locator("[data-field=reference] dd").inner_text()
    assert re.fullmatch(r"R\d{6}", reference), reference
    when = await receipt.locator("[data-field=time] dd").inner_text()
    assert when and when != "—"
    await right_after(family, "#deposit-receipt", submit)
    await screenshot(family, "family-receipt")
    assert (await account(server, "F1"))["balance_cents"] == 3000

    # The card is on file now: the next deposit offers it.
    await family.click("#deposit-receipt [data-go=home]")
    await expect(family.locator("#balance")).to_have_text("$30.00")
    await family.click("#tabs [data-go=deposit]")
    await expect(family.locator("#deposit-method [data-method=on-file]")).to_contain_text(
        "card ending 4242"
    )

    # Opened again after a reload: from the receipts list, and from its statement line.
    await family.reload()
    await expect(family.locator("#balance")).to_have_text("$30.00")
    await family.click("#tabs [data-go=history]")
    listed = family.locator(f'#receipts li[data-receipt="{reference}"]')
    await expect(listed).to_contain_text("card ending 4242")
    await listed.locator("button").click()
    dialog = family.locator("#receipt-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("[data-field=reference] dd")).to_have_text(reference)
    await expect(dialog.locator("[data-field=amount] dd")).to_have_text("$20.00")
    await expect(dialog.locator("[data-field=method] dd")).to_have_text("card ending 4242")
    await expect(dialog.locator("[data-field=time] dd")).to_have_text(when)
    await screenshot(family, "family-receipt-reopened")
    await family.click("#receipt-close")
    await expect(dialog).to_be_hidden()
    line = family.locator(f'#statement li[data-reference="{reference}"]')
    await expect(line).to_contain_text(f"ref {reference}")
    await line.locator("[data-open-receipt]").click()
    await expect(dialog.locator("[data-field=reference] dd")).to_have_text(reference)


async def test_autopay_set_up_and_a_bad_amount_refused(pages: Pages, server: WebNode) -> None:
    family = await pages.open("/family", "family", "F2")
    await expect(family.locator("#balance")).to_have_text("$10.00")
    form = family.locator("#autopay-form")
    await expect(family.locator("#autopay-hint")).to_contain_text("Off")
    await family.click("#autopay-enabled")
    card = family.locator("#autopay-method input[data-pm=card_number]")
    await expect(card).to_be_visible()
    await card.fill(APPROVED)
    submit = "#autopay-form button[type=submit]"

    # $3 is under the minimum: the server refuses it, in its own words, by the button.
    await family.fill("#autopay-amount", "3")
    await family.click(submit)
    await expect(family.locator("#autopay-error")).to_have_text(
        "AutoPay amount must be whole dollars from $5 to $100 (500..10000 cents, "
        "a multiple of 100), got 300"
    )
    await right_after(family, "#autopay-error", submit)
    refused = await account(server, "F2")
    assert refused["autopay"] == {"enabled": False, "amount_cents": None}
    assert refused["payment_method"] is None  # not even the card went on file

    await family.fill("#autopay-amount", "25")
    await family.click(submit)
    done = family.locator("#autopay-done")
    await expect(done).to_have_text(
        "AutoPay is on. When your balance drops to $5.00 or less, $25.00 is added from "
        "card ending 4242."
    )
    await expect(family.locator("#autopay-error")).to_be_hidden()
    await right_after(family, "#autopay-done", submit)
    await expect(form).to_have_attribute("data-state", "on")
    await form.scroll_into_view_if_needed()
    await screenshot(family, "family-autopay")
    saved = await account(server, "F2")
    assert saved["autopay"] == {"enabled": True, "amount_cents": 2500}
    assert saved["payment_method"]["label"] == "card ending 4242"

    # Kept across a reload; turned off again.
    await family.reload()
    await expect(family.locator("#autopay-hint")).to_contain_text("$25.00 is added")
    await expect(family.locator("#autopay-enabled")).to_be_checked()
    await family.click("#autopay-enabled")
    await family.click(submit)
    await expect(done).to_have_text("AutoPay is off.")
    assert (await account(server, "F2"))["autopay"] == {"enabled": False, "amount_cents": 2500}


async def test_statement_lines_show_minutes_times_rate(pages: Pages, server: WebNode) -> None:
    biller = server.node.billing.biller
    await biller.authorize("call-web-1", "F1", 20, 1800, facility_id="SQ")
    now = time.time()
    await biller.settle(CallCharge(
        "call-web-1", "F1", 150, "hangup", 20, facility_id="SQ", facility_name="San Quentin",
        resident_id="R1", resident_name="James Doe", started_at=now - 160,
        connected_at=now - 150, ended_at=now,
    ))  # fmt: skip
    family = await pages.open("/family", "family", "F1")
    await expect(family.locator("#balance")).to_have_text("$9.40")
    await family.click("#tabs [data-go=history]")
    line = family.locator('#statement li[data-kind="charge"]')
    await expect(line).to_contain_text("Call with James Doe")
    await expect(line.locator(".arithmetic")).to_contain_text("3 min × 20¢ = $0.60")  # noqa: RUF001
    await expect(line).to_contain_text("ref call-web-1")
    await screenshot(family, "family-statement-arithmetic")


async def test_close_the_account_with_the_refund_shown_first(pages: Pages, server: WebNode) -> None:
    async with (
        api_as(server, "family", "FV") as http,
        http.post(
            "/api/v1/account/deposits",
            json={"amount_cents": 500, "payment_method": {"card_number": APPROVED}},
        ) as response,
    ):
        assert response.status == 200, await response.text()
    family = await pages.open("/family", "family", "FV")
    await expect(family.locator("#balance")).to_have_text("$15.00")
    await family.click("#close-start")
    refund = family.locator("#close-refund")
    await expect(refund).to_have_text(
        "Closing refunds $15.00 to card ending 4242. Calls to you will no longer ring, "
        "and AutoPay stops."
    )
    await expect(family.locator("#close-yes")).to_have_text("Close and refund $15.00")
    await family.locator("#close-card").scroll_into_view_if_needed()
    await screenshot(family, "family-close-refund")
    assert (await account(server, "FV"))["status"] == "open"  # shown, not done

    # "Keep my account" changes nothing; asking again shows the refund again.
    await family.click("#close-no")
    await expect(family.locator("#close-confirm")).to_be_hidden()
    await family.click("#close-start")
    await family.click("#close-yes")
    done = family.locator("#close-done")
    await expect(done).to_have_text(
        "Your account is closed. $15.00 is refunded to card ending 4242."
    )
    await right_after(family, "#close-done", "#close-card h2")
    await expect(family.locator("#balance")).to_have_text("$0.00")
    await expect(family.locator("#close-start")).to_be_hidden()
    closed = await account(server, "FV")
    assert closed["status"] == "closed" and closed["balance_cents"] == 0
    refunds = processor(server).succeeded("refund")
    assert [(p.family_id, p.amount_cents) for p in refunds] == [("FV", 1500)]
    await expect(family.locator("#autopay-hint")).to_have_text("Off: the account is closed.")
    await expect(family.locator("#autopay-enabled")).to_be_disabled()
    await screenshot(family, "family-closed")
    await family.click("#tabs [data-go=deposit]")
    await expect(family.locator("#deposit-error")).to_have_text(
        "This account is closed: it takes no more deposits."
    )
    await expect(family.locator("#deposit-form button[type=submit]")).to_be_disabled()
