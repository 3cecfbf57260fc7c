"""The family page lists the months of statements and saves each as a PDF or CSV (headless
Chromium, a real node and Redis; the file is the API's, read back with pypdf)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect
from pypdf import PdfReader
from redis.asyncio import Redis

from billing_hooks.metering.biller import CallCharge
from client.session import ProtocolClient
from core.tokens import Tokens
from tests.conftest import SECRET, MovableClock, NodeFactory, redis_keeping_workers
from tests.system.billing.plans_data import plans_seed
from tests.system.web import conftest as web_fixtures
from tests.system.web.conftest import Pages, WebNode, screenshot
from visitation.seed import apply_seed, parse_seed

browser, pages = web_fixtures.browser, web_fixtures.pages  # the web tests' fixtures


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    async with redis_keeping_workers(redis_url) as client:
        await apply_seed(client, parse_seed(json.dumps(plans_seed())))
        yield client


@pytest.fixture
async def server(start_node: NodeFactory, redis: Redis) -> WebNode:
    clock = MovableClock()
    handle = await start_node(clock)
    biller, now = handle.node.billing.biller, time.time()
    await biller.authorize("p1", "FM", 25, 1800, resident_id="RM", facility_id="MT")
    await biller.settle(CallCharge(
        "p1", "FM", 720, "hangup", 25, facility_id="MT", facility_name="Montana State Prison",
        resident_id="RM", resident_name="Monty Resident", connected_at=now - 720, ended_at=now,
    ))  # fmt: skip
    return WebNode(handle.node, handle.url, Tokens(SECRET), clock)


@pytest.fixture
def screens(pages: Pages) -> Pages:
    return pages


async def test_the_months_are_listed_and_each_saves_as_pdf_and_csv(
    screens: Pages, server: WebNode
) -> None:
    family = await screens.open("/family", "family", "FM")
    await family.click("#tabs [data-go=history]")
    zone = await family.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone")
    month = datetime.now(ZoneInfo(zone or "UTC")).strftime("%Y-%m")
    row = family.locator(f'#months li[data-month="{month}"]')
    await expect(row).to_be_visible()
    await expect(family.locator("#months li")).to_have_count(1)
    await row.scroll_into_view_if_needed()
    await screenshot(family, "family-statements")
    async with family.expect_download() as saving:
        await row.locator("[data-format=pdf]").click()
    download = await saving.value
    assert download.suggested_filename == f"statement-{month}.pdf"
    path = await download.path()
    text = " ".join(PdfReader(io.BytesIO(path.read_bytes())).pages[0].extract_text().split())
    assert "Monty Resident Montana State Prison 12:00 10:00 $0.50" in text, text
    async with family.expect_download() as saving:
        await row.locator("[data-format=csv]").click()
    csv_text = (await (await saving.value).path()).read_text()
    assert csv_text.startswith("type,date,description") and ",720,600,-50," in csv_text


async def test_the_ringing_screen_says_how_much_of_the_call_is_free(
    screens: Pages, server: WebNode
) -> None:
    """Before answering, the family sees the agency's part (``call.incoming`` free_seconds)."""
    redis = server.node.redis
    spent = [key async for key in redis.scan_iter("allow:RM:*")]
    await redis.delete(*spent)  # a new week for RM: the fixture's call used the last one
    for family_id, resident, text in [
        ("FM", "RM", "First 10 min free, then 25¢/min"),
        ("FC", "RC", "Free (paid by the agency)"),
    ]:
        family = await screens.open("/family", "family", family_id)
        await expect(family.locator("#tabs")).to_be_visible()
        token = server.tokens.issue("tablet", resident)
        async with ProtocolClient(server.url, token, resident) as tablet:
            call_id = await tablet.place(family_id)
            await expect(family.locator("#in-rate")).to_have_text(text)
            await screenshot(family, f"family-incoming-free-{family_id}")
            await tablet.request("call.cancel", {"call_id": call_id})
