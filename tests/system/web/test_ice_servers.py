"""The pages gather with ``session.info``'s STUN/TURN servers: Chromium, given the TURN
credentials of a node configured with a real coturn (on loopback), gets a relayed candidate."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from core.tokens import Tokens
from tests.conftest import SECRET, NodeFactory
from tests.system.net.conftest import loopback_coturn
from tests.system.net.coturn import Coturn
from tests.system.web.conftest import Pages, WebNode

__all__ = ["loopback_coturn"]

# In the monitor page: a second connection like the pages', then an offer as the page makes.
OFFER = """async (token) => {
    const { connect } = await import("/static/js/common.js");
    const { fullOffer, monitorConnection } = await import("/static/js/rtc.js");
    const client = await connect(token);
    const servers = await client.iceServers();
    const { pc } = monitorConnection();
    const sdp = await fullOffer(pc, servers, 10000);
    pc.close();
    client.close();
    return { servers, sdp, config: pc.getConfiguration().iceServers };
}"""


@pytest.fixture
async def turn_node(start_node: NodeFactory, loopback_coturn: Coturn, seeded: object) -> WebNode:
    handle = await start_node(
        turn_urls=[loopback_coturn.url("udp")], turn_secret=loopback_coturn.secret
    )
    return WebNode(handle.node, handle.url, Tokens(SECRET))


@pytest.fixture
async def turn_pages(browser: Browser, turn_node: WebNode) -> AsyncIterator[Pages]:
    opened = Pages(browser, turn_node)
    yield opened
    await opened.close()
    assert not opened.errors, opened.errors


async def test_a_page_offers_a_relayed_candidate_from_the_session_credentials(
    turn_pages: Pages, turn_node: WebNode, loopback_coturn: Coturn
) -> None:
    page = await turn_pages.open("/monitor", "monitor", "MW")
    result = await page.evaluate(OFFER, turn_node.tokens.issue("monitor", "MW"))
    [server] = result["servers"]
    assert server["urls"] == [loopback_coturn.url("udp")]
    assert server["username"].endswith(":monitor:MW")
    assert [s["urls"] for s in result["config"]] == [[loopback_coturn.url("udp")]]
    relayed = [x for x in result["sdp"].splitlines() if " typ relay " in x]
    assert relayed and all(" 127.0.0.1 " in x for x in relayed), result["sdp"]
