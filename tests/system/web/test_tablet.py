"""The resident tablet: its contacts by name, one tap to call, no answer (a reject looks the
same, in content and timing), cancel, sign-in."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from client.session import ProtocolClient
from core.tokens import Tokens
from tests.conftest import SECRET, NodeFactory
from tests.system.web.conftest import TABLET, Pages, WebNode, screenshot

SHORT_RING_S = 5.0


async def test_contacts_by_name_one_tap_and_cancel(pages: Pages, server: WebNode) -> None:
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
        # One tap calls; canceling stops the ring.
        await tablet.click('#contacts li[data-contact="F1"] button')
        await expect(tablet.locator("#calling-who")).to_have_text("Family F1")
        incoming = await family.next("call.incoming")
        await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
        await screenshot(tablet, "tablet-ringing")
        await tablet.click("#cancel")
        assert (await family.next("call.canceled"))["call_id"] == incoming["call_id"]
        await expect(tablet.locator("#home")).to_be_visible()
        # The last call comes first.
        first = tablet.locator("#contacts li").first
        await expect(first).to_have_attribute("data-contact", "F1")
        await expect(first).to_contain_text("Last call")

    # Another tablet (a second browser context: nothing of the first's storage) shows the same
    # history, from the server (issue 32 §5), and a contact never called says so.
    other = await pages.open("/tablet", "tablet", "R1", TABLET)
    again = other.locator("#contacts li").first
    await expect(again).to_have_attribute("data-contact", "F1")
    await expect(again).to_contain_text("Last call")
    await expect(other.locator('#contacts li[data-contact="FATTY"]')).to_contain_text(
        "No calls yet"
    )
    assert await other.evaluate("Object.keys(localStorage).filter(k => k.includes('last'))") == []
    await screenshot(other, "tablet-history-second-device")


@pytest.fixture
async def short_ring(
    browser: Browser, start_node: NodeFactory, seeded: object
) -> AsyncIterator[Pages]:
    """Pages on a node whose ring timeout is short (a reject is heard only at its end)."""
    handle = await start_node(ring_timeout_s=SHORT_RING_S)
    opened = Pages(browser, WebNode(handle.node, handle.url, Tokens(SECRET)))
    yield opened
    await opened.close()
    assert not opened.errors, opened.errors


async def _unanswered_screen(tablet: Page, family: ProtocolClient, *, reject: bool) -> float:
    """Call Family F1 with one tap; reject at once or let it ring. Returns the seconds from
    the tap to the tablet's "did not answer"."""
    await expect(tablet.locator("#home")).to_be_visible()
    tapped = time.monotonic()
    await tablet.click('#contacts li[data-contact="F1"] button')
    incoming = await family.next("call.incoming")
    await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
    if reject:
        await family.request("call.reject", {"call_id": incoming["call_id"]})
        # Still ringing on the tablet after the family declined.
        await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
    await expect(tablet.locator("#noanswer")).to_be_visible(timeout=30_000)
    heard = time.monotonic() - tapped
    await expect(tablet.locator("#noanswer-who")).to_have_text("Family F1 did not answer.")
    return heard


async def test_reject_and_ring_timeout_look_the_same(short_ring: Pages) -> None:
    server = short_ring.server
    tablet = await short_ring.open("/tablet", "tablet", "R1", TABLET)
    async with ProtocolClient(server.url, server.tokens.issue("family", "F1"), "F1") as family:
        after_reject = await _unanswered_screen(tablet, family, reject=True)
        rejected_screen = await tablet.locator("#noanswer").inner_html()
        await screenshot(tablet, "tablet-no-answer-rejected")
        await tablet.click("#noanswer [data-go=home]")
        after_timeout = await _unanswered_screen(tablet, family, reject=False)
        await screenshot(tablet, "tablet-no-answer-timeout")
        assert await tablet.locator("#noanswer").inner_html() == rejected_screen
    # Both only once the ring timeout is over: a reject is not heard sooner.
    assert after_reject >= SHORT_RING_S and after_timeout >= SHORT_RING_S


async def test_only_resident_tablets_sign_in(pages: Pages) -> None:
    page = await pages.open("/tablet", "family", "F1", TABLET)
    error = page.locator("#signin .error")
    await expect(error).to_have_text("Could not sign in: this is not a resident tablet's token")
