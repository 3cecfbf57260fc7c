"""Monthly statements (PROTOCOL v1.2, FCC: deposits, each call with its duration, the balance):
JSON, CSV and a PDF that a PDF reader (pypdf) reads back with the same lines and totals as the
JSON, which are the ledger's. A real node, a real Redis; the month's money is made by the
node's own API (deposits) and biller (calls settled with recorded connected times)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from redis.asyncio import Redis

from billing_hooks.api.statement import dollars, parse_month
from billing_hooks.api.statement_pdf import minutes, when
from billing_hooks.metering.biller import CallCharge
from tests.conftest import Node, NodeFactory, http_as
from tests.system.billing.plans_data import plans_seed
from visitation.seed import apply_seed, parse_seed

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def next_month() -> str:
    now = datetime.now(UTC)
    return f"{now.year + now.month // 12}-{now.month % 12 + 1:02d}"


@pytest.fixture
async def node(start_node: NodeFactory, redis: Redis) -> Node:
    await apply_seed(redis, parse_seed(json.dumps(plans_seed())))
    handle = await start_node(payment_processor="fake")
    biller = handle.node.billing.biller
    now = time.time()
    # A deposit through the API; three calls of Montana's plan: the first of the week (12 min:
    # 10 free), a dropped one (2 min 5 s: its last partial minute credited), one under 10 s.
    async with http_as(handle.url, _tokens(handle), "family", "FM") as http:
        async with http.post(
            "/api/v1/account/deposits",
            json={"amount_cents": 500},
            headers={"Idempotency-Key": "d1"},
        ) as response:
            assert response.status == 200, await response.text()
    for call_id, seconds, reason in [
        ("s1", 720, "hangup"),
        ("s2", 125, "connection_lost"),
        ("s3", 5, "hangup"),
    ]:
        await biller.authorize(call_id, "FM", 25, 1800, resident_id="RM", facility_id="MT")
        await biller.settle(CallCharge(
            call_id, "FM", seconds, reason, 25, facility_id="MT",
            facility_name="Montana State Prison", resident_id="RM",
            resident_name="Monty Resident", started_at=now - seconds - 20,
            connected_at=now - seconds, ended_at=now,
        ))  # fmt: skip
    await handle.node.ledger.credit("FM", 75, "credit:goodwill")
    await handle.node.ledger.refund("FM", 100, "refund:requested")
    return handle


def _tokens(handle: Node) -> Any:
    return handle.node.tokens


async def get(node: Node, path: str, **headers: str) -> tuple[int, str, bytes]:
    async with http_as(node.url, _tokens(node), "family", "FM") as http:
        async with http.get(path, headers=headers) as response:
            return response.status, response.content_type, await response.read()


async def test_the_month_in_json_csv_and_pdf_with_the_ledgers_totals(node: Node) -> None:
    month = this_month()
    status, kind, raw = await get(node, f"/api/v1/account/statement?month={month}")
    assert (status, kind) == (200, "application/json")
    st = json.loads(raw)
    ledger = await node.node.ledger.balance("FM")
    totals = st["totals"]
    # The ledger's totals, to the cent (everything of this account happened this month).
    assert (st["opening_balance_cents"], st["closing_balance_cents"]) == (0, ledger.balance_cents)
    assert totals["deposits_cents"] == ledger.deposits_cents == 1000 + 500
    assert totals["charges_cents"] == ledger.charges_cents == 50 + 50
    assert (totals["refunds_cents"], totals["credits_cents"]) == (100, 75)
    assert st["closing_balance_cents"] == (
        st["opening_balance_cents"] + totals["deposits_cents"] + totals["credits_cents"]
        - totals["charges_cents"] - totals["refunds_cents"]
    )  # fmt: skip
    assert [d["amount_cents"] for d in st["deposits"]] == [1000, 500]
    rows = [
        (c["call_id"], c["duration_s"], c["agency_seconds"], c["charged_cents"])
        for c in st["calls"]
    ]
    assert rows == [("s1", 720, 600, 50), ("s2", 125, 0, 50), ("s3", 5, 0, 0)]
    assert sum(c["charged_cents"] for c in st["calls"]) == totals["charges_cents"]
    first = st["calls"][0]
    assert first["resident"] == {"id": "RM", "name": "Monty Resident"}
    assert first["facility"] == {"id": "MT", "name": "Montana State Prison"}
    assert first["agency_minutes"] == 10.0 and totals["agency_seconds"] == 600
    assert [r["amount_cents"] for r in st["refunds"]] == [100]
    assert [c["amount_cents"] for c in st["credits"]] == [75]

    # CSV: the same lines, opening and closing rows around them.
    status, kind, raw = await get(node, f"/api/v1/account/statement?month={month}&format=csv")
    assert (status, kind) == (200, "text/csv")
    table = list(csv.DictReader(io.StringIO(raw.decode())))
    assert table[0]["type"] == "opening_balance" and table[-1]["type"] == "closing_balance"
    assert int(table[-1]["balance_cents"]) == st["closing_balance_cents"]
    body = table[1:-1]
    assert sorted(r["type"] for r in body) == sorted(
        ["deposit"] * 2 + ["call"] * 3 + ["refund", "credit"]
    )
    amounts = sum(int(r["amount_cents"]) for r in body)
    assert amounts == st["closing_balance_cents"] - st["opening_balance_cents"]
    calls = [r for r in body if r["type"] == "call"]
    assert [(int(r["duration_s"]), int(r["agency_seconds"])) for r in calls] == [
        (720, 600), (125, 0), (5, 0),
    ]  # fmt: skip

    # PDF (by Accept), read back with a PDF reader: every line and total of the JSON is in it.
    status, kind, raw = await get(
        node, f"/api/v1/account/statement?month={month}", Accept="application/pdf"
    )
    assert (status, kind) == (200, "application/pdf") and raw.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(raw))
    # One run of words: the reader gives each table cell on a line of its own.
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert f"statement — {month}" in text and "Montana Family" in text
    for call in st["calls"]:
        line = " ".join(
            [when(call["date"]), call["resident"]["name"], call["facility"]["name"],
             minutes(call["duration_s"]), minutes(call["agency_seconds"]),
             dollars(call["charged_cents"])]
        )  # fmt: skip
        assert line in text, (line, text)
    for deposit in st["deposits"]:
        assert (
            f"{when(deposit['date'])} {deposit['description']} {dollars(deposit['amount_cents'])}"
            in text
        )
    assert f"Refund {dollars(-100)}" in text and f"Credit {dollars(75)}" in text
    summary = " ".join(
        dollars(v) for v in [
            st["opening_balance_cents"], totals["deposits_cents"], totals["charges_cents"],
            totals["refunds_cents"], totals["credits_cents"], st["closing_balance_cents"],
        ]
    )  # fmt: skip
    assert summary in text, (summary, text)
    grand = f"3 {minutes(totals['duration_s'])} {minutes(600)} {dollars(100)} " + dollars(
        st["closing_balance_cents"]
    )
    assert grand in text, (grand, text)
    _screenshot(raw)


def _screenshot(pdf: bytes) -> None:
    """The PDF's first page as a PNG in test-artifacts/ (poppler's pdftoppm)."""
    pdftoppm = shutil.which("pdftoppm")
    assert pdftoppm is not None, "pdftoppm (Debian poppler-utils) is missing: make speechtools"
    ARTIFACTS.mkdir(exist_ok=True)
    source = ARTIFACTS / "family-statement.pdf"
    source.write_bytes(pdf)
    try:
        subprocess.run(
            [pdftoppm, "-png", "-r", "90", "-f", "1", "-l", "1", "-singlefile", str(source),
             str(ARTIFACTS / "family-statement")],
            check=True, timeout=60,
        )  # fmt: skip
    finally:
        source.unlink(missing_ok=True)
    assert (ARTIFACTS / "family-statement.png").stat().st_size > 1000


async def test_the_next_month_opens_with_this_months_closing_balance(node: Node) -> None:
    status, _, raw = await get(node, f"/api/v1/account/statement?month={this_month()}")
    closing = json.loads(raw)["closing_balance_cents"]
    status, _, raw = await get(node, f"/api/v1/account/statement?month={next_month()}")
    later = json.loads(raw)
    assert status == 200
    assert later["opening_balance_cents"] == later["closing_balance_cents"] == closing
    assert later["calls"] == later["deposits"] == [] and later["totals"]["charges_cents"] == 0
    status, _, raw = await get(node, "/api/v1/account/statement/months")
    assert json.loads(raw) == {"months": [this_month()]}


@pytest.mark.parametrize(
    "query",
    ["month=2026-13", "month=26-01", "month=", "month=2026-12&format=xml",
     "month=2026-12&tz=Mars/Olympus"],
)  # fmt: skip
async def test_a_bad_month_format_or_zone_is_a_clear_error(node: Node, query: str) -> None:
    status, kind, raw = await get(node, f"/api/v1/account/statement?{query}")
    assert (status, kind) == (422, "application/json")
    assert json.loads(raw)["error"]["code"] == "invalid_request"


def test_months_are_local() -> None:
    start, end, _ = parse_month("2026-12", "America/Denver")
    assert datetime.fromtimestamp(start, UTC).isoformat() == "2026-12-01T07:00:00+00:00"
    assert end - start == 31 * 86400
