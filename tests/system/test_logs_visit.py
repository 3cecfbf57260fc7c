"""Issue 34's done-when: a whole visit on ``visitation serve`` at default settings (pages opened
by ``?token=`` in Chromium), then the node's and its workers' log (serve's output, which the
SFU workers and transcriber share) has no token, no SDP, no name and no balance — and has the
call's placed, connected and ended lines with its ``call_id``."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from loadtest.processes import ServeProcess
from tests.seeds import short_stay_facility
from tests.system.test_seed import run_cli
from tests.system.test_shutdown import serves  # noqa: F401 - the fixture
from tests.system.web.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE, TABLET, video_playing
from tests.waiting import eventually

RESIDENT, FAMILY = "Quillon Marchetti", "Ysolde Brannigan"
BALANCE_CENTS = 98765
SEED = {
    "facilities": [short_stay_facility("LOGF", "Larkspur Facility")],
    "residents": [{"id": "RLOG", "facility_id": "LOGF", "name": RESIDENT}],
    "families": [{"id": "FLOG", "name": FAMILY, "balance_cents": BALANCE_CENTS, "verified": True}],
    "contacts": [{"resident_id": "RLOG", "family_id": "FLOG", "status": "approved"}],
}


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


def token(data_dir: Path, role: str, subject: str) -> str:
    issued = run_cli("token", role, subject, "--data-dir", str(data_dir))
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip().splitlines()[-1]


async def open_page(browser: Browser, url: str, role: str, viewport: object) -> Page:
    context = await browser.new_context(
        viewport=viewport,  # type: ignore[arg-type]
        permissions=["camera", "microphone"] if role in ("tablet", "family") else [],
    )
    page = await context.new_page()
    page.set_default_timeout(20_000)
    await page.goto(url)
    return page


def dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


@pytest.mark.timeout(240)
async def test_a_visit_at_default_settings_logs_no_secret_and_the_call(
    serves: list[ServeProcess],  # noqa: F811
    browser: Browser,
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "var"
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED))
    seeded = run_cli("seed", str(seed), "--data-dir", str(data_dir))
    assert seeded.returncode == 0, seeded.stderr
    tokens = [token(data_dir, "tablet", "RLOG"), token(data_dir, "family", "FLOG")]
    serve = ServeProcess(data_dir)  # default settings: INFO, text, workers and transcriber
    serves.append(serve)
    serve.wait_ready(90)

    family = await open_page(browser, f"{serve.url}/family?token={tokens[1]}", "family", PHONE)
    await expect(family.locator("#balance")).to_have_text(f"${dollars(BALANCE_CENTS)}")
    tablet = await open_page(browser, f"{serve.url}/tablet?token={tokens[0]}", "tablet", TABLET)
    await tablet.click('#contacts li[data-contact="FLOG"] button')
    await expect(family.locator("#incoming")).to_be_visible()
    await family.click("#accept")
    for page in (family, tablet):
        await video_playing(page, "#remote-video")
    await tablet.click("#hangup")
    await expect(family.locator("#ended")).to_be_visible()
    after = await family.locator("#end-balance").inner_text()
    after_cents = int(re.sub(r"\D", "", after))
    assert after_cents <= BALANCE_CENTS  # a short call may be free (grace seconds)
    await tablet.context.close()
    await family.context.close()

    def call_lines() -> dict[str, str]:
        found = {}
        for line in serve.output.splitlines():
            for event in ("call placed", "call connected", "call ended"):
                if f"signaling.calls: {event}" in line:
                    found[event] = line
        return found

    # The ended line may follow the page's "ended" screen by a moment.
    await eventually(
        lambda: len(call_lines()) == 3,
        lambda: f"the call's three lines in:\n{serve.output[-4000:]}",
        within_s=20,
    )
    log = serve.output
    for secret in tokens:
        assert secret not in log
        assert secret.split(".")[1] not in log and secret.split(".")[2] not in log
    assert "?token=" not in log and "token=ey" not in log
    assert "v=0" not in log and "a=fingerprint" not in log and "a=ice-pwd" not in log
    for name in (RESIDENT, FAMILY, *RESIDENT.split(), *FAMILY.split()):
        assert name not in log, name
    for cents in (BALANCE_CENTS, after_cents):
        assert str(cents) not in log and dollars(cents) not in log, cents
    assert "GET /family 200" in log and "GET /tablet 200" in log  # the access log is on

    lines = call_lines()
    assert set(lines) == {"call placed", "call connected", "call ended"}, log[-4000:]
    placed = re.search(r"call_id=(\S+)", lines["call placed"])
    assert placed, lines
    call_id = placed.group(1)
    for event, line in lines.items():
        assert f"call_id={call_id}" in line, (event, line)
    assert "reason=hangup" in lines["call ended"] and "duration_s=" in lines["call ended"]
