"""The tablet shows the resident's free minutes under the facility's plan, and a call refused
because the day's cap is used up says so (headless Chromium, a real node and Redis)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect
from redis.asyncio import Redis

from billing_hooks.metering.allowance import Allowances
from client.session import ProtocolClient
from core import tariff
from core.tokens import Tokens
from tests.conftest import SECRET, MovableClock, NodeFactory, redis_keeping_workers
from tests.system.billing.plans_data import CONNECTICUT_TZ, MONTANA_TZ, plans_seed
from tests.system.web import conftest as web_fixtures
from tests.system.web.conftest import TABLET, Pages, WebNode, screenshot
from visitation.seed import apply_seed, parse_seed

browser, pages = web_fixtures.browser, web_fixtures.pages  # the web tests' fixtures
MT_PLAN = tariff.Plan(payer="family", free_minutes=10, free_period="week")
CT_PLAN = tariff.Plan(payer="agency", max_minutes_per_day=90)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    async with redis_keeping_workers(redis_url) as client:
        await apply_seed(client, parse_seed(json.dumps(plans_seed())))
        yield client


@pytest.fixture
def screens(pages: Pages) -> Pages:
    """The web tests' pages (their browser, page errors checked at the end)."""
    return pages


@pytest.fixture
async def server(start_node: NodeFactory, redis: Redis) -> WebNode:
    clock = MovableClock()
    handle = await start_node(clock, ring_timeout_s=20)
    return WebNode(handle.node, handle.url, Tokens(SECRET), clock)


async def used(redis: Redis, plan: tariff.Plan, tz: str, resident: str, seconds: int) -> None:
    """``seconds`` of the resident's allowance already talked (a settled earlier call)."""
    store = Allowances(redis)
    call_id = f"earlier-{resident}"
    await store.reserve(call_id, plan, tz, resident, seconds)
    async with redis.pipeline(transaction=True) as pipe:
        await store.queue_settle(pipe, call_id, store.period(plan, tz, resident), "X", "-", seconds)
        await pipe.execute()


async def test_the_tablet_shows_the_free_minutes_left(
    screens: Pages, server: WebNode, redis: Redis
) -> None:
    await used(redis, MT_PLAN, MONTANA_TZ, "RM", 4 * 60)
    tablet = await screens.open("/tablet", "tablet", "RM", TABLET)
    await expect(tablet.locator("#allowance")).to_have_text("Free minutes: 6 min left this week.")
    await screenshot(tablet, "tablet-free-minutes")
    ct = await screens.open("/tablet", "tablet", "RC", TABLET)
    await expect(ct.locator("#allowance")).to_have_text("Free calls: 90 min left today.")


async def test_a_call_past_the_daily_cap_is_refused_with_its_reason(
    screens: Pages, server: WebNode, redis: Redis
) -> None:
    await used(redis, CT_PLAN, CONNECTICUT_TZ, "RC", 90 * 60)
    async with ProtocolClient(server.url, server.tokens.issue("family", "FC"), "FC"):
        tablet = await screens.open("/tablet", "tablet", "RC", TABLET)
        await expect(tablet.locator("#allowance")).to_have_text(
            "Free calls: none left today; more at midnight."
        )
        await tablet.click('#contacts li[data-contact="FC"] button')
        await expect(tablet.locator("#call-error")).to_have_text(
            "Your free call minutes for today are used up. They are back at midnight."
        )
        await screenshot(tablet, "tablet-quota-exhausted")
