"""The admin's "Who pays" for a facility (PROTOCOL v1.2 pricing plans) in Chromium: free
minutes a week, then the agency paying with a daily cap; a bad cap is refused with the rule."""

from __future__ import annotations

from typing import Any

from playwright.async_api import expect

from tests.system.web.conftest import DESKTOP, Pages, WebNode, api_as, screenshot


async def pricing(server: WebNode) -> dict[str, Any]:
    async with api_as(server, "admin", "AW") as admin:
        async with admin.get("/api/v1/admin/facilities") as response:
            [web] = (await response.json())["facilities"]
    plan: dict[str, Any] = web["pricing"]
    return plan


async def test_an_admin_changes_who_pays(pages: Pages, server: WebNode) -> None:
    page = await pages.open("/admin", "admin", "AW", DESKTOP)
    cell = page.locator('#facilities tr[data-facility="WEB"] td.pricing')
    await expect(cell.locator(".pricing-summary")).to_have_text("Families pay 20¢/min")
    await expect(page.locator('#board tr[data-facility="WEB"] .agency')).to_have_text("0 min")
    await cell.get_by_role("button", name="Change who pays…").click()
    form = cell.locator("form")
    await form.get_by_label("Free minutes per resident").fill("10")
    await form.locator('select[name="free_period"]').select_option("week")
    await form.get_by_role("button", name="Save who pays").click()
    await expect(cell.locator(".pricing-summary")).to_have_text(
        "First 10 min free each week, then 20¢/min"
    )
    assert await pricing(server) == {
        "payer": "family",
        "free_minutes": 10,
        "free_period": "week",
        "max_minutes_per_day": None,
    }
    await cell.get_by_role("button", name="Change who pays…").click()
    await form.get_by_label("The agency pays every minute").check()
    await expect(form.get_by_label("Free minutes per resident")).to_be_hidden()
    await form.get_by_label("Daily cap per resident (minutes, empty: none)").fill("2000")
    await form.get_by_role("button", name="Save who pays").click()
    await expect(form.locator(".pricing-error")).to_contain_text("1 to 1,440")
    await form.get_by_label("Daily cap per resident (minutes, empty: none)").fill("90")
    await form.get_by_role("button", name="Save who pays").click()
    await expect(cell.locator(".pricing-summary")).to_have_text("Free, up to 90 min a day")
    plan = await pricing(server)
    assert plan["payer"] == "agency" and plan["max_minutes_per_day"] == 90
    await screenshot(page, "admin-pricing", full_page=True)
