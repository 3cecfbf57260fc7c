"""``parseDeposit`` (web/static/js/family-money.js) run in headless Chromium, alone.

The module it lives in wires the deposit screen when imported (it needs the page's DOM and the
server), so the function's own source is taken from the file and evaluated in a blank page:
the exact code the family page runs, in a real browser engine, with no server and no network.
Checked against a Python model of the rule on thousands of inputs, so float rounding of
amounts like 12.35 (x 100) can never charge a cent more or less than typed."""

from __future__ import annotations

import random
import re
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

SOURCE = Path(__file__).resolve().parents[3] / "web" / "static" / "js" / "family-money.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AMOUNT = re.compile(r"^\d{1,6}(\.\d{1,2})?$")


def function_source() -> str:
    text = SOURCE.read_text()
    found = re.search(r"^export (function parseDeposit\(text\) \{\n.*?^\})$", text, re.M | re.S)
    assert found, f"parseDeposit not found in {SOURCE}"
    return found.group(1)


def model(text: str) -> dict[str, Any]:
    """The rule (PROTOCOL deposits: $2.00 to $100.00, dollars with up to 2 decimals)."""
    value = text.strip(" \t")
    value = value[1:] if value.startswith("$") else value
    if not AMOUNT.match(value):
        return {"error": "Enter an amount in dollars, like 20 or 12.50."}
    cents = int(Decimal(value) * 100)
    if cents < 200:
        return {"error": "The minimum deposit is $2.00."}
    if cents > 10000:
        return {"error": "The maximum deposit is $100.00."}
    return {"cents": cents}


def inputs(count: int, seed: int = 30) -> list[str]:
    rng = random.Random(seed)
    fixed = ["20", "$12.50", " 12.5 ", "2", "1.99", "2.00", "100", "100.00", "100.01", "0.07",
             "", "$", "abc", "12.345", "1e3", "-5", "5.", ".5", "$$5", "1,000", "0002.10",
             "12.35", "99.99", "1234567", "\t$7.77\t"]  # fmt: skip
    made = []
    for _ in range(count):
        whole = str(rng.randrange(0, 10 ** rng.randrange(1, 5)))
        cents = rng.choice(["", "." + str(rng.randrange(10)), f".{rng.randrange(100):02d}"])
        made.append(rng.choice(["", "$", " "]) + whole + cents + rng.choice(["", " "]))
    return fixed + made


async def test_parse_deposit_matches_the_rule_for_every_input() -> None:
    cases = inputs(3000)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = await browser.new_page()
            results = await page.evaluate(
                f"(cases) => {{ {function_source()}\n return cases.map(parseDeposit); }}", cases
            )
        finally:
            await browser.close()
    mismatches = [(c, r, model(c)) for c, r in zip(cases, results, strict=True) if r != model(c)]
    assert not mismatches, mismatches[:10]
    by_text = dict(zip(cases, results, strict=True))
    assert by_text["$12.50"] == {"cents": 1250} and by_text["12.35"] == {"cents": 1235}
    assert by_text["2.00"] == {"cents": 200} and "minimum" in by_text["1.99"]["error"]
    assert by_text["100.00"] == {"cents": 10000} and "maximum" in by_text["100.01"]["error"]
