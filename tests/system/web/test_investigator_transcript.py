"""The investigator page with transcripts: a real call in which the family says espeak-ng
sentences is transcribed by a real worker process; in Chromium the investigator searches a
phrase, opens the hit, clicks a transcript line and both players seek there; a watch word sits
on the timeline and in the alerts; a name finds the call too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect
from redis.asyncio import Redis

from client.clip import ClipSpec
from client.peer import PartyPeer, close_all, join_call
from client.session import ProtocolClient
from tests.conftest import SECRET
from tests.system.transcripts.speech import Speech, SpeechPeer, espeak_available, speech
from tests.system.web.conftest import DESKTOP, Pages, WebNode, api_as, both_players_at, screenshot
from tests.waiting import eventually
from transcripts.pool import TranscriberPool

SENTENCES = (
    "bring the package to the north gate on tuesday morning",
    "call your brother about the money before the visit",
)


@pytest.fixture
async def transcriber(redis_url: str, recordings_dir: Path, redis: Redis) -> AsyncIterator[None]:
    if not espeak_available():
        pytest.fail("espeak-ng is missing: apt-get install -y espeak-ng (make install does it)")
    pool = TranscriberPool(
        redis_url, str(recordings_dir), env={"VISITATION_SECRET": SECRET.decode()}, id_prefix="web"
    )
    await pool.start(1)
    try:
        await pool.wait_ready(redis)
        yield
    finally:
        await pool.stop()


async def spoken_call(server: WebNode, said: Speech) -> str:
    """RV calls FV; FV says ``said``; RV hangs up. The call id."""
    issue = server.tokens.issue
    tablet = ProtocolClient(server.url, issue("tablet", "RV"), "RV")
    family = ProtocolClient(server.url, issue("family", "FV"), "FV")
    peers = [PartyPeer(ClipSpec("red"), decode=False), SpeechPeer(ClipSpec("blue"), said)]
    async with tablet, family:
        try:
            call_id = await tablet.place("FV")
            await family.next("call.incoming")
            await family.accept(call_id)
            await join_call(tablet, call_id, peers[0])
            await join_call(family, call_id, peers[1])
            await family.next("call.connected")
            await asyncio.sleep(said.seconds + 1.0)
            await tablet.hangup(call_id)
            await family.next("call.ended")
        finally:
            await close_all(*peers)
    return call_id


async def transcript_of(server: WebNode, call_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    async with api_as(server, "investigator", "IW") as http:

        async def done() -> bool:
            nonlocal found
            async with http.get(f"/api/v1/recordings/{call_id}/transcript") as response:
                found = await response.json()
            assert found["status"] != "failed", found
            return bool(found["status"] == "done")

        await eventually(done, lambda: f"transcribed: {found}", within_s=120, interval_s=0.2)
    return found


async def test_search_a_phrase_open_the_hit_and_seek_from_a_transcript_line(
    server: WebNode, pages: Pages, transcriber: None
) -> None:
    async with api_as(server, "admin", "AW") as admin:
        body = {"watch_words": ["brother"]}
        async with admin.put("/api/v1/admin/facilities/WEB", json=body) as response:
            assert response.status == 200, await response.text()
    said = speech(SENTENCES, lead_s=1.5)
    call_id = await spoken_call(server, said)
    transcript = await transcript_of(server, call_id)
    family_lines = [s for s in transcript["segments"] if s["party"] == "family"]
    assert len(family_lines) >= 2, transcript
    words = family_lines[0]["text"].split()
    phrase = " ".join(words[-2:])  # two words of the first line, as recognised

    page = await pages.open("/investigator", "investigator", "IW", DESKTOP)
    await expect(page.locator("#alerts li")).to_have_count(1)  # "brother" was said
    await expect(page.locator("#alerts li")).to_contain_text("brother")
    await page.fill("#search [name=q]", f'"{phrase}"')
    await page.click("#search button[type=submit]")
    await expect(page.locator("#results tr")).to_have_count(1)
    await expect(page.locator("#results tr .said mark").first).to_be_visible()
    await page.click("#results tr td:last-child button")
    await expect(page.locator("#recording")).to_be_visible()
    lines = page.locator("#transcript li")
    await expect(lines).to_have_count(len(transcript["segments"]))
    await expect(page.locator("#transcript li.hit mark").first).to_be_visible()
    await expect(page.locator('#timeline-track .mark[data-source="watch_word"]')).to_have_count(1)

    target = page.locator('#transcript li[data-party="family"]').nth(1)
    start = float(await target.get_attribute("data-start") or "nan")
    await page.wait_for_function(  # a function, not an expression: the page's CSP has no eval
        "() => ['#player-tablet', '#player-family']"
        ".every((s) => document.querySelector(s).readyState >= 1)"
    )
    await target.click()
    await both_players_at(page, start)
    await expect(target).to_have_class("current", timeout=10_000)
    await screenshot(page, "investigator-transcript", full_page=True)

    # A name finds the call too (substring, any case).
    await page.fill("#search [name=q]", "vera v")
    await page.click("#search button[type=submit]")
    await expect(page.locator(f'#results tr[data-call="{call_id}"]')).to_have_count(1)
    await screenshot(page, "investigator-name-search")
