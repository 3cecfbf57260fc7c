"""The resident tablet: its contacts by name, one tap to call, no answer, cancel, sign-in."""

from __future__ import annotations

from playwright.async_api import expect

from client.session import ProtocolClient
from tests.web.conftest import TABLET, Pages, WebNode, screenshot


async def test_contacts_by_name_unanswered_and_canceled_calls(
    pages: Pages, server: WebNode
) -> None:
    tablet = await pages.open("/tablet", "tablet", "R1", TABLET)
    await expect(tablet.locator("#who")).to_have_text("James Doe")
    contacts = tablet.locator("#contacts li")
    await expect(contacts.first).to_be_visible()
    names = await tablet.locator("#contacts li strong").all_text_contents()
    assert "Family F1" in names and names == sorted(names)  # no calls yet: by name
    ids = [await item.get_attribute("data-contact") for item in await contacts.all()]
    assert "F1" in ids and not {"FDENIED", "FPENDING"} & set(ids)  # approved contacts only
    attorney = tablet.locator('#contacts li[data-contact="FATTY"]')
    await expect(attorney).to_contain_text("Attorney — private")
    await screenshot(tablet, "tablet-home")
    async with ProtocolClient(server.url, server.tokens.issue("family", "F1"), "F1") as family:
        # Rejected: the tablet sees "no answer", exactly as for a ring timeout.
        await tablet.click('#contacts li[data-contact="F1"] button')
        await expect(tablet.locator("#calling-who")).to_have_text("Family F1")
        incoming = await family.next("call.incoming")
        await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
        await family.request("call.reject", {"call_id": incoming["call_id"]})
        await expect(tablet.locator("#noanswer")).to_be_visible(timeout=40_000)
        await expect(tablet.locator("#noanswer-who")).to_have_text("Family F1 did not answer.")
        await screenshot(tablet, "tablet-no-answer")
        await tablet.click("#noanswer [data-go=home]")

        # The last call comes first; calling again and canceling stops the ring.
        first = tablet.locator("#contacts li").first
        await expect(first).to_have_attribute("data-contact", "F1")
        await expect(first).to_contain_text("Last call")
        await first.locator("button").click()
        incoming = await family.next("call.incoming")
        await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
        await tablet.click("#cancel")
        assert (await family.next("call.canceled"))["call_id"] == incoming["call_id"]
        await expect(tablet.locator("#home")).to_be_visible()


async def test_only_resident_tablets_sign_in(pages: Pages) -> None:
    page = await pages.open("/tablet", "family", "F1", TABLET)
    error = page.locator("#signin .error")
    await expect(error).to_have_text("Could not sign in: this is not a resident tablet's token")
