"""The family page's way in, on a 390x844 phone: sign up, confirm the e-mail from the link a real
SMTP server on loopback received, sign in, upload the ID photos, sign out; a forgotten password's
reset link; a session that ends while the page is open; an operator's pasted token."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from PIL import Image, ImageDraw
from playwright.async_api import ConsoleMessage, Page, expect

import tests.conftest
from core.embedded_redis import _free_port
from core.tokens import Tokens
from tests.conftest import SECRET, NodeFactory
from tests.system.web.conftest import EXPECTED_HTTP_ERROR, PHONE, Pages, WebNode, screenshot
from tests.waiting import eventually

TOKEN_KEY = "visitation.family.token"
PASSWORD = "a long walk by the bay 42"
NEW_PASSWORD = "tides turn at noon, 7 gulls"


@dataclass
class Mailbox:
    """What the loopback SMTP server received, as parsed messages."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]

    async def link(self, address: str, param: str, *, count: int = 1) -> str:
        """The `?<param>=` link of the `count`-th mail to `address` (its plain-text part)."""
        await eventually(lambda: len(self.to(address)) >= count, f"mail #{count} to {address}")
        body = self.to(address)[count - 1].get_body(preferencelist=("plain",))
        assert body is not None
        text = body.get_content()
        found = re.search(rf"https?://\S+/family\?{param}=[\w\-.~%]+", text)
        assert found, text
        return found.group(0)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=_free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
async def server(
    start_node: NodeFactory, seeded: object, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> WebNode:
    """The web tests' node, sending mail to ``mailbox`` with links to its own address."""
    port = _free_port()
    monkeypatch.setattr(tests.conftest, "_free_port", lambda: port)  # the node's port, known now
    monkeypatch.setenv("VISITATION_SMTP_URL", f"smtp://127.0.0.1:{mailbox.port}")
    monkeypatch.setenv("VISITATION_MAIL_FROM", "visits@facility.test")
    monkeypatch.setenv("VISITATION_PUBLIC_URL", f"http://127.0.0.1:{port}")
    handle = await start_node(ring_timeout_s=20, payment_processor="fake")
    assert handle.url == f"http://127.0.0.1:{port}"
    return WebNode(handle.node, handle.url, Tokens(SECRET))


async def open_page(pages: Pages, path: str = "/family") -> Page:
    """A phone page without a token (the Pages fixture's ``open`` signs in with one)."""
    context = await pages.browser.new_context(
        viewport=PHONE, base_url=pages.server.url, permissions=["camera", "microphone"]
    )
    pages.contexts.append(context)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    page.on("pageerror", lambda exc: pages.errors.append(f"{path}: {exc}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith(EXPECTED_HTTP_ERROR):
            pages.errors.append(f"{path}: console: {message.text}")

    page.on("console", console)
    await page.goto(path)
    return page


def photo(path: Path, colour: str, text: str) -> Path:
    """A real PNG (Pillow), like a phone's photo of a card."""
    image = Image.new("RGB", (640, 400), colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle((30, 30, 610, 370), outline="white", width=6)
    draw.text((60, 60), text, fill="white")
    image.save(path, format="PNG")
    return path


async def http(server: WebNode, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession(server.url) as session,
        session.request(method, path, headers=headers, **kw) as response,
    ):
        return response.status, await response.json()


async def kept_token(page: Page) -> str:
    raw = await page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})")
    assert raw, "no session kept in localStorage"
    token: str = await page.evaluate(f"JSON.parse(localStorage.getItem({TOKEN_KEY!r})).token")
    return token


async def sign_in(page: Page, address: str, password: str) -> None:
    await page.fill("#signin-email", address)
    await page.fill("#signin-password", password)
    await page.click("#signin-form button[type=submit]")


async def test_sign_up_confirm_sign_in_verify_identity_sign_out(
    pages: Pages, server: WebNode, mailbox: Mailbox, tmp_path: Path
) -> None:
    address = "maria.lopez@example.test"
    page = await open_page(pages)
    await expect(page.locator("#signin")).to_be_visible()
    await screenshot(page, "family-signin-email")

    # Create an account: the rules are next to the field; the server's 422 names the one broken.
    await page.click("#signin [data-auth=signup]")
    await expect(page.locator("#signup-rules")).to_contain_text("At least 10 characters")
    await expect(page.locator("#signup-rules")).to_contain_text("Not a common password")
    await page.fill("#signup-name", "Maria Lopez")
    await page.fill("#signup-email", address)
    await page.fill("#signup-phone", "+1 415 555 0100")
    error = page.locator("#signup-error")
    await page.fill("#signup-password", "short")
    await page.click("#signup-form button[type=submit]")
    await expect(error).to_have_text("The password needs at least 10 characters.")
    await page.fill("#signup-password", "1234567890")
    await page.click("#signup-form button[type=submit]")
    await expect(error).to_contain_text("common password")  # the server's own words
    await screenshot(page, "family-signup-refused")
    assert not mailbox.to(address)  # nothing was made
    await page.fill("#signup-password", PASSWORD)
    await page.click("#signup-form button[type=submit]")
    await expect(page.locator("#signup-sent")).to_be_visible()
    await expect(page.locator("#signup-sent-to")).to_have_text(address)
    await screenshot(page, "family-signup-sent")

    # The confirmation link, as mailed (to the node's public URL), opens the page confirming.
    link = await mailbox.link(address, "confirm")
    assert link.startswith(f"{server.url}/family?confirm=")
    await page.goto(link)
    await expect(page.locator("#signin-notice")).to_have_text("E-mail confirmed — sign in.")
    assert "confirm=" not in page.url  # a one-time code never stays in the address bar
    await screenshot(page, "family-email-confirmed")
    await page.goto(link)  # used
    await expect(page.locator("#confirm-status")).to_contain_text(
        "This link has expired or was used."
    )
    await page.click("#confirm [data-auth=signin]")

    # Sign in: a wrong password is refused plainly; the right one opens the account.
    await sign_in(page, address, "not the password at all")
    await expect(page.locator("#signin .error")).to_have_text("Wrong e-mail or password.")
    await sign_in(page, address, PASSWORD)
    await expect(page.locator("#home")).to_be_visible()
    await expect(page.locator("#who")).to_have_text("Maria Lopez")
    await expect(page.locator("#balance")).to_have_text("$0.00")
    token = await kept_token(page)

    # Not verified yet: the identity card, with the phone's cameras.
    card = page.locator("#identity-card")
    await expect(card).to_be_visible()
    for name, camera in [
        ("id_front", "environment"),
        ("id_back", "environment"),
        ("selfie", "user"),
    ]:
        field = card.locator(f"input[name={name}]")
        assert await field.get_attribute("accept") == "image/*"
        assert await field.get_attribute("capture") == camera
    await screenshot(page, "family-identity-card", full_page=True)
    await card.locator("button[type=submit]").click()
    await expect(page.locator("#identity-error")).to_contain_text("Add a photo of each")
    shots = {
        "id_front": photo(tmp_path / "front.png", "#1f5fbf", "CALIFORNIA ID  MARIA LOPEZ"),
        "id_back": photo(tmp_path / "back.png", "#2d6a4f", "BARCODE 0011223344"),
        "selfie": photo(tmp_path / "me.png", "#8d5a97", "ME"),
    }
    for name, path in shots.items():
        await card.locator(f"input[name={name}]").set_input_files(path)
        preview = card.locator(f"label:has(input[name={name}]) img")
        await expect(preview).to_be_visible()
        assert (await preview.get_attribute("src") or "").startswith("data:image/png;base64,")
    await screenshot(page, "family-identity-previews", full_page=True)
    await card.locator("button[type=submit]").click()
    status = page.locator("#identity-status")
    await expect(status).to_have_text("Submitted — the facility will review it.")
    await expect(card).to_be_hidden()
    await screenshot(page, "family-identity-submitted")
    assert await http(server, "GET", "/api/v1/account/identity", token) == (
        200,
        {"identity": "pending", "submitted_at": pytest.approx(0, abs=1e10)},
    )

    # Kept signed in on this phone (a notification's new window finds the session).
    await page.reload()
    await expect(page.locator("#who")).to_have_text("Maria Lopez")
    await expect(status).to_have_text("Submitted — the facility will review it.")

    # The facility turns the photos down, with a reason: the page asks for new ones.
    _, account = await http(server, "GET", "/api/v1/account", token)
    review = f"/api/v1/admin/identity/{account['family_id']}"
    admin = server.tokens.issue("admin", "A1")
    reason = "the back of the ID is blurred"
    decided, _ = await http(
        server, "PUT", review, admin, json={"status": "rejected", "reason": reason}
    )
    assert decided == 200
    await page.reload()
    await expect(card).to_be_visible()
    await expect(page.locator("#identity-intro")).to_have_text(
        f"The facility could not verify your ID ({reason}). Please take the photos again."
    )
    for name, path in shots.items():
        await card.locator(f"input[name={name}]").set_input_files(path)
    await card.locator("button[type=submit]").click()
    await expect(status).to_have_text("Submitted — the facility will review it.")
    decided, _ = await http(server, "PUT", review, admin, json={"status": "verified"})
    assert decided == 200
    await page.reload()
    await expect(page.locator("#who")).to_have_text("Maria Lopez")
    await expect(page.locator("#balance")).to_have_text("$0.00")
    await expect(card).to_be_hidden()  # verified: nothing more to do
    await expect(status).to_be_hidden()

    # Sign out: the token is revoked and forgotten.
    await page.click("#signout")
    await expect(page.locator("#signin")).to_be_visible()
    assert await page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})") is None
    refused, _ = await http(server, "GET", "/api/v1/account", token)
    assert refused == 401
    await page.reload()
    await expect(page.locator("#signin")).to_be_visible()  # and stays signed out


async def test_forgotten_password_reset_link(
    pages: Pages, server: WebNode, mailbox: Mailbox
) -> None:
    address = "sam.ortiz@example.test"
    created, _ = await http(
        server,
        "POST",
        "/api/v1/signup",
        json={"email": address, "password": PASSWORD, "name": "Sam Ortiz"},
    )
    assert created == 201
    await mailbox.link(address, "confirm")  # (not followed: a reset proves the address too)
    ok, session = await http(
        server, "POST", "/api/v1/login", json={"email": address, "password": PASSWORD}
    )
    assert ok == 200
    older = session["token"]

    page = await open_page(pages)
    await page.fill("#signin-email", address)
    await page.click("#signin [data-auth=forgot]")
    await expect(page.locator("#forgot-email")).to_have_value(address)  # carried over
    await page.click("#forgot-form button[type=submit]")
    notice = page.locator("#forgot-notice")
    await expect(notice).to_have_text(
        f"If an account exists for {address}, we sent a link to choose a new password."
        " It works for one hour."
    )
    await screenshot(page, "family-forgot-sent")
    # An address with no account reads the same (nobody learns who has one).
    await page.fill("#forgot-email", "nobody@example.test")
    await page.click("#forgot-form button[type=submit]")
    await expect(notice).to_contain_text("If an account exists for nobody@example.test")

    link = await mailbox.link(address, "reset", count=2)
    assert link.startswith(f"{server.url}/family?reset=")
    await page.goto(link)
    await expect(page.locator("#reset")).to_be_visible()
    assert "reset=" not in page.url
    await expect(page.locator("#reset-rules")).to_contain_text("Not your e-mail address")
    error = page.locator("#reset-error")
    await page.fill("#reset-password", "qwertyuiop")
    await page.click("#reset-form button[type=submit]")
    await expect(error).to_contain_text("common password")  # the code is not spent on it
    await screenshot(page, "family-reset-refused")
    await page.fill("#reset-password", NEW_PASSWORD)
    await page.click("#reset-form button[type=submit]")
    await expect(page.locator("#signin-notice")).to_have_text(
        "Password changed — sign in with your new password."
    )
    await screenshot(page, "family-reset-done")
    revoked, _ = await http(server, "GET", "/api/v1/account", older)
    assert revoked == 401  # every older token of the family

    await sign_in(page, address, PASSWORD)
    await expect(page.locator("#signin .error")).to_have_text("Wrong e-mail or password.")
    await sign_in(page, address, NEW_PASSWORD)
    await expect(page.locator("#who")).to_have_text("Sam Ortiz")

    # The link again: used.
    await page.click("#signout")
    await expect(page.locator("#signin")).to_be_visible()
    await page.goto(link)
    await page.fill("#reset-password", "another fine password 9")
    await page.click("#reset-form button[type=submit]")
    await expect(error).to_have_text("This link has expired or was used. Ask for a new one.")


async def test_an_ended_session_goes_to_sign_in(
    pages: Pages, server: WebNode, mailbox: Mailbox
) -> None:
    address = "lee.chan@example.test"
    created, _ = await http(
        server,
        "POST",
        "/api/v1/signup",
        json={"email": address, "password": PASSWORD, "name": "Lee Chan"},
    )
    assert created == 201
    page = await open_page(pages)
    await sign_in(page, address, PASSWORD)
    await expect(page.locator("#who")).to_have_text("Lee Chan")
    token = await kept_token(page)
    # Signed out elsewhere (the same token): the open page hears session.expired.
    ok, _ = await http(server, "POST", "/api/v1/logout", token)
    assert ok == 200
    await expect(page.locator("#signin .error")).to_have_text(
        "Your session has ended. Please sign in again."
    )
    assert await page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})") is None
    await screenshot(page, "family-session-ended")

    # A session kept on the phone that expired meanwhile: dropped unused, and said so.
    await page.evaluate(
        "([key, token]) => localStorage.setItem(key, JSON.stringify({ token, expires_at: 1 }))",
        [TOKEN_KEY, token],
    )
    await page.reload()
    await expect(page.locator("#signin .error")).to_have_text(
        "Your session has ended. Please sign in again."
    )
    assert await page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})") is None


async def test_an_operator_pastes_a_token(pages: Pages, server: WebNode) -> None:
    page = await open_page(pages)
    await page.click("#signin [data-auth=token-signin]")
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#token-error")).to_have_text("Paste the token you were given.")
    await page.fill("#token", server.tokens.issue("family", "F1"))
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#balance")).to_have_text("$10.00")
    # A pasted token is this tab's only.
    assert await page.evaluate(f"localStorage.getItem({TOKEN_KEY!r})") is None
    assert await page.evaluate(f"sessionStorage.getItem({TOKEN_KEY!r})")


async def test_too_many_wrong_passwords(pages: Pages, server: WebNode) -> None:
    address = "kim.park@example.test"
    body = {"email": address, "password": PASSWORD, "name": "Kim Park"}
    assert (await http(server, "POST", "/api/v1/signup", json=body))[0] == 201
    page = await open_page(pages)
    error = page.locator("#signin .error")
    for attempt in range(6):
        await sign_in(page, address, f"wrong guess number {attempt}")
        await expect(error).to_have_text(re.compile(r"^(Wrong e-mail or password\.|Too many)"))
        if (await error.text_content() or "").startswith("Too many"):
            break
    await expect(error).to_have_text(re.compile(r"^Too many tries\. Try again in \d+ minutes?\.$"))
    await screenshot(page, "family-signin-locked")
    await sign_in(page, address, PASSWORD)  # locked, even with the right password
    await expect(error).to_contain_text("Too many tries")
