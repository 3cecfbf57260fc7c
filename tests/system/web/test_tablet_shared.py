"""A shared facility tablet (issue 26): enrolled with a device token, it signs a resident in with
their id and a PIN on a large keypad, forgets them on "Sign out" or when idle, keeps their token
fresh while in use, and locks a resident out after 5 wrong PINs."""

from __future__ import annotations

from playwright.async_api import Page, ViewportSize, expect

from client.session import ProtocolClient
from tests.system.web.conftest import Pages, WebNode, api_as, screenshot

SHARED_TABLET = ViewportSize(width=1280, height=800)
PIN = "2468"


async def set_pin(server: WebNode, resident: str, pin: str) -> None:
    async with api_as(server, "admin", "AW") as http:
        async with http.put(f"/api/v1/admin/residents/{resident}/pin", json={"pin": pin}) as answer:
            assert answer.status == 200, await answer.text()


async def type_pin(page: Page, resident: str, pin: str) -> None:
    """The resident id in its box, the PIN on the on-screen keypad, then "Sign in"."""
    await page.locator("#resident-id").fill(resident)
    await page.locator("#resident-pin").click()
    for digit in pin:
        await page.locator(f'.keypad button[data-key="{digit}"]').click()
    await page.locator("#pad-signin").click()


async def forgotten(page: Page, *names: str) -> None:
    """Back on the keypad with nothing of the resident left on the page or in its storage."""
    await expect(page.locator("#keypad")).to_be_visible()
    await expect(page.locator("#contacts li")).to_have_count(0)
    await expect(page.locator("#resident-signout")).to_be_hidden()
    text = await page.evaluate("document.body.innerText + document.body.innerHTML")
    for name in names:
        assert name not in text, name
    stored = await page.evaluate(
        "[...Object.keys(localStorage), ...Object.keys(sessionStorage)]"
        ".filter((k) => !k.endsWith('.device'))"
    )
    assert stored == [], stored
    assert await page.evaluate("!!localStorage.getItem('visitation.tablet.device')")  # enrolled


async def test_a_resident_signs_in_with_a_pin_calls_and_signs_out(
    pages: Pages, server: WebNode
) -> None:
    await set_pin(server, "RV", PIN)
    tablet = await pages.open("/tablet", "device", "WEB", SHARED_TABLET)
    await expect(tablet.locator("#keypad")).to_be_visible()
    assert "token=" not in tablet.url  # the device token left the address bar
    keys = tablet.locator(".keypad button")
    labels = await keys.all_inner_texts()
    assert [k for k in labels if k.isdigit()] == list("1234567890"), labels
    for key in await keys.all():  # large enough to tap
        box = await key.bounding_box()
        assert box and box["width"] >= 64 and box["height"] >= 64, box
    await expect(tablet.locator("#resident-pin")).to_have_attribute("type", "password")  # masked
    await tablet.locator("#resident-id").fill("RV")
    await tablet.locator("#resident-pin").click()
    for digit in PIN[:3]:
        await tablet.locator(f'.keypad button[data-key="{digit}"]').click()
    await expect(tablet.locator("#resident-pin")).to_have_value(PIN[:3])
    await screenshot(tablet, "tablet-shared-keypad")
    await tablet.locator('.keypad button[data-key="back"]').click()
    await expect(tablet.locator("#resident-pin")).to_have_value(PIN[:2])
    await tablet.locator('.keypad button[data-key="clear"]').click()
    await expect(tablet.locator("#resident-pin")).to_have_value("")
    for digit in PIN:
        await tablet.locator(f'.keypad button[data-key="{digit}"]').click()
    await tablet.locator("#pad-signin").click()

    await expect(tablet.locator("#who")).to_have_text("Victor Vale")
    contact = tablet.locator('#contacts li[data-contact="FV"]')
    await expect(contact).to_contain_text("Vera Vale")
    await screenshot(tablet, "tablet-shared-signed-in")
    async with ProtocolClient(server.url, server.tokens.issue("family", "FV"), "FV") as family:
        await contact.locator("button").click()
        incoming = await family.next("call.incoming")
        assert incoming["resident"]["id"] == "RV"
        await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
        await tablet.click("#cancel")
        await family.next("call.canceled")
    await expect(contact).to_contain_text("Last call")

    await tablet.click("#resident-signout")
    await forgotten(tablet, "Victor Vale", "Vera Vale")
    await screenshot(tablet, "tablet-shared-signed-out")
    # The tablet stays enrolled: a reload (no token in the address) shows the keypad again.
    await tablet.reload()
    await expect(tablet.locator("#keypad")).to_be_visible()


async def test_five_wrong_pins_lock_the_resident_out(pages: Pages, server: WebNode) -> None:
    await set_pin(server, "RY", PIN)
    tablet = await pages.open("/tablet", "device", "WEB", SHARED_TABLET)
    error = tablet.locator("#pad-error")
    for _ in range(5):
        await type_pin(tablet, "RY", "1111")
        await expect(error).to_have_text("That resident id and PIN do not match. Try again.")
        await expect(tablet.locator("#resident-pin")).to_have_value("")
        await tablet.locator("#resident-id").fill("")
    await type_pin(tablet, "RY", PIN)  # even the right PIN, now
    await expect(error).to_have_text("Too many tries. Try again in 15 minutes.")
    await expect(tablet.locator("#keypad")).to_be_visible()
    await screenshot(tablet, "tablet-shared-locked")


async def test_an_idle_resident_is_signed_out_and_forgotten(pages: Pages, server: WebNode) -> None:
    await set_pin(server, "RV", PIN)
    tablet = await pages.open("/tablet", "device", "WEB", SHARED_TABLET, query="idle=4")
    await type_pin(tablet, "RV", PIN)
    await expect(tablet.locator('#contacts li[data-contact="FV"]')).to_contain_text("Vera Vale")
    # No touch: first "Still there?", then back to the keypad, saying why.
    await expect(tablet.locator("#idle-warning")).to_be_visible(timeout=15_000)
    await screenshot(tablet, "tablet-shared-still-there")
    await expect(tablet.locator("#pad-notice")).to_contain_text(
        "not used for a while", timeout=15_000
    )
    await forgotten(tablet, "Victor Vale", "Vera Vale")
    await expect(tablet.locator("#idle-warning")).to_be_hidden()
    await screenshot(tablet, "tablet-shared-idle")


async def test_the_token_is_renewed_while_in_use(pages: Pages, server: WebNode) -> None:
    await set_pin(server, "RV", PIN)
    tablet = await pages.open("/tablet", "device", "WEB", SHARED_TABLET, query="renew=2")
    async with tablet.expect_response("**/api/v1/tablet/renew", timeout=15_000) as renewed:
        await type_pin(tablet, "RV", PIN)
        await expect(tablet.locator("#who")).to_have_text("Victor Vale")
    assert (await renewed.value).status == 200
    # The page moved to the new token's connection; calls still go out, each on a fresh token
    # (a socket keeps the token it connected with).
    contact = tablet.locator('#contacts li[data-contact="FV"]')
    await expect(contact).to_be_visible()
    async with ProtocolClient(server.url, server.tokens.issue("family", "FV"), "FV") as family:
        async with tablet.expect_response("**/api/v1/tablet/renew") as before_call:
            await contact.locator("button").click()
        assert (await before_call.value).status == 200
        await family.next("call.incoming")
        await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
        await tablet.click("#cancel")
        await family.next("call.canceled")


async def test_a_plain_tablet_token_still_works_on_an_enrolled_tablet(
    pages: Pages, server: WebNode
) -> None:
    tablet = await pages.open("/tablet", "device", "WEB", SHARED_TABLET)
    await expect(tablet.locator("#keypad")).to_be_visible()
    # An operator's (or the demo's) link for one resident opens that resident's tablet.
    await tablet.goto(f"/tablet?token={server.tokens.issue('tablet', 'RW')}")
    await expect(tablet.locator("#who")).to_have_text("Rita West")
    await expect(tablet.locator("#signout")).to_be_visible()


async def test_a_revoked_session_goes_back_to_the_keypad(pages: Pages, server: WebNode) -> None:
    await set_pin(server, "RV", PIN)
    tablet = await pages.open("/tablet", "device", "WEB", SHARED_TABLET)
    await type_pin(tablet, "RV", PIN)
    await expect(tablet.locator('#contacts li[data-contact="FV"]')).to_be_visible()
    await server.node.revocations.revoke("tablet", "RV")  # `visitation revoke tablet RV`
    await expect(tablet.locator("#pad-notice")).to_have_text(
        "Your session has ended. Sign in again.", timeout=15_000
    )
    await forgotten(tablet, "Victor Vale", "Vera Vale")
