"""The tablet's "Your visits" in Chromium: the resident's next visit highlighted with a Join
button when due; one tap rings the family like any call; in a scheduled facility a plain call
is refused with the reason."""

from __future__ import annotations

import time

from playwright.async_api import expect

from client.session import ProtocolClient
from tests.system.visits.test_life import arm
from tests.system.web.conftest import TABLET, Pages, WebNode, browser, pages, screenshot, server  # noqa: F401  (the web tests' fixtures)
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


async def test_the_family_books_and_cancels_a_visit_on_a_phone(
    pages: Pages,  # noqa: F811
    server: WebNode,  # noqa: F811
) -> None:
    page = await pages.open("/family", "family", "FV1")  # 390 x 844
    card = page.locator("#visits-card")
    await page.select_option("#visit-resident", "RV1")
    tabs = card.locator("#visit-days button.day-tab")
    await expect(tabs.first).to_be_visible()
    # A slot more than a day ahead (the cancellation cutoff is 24 h): two days on.
    assert await tabs.count() in (7, 8)  # from now to a week on: 7 or 8 local dates
    await tabs.nth(2).click()
    await expect(tabs.nth(2)).to_have_attribute("aria-pressed", "true")
    later = card.locator("#visit-week li.day button.slot").first
    start = int(await later.get_attribute("data-start") or 0)
    assert start > time.time() + 24 * 3600
    await screenshot(page, "family-visits-week", full_page=True)
    await later.click()
    await expect(card.locator("#visits-done")).to_contain_text("Booked")
    item = card.locator("#my-visits li").first
    await expect(item).to_contain_text("Resident RV1")
    await expect(item).to_contain_text("Booked")
    await expect(item.locator(".cutoff")).to_contain_text("You can cancel until")
    await expect(card.locator(f'button.slot[data-start="{start}"]')).to_have_count(1)  # 10 stations
    listed = await server.node.visits.store.of_family("FV1", start - 1, start + 1)
    assert [(v.start, v.status) for v in listed] == [(start, VisitStatus.BOOKED)]
    # The same slot again: the family is busy then, and the page says so.
    await card.locator(f'button.slot[data-start="{start}"]').click()
    await expect(card.locator("#visits-error")).to_contain_text("already have a visit then")
    await screenshot(page, "family-visits-booked", full_page=True)
    await item.get_by_role("button", name="Cancel visit").click()
    await expect(item).to_contain_text("Canceled")
    await expect(item.locator(".cancel-visit")).to_have_count(0)
    [canceled] = await server.node.visits.store.of_family("FV1", start - 1, start + 1)
    assert canceled.status == VisitStatus.CANCELED and canceled.canceled_by == "family"
