"""The admin's scheduled visits in Chromium: the facility's visit settings (a bad slot length
refused with the rule, then saved), a booking waiting for approval approved, and a booked visit
canceled with a reason the family hears."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from playwright.async_api import expect

from client.session import ProtocolClient
from tests.system.web.conftest import DESKTOP, Pages, WebNode, api_as, screenshot


async def test_an_admin_sets_visits_approves_and_cancels_with_a_reason(
    pages: Pages, server: WebNode
) -> None:
    page = await pages.open("/admin", "admin", "AW", DESKTOP)
    card = page.locator("#visits-card")
    settings = page.locator("#visit-settings")
    await expect(settings.locator('select[name="mode"]')).to_have_value("on_demand")
    await expect(card).to_contain_text("divides 60")
    await settings.locator('select[name="mode"]').select_option("both")
    await settings.locator('input[name="slot_minutes"]').fill("45")
    await settings.get_by_role("button", name="Save visit settings").click()
    await expect(page.locator("#visit-settings-error")).to_contain_text("divide 60")
    await settings.locator('input[name="slot_minutes"]').fill("30")
    await settings.locator('input[name="requires_approval"]').check()
    await settings.get_by_role("button", name="Save visit settings").click()
    await expect(page.locator("#visit-settings-saved")).to_be_visible()
    async with api_as(server, "admin", "AW") as admin:
        async with admin.get("/api/v1/admin/facilities") as response:
            [web] = (await response.json())["facilities"]
    assert web["visits"]["mode"] == "both" and web["visits"]["requires_approval"] is True
    assert web["visits"]["slot_minutes"] == 30

    start = int(math.ceil((time.time() + 13 * 3600) / 1800) * 1800)
    vera = ProtocolClient(server.url, server.tokens.issue("family", "FV"), "FV")
    async with vera, api_as(server, "family", "FV") as family:
        async with family.post("/api/v1/visits", json={"resident_id": "RV", "start": start}) as r:
            booked = await r.json()
            assert r.status == 201 and booked["status"] == "pending", booked
        await page.reload()
        pending = page.locator(f'#visits-pending li[data-visit="{booked["visit_id"]}"]')
        await expect(pending).to_contain_text("Victor Vale with Vera Vale")
        await expect(pending).to_contain_text("Waiting for approval")
        await page.fill("#visits-day", datetime.fromtimestamp(start, UTC).date().isoformat())
        await page.dispatch_event("#visits-day", "change")
        slot = page.locator(f'#visits-schedule li[data-start="{start}"]')
        await expect(slot).to_contain_text("1 of 10 stations")
        await screenshot(page, "admin-visits-pending", full_page=True)

        await pending.get_by_role("button", name="Approve").click()
        await expect(page.locator("#no-pending")).to_be_visible()
        item = slot.locator(f'li[data-visit="{booked["visit_id"]}"]')
        await expect(item).to_contain_text("Booked")
        await item.get_by_role("button", name="Cancel visit").click()
        await expect(item.locator(".error")).to_contain_text("Say why")
        await item.get_by_label("Reason (both sides see it)").fill("Unit on lockdown")
        await item.get_by_role("button", name="Cancel visit").click()
        await expect(item).to_contain_text("Canceled")
        await expect(item).to_contain_text("Reason: Unit on lockdown")
        await expect(slot).to_contain_text("0 of 10 stations")
        await screenshot(page, "admin-visits-canceled", full_page=True)
        seen = [(await vera.next("visit.updated"))["status"] for _ in range(3)]
        assert seen == ["pending", "booked", "canceled"]
        assert vera.events_named("visit.updated")[-1]["reason"] == "Unit on lockdown"
