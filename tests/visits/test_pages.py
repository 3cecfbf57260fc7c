"""The tablet's "Your visits" in Chromium: the resident's next visit highlighted with a Join
button when due; one tap rings the family like any call; in a scheduled facility a plain call
is refused with the reason."""

from __future__ import annotations

import time

from playwright.async_api import expect

from client.session import ProtocolClient
from tests.visits.test_life import arm
from tests.web.conftest import TABLET, Pages, WebNode, browser, pages, screenshot, server  # noqa: F401  (the web tests' fixtures)
from visits.record import VisitStatus


async def test_the_tablet_joins_a_due_visit_with_one_tap(pages: Pages, server: WebNode) -> None:  # noqa: F811
    now = time.time()
    due = await arm(server.node.visits, now - 60, now + 600)
    later = await arm(server.node.visits, now + 86400, now + 86400 + 300)
    tablet = await pages.open("/tablet", "tablet", "RN1", TABLET)
    first = tablet.locator("#visits li").first
    await expect(first).to_have_attribute("data-visit", due.visit_id)
    await expect(first).to_contain_text("Family FV1")
    await expect(tablet.locator(f'#visits li[data-visit="{later.visit_id}"]')).to_contain_text(
        "Booked"
    )
    await expect(tablet.locator(f'#visits li[data-visit="{later.visit_id}"] .join')).to_have_count(
        0
    )
    async with ProtocolClient(server.url, server.tokens.issue("family", "FV1"), "FV1") as family:
        # A plain call from a scheduled facility's tablet: refused, and the tablet says why.
        await tablet.click('#contacts li[data-contact="FV1"] button')
        await expect(tablet.locator("#call-error")).to_contain_text("booked visits")
        await screenshot(tablet, "tablet-visits")
        await first.get_by_role("button", name="Join").click()
        incoming = await family.next("call.incoming")
        assert incoming["resident"]["id"] == "RN1"
        await expect(tablet.locator("#calling-who")).to_have_text("Family FV1")
        await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
        stored = await server.node.visits.store.get(due.visit_id)
        assert stored is not None and stored.call_id == incoming["call_id"]
        await tablet.click("#cancel")
        await family.next("call.canceled")
        await expect(tablet.locator("#home")).to_be_visible()
        # Staff cancel the later one: the tablet's list follows (visit.updated).
        await server.node.visits.service.decide(later, VisitStatus.CANCELED, "Lockdown")
        item = tablet.locator(f'#visits li[data-visit="{later.visit_id}"]')
        await expect(item).to_contain_text("Canceled")
        await expect(item).to_contain_text("Lockdown")
