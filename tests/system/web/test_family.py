"""The family app's account screens: deposits within limits, blocks, the video-calls switch."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from client.session import AckError, ProtocolClient
from tests.system.web.conftest import PHONE, Pages, WebNode, screenshot


async def account(server: WebNode, family: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.tokens.issue('family', family)}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/api/v1/account", headers=headers) as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_deposit_limits_and_errors(pages: Pages, server: WebNode) -> None:
    family = await pages.open("/family", "family", "F1")
    await expect(family.locator("#balance")).to_have_text("$10.00")
    await family.click("#tabs [data-go=deposit]")
    error = family.locator("#deposit-error")
    for amount, message in [
        ("1.99", "The minimum deposit is $2.00."),
        ("100.01", "The maximum deposit is $100.00."),
        ("12.345", "Enter an amount in dollars, like 20 or 12.50."),
        ("ten", "Enter an amount in dollars, like 20 or 12.50."),
    ]:
        await family.fill("#amount", amount)
        await family.click("#deposit-form button[type=submit]")
        await expect(error).to_have_text(message)
    await screenshot(family, "family-deposit-error")
    assert (await account(server, "F1"))["balance_cents"] == 1000  # nothing was sent

    await family.click("#deposit [data-amount='20']")
    await expect(error).to_be_hidden()
    # The fake processor's payment-method step (issue 32 §4): a test card.
    await family.fill("#deposit-method input[data-pm=card_number]", "4242 4242 4242 4242")
    await family.click("#deposit-form button[type=submit]")
    done = family.locator("#deposit-done")  # by the Deposit button, with the receipt
    await expect(done).to_have_text("Added $20.00. New balance $30.00.")
    await family.click("#deposit-receipt [data-go=home]")
    await expect(family.locator("#balance")).to_have_text("$30.00")
    await family.click("#tabs [data-go=history]")
    await family.click("#tabs [data-go=home]")
    await expect(family.locator("#balance")).to_be_visible()
    await family.click("#tabs [data-go=deposit]")
    await expect(family.locator("#deposit-receipt")).to_be_hidden()  # a new deposit: afresh
    await family.fill("#amount", "$2")
    await family.click("#deposit-form button[type=submit]")  # the card on file pays
    await expect(done).to_have_text("Added $2.00. New balance $32.00.")
    await expect(family.locator("#balance")).to_have_text("$32.00")
    assert (await account(server, "F1"))["balance_cents"] == 3200


async def test_block_a_facility_and_turn_video_calls_off(pages: Pages, server: WebNode) -> None:
    family = await pages.open("/family", "family", "F1")
    await expect(family.locator("#balance")).to_have_text("$10.00")
    async with ProtocolClient(server.url, server.tokens.issue("tablet", "R1"), "R1") as tablet:
        await family.select_option("#block-form select", "SQ")  # by name: "San Quentin"
        await family.click("#block-form button")
        blocked = family.locator('#blocks li[data-facility="SQ"]')
        await expect(blocked.locator("button")).to_have_text("Unblock")
        await screenshot(family, "family-blocked")
        assert (await account(server, "F1"))["blocks"] == ["SQ"]
        with pytest.raises(AckError) as refused:
            await tablet.place("F1")
        assert refused.value.code == "unavailable"

        options = await family.locator("#block-form option").all_text_contents()
        assert options[0] == "All facilities" and "San Quentin" in options
        assert options[1:] == sorted(options[1:])  # facilities by name, never by id
        await expect(blocked).to_contain_text("San Quentin")

        await blocked.locator("button").click()
        await expect(blocked.locator("button")).to_have_text("Block")
        assert (await account(server, "F1"))["blocks"] == []

        await family.click("#allow-video")
        await expect(family.locator("#video-hint")).to_have_text("Calls to you will not ring.")
        assert (await account(server, "F1"))["allow_video_calls"] is False
        with pytest.raises(AckError):
            await tablet.place("F1")
        await family.click("#allow-video")
        await expect(family.locator("#allow-video")).to_be_checked()

        # Unblocked and allowed again: the call rings, with the facility's name learnt.
        call_id = await tablet.place("F1")
        await expect(family.locator("#in-facility")).to_have_text("San Quentin")
        await family.click("#reject")
        await expect(family.locator("#incoming")).to_be_hidden()  # stops ringing at once
        await expect(family.locator('#blocks li[data-facility="SQ"]')).to_contain_text(
            "San Quentin"
        )
        assert call_id


async def test_a_family_asks_to_become_a_contact(pages: Pages, server: WebNode) -> None:
    family = await pages.open("/family", "family", "FATTY")
    await expect(family.locator("#who")).to_have_text("Family FATTY")  # the name, not the id
    contacts = family.locator("#contacts li")
    await expect(contacts).to_have_count(1)  # the attorney's client, R1
    await expect(contacts.first).to_contain_text("James Doe")
    await family.select_option("#contact-search select", "SQ")
    await family.fill("#contact-search input", "ro")
    await family.click("#contact-search button")
    found = family.locator('#resident-results li[data-resident="R2"]')
    await expect(found).to_contain_text("John Roe")
    await found.locator("button").click()
    asked = family.locator('#contacts li[data-resident="R2"]')
    await expect(asked).to_contain_text("Waiting for approval")
    await expect(family.locator("#home-notice")).to_contain_text("Asked to add John Roe")
    await screenshot(family, "family-contact-requested", full_page=True)

    # The facility's admin approves the request from the queue.
    headers = {"Authorization": f"Bearer {server.tokens.issue('admin', 'A1')}"}
    async with aiohttp.ClientSession(base_url=server.url, headers=headers) as admin:
        async with admin.get("/api/v1/admin/contacts?status=pending") as response:
            queue = (await response.json())["contacts"]
        assert [(c["resident"]["id"], c["family"]["id"]) for c in queue] == [("R2", "FATTY")]
        async with admin.put("/api/v1/admin/contacts/R2/FATTY", json={"status": "approved"}) as r:
            assert r.status == 200
    await family.click('#tabs [data-go="history"]')
    await family.click('#tabs [data-go="home"]')
    await expect(asked).to_contain_text("Approved")
    async with ProtocolClient(server.url, server.tokens.issue("tablet", "R2"), "R2") as tablet:
        await tablet.place("FATTY")
        await expect(family.locator("#in-facility")).to_have_text("San Quentin")


async def test_sign_in_refused(pages: Pages) -> None:
    page = await pages.browser.new_page(base_url=pages.server.url, viewport=PHONE)
    try:
        await page.goto("/")
        await expect(page.locator("nav a")).to_have_count(5)
        await expect(page.locator('nav a[href="/investigator"]')).to_be_enabled()
        await screenshot(page, "index")
        await page.goto("/family?token=not-a-token")
        await expect(page.locator("#signin .error")).to_have_text(
            "Could not sign in: This sign-in link is not valid. Check that you copied all of it,"
            " or ask for a new one."
        )
        assert "token=" not in page.url  # dropped from the address bar
        await screenshot(page, "family-signin")
        expired = pages.server.tokens.issue("family", "F1", ttl_s=1)
        await asyncio.sleep(2.1)  # past its expiry (JWT times are whole seconds)
        await page.goto(f"/family?token={expired}")
        await expect(page.locator("#signin .error")).to_have_text(
            "Could not sign in: This sign-in link has expired. Ask for a new one."
        )
    finally:
        await page.close()


async def test_end_reasons_read_as_people_would(pages: Pages) -> None:
    page = await pages.open("/family", "family", "F1")
    reasons = await page.evaluate(
        """() => import("/static/js/common.js").then(({ endReason }) => [
            "hangup", "time_limit", "terminated", "connection_lost", "server_shutdown",
        ].map((reason) => endReason({ reason, by: "tablet" }, "family")))"""
    )
    assert reasons == [
        "The other side hung up.",
        "The time limit was reached.",
        "The call was ended by the facility.",
        "The connection was lost.",
        "The video visit service was stopped, which ended the call.",
    ]
