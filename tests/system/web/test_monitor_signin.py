"""Staff sign-in on the staff pages (issue 26): a monitor enrols two-step sign-in on /monitor (the
QR code and the key, confirmed with a code), signs out (the token is revoked), and signs in
again with the password and a TOTP code; an account locks after 5 failures."""

from __future__ import annotations

import re
import time

import pyotp
from playwright.async_api import Page, expect

from tests.system.web.conftest import DESKTOP, Pages, WebNode, api_as, screenshot

PASSWORD = "lantern-orchard-9-quietly"


async def set_password(server: WebNode, staff: str, role: str) -> None:
    async with api_as(server, "admin", "AW") as http:
        body = {"role": role, "facility_ids": ["WEB"], "password": PASSWORD}
        async with http.put(f"/api/v1/admin/staff/{staff}", json=body) as answer:
            assert answer.status == 200, await answer.text()


async def password_step(page: Page, staff: str, password: str) -> None:
    await page.locator("#staff-id").fill(staff)
    await page.locator("#password").fill(password)
    await page.locator("#staff-login button[type=submit]").click()


async def test_a_monitor_enrols_a_second_factor_and_signs_in_with_it(
    pages: Pages, server: WebNode
) -> None:
    await set_password(server, "MW", "monitor")
    page = await pages.open("/monitor", "monitor", "MW", DESKTOP)
    await expect(page.locator("#console")).to_be_visible()

    # Enrol on the page: the QR code (an SVG data: URI) and the key, then a code confirms it.
    await page.click("#twostep-open")
    await page.click("#twostep-start")
    qr = page.locator("#twostep-qr")
    await expect(qr).to_have_attribute("src", re.compile(r"^data:image/svg\+xml"))
    await page.wait_for_function("document.querySelector('#twostep-qr').naturalWidth > 0")
    uri = await page.locator("#twostep-secret").get_attribute("data-uri")
    assert uri
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP)
    shown = (await page.locator("#twostep-secret").inner_text()).replace(" ", "")
    assert shown == totp.secret
    await screenshot(page, "staff-two-step-enrol")
    await page.locator("#twostep-code").fill("000000" if totp.now() != "000000" else "111111")
    await page.locator("#twostep-confirm button").click()
    await expect(page.locator("#twostep-error")).to_contain_text("not right")
    await page.locator("#twostep-code").fill(totp.now())
    await page.locator("#twostep-confirm button").click()
    await expect(page.locator("#twostep-done")).to_contain_text("Two-step sign-in is on")
    await page.click("#twostep-close")

    # Sign out: the token is revoked on the server, and the page asks for a sign-in.
    token = await page.evaluate("sessionStorage.getItem('visitation.monitor.token')")
    await page.click("#signout")
    await expect(page.locator("#staff-login")).to_be_visible()
    async with api_as(server, "monitor", "MW") as http:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post("/api/v1/account/staff/otp", headers=headers) as answer:
            assert answer.status == 401

    # The password alone is not enough now: the code field appears.
    await password_step(page, "MW", PASSWORD)
    code = page.locator("#otp")
    await expect(code).to_be_visible()
    await expect(code).to_have_attribute("autocomplete", "one-time-code")
    await expect(code).to_have_attribute("inputmode", "numeric")
    await expect(page.locator("#console")).to_be_hidden()
    await screenshot(page, "staff-signin-code")
    await code.fill("12345")
    await page.locator("#staff-login button[type=submit]").click()
    await expect(page.locator("#signin .error")).to_have_text("Enter the 6 digits of the code.")
    # The confirming code is spent: sign in with the next one (the server allows one step of drift).
    await code.fill(totp.at(time.time() + 30))
    await page.locator("#staff-login button[type=submit]").click()
    await expect(page.locator("#console")).to_be_visible()
    await expect(page.locator("#who")).to_have_text("MW")
    await screenshot(page, "staff-signed-in-monitor")


async def test_wrong_passwords_lock_the_account(pages: Pages, server: WebNode) -> None:
    await set_password(server, "IW", "investigator")
    page = await pages.blank("/investigator")
    error = page.locator("#signin .error")
    for _ in range(5):
        await password_step(page, "IW", "not-the-password-at-all")
        await expect(error).to_have_text(
            "That staff id and password do not match. Check them and try again."
        )
        await page.evaluate("document.querySelector('#signin .error').textContent = ''")
    await password_step(page, "IW", PASSWORD)  # even the right one, now
    await expect(error).to_have_text("Too many tries. Try again in 15 minutes.")
    await screenshot(page, "staff-signin-locked")


async def test_an_admin_signs_in_with_a_password(pages: Pages, server: WebNode) -> None:
    await set_password(server, "AW", "admin")
    page = await pages.blank("/monitor")
    await password_step(page, "AW", PASSWORD)  # the wrong page: it says which is right
    error = page.locator("#signin .error")
    await expect(error).to_have_text(
        "This account is an administrator's: sign in on facility administration."
    )
    await error.get_by_role("link", name="facility administration").click()
    await expect(page).to_have_url(re.compile(r"/admin$"))
    await password_step(page, "AW", PASSWORD)
    await expect(page.locator("#console")).to_be_visible()
    await expect(page.locator('#facilities tr[data-facility="WEB"]')).to_be_visible()
