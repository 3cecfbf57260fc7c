"""Browser tests: a signaling node serving the pages, a real SFU worker and Debian's Chromium.

Chromium gets fake camera/microphone devices, so two pages can call each other. The SFU (aiortc)
cannot resolve Chrome's mDNS (``.local``) host candidates, so that obfuscation is turned off.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)
from redis.asyncio import Redis

from core.tokens import Tokens
from tests.conftest import (
    SECRET,
    MovableClock,
    NodeFactory,
    package_sfu_worker,
    redis_keeping_workers,
)
from tests.seeds import short_stay_facility
from tests.waiting import eventually
from visitation.node import SignalingNode
from visitation.seed import apply_seed, parse_seed

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
EXPECTED_HTTP_ERROR = "Failed to load resource: the server responded with a status of 4"
PHONE = ViewportSize(width=390, height=844)
TABLET = ViewportSize(width=1024, height=768)
DESKTOP = ViewportSize(width=1280, height=900)

# Facility WEB. FW can afford exactly one minute: rate 20, balance 25 -> allowed 60 s, so the
# one-minute warning comes at connect and the server hangs up 60 s later. RV-FV and RY-FY are
# ordinary calls, RA-FA a privileged (attorney) one. MW monitors WEB; IW investigates it; AW
# administers it.
VISIT_SEED: dict[str, Any] = {
    "facilities": [short_stay_facility("WEB", "Westbrook Facility")],
    "residents": [
        {"id": rid, "facility_id": "WEB", "name": name}
        for rid, name in [
            ("RW", "Rita West"),
            ("RV", "Victor Vale"),
            ("RY", "Yuri Yates"),
            ("RA", "Alan Adams"),
        ]
    ],
    "families": [
        {"id": fid, "name": name, "balance_cents": balance, "verified": True}
        for fid, name, balance in [
            ("FW", "Wes West", 25),
            ("FV", "Vera Vale", 1000),
            ("FY", "Yana Yates", 1000),
            ("FA", "Atty. Ames", 1000),
        ]
    ],
    "contacts": [
        {"resident_id": r, "family_id": f, "status": "approved", "privileged": r == "RA"}
        for r, f in [("RW", "FW"), ("RV", "FV"), ("RY", "FY"), ("RA", "FA")]
    ],
    "staff": [
        {"id": "MW", "role": "monitor", "facility_ids": ["WEB"]},
        {"id": "IW", "role": "investigator", "facility_ids": ["WEB"]},
        {"id": "AW", "role": "admin", "facility_ids": ["WEB"]},
    ],
}


sfu_worker = package_sfu_worker("web-sfu")


@pytest.fixture
async def redis(redis_url: str, sfu_worker: str) -> AsyncIterator[Redis]:
    """A clean database for each test (the shared worker's registration kept), with
    ``VISIT_SEED`` (and the standard seed, through ``seeded``)."""
    async with redis_keeping_workers(redis_url) as client:
        await apply_seed(client, parse_seed(json.dumps(VISIT_SEED)))
        yield client


@dataclass
class WebNode:
    node: SignalingNode
    url: str
    tokens: Tokens
    # The node's calls' time, where the fixture gave it one: a test moves it on to skip minutes.
    clock: MovableClock | None = None


@pytest.fixture
async def server(start_node: NodeFactory, seeded: object) -> WebNode:
    """A signaling node (it mounts the pages itself); stopped by ``start_node``."""
    clock = MovableClock()
    handle = await start_node(clock, ring_timeout_s=20, payment_processor="fake")  # deposits
    return WebNode(handle.node, handle.url, Tokens(SECRET), clock)


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Pages:
    """Opens pages (one browser context each); records their errors; closes them all."""

    browser: Browser
    server: WebNode
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def open(
        self,
        path: str,
        role: str,
        subject: str,
        viewport: ViewportSize = PHONE,
        *,
        service_workers: bool = True,
        query: str = "",
    ) -> Page:
        """Open ``path?token=<a token of role and subject>`` (``&`` + ``query`` when given)."""
        context = await self.browser.new_context(
            viewport=viewport,
            # Parties grant camera and microphone; staff pages never ask for them.
            permissions=["camera", "microphone"] if role in ("tablet", "family", "device") else [],
            base_url=self.server.url,
            service_workers="allow" if service_workers else "block",
        )
        self.contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda exc: self.errors.append(f"{path}: {exc}"))
        page.on("console", lambda msg: self._console(path, msg))
        token = self.server.tokens.issue(role, subject)
        await page.goto(f"{path}?token={token}{'&' + query if query else ''}")
        return page

    async def blank(self, path: str, viewport: ViewportSize = DESKTOP) -> Page:
        """Open ``path`` with no token (its sign-in screen)."""
        context = await self.browser.new_context(
            viewport=viewport, base_url=self.server.url, service_workers="block"
        )
        self.contexts.append(context)
        page = await context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda exc: self.errors.append(f"{path}: {exc}"))
        page.on("console", lambda msg: self._console(path, msg))
        await page.goto(path)
        return page

    def _console(self, path: str, message: ConsoleMessage) -> None:
        # The browser logs every HTTP error response; refusals the page shows are expected.
        if message.type == "error" and not message.text.startswith(EXPECTED_HTTP_ERROR):
            self.errors.append(f"{path}: console: {message.text}")

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def pages(browser: Browser, server: WebNode) -> AsyncIterator[Pages]:
    opened = Pages(browser, server)
    yield opened
    await opened.close()
    assert not opened.errors, opened.errors


@contextlib.asynccontextmanager
async def api_as(server: WebNode, role: str, subject: str) -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client of the node's API signed in as ``role`` ``subject`` (a fresh token)."""
    headers = {"Authorization": f"Bearer {server.tokens.issue(role, subject)}"}
    async with aiohttp.ClientSession(base_url=server.url, headers=headers) as http:
        yield http


def answer_next_dialog(page: Page, *, accept: bool) -> list[str]:
    """Accept (or dismiss) the page's next dialog; the list returned gets its message."""
    asked: list[str] = []

    async def answer(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await (dialog.accept() if accept else dialog.dismiss())

    page.once("dialog", answer)
    return asked


async def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    """Save ``test-artifacts/<name>.png`` (the repository root's, gitignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


async def video_playing(page: Page, selector: str, timeout_ms: float = 20_000) -> None:
    """Wait until the <video> has a picture and its ``currentTime`` advances."""
    await page.wait_for_function(
        """(selector) => {
            const video = document.querySelector(selector);
            if (!video || !video.videoWidth || !video.videoHeight) return false;
            const seen = (window.__seen ??= {});
            if (seen[selector] === undefined) seen[selector] = video.currentTime;
            return video.currentTime > seen[selector] + 0.5;
        }""",
        arg=selector,
        timeout=timeout_ms,
        polling=200,
    )


async def audio_flowing(page: Page, selector: str, *, audible: bool) -> None:
    """Wait until the <video>'s audio track receives packets (a remote track unmutes on RTP);
    ``audible``: the element itself plays sound (not muted, e.g. by an autoplay refusal)."""
    await page.wait_for_function(
        """([selector, audible]) => {
            const video = document.querySelector(selector);
            const [track] = video?.srcObject?.getAudioTracks() ?? [];
            return !!track && !track.muted && track.readyState === "live"
                && (!audible || !video.muted);
        }""",
        arg=[selector, audible],
        timeout=20_000,
        polling=200,
    )


# ---------------------------------------------------------------- the investigator page


async def final_recording(server: WebNode, **filters: str) -> dict[str, Any]:
    """The one recording matching ``filters`` (catalog filters), once signed: the worker
    closes the file after the call ends, then the recorder hashes and signs it."""
    headers = {"Authorization": f"Bearer {server.tokens.issue('investigator', 'IW')}"}
    async with aiohttp.ClientSession(server.url, headers=headers) as http:
        found: list[dict[str, Any]] = []

        async def signed() -> bool:
            nonlocal found
            async with http.get("/api/v1/recordings", params=filters) as response:
                found = (await response.json())["recordings"]
            return len(found) == 1 and found[0]["state"] == "final"

        await eventually(
            signed,
            lambda: f"a signed recording for {filters}: {found}",
            within_s=20,
            interval_s=0.2,
        )
        return found[0]


async def open_recording(page: Page, **filters: str) -> None:
    """On the investigator page: search with ``filters`` (one result expected) and open it."""
    for name, value in filters.items():
        field = page.locator(f"#search [name={name}]")
        await (field.select_option(value) if name == "flagged" else field.fill(value))
    await page.click("#search button[type=submit]")
    await expect(page.locator("#results tr")).to_have_count(1)
    await page.click("#results tr button")
    await expect(page.locator("#recording")).to_be_visible()


PLAYERS = ("#player-tablet", "#player-family")  # the investigator's: resident, family


async def both_players_at(page: Page, offset_s: float) -> None:
    """Wait until both of the investigator's players show the moment ``offset_s``."""
    await page.wait_for_function(
        """([offset, players]) => players.every((selector) => {
            const video = document.querySelector(selector);
            return video.readyState >= 2 && Math.abs(video.currentTime - offset) < 1.5;
        })""",
        arg=[offset_s, list(PLAYERS)],
        polling=100,
    )


async def play_and_seek_to_flag(page: Page, offset_s: float) -> None:
    """Play the recording: both parties' players show a picture and advance (the family's
    follows the resident's). Then click its first flag: both jump there, still in step."""
    await page.evaluate("document.querySelector('#player-tablet').play()")
    for player in PLAYERS:
        await video_playing(page, player)
    await page.click("#flags li button")
    await both_players_at(page, offset_s)
    await page.wait_for_function(  # in step: within the follower's drift limit (and a frame)
        """([leader, follower]) => {
            const [a, b] = [leader, follower].map((s) => document.querySelector(s));
            return !a.paused && !b.paused && Math.abs(a.currentTime - b.currentTime) < 0.35;
        }""",
        arg=list(PLAYERS),
        polling=100,
    )
