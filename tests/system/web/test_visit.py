"""A whole visit in real browsers: tablet calls, family answers, a monitor watches and flags,
the cap ends it; then an investigator finds the recording, plays it, jumps to the flag, verifies
it and reads who accessed it."""

from __future__ import annotations

import json
import re

import pytest
from playwright.async_api import Page, expect
from redis.asyncio import Redis

from media.control import WorkerEvent
from media.redis_keys import EVENTS
from tests.system.web.conftest import (
    DESKTOP,
    TABLET,
    Pages,
    WebNode,
    audio_flowing,
    final_recording,
    open_recording,
    play_and_seek_to_flag,
    screenshot,
    video_playing,
)

RED = "rgb(229, 57, 53)"  # --warn


async def timer_is_red(page: Page) -> None:
    timer = page.locator("#incall #timer")
    await expect(timer).to_have_class(re.compile(r"\bwarning\b"))
    await expect(timer).to_have_css("background-color", RED)


async def poor_family_connection(redis: Redis, call_id: str, family: Page, monitor: Page) -> None:
    """Report the family's connection as poor through the worker event stream, until both
    pages show it (the worker's own reports, every 10 s, may overtake ours: then again)."""
    quality = {
        "tablet": {"level": "good", "rtt_ms": 1.0, "jitter_ms": 2.0, "loss_pct": 0.0},
        "family": {"level": "poor", "rtt_ms": 640.0, "jitter_ms": 80.0, "loss_pct": 12.5},
    }
    event = WorkerEvent(
        type="quality", call_id=call_id, worker_id="test", quality=json.dumps(quality)
    )
    family_badge = family.locator("#call-quality")
    tile_badge = monitor.locator("#tiles .tile figure:nth-child(2) .badge.quality")
    row_badge = monitor.locator(f'#calls tr[data-call="{call_id}"] .badge.quality')
    for attempt in range(3):
        await redis.xadd(EVENTS(), event.to_fields())  # type: ignore[arg-type]
        try:
            await expect(family_badge).to_have_text("poor connection", timeout=3000)
            await expect(family_badge).to_have_attribute(
                "title", re.compile("640 ms"), timeout=1000
            )
            await expect(tile_badge).to_have_text("poor connection", timeout=1000)
            await expect(row_badge).to_have_text("poor connection", timeout=1000)
            await screenshot(family, "family-poor-connection")
            await screenshot(monitor, "monitor-poor-connection")
            return
        except AssertionError:
            if attempt == 2:
                raise


@pytest.mark.timeout(120)
async def test_a_whole_visit(pages: Pages, server: WebNode, redis: Redis) -> None:
    family = await pages.open("/family", "family", "FW")
    await expect(family.locator("#balance")).to_have_text("$0.25")
    await screenshot(family, "family-home")
    monitor = await pages.open("/monitor", "monitor", "MW", DESKTOP)
    await expect(monitor.locator("#no-calls")).to_be_visible()
    tablet = await pages.open("/tablet", "tablet", "RW", TABLET)
    await expect(tablet.locator("#home")).to_be_visible()

    await tablet.click('#contacts li[data-contact="FW"] button')  # one tap on the name
    await expect(tablet.locator("#calling-who")).to_have_text("Wes West")
    await expect(tablet.locator("#calling-status")).to_have_text("Ringing…")
    await screenshot(tablet, "tablet-ringing")

    incoming = family.locator("#incoming")
    await expect(incoming).to_be_visible()
    await expect(family.locator("#in-caller")).to_have_text("Rita West")
    await expect(family.locator("#in-facility")).to_have_text("Westbrook Facility")
    await expect(family.locator("#in-balance")).to_have_text("$0.25")
    await expect(family.locator("#in-rate")).to_have_text("20¢/min")
    await expect(family.locator("#in-max")).to_have_text("1 min 10 s")
    await expect(family.locator("#in-allowed")).to_have_text("1 min")
    await screenshot(family, "family-incoming")
    row = monitor.locator("#calls tr", has_text="Rita West")
    await expect(row).to_contain_text("ringing")
    await family.click("#accept")

    # Both parties see each other; the warning comes at connect (60 s allowed).
    for page in (family, tablet):
        await video_playing(page, "#remote-video")
        await audio_flowing(page, "#remote-video", audible=True)
    await timer_is_red(family)
    await timer_is_red(tablet)
    await expect(family.locator("#call-status")).to_have_text("One minute left")
    await screenshot(family, "family-in-call")
    await screenshot(tablet, "tablet-in-call")

    # The monitor watches both parties and flags a moment.
    await expect(row).to_contain_text("connected")
    await row.locator("button.watch").click()
    tile = monitor.locator("#tiles .tile")
    for party in (
        "#tiles .tile figure:nth-child(1) video",
        "#tiles .tile figure:nth-child(2) video",
    ):
        await video_playing(monitor, party)
        await audio_flowing(monitor, party, audible=False)  # silent until "Listen"
    await tile.locator("header button", has_text="Listen").click()
    await audio_flowing(monitor, "#tiles .tile figure:nth-child(1) video", audible=True)
    await expect(row.locator(".watchers")).to_have_text("1")
    await tile.locator("form.flag input").fill("check this moment")
    await tile.locator("form.flag button").click()
    await expect(tile.locator(".log")).to_contain_text("check this moment")
    await screenshot(monitor, "monitor-watching")

    # A poor connection (as a worker would report it) is shown to the family and the monitor.
    call_id = await row.get_attribute("data-call")
    assert call_id
    await poor_family_connection(redis, call_id, family, monitor)

    # The server hangs up at the cap (its clock moved on to it, not waited out); the family
    # sees the charge and the new balance.
    assert server.clock is not None
    server.clock.advance(61)
    await expect(family.locator("#ended")).to_be_visible(timeout=15_000)
    await expect(family.locator("#end-reason")).to_have_text("The time limit was reached.")
    await expect(family.locator("#end-charge")).to_have_text("$0.20")
    await expect(family.locator("#end-balance")).to_have_text("$0.05")
    await screenshot(family, "family-ended")
    await expect(tablet.locator("#ended")).to_be_visible()
    await expect(tablet.locator("#end-reason")).to_have_text("The time limit was reached.")
    await screenshot(tablet, "tablet-ended")
    await expect(row).to_have_count(0)
    await expect(tile.locator(".badge.ended")).to_contain_text("time_limit")
    await screenshot(monitor, "monitor-ended")

    # The history shows the call and its charge.
    await family.click("#ended [data-go=home]")
    await expect(family.locator("#balance")).to_have_text("$0.05")
    await family.click("#tabs [data-go=history]")
    await expect(family.locator("#calls li")).to_have_count(1)
    await expect(family.locator("#calls li")).to_contain_text("Westbrook Facility")
    await expect(family.locator("#calls li")).to_contain_text("$0.20")
    await expect(family.locator("#calls li strong")).to_contain_text("Call with Rita West — 1 min")
    # The statement: the deposit and what the call cost; its hold and release are not shown.
    charge = family.locator('#statement li[data-kind="charge"]')
    await expect(charge).to_contain_text("Call with Rita West")
    await expect(charge).to_contain_text("\u2212$0.20")  # a minus sign
    await expect(family.locator('#statement li[data-kind="hold"]')).to_have_count(0)
    await expect(family.locator('#statement li[data-kind="release"]')).to_have_count(0)
    await screenshot(family, "family-history", full_page=True)

    # The recording: found with the filters, played, the flag is a jump, verified, audited.
    recording = await final_recording(server, resident_id="RW")
    [flag] = recording["flags"]
    assert flag["note"] == "check this moment"
    investigator = await pages.open("/investigator", "investigator", "IW", DESKTOP)
    await open_recording(
        investigator, resident_id="RW", family_id="FW", facility_id="WEB", flagged="true"
    )
    await expect(investigator.locator("#manifest")).to_contain_text("time_limit")
    await play_and_seek_to_flag(investigator, flag["offset_s"])
    await investigator.click("#verify")
    await expect(investigator.locator("#verify-result")).to_have_attribute("data-outcome", "ok")
    await expect(investigator.locator("#verify-result code")).to_have_text(recording["sha256"])
    await investigator.click("#audit-refresh")
    audit = investigator.locator("#audit")
    for action in ("list", "view", "verify"):  # playing is one "view", not downloads
        await expect(audit.locator(f"tr[data-action={action}]").first).to_contain_text("IW")
    await screenshot(investigator, "investigator-visit", full_page=True)
