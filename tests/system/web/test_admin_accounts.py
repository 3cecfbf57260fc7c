"""The admin console's accounts work (issue 26) and its settings screens (issue 32 §5): an
identity review (the three images, approve or reject with a reason), staff within the admin's
scope, a resident's PIN; the rate cap with its reason and the server's message, the
calling-hours editor."""

from __future__ import annotations

import io
import json
from typing import Any

import aiohttp
from PIL import Image
from playwright.async_api import Page, expect
from redis.asyncio import Redis

from tests.system.web.conftest import (
    DESKTOP,
    Pages,
    WebNode,
    answer_next_dialog,
    api_as,
    screenshot,
)
from visitation.seed import apply_seed, parse_seed

NEW_FAMILY: dict[str, Any] = {
    "families": [{"id": "FN", "name": "Nora North", "balance_cents": 500, "verified": False}],
    "contacts": [{"resident_id": "RW", "family_id": "FN", "status": "pending"}],
}


def picture(colour: str, size: tuple[int, int] = (320, 200)) -> bytes:
    image = Image.new("RGB", size, colour)
    out = io.BytesIO()
    image.save(out, "JPEG")
    return out.getvalue()


async def submit_identity(server: WebNode, family: str) -> None:
    form = aiohttp.FormData()
    for kind, colour in (("id_front", "red"), ("id_back", "green"), ("selfie", "blue")):
        form.add_field(kind, picture(colour), filename=f"{kind}.jpg", content_type="image/jpeg")
    async with api_as(server, "family", family) as http:
        async with http.post("/api/v1/account/identity", data=form) as answer:
            assert answer.status == 202, await answer.text()


async def images_shown(page: Page, count: int) -> None:
    await page.wait_for_function(
        """(count) => {
            const images = [...document.querySelectorAll('#identity-images img')];
            return images.length === count
                && images.every((i) => i.complete && i.naturalWidth > 0 && i.src.startsWith('data:image/'));
        }""",
        arg=count,
    )


async def test_an_admin_reviews_an_identity(pages: Pages, server: WebNode, redis: Redis) -> None:
    await apply_seed(redis, parse_seed(json.dumps(NEW_FAMILY)))
    await submit_identity(server, "FN")
    page = await pages.open("/admin", "admin", "AW", DESKTOP)
    row = page.locator('#identity-reviews tr[data-family="FN"]')
    await expect(row).to_contain_text("Nora North")
    await row.get_by_role("button", name="Review").click()
    await images_shown(page, 3)
    await expect(page.locator("#identity-images figcaption")).to_have_text(
        ["ID — front", "ID — back", "Recent photo"]
    )
    await screenshot(page, "admin-identity-review", full_page=True)

    # A rejection needs a reason; none given changes nothing.
    await page.locator("#identity-reject button").click()
    await expect(page.locator("#identity-panel-error")).to_contain_text("Say why")
    await expect(row).to_be_visible()

    await page.locator("#identity-approve").click()
    await expect(page.locator("#identity-done")).to_have_text("Nora North is verified.")
    await expect(row).to_have_count(0)
    await expect(page.locator("#no-identity")).to_be_visible()
    await expect(page.locator("#identity-images img")).to_have_count(0)  # dropped from the page
    async with api_as(server, "family", "FN") as http:
        async with http.get("/api/v1/account/identity") as answer:
            assert (await answer.json())["identity"] == "verified"


async def test_a_rejected_identity_says_why(pages: Pages, server: WebNode, redis: Redis) -> None:
    await apply_seed(redis, parse_seed(json.dumps(NEW_FAMILY)))
    await submit_identity(server, "FN")
    page = await pages.open("/admin", "admin", "AW", DESKTOP)
    await page.locator('#identity-reviews tr[data-family="FN"] button').click()
    await images_shown(page, 3)
    await page.locator("#identity-reason").fill("The photo is too dark to compare")
    await page.locator("#identity-reject button").click()
    await expect(page.locator("#identity-done")).to_contain_text("rejected")
    async with api_as(server, "family", "FN") as http:
        async with http.get("/api/v1/account/identity") as answer:
            status = await answer.json()
    assert status["identity"] == "rejected" and "too dark" in status["reason"]


async def staff_list(server: WebNode) -> dict[str, dict[str, Any]]:
    async with api_as(server, "admin", "AW") as http:
        async with http.get("/api/v1/admin/staff") as answer:
            return {s["id"]: s for s in (await answer.json())["staff"]}


async def test_an_admin_manages_staff_and_a_pin(pages: Pages, server: WebNode) -> None:
    page = await pages.open("/admin", "admin", "AW", DESKTOP)
    await expect(page.locator('#staff tr[data-staff="MW"]')).to_contain_text("Westbrook Facility")
    await expect(page.locator('#staff tr[data-staff="AW"] button.remove')).to_have_count(0)

    # Add a monitor: a weak password is refused with the server's words, nothing added.
    await page.click("#staff-new")
    form = page.locator("#staff-form")
    await form.locator("[name=staff_id]").fill("M2")
    await form.locator("input[name=facility][value=WEB]").check()
    await expect(form.locator("input[name=facility][value='*']")).to_have_count(0)  # not AW's
    await form.locator("[name=password]").fill("password123")
    await form.get_by_role("button", name="Save").click()
    await expect(page.locator("#staff-form-error")).to_contain_text("Not saved")
    assert "M2" not in await staff_list(server)
    await form.locator("[name=password]").fill("lantern-orchard-9-quietly")
    await form.get_by_role("button", name="Save").click()
    row = page.locator('#staff tr[data-staff="M2"]')
    await expect(row.locator(".role")).to_have_text("Monitor")
    await screenshot(page, "admin-staff", full_page=True)

    # Change the role; then remove (asked first).
    await row.get_by_role("button", name="Edit").click()
    await form.locator("[name=role]").select_option("investigator")
    await form.get_by_role("button", name="Save").click()
    await expect(row.locator(".role")).to_have_text("Investigator")
    assert (await staff_list(server))["M2"]["role"] == "investigator"
    asked = answer_next_dialog(page, accept=True)
    await row.get_by_role("button", name="Remove").click()
    await expect(row).to_have_count(0)
    assert asked and "signed out" in asked[0]
    assert "M2" not in await staff_list(server)


async def test_an_admin_resets_a_lost_two_step_sign_in(pages: Pages, server: WebNode) -> None:
    credentials = server.node.accounts.credentials
    await credentials.begin_totp("MW", "JBSWY3DPEHPK3PXP")
    assert await credentials.enable_totp("MW", "JBSWY3DPEHPK3PXP")
    page = await pages.open("/admin", "admin", "AW", DESKTOP)
    row = page.locator('#staff tr[data-staff="MW"]')
    two_step = row.locator("td").nth(3)
    await expect(two_step).to_have_text("on")
    await expect(page.locator('#staff tr[data-staff="AW"] button.reset-otp')).to_have_count(0)
    await screenshot(page, "admin-staff-two-step-on", full_page=True)
    asked = answer_next_dialog(page, accept=True)
    await row.get_by_role("button", name="Reset two-step").click()
    await expect(page.locator("#staff-done")).to_contain_text("two-step sign-in is off")
    await expect(two_step).to_have_text("off")
    await expect(row.locator("button.reset-otp")).to_have_count(0)
    assert asked and "signed out" in asked[0]
    assert (await staff_list(server))["MW"]["otp_enabled"] is False
    assert not await credentials.has_totp("MW")

    # A resident's PIN: then the shared tablet signs them in with it.
    pin_form = page.locator("#pin-form")
    await pin_form.locator("[name=resident_id]").fill("RW")
    await pin_form.locator("[name=pin]").fill("12")
    await pin_form.get_by_role("button", name="Set PIN").click()
    await expect(page.locator("#pin-error")).to_have_text("A PIN is 4 to 8 digits.")
    await pin_form.locator("[name=pin]").fill("97531")
    await pin_form.get_by_role("button", name="Set PIN").click()
    await expect(page.locator("#pin-done")).to_contain_text("PIN set for RW")
    async with api_as(server, "device", "WEB") as http:
        body = {"resident_id": "RW", "pin": "97531"}
        async with http.post("/api/v1/tablet/login", json=body) as answer:
            assert answer.status == 200 and (await answer.json())["subject"] == "RW"


async def facility(server: WebNode) -> dict[str, Any]:
    async with api_as(server, "admin", "AW") as http:
        async with http.get("/api/v1/admin/facilities") as answer:
            [web] = (await answer.json())["facilities"]
    return web  # type: ignore[no-any-return]


async def test_the_rate_cap_and_the_calling_hours_editor(pages: Pages, server: WebNode) -> None:
    page = await pages.open("/admin", "admin", "AW", DESKTOP)
    row = page.locator('#facilities tr[data-facility="WEB"]')
    await expect(row.locator(".cap")).to_have_text("FCC cap for a prison: 25¢ a minute")
    # Over the cap: the server refuses it and the page says its words; nothing changes.
    await row.locator('input[name="rate"]').fill("30")
    await row.get_by_role("button", name="Save").click()
    await expect(row.locator(".row-error")).to_contain_text("Not saved")
    await expect(row.locator(".row-error")).to_contain_text("25")
    await screenshot(page, "admin-rate-cap", full_page=True)
    assert (await facility(server))["rate_cents_per_minute"] == 20

    await row.get_by_role("button", name="Edit hours, type, retention…").click()
    editor = page.locator("#facility-editor")
    await expect(editor).to_contain_text("time zone, UTC")
    windows = editor.locator("#editor-hours li")
    await expect(windows).to_have_count(1)
    await windows.first.locator("input[name=days]").fill("mon-fri")
    await windows.first.locator("input[name=start]").fill("25:00")
    await editor.get_by_role("button", name="Save").click()
    await expect(page.locator("#editor-error")).to_contain_text("Hours 1: the start")
    await windows.first.locator("input[name=start]").fill("08:00")
    await windows.first.locator("input[name=end]").fill("20:00")
    await editor.locator("#editor-add-hours").click()
    await windows.nth(1).locator("input[name=days]").fill("sat,sun")
    await windows.nth(1).locator("input[name=start]").fill("10:00")
    await windows.nth(1).locator("input[name=end]").fill("16:00")
    await editor.locator("input[name=retention]").fill("90")
    await screenshot(page, "admin-calling-hours", full_page=True)
    await editor.get_by_role("button", name="Save").click()
    await expect(page.locator("#editor-saved")).to_have_text("Saved Westbrook Facility.")
    saved = await facility(server)
    assert saved["calling_hours"] == [
        {"days": "mon-fri", "start": "08:00", "end": "20:00"},
        {"days": "sat,sun", "start": "10:00", "end": "16:00"},
    ]
    assert saved["retention_days"] == 90
    await expect(row.locator(".hours")).to_contain_text("sat,sun 10:00\N{EN DASH}16:00")
