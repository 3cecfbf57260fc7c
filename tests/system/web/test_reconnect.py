"""An open family page and tablet page survive a server restart, and a 20 s network drop,
without a reload: they say they are offline, come back by themselves, and the next call rings
(within 30 s of the server being back)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis

from core.revocation import Revocations
from core.tokens import Tokens
from tests.conftest import SECRET
from tests.system.client.restartable import RestartableNode
from tests.system.web.conftest import TABLET, Pages, WebNode, screenshot

OFFLINE = re.compile("offline")
#: What a browser logs while its server or network is away (the pages handle it).
AWAY = re.compile(
    r"WebSocket connection to .* failed|net::ERR_(CONNECTION_REFUSED|INTERNET_DISCONNECTED|"
    r"NETWORK_CHANGED|CONNECTION_RESET|EMPTY_RESPONSE)|Failed to fetch"
)


@pytest.fixture
async def restartable(
    redis_url: str, seeded: object, redis: Redis, tmp_path: Path, recordings_dir: Path
) -> AsyncIterator[RestartableNode]:
    """A node on a fixed port (the pages' address), stopped and started again by the test."""
    node = RestartableNode(
        redis_url,
        tmp_path / "var",
        recordings_dir,
        overrides={"ring_timeout_s": 20, "payment_processor": "fake"},
    )
    await node.start()
    yield node
    await node.stop()


@pytest.fixture
async def away_pages(browser: Browser, restartable: RestartableNode) -> AsyncIterator[Pages]:
    """tests/system/web's Pages on the restartable node; errors other than "cannot reach the server"
    fail the test."""
    assert restartable.node is not None
    opened = Pages(browser, WebNode(restartable.node, restartable.url, Tokens(SECRET)))
    yield opened
    await opened.close()
    unexpected = [error for error in opened.errors if not AWAY.search(error)]
    assert not unexpected, unexpected


async def open_pair(pages: Pages) -> tuple[Page, Page]:
    family = await pages.open("/family", "family", "FV")
    await expect(family.locator("#balance")).to_have_text("$10.00")
    tablet = await pages.open("/tablet", "tablet", "RV", TABLET)
    await expect(tablet.locator("#home")).to_be_visible()
    return family, tablet


async def both(pages: tuple[Page, Page], pattern: re.Pattern[str], *, offline: bool) -> None:
    for page in pages:
        who = expect(page.locator("#who"))
        await (who.to_have_text(pattern) if offline else who.not_to_have_text(pattern))


async def next_call_rings(family: Page, tablet: Page, within_s: float) -> None:
    """The tablet calls the family (retried once the page says it is back online); the
    family's page rings."""
    await both((family, tablet), OFFLINE, offline=False)
    await tablet.click('#contacts li[data-contact="FV"] button', timeout=within_s * 1000)
    await expect(tablet.locator("#calling-status")).to_have_text(
        "Ringing…", timeout=within_s * 1000
    )
    await expect(family.locator("#incoming")).to_be_visible(timeout=within_s * 1000)
    await expect(family.locator("#in-caller")).to_have_text("Victor Vale")


@pytest.mark.timeout(150)
async def test_pages_survive_a_server_restart_and_the_next_call_rings(
    away_pages: Pages, restartable: RestartableNode
) -> None:
    family, tablet = await open_pair(away_pages)
    await restartable.stop()
    await both((family, tablet), OFFLINE, offline=True)
    await screenshot(family, "family-offline-reconnecting")
    await restartable.start()
    back_at = time.monotonic()
    await next_call_rings(family, tablet, within_s=30)
    took = time.monotonic() - back_at
    assert took < 30, f"the call rang {took:.1f} s after the server was back"
    await screenshot(family, "family-rings-after-restart")
    # No reload: the pages are the ones opened before the restart (their state kept).
    assert await family.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert await family.evaluate("performance.getEntriesByType('navigation')[0].type") in (
        "navigate",
    )


@pytest.mark.timeout(150)
async def test_pages_survive_a_20_s_network_drop_and_the_next_call_rings(
    away_pages: Pages, restartable: RestartableNode
) -> None:
    family, tablet = await open_pair(away_pages)
    contexts = [page.context for page in (family, tablet)]
    for context in contexts:
        await context.set_offline(True)
    dropped_at = time.monotonic()
    await both((family, tablet), OFFLINE, offline=True)
    # The network stays down for 20 s (the scenario itself, not a wait for something).
    remaining_s = 20 - (time.monotonic() - dropped_at)
    if remaining_s > 0:
        await family.wait_for_timeout(remaining_s * 1000)
    for context in contexts:
        await context.set_offline(False)
    back_at = time.monotonic()
    await next_call_rings(family, tablet, within_s=30)
    took = time.monotonic() - back_at
    assert took < 30, f"the call rang {took:.1f} s after the network was back"


CONNECT_SCRIPT = """async (token) => {
    const { connect } = await import("/static/js/connection.js");
    window.__lines = [];
    window.__client = await connect(token, (online, message, info) => {
        window.__lines.push({ online, message: message || "", expired: !!info?.expired });
    });
}"""


async def lines(page: Page) -> list[dict[str, object]]:
    found: list[dict[str, object]] = await page.evaluate("window.__lines")
    return found


async def test_connection_js_reconnects_a_server_made_disconnect_not_an_ended_session(
    away_pages: Pages, restartable: RestartableNode, redis: Redis, tokens: Tokens
) -> None:
    """connection.js itself: a Socket.IO disconnect the server made (a load balancer draining a
    node) is reconnected (socket.io-client alone gives up there), with onLine(true) to re-sync;
    a revoked session gets onLine(false, message, {expired: true}) and no reconnect."""
    page = await away_pages.open("/family", "family", "FY")
    await expect(page.locator("#balance")).to_have_text("$10.00")
    await page.evaluate(CONNECT_SCRIPT, tokens.issue("family", "FV"))
    assert restartable.node is not None
    sessions = restartable.node.sockets.sessions
    [sid] = [sid for sid, session in sessions.items() if session.subject == "FV"]
    await restartable.node.sio.disconnect(sid)
    await page.wait_for_function("() => window.__lines.some((line) => line.online)", timeout=30_000)
    assert (await lines(page))[0] == {"online": False, "message": "", "expired": False}

    await Revocations(redis).revoke("family", "FV")
    await page.wait_for_function(
        "() => window.__lines.some((line) => line.expired)", timeout=10_000
    )
    ended = [line for line in await lines(page) if line["expired"]]
    assert ended == [
        {
            "online": False,
            "message": "Your session has ended: sign in again with a new link.",
            "expired": True,
        }
    ]
    socket = "window.__client.socket"
    assert await page.evaluate(f"!{socket}.connected && !{socket}.active")  # no more retries
    # The page's own connection (FY) was not touched.
    await expect(page.locator("#who")).not_to_have_text(OFFLINE)


async def test_connection_js_ends_the_session_when_a_reconnect_is_refused_for_its_token(
    away_pages: Pages, restartable: RestartableNode, redis: Redis, tokens: Tokens
) -> None:
    """Revoked while the server was down: the reconnect is refused ("token revoked"): the page
    hears {expired: true} once, and stops trying."""
    page = await away_pages.open("/family", "family", "FY")
    await expect(page.locator("#balance")).to_have_text("$10.00")
    await page.evaluate(CONNECT_SCRIPT, tokens.issue("family", "FV"))
    await restartable.stop()
    await page.wait_for_function(
        "() => window.__lines.some((line) => !line.online)", timeout=10_000
    )
    await Revocations(redis).revoke("family", "FV")
    await restartable.start()
    await page.wait_for_function(
        "() => window.__lines.some((line) => line.expired)", timeout=40_000
    )
    assert [line["expired"] for line in await lines(page)].count(True) == 1
    assert not any(line["online"] for line in await lines(page))
    socket = "window.__client.socket"
    assert await page.evaluate(f"!{socket}.connected && !{socket}.active")
