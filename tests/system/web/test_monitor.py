"""The monitoring console: live list, several calls watched at once, flag, terminate."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import expect

from client.media import ClipSpec
from client.peer import PartyPeer, close_all, join_call
from client.session import ProtocolClient
from tests.conftest import Clients
from tests.system.web.conftest import DESKTOP, Pages, WebNode, api_as, screenshot, video_playing


@dataclass
class Call:
    call_id: str
    tablet: ProtocolClient
    family: ProtocolClient


@pytest.fixture
async def clients(server: WebNode) -> AsyncIterator[Clients]:
    pool = Clients(server.tokens, server.url)
    yield pool
    await pool.close_all()


async def connected_call(
    clients: Clients, resident: str, family: str, peers: list[PartyPeer]
) -> Call:
    """A call with media from both parties (pre-encoded clips, as the load generator sends)."""
    fam = await clients.connect("family", family)
    tablet = await clients.connect("tablet", resident)
    call_id = await tablet.place(family)
    await fam.next("call.incoming")
    await fam.accept(call_id)
    await tablet.next("call.accepted")
    tablet_peer, family_peer = (
        PartyPeer(ClipSpec("red"), decode=False),
        PartyPeer(ClipSpec("blue"), decode=False),
    )
    peers += [tablet_peer, family_peer]
    await asyncio.gather(
        join_call(tablet, call_id, tablet_peer), join_call(fam, call_id, family_peer)
    )
    await fam.next("call.connected")
    return Call(call_id, tablet, fam)


async def test_watch_two_calls_flag_and_terminate(pages: Pages, clients: Clients) -> None:
    monitor = await pages.open("/monitor", "monitor", "MW", DESKTOP)
    await expect(monitor.locator("#no-calls")).to_be_visible()
    peers: list[PartyPeer] = []
    try:
        # A privileged call rings: listed, but never monitorable.
        attorney = await clients.connect("family", "FA")
        privileged_tablet = await clients.connect("tablet", "RA")
        await privileged_tablet.place("FA")
        await attorney.next("call.incoming")
        privileged = monitor.locator("#calls tr", has_text="Alan Adams")
        await expect(privileged).to_contain_text("not monitored")
        await expect(privileged).to_contain_text("Privileged (attorney)")
        await expect(privileged.locator("button")).to_have_count(0)

        first, second = await asyncio.gather(
            connected_call(clients, "RV", "FV", peers), connected_call(clients, "RY", "FY", peers)
        )
        rows = {
            call.call_id: monitor.locator(f'#calls tr[data-call="{call.call_id}"]')
            for call in (first, second)
        }
        for row in rows.values():
            await expect(row).to_contain_text("connected")
            await expect(row).to_contain_text("Westbrook Facility")  # names, not ids
            await row.locator("button.watch").click()
        await expect(monitor.locator("#count")).to_have_text("3 live")
        for call in (first, second):
            tile = f'#tiles .tile[data-call="{call.call_id}"]'
            await video_playing(monitor, f"{tile} figure:nth-child(1) video")
            await video_playing(monitor, f"{tile} figure:nth-child(2) video")
            await expect(rows[call.call_id].locator(".watchers")).to_have_text("1")
        await screenshot(monitor, "monitor-grid")
        # The whole frame of each party, never cropped (issue 32 §5).
        fits = await monitor.locator("#tiles video").evaluate_all(
            "vs => vs.map((v) => getComputedStyle(v).objectFit)"
        )
        assert fits and set(fits) == {"contain"}, fits

        # Flag a moment on one call, terminate the other with a reason.
        tile_two = monitor.locator(f'#tiles .tile[data-call="{second.call_id}"]')
        # The time left is legible in the tile's header (it was white on the white card).
        timer = tile_two.locator("header .timer")
        await expect(timer).to_contain_text("left")
        colours = await timer.evaluate(
            "t => [getComputedStyle(t).color, getComputedStyle(t.closest('.tile')).backgroundColor]"
        )
        assert colours[0] != colours[1] and colours[0] != "rgb(255, 255, 255)", colours
        await tile_two.locator("form.flag input").fill("passing a note to the camera")
        await tile_two.locator("form.flag button").click()
        await expect(tile_two.locator(".log")).to_contain_text("passing a note to the camera")
        tile_one = monitor.locator(f'#tiles .tile[data-call="{first.call_id}"]')
        await tile_one.locator("form.terminate input").fill("indecent exposure")
        # Enter (or the button) only asks; "Keep the call" keeps it, and so does another Enter.
        await tile_one.locator("form.terminate input").press("Enter")
        confirm = tile_one.locator("form.terminate .confirm-row")
        await expect(confirm).to_be_visible()
        await expect(confirm).to_contain_text("indecent exposure")
        await screenshot(monitor, "monitor-terminate-confirm")
        await monitor.keyboard.press("Enter")  # the focus is on "Keep the call"
        await expect(confirm).to_be_hidden()
        await expect(rows[first.call_id]).to_contain_text("connected")
        await tile_one.locator("form.terminate button[type=submit]").click()
        await confirm.get_by_role("button", name="Yes, end the call").click()
        for party in (first.tablet, first.family):
            ended = await party.next("call.ended")
            assert (ended["call_id"], ended["reason"]) == (first.call_id, "terminated")
        await expect(rows[first.call_id]).to_have_count(0)
        await expect(tile_one.locator(".badge.ended")).to_have_text(
            "Ended · terminated by staff (terminated)"
        )
        await expect(tile_one.locator("form.terminate button[type=submit]")).to_be_disabled()
        await expect(monitor.locator("#count")).to_have_text("2 live")
        await screenshot(monitor, "monitor-terminated")

        # Stop watching the other call: its watcher count drops back to 0.
        await tile_two.locator("header button.link").click()
        await expect(tile_two).to_have_count(0)
        await expect(rows[second.call_id].locator(".watchers")).to_have_text("0")
        await second.tablet.hangup(second.call_id)
    finally:
        await close_all(*peers)


async def test_a_watch_the_server_ends_greys_the_tile_and_says_why(
    pages: Pages, clients: Clients, server: WebNode
) -> None:
    """``monitor.watch_ended``: the call turned privileged while watched (its contact marked
    after the answer, before any media); the call goes on, the tile says why and greys."""
    monitor = await pages.open("/monitor", "monitor", "MW", DESKTOP)
    fam = await clients.connect("family", "FV")
    tablet = await clients.connect("tablet", "RV")
    call_id = await tablet.place("FV")
    await fam.next("call.incoming")
    await fam.accept(call_id)
    await tablet.next("call.accepted")
    row = monitor.locator(f'#calls tr[data-call="{call_id}"]')
    await expect(row).to_contain_text("accepted")
    await row.locator("button.watch").click()
    tile = monitor.locator(f'#tiles .tile[data-call="{call_id}"]')
    await expect(tile.locator("header .badge").first).to_have_text("live")
    await expect(row.locator(".watchers")).to_have_text("1")

    async with api_as(server, "admin", "AW") as admin:
        body = {"status": "approved", "privileged": True}
        async with admin.put("/api/v1/admin/contacts/RV/FV", json=body) as response:
            assert response.status == 200, await response.text()
    peers = [PartyPeer(ClipSpec("red"), decode=False), PartyPeer(ClipSpec("blue"), decode=False)]
    try:  # the parties' offers open the room: privilege is decided again, the watch ends
        await asyncio.gather(
            join_call(tablet, call_id, peers[0]), join_call(fam, call_id, peers[1])
        )
        await fam.next("call.connected")
        status = tile.locator("header .badge.ended")
        await expect(status).to_have_text("Watch ended · the call became privileged (privileged)")
        await expect(tile).to_have_class(re.compile(r"\bended\b.*\bwatch-ended\b"))
        grey = await tile.locator("video").first.evaluate("v => getComputedStyle(v).filter")
        assert "grayscale(1)" in grey, grey
        await expect(tile.locator(".log")).to_have_text(
            "Watching ended: it is an attorney-client call now: it is no longer monitored or "
            "recorded."
        )
        # Who the attorney is stays private on the tile too (PROTOCOL v1.1).
        await expect(tile.locator("header .grow")).to_have_text(
            "Victor Vale ↔ Privileged (attorney)"
        )
        await expect(tile).not_to_contain_text("Vera Vale")
        await expect(tile.locator("form.flag input")).to_be_disabled()
        await expect(tile.locator("form.terminate button[type=submit]")).to_be_disabled()
        # The call goes on, listed as privileged: never watchable again.
        await expect(row).to_contain_text("connected")
        await expect(row).to_contain_text("Privileged (attorney)")
        await expect(row).to_contain_text("not monitored")
        await expect(row.locator("button")).to_have_count(0)
        await screenshot(monitor, "monitor-watch-ended")
        # Dismissed by hand (it would leave by itself): the tile goes, the call stays.
        await tile.locator("header button.link").click()
        await expect(tile).to_have_count(0)
        await expect(row).to_contain_text("connected")
        await tablet.hangup(call_id)
        await expect(row).to_have_count(0)
    finally:
        await close_all(*peers)
