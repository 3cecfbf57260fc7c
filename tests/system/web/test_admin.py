"""The facility administrator's console: a family's contact request approved on /admin (an
attorney only after a confirmation), then the resident calls; a facility's setting changed."""

from __future__ import annotations

import aiohttp
import pytest
from playwright.async_api import expect

from client.session import AckError, ProtocolClient
from tests.system.web.conftest import DESKTOP, Pages, WebNode, answer_next_dialog, screenshot


async def test_an_admin_approves_a_contact_request_and_the_resident_calls(
    pages: Pages, server: WebNode
) -> None:
    family = {"Authorization": f"Bearer {server.tokens.issue('family', 'FV')}"}
    async with aiohttp.ClientSession(base_url=server.url, headers=family) as http:
        async with http.post("/api/v1/account/contacts", json={"resident_id": "RY"}) as response:
            assert response.status == 201
    page = await pages.open("/admin", "admin", "AW", DESKTOP)
    row = page.locator('#requests tr[data-resident="RY"][data-family="FV"]')
    await expect(row).to_contain_text("Vera Vale")
    await expect(row).to_contain_text("Yuri Yates")
    await expect(row).to_contain_text("Westbrook Facility")
    await expect(row.locator(".status")).to_have_text("Waiting")
    await expect(page.locator('#facilities tr[data-facility="WEB"]')).to_contain_text("cap")
    await screenshot(page, "admin-requests", full_page=True)

    # Privileged means never recorded: asked first, and nothing changes when declined.
    messages = answer_next_dialog(page, accept=False)
    await row.get_by_role("button", name="Approve as attorney…").click()
    await expect(row.locator(".status")).to_have_text("Waiting")
    assert messages and "never recorded" in messages[0]

    await row.get_by_role("button", name="Approve", exact=True).click()
    await expect(row).to_have_count(0)
    await expect(page.locator("#no-requests")).to_be_visible()
    await page.select_option("#request-status", "approved")
    await expect(row.locator(".status")).to_have_text("Approved")

    vera = ProtocolClient(server.url, server.tokens.issue("family", "FV"), "FV")
    async with (
        vera,
        ProtocolClient(server.url, server.tokens.issue("tablet", "RY"), "RY") as tablet,
    ):
        call_id = await tablet.place("FV")
        assert (await vera.next("call.incoming"))["call_id"] == call_id


async def test_an_admin_changes_a_facilitys_longest_call(pages: Pages, server: WebNode) -> None:
    page = await pages.open("/admin", "admin", "AW", DESKTOP)
    facility = page.locator('#facilities tr[data-facility="WEB"]')
    await expect(facility).to_contain_text("1 min 10 s")
    admin = {"Authorization": f"Bearer {server.tokens.issue('admin', 'AW')}"}

    async def settings() -> dict[str, int]:
        async with aiohttp.ClientSession(base_url=server.url, headers=admin) as http:
            async with http.get("/api/v1/admin/facilities") as response:
                [web] = (await response.json())["facilities"]
        return {k: web[k] for k in ("rate_cents_per_minute", "max_call_seconds")}

    # Only the rate changes: the 70 s maximum (shown as about 1 min) is kept as it is.
    await facility.locator('input[name="rate"]').fill("22")
    await facility.get_by_role("button", name="Save").click()
    await expect(facility).to_contain_text("22¢/min")
    assert await settings() == {"rate_cents_per_minute": 22, "max_call_seconds": 70}
    await facility.locator('input[name="minutes"]').fill("2")
    await facility.get_by_role("button", name="Save").click()
    await expect(facility).to_contain_text("2 min")
    assert await settings() == {"rate_cents_per_minute": 22, "max_call_seconds": 120}


async def test_only_admins_sign_in(pages: Pages) -> None:
    page = await pages.open("/admin", "monitor", "MW", DESKTOP)
    error = page.locator("#signin .error")
    await expect(error).to_have_text("Could not sign in: this is not an administrator's token")


async def test_the_board_counts_a_refused_call(pages: Pages, server: WebNode) -> None:
    page = await pages.open("/admin", "admin", "AW", DESKTOP)
    row = page.locator('#board tr[data-facility="WEB"]')
    await expect(row.locator(".refused")).to_have_text("none")
    async with (
        ProtocolClient(server.url, server.tokens.issue("family", "FV"), "FV"),
        ProtocolClient(server.url, server.tokens.issue("tablet", "RY"), "RY") as tablet,
    ):
        with pytest.raises(AckError) as refused:
            await tablet.place("FV")  # not (yet) RY's contact
        assert refused.value.code == "not_approved"
    await page.reload()
    bar = row.locator('.refusal[data-reason="not_approved"]')
    await expect(bar).to_contain_text("not approved")
    await expect(bar.locator(".count")).to_have_text("1")
    width = await bar.locator(".fill").evaluate("e => e.getBoundingClientRect().width")
    assert width > 0
    await expect(row.locator(".now")).to_have_text("0")
    await screenshot(page, "admin-board", full_page=True)
