"""The ring on an open family page (issue 32 §3), while a tablet (the Python client) calls: the
ringtone plays (the <audio> element is not paused and its time advances), the phone vibrates, the
title flashes and a screen reader hears it; all of it stops on accept, reject or cancel. Before
any tap the browser may refuse sound: the page says "Tap anywhere to hear the ring"."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from playwright.async_api import Page, expect

from client.session import AckError, ProtocolClient
from tests.system.web.conftest import Pages, WebNode, screenshot
from tests.system.web.test_family_accounts import open_page
from tests.waiting import eventually

TITLE = "Visits — family"
RINGING_TITLE = "📞 Incoming call…"

# navigator.vibrate, recorded (headless Chromium has no motor to ask).
RECORD_VIBRATIONS = """
window.__vibrations = [];
navigator.vibrate = (pattern) => { window.__vibrations.push(pattern); return true; };
"""


async def family_page(pages: Pages, family: str = "F1", *, untouched: bool = False) -> Page:
    """The family's page, signed in, with vibrations recorded. ``untouched``: nothing of the
    test has run in the page yet (every Playwright evaluation or expectation counts as a user
    gesture, which lifts the autoplay rule)."""
    page = await pages.open("/family", "family", family)
    await expect(page.locator("#balance")).to_have_text("$10.00")
    await page.context.add_init_script(RECORD_VIBRATIONS)
    await page.reload()  # a new document (no gesture yet); a link's token stays for the tab
    if not untouched:
        await expect(page.locator("#balance")).to_have_text("$10.00")
    return page


async def place_when_reachable(tablet: ProtocolClient, family: str, within_s: float = 15) -> str:
    """``call.place``, again while the family's page is still connecting (``unavailable``)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return await tablet.place(family)
        except AckError as exc:
            if exc.code != "unavailable" or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


async def ring_sounds(page: Page, seconds: float = 1.0) -> None:
    """Wait until the ringtone has played ``seconds`` more (it loops: a wrap counts on)."""
    await page.wait_for_function(
        """(seconds) => {
            const audio = document.querySelector("#ring-audio");
            if (audio.paused || audio.muted || audio.readyState < 2) return false;
            const seen = (window.__ring ??= { last: audio.currentTime, played: 0 });
            let step = audio.currentTime - seen.last;
            if (step < 0) step += audio.duration; // looped
            seen.last = audio.currentTime;
            seen.played += step;
            if (seen.played >= seconds) { delete window.__ring; return true; }
            return false;
        }""",
        arg=seconds,
        polling=100,
    )


async def ring_silent(page: Page) -> None:
    await page.wait_for_function(
        "(title) => document.querySelector('#ring-audio').paused && document.title === title",
        arg=TITLE,
    )
    await expect(page.locator("#ring-announce")).to_have_text("")
    if await page.evaluate("() => Array.isArray(window.__vibrations)"):  # recorded here
        assert await page.evaluate("window.__vibrations.at(-1)") == 0  # vibration cancelled


async def title_flashes(page: Page) -> None:
    for title in (RINGING_TITLE, TITLE, RINGING_TITLE):
        await page.wait_for_function("(title) => document.title === title", arg=title, polling=100)


async def test_the_ring_plays_until_answered(pages: Pages, server: WebNode) -> None:
    family = await family_page(pages)
    await family.click("#balance")  # any first tap arms the sound
    await family.wait_for_function("() => document.querySelector('#ring-audio').paused")
    async with ProtocolClient(server.url, server.tokens.issue("tablet", "R1"), "R1") as tablet:
        call_id = await tablet.place("F1")
        await expect(family.locator("#incoming")).to_be_visible()
        await ring_sounds(family)
        announce = family.locator("#ring-announce")
        assert await announce.get_attribute("aria-live") == "assertive"
        await expect(announce).to_have_text("Incoming call from James Doe at San Quentin")
        await title_flashes(family)
        assert [700, 300, 700] in await family.evaluate("window.__vibrations")
        await expect(family.locator("#ring-hint")).to_be_hidden()
        await ring_sounds(family, 3.5)  # past the end of ring.wav: it loops on
        await screenshot(family, "family-ringing")

        await family.click("#accept")
        await ring_silent(family)
        await tablet.next("call.accepted")
        await expect(family.locator("#incall")).to_be_visible()
        await tablet.hangup(call_id)
        await expect(family.locator("#ended")).to_be_visible()
        await family.click("#ended [data-go=home]")
        await expect(family.locator("#balance")).to_be_visible()
        assert await family.title() == TITLE


async def test_before_any_tap_the_page_asks_for_one_and_a_cancel_stops_the_ring(
    pages: Pages, server: WebNode
) -> None:
    family = await family_page(pages, untouched=True)
    async with ProtocolClient(server.url, server.tokens.issue("tablet", "R1"), "R1") as tablet:
        call_id = await place_when_reachable(tablet, "F1")
        # The browser's autoplay rule: no sound before the person taps; the page says so.
        hint = family.locator("#ring-hint")
        await expect(hint).to_be_visible()
        await expect(hint).to_have_text("Tap anywhere to hear the ring")
        assert await family.evaluate("() => document.querySelector('#ring-audio').paused")
        await expect(family.locator("#incoming")).to_be_visible()
        await title_flashes(family)  # the rest of the ring goes on without sound
        await expect(family.locator("#ring-announce")).to_have_text(
            "Incoming call from James Doe at San Quentin"
        )
        await screenshot(family, "family-ringing-tap-to-hear")
        await family.click("#in-caller")  # anywhere
        await expect(hint).to_be_hidden()
        await ring_sounds(family)

        await tablet.call("call.cancel", {"call_id": call_id})
        await expect(family.locator("#home-notice")).to_have_text("Missed call from James Doe.")
        await ring_silent(family)


async def test_reject_stops_the_ring(pages: Pages, server: WebNode) -> None:
    family = await family_page(pages)
    await family.click("#balance")
    async with ProtocolClient(server.url, server.tokens.issue("tablet", "R1"), "R1") as tablet:
        await tablet.place("F1")
        await ring_sounds(family)
        await family.click("#reject")
        await ring_silent(family)
        await expect(family.locator("#home")).to_be_visible()
        await tablet.next("call.unanswered", timeout=30)  # at the ring timeout, as if unanswered


async def test_a_notification_answers_the_ringing_call(pages: Pages, server: WebNode) -> None:
    """push.js's onNotificationCall(call_id, "accept") on an open page: answered at once."""
    family = await family_page(pages)
    async with ProtocolClient(server.url, server.tokens.issue("tablet", "R1"), "R1") as tablet:
        call_id = await tablet.place("F1")
        await expect(family.locator("#incoming")).to_be_visible()
        await family.evaluate(
            """(callId) => import("/static/js/family-call.js")
                .then(({ answerWhenRinging }) => answerWhenRinging(callId, "accept"))""",
            call_id,
        )
        await tablet.next("call.accepted")
        await expect(family.locator("#incall")).to_be_visible()
        await ring_silent(family)
        await tablet.hangup(call_id)
        await expect(family.locator("#ended")).to_be_visible()


async def test_a_notification_opens_the_page_which_answers(pages: Pages, server: WebNode) -> None:
    """The service worker opens /family?call=<id>&answer=1 (Accept pressed on the
    notification): once connected, the page gets the ringing call again and accepts it."""
    tokens = server.tokens
    async with (
        ProtocolClient(server.url, tokens.issue("family", "F1"), "F1") as phone,
        ProtocolClient(server.url, tokens.issue("tablet", "R1"), "R1") as tablet,
    ):
        call_id = await tablet.place("F1")
        await phone.next("call.incoming")  # rings on the family's other device meanwhile
        page = await open_page(
            pages, f"/family?call={call_id}&answer=1&token={tokens.issue('family', 'F1')}"
        )
        await tablet.next("call.accepted")
        await expect(page.locator("#incall")).to_be_visible()
        assert "call=" not in page.url and "answer=" not in page.url
        assert await page.evaluate("() => document.querySelector('#ring-audio').paused")
        await screenshot(page, "family-answered-from-notification")
        await tablet.hangup(call_id)
        await expect(page.locator("#ended")).to_be_visible()


async def test_a_tap_on_the_notification_shows_the_ringing_call(
    pages: Pages, server: WebNode
) -> None:
    tokens = server.tokens
    async with (
        ProtocolClient(server.url, tokens.issue("family", "F1"), "F1") as phone,
        ProtocolClient(server.url, tokens.issue("tablet", "R1"), "R1") as tablet,
    ):
        call_id = await tablet.place("F1")
        await phone.next("call.incoming")
        page = await open_page(
            pages, f"/family?call={call_id}&token={tokens.issue('family', 'F1')}"
        )
        await expect(page.locator("#incoming")).to_be_visible()
        await expect(page.locator("#in-caller")).to_have_text("James Doe")
        await page.click("#in-caller")  # a new window: sound after the first tap
        await ring_sounds(page)
        await page.click("#accept")
        await tablet.next("call.accepted")
        await ring_silent(page)
        await tablet.hangup(call_id)


async def test_back_online_the_page_syncs_and_rings(pages: Pages, server: WebNode) -> None:
    """Issue 32 §1: after a disconnect the page reconnects by itself, loads the balance again,
    and a call that started ringing meanwhile rings here (the server sends it again)."""
    family = await family_page(pages)
    await family.click("#balance")
    tokens = server.tokens
    headers = {"Authorization": f"Bearer {tokens.issue('family', 'F1')}"}
    async with aiohttp.ClientSession(server.url, headers=headers) as http:
        async with http.post("/api/v1/account/deposits", json={"amount_cents": 2000}) as response:
            assert response.status == 200
    await expect(family.locator("#balance")).to_have_text("$10.00")  # not pushed to the page
    async with (
        ProtocolClient(server.url, tokens.issue("family", "F1"), "F1") as phone,
        ProtocolClient(server.url, tokens.issue("tablet", "R1"), "R1") as tablet,
    ):
        sessions = server.node.sockets.sessions
        [page_sid] = [
            sid for sid, s in sessions.items() if s.role == "family" and sid != phone.sio.get_sid()
        ]
        await server.node.sio.disconnect(page_sid)  # as a node going away does
        await eventually(lambda: page_sid not in sessions, "the page's socket closed")
        call_id = await tablet.place("F1")  # rings on the phone; the page is offline
        await expect(family.locator("#incoming")).to_be_visible(timeout=30_000)
        await expect(family.locator("#who")).to_have_text("Family F1")
        await ring_sounds(family)
        await family.click("#reject")
        await expect(family.locator("#balance")).to_have_text("$30.00")
        assert call_id
