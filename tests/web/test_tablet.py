"""The resident tablet: refusals, no answer, cancel."""

from __future__ import annotations

from playwright.async_api import expect

from client.session import ProtocolClient
from tests.web.conftest import TABLET, Pages, WebNode, screenshot


async def test_refused_unanswered_and_canceled_calls(pages: Pages, server: WebNode) -> None:
    tablet = await pages.open("/tablet", "tablet", "R1", TABLET)
    async with ProtocolClient(server.url, server.tokens.issue("family", "F1"), "F1") as family:
        await tablet.fill("#contact", "FDENIED")
        await tablet.click("#call-form button[type=submit]")
        await expect(tablet.locator("#call-error")).to_have_text(
            "This contact is not approved for you."
        )

        # Rejected: the tablet sees "no answer", exactly as for a ring timeout.
        await tablet.fill("#contact", "F1")
        await tablet.click("#call-form button[type=submit]")
        incoming = await family.next("call.incoming")
        await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
        await family.request("call.reject", {"call_id": incoming["call_id"]})
        await expect(tablet.locator("#noanswer")).to_be_visible()
        await screenshot(tablet, "tablet-no-answer")
        await tablet.click("#noanswer [data-go=home]")

        # The contact is remembered; calling it again and canceling stops the ring.
        recent = tablet.locator("#recent li", has_text="F1")
        await expect(recent).to_have_count(1)
        await screenshot(tablet, "tablet-home")
        await recent.locator("button").click()
        incoming = await family.next("call.incoming")
        await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
        await tablet.click("#cancel")
        assert (await family.next("call.canceled"))["call_id"] == incoming["call_id"]
        await expect(tablet.locator("#home")).to_be_visible()
