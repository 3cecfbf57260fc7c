"""A family's monthly statement (FCC: each deposit, each charged call with its duration, the
balance; SPEC "Who pays": the agency's part of each call too), from the ledger and the settled
calls. Integer cents throughout; ``closing = opening + deposits + credits - charges - refunds``.

A month runs from the first instant of its first day to that of the next month, in the
statement's time zone (UTC unless asked). An entry belongs to the month it was written in; a
call to the month it was settled in (its charge entry's instant), so the call lines always add
up to the month's charges in the ledger.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from billing_hooks.money.ledger import LedgerEntry

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
DEPOSIT_KINDS = ("deposit", "autopay")


class StatementError(ValueError):
    """A month or a time zone that is not one."""


def parse_month(month: str, timezone: str = "UTC") -> tuple[float, float, ZoneInfo]:
    """``YYYY-MM`` as ``[start, end)`` Unix seconds in ``timezone``."""
    match = _MONTH.match(month or "")
    if not match or not 2000 <= int(match.group(1)) <= 2200:
        raise StatementError(f"month must be YYYY-MM (e.g. 2026-12), got {month!r}")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise StatementError(f"unknown time zone {timezone!r}") from None
    year, mon = int(match.group(1)), int(match.group(2))
    start = datetime(year, mon, 1, tzinfo=zone)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=zone)
    return start.timestamp(), end.timestamp(), zone


def month_of(at: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(at, zone).strftime("%Y-%m")


def months(entries: list[LedgerEntry], zone: ZoneInfo) -> list[str]:
    """The months with any ledger entry, newest first."""
    return sorted({month_of(e.at, zone) for e in entries if e.seq}, reverse=True)


def dollars(cents: int) -> str:
    """Integer cents as dollars, exactly: ``-1234`` -> ``-$12.34``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) // 100}.{abs(cents) % 100:02d}"


@dataclass
class Statement:
    family_id: str
    name: str
    month: str
    timezone: str
    start: float
    end: float
    opening_balance_cents: int
    closing_balance_cents: int
    deposits: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    credits: list[dict[str, Any]] = field(default_factory=list)
    charges_cents: int = 0  # the ledger's charges of the month

    @property
    def totals(self) -> dict[str, int]:
        return {
            "deposits_cents": sum(d["amount_cents"] for d in self.deposits),
            "charges_cents": self.charges_cents,
            "refunds_cents": sum(r["amount_cents"] for r in self.refunds),
            "credits_cents": sum(c["amount_cents"] for c in self.credits),
            "agency_seconds": sum(c["agency_seconds"] for c in self.calls),
            "duration_s": sum(c["duration_s"] for c in self.calls),
            "calls": len(self.calls),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "family_id": self.family_id,
            "name": self.name,
            "month": self.month,
            "timezone": self.timezone,
            "from": self.start,
            "to": self.end,
            "opening_balance_cents": self.opening_balance_cents,
            "closing_balance_cents": self.closing_balance_cents,
            "deposits": self.deposits,
            "calls": self.calls,
            "refunds": self.refunds,
            "credits": self.credits,
            "totals": self.totals,
        }

    def lines(self) -> list[dict[str, Any]]:
        """Every line in time order, as the CSV and the PDF list them."""
        rows = [{"type": "deposit", **d} for d in self.deposits]
        rows += [{"type": "call", **c} for c in self.calls]
        rows += [{"type": "refund", **r} for r in self.refunds]
        rows += [{"type": "credit", **c} for c in self.credits]
        return sorted(rows, key=lambda row: (row["at"], row["type"]))

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(
            ["type", "date", "description", "resident", "facility", "duration_s",
             "agency_seconds", "amount_cents", "balance_cents"]
        )  # fmt: skip
        writer.writerow(["opening_balance", self.month, "", "", "", "", "", "",
                         self.opening_balance_cents])  # fmt: skip
        for row in self.lines():
            is_call = row["type"] == "call"
            writer.writerow(
                [
                    row["type"],
                    row["date"],
                    row["description"],
                    row["resident"]["name"] if is_call else "",
                    row["facility"]["name"] if is_call else "",
                    row["duration_s"] if is_call else "",
                    row["agency_seconds"] if is_call else "",
                    -row["charged_cents"] if is_call else _signed(row),
                    row.get("balance_cents", ""),
                ]
            )
        writer.writerow(["closing_balance", self.month, "", "", "", "", "", "",
                         self.closing_balance_cents])  # fmt: skip
        return out.getvalue()


def _signed(row: dict[str, Any]) -> int:
    amount = int(row["amount_cents"])
    return -amount if row["type"] == "refund" else amount


def _local(at: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(at, zone).isoformat(timespec="seconds")


def build(
    family_id: str,
    name: str,
    month: str,
    timezone: str,
    entries: list[LedgerEntry],
    calls: list[dict[str, Any]],
) -> Statement:
    """The statement of ``month`` from every ledger entry of the account (oldest first) and its
    settled calls (any order)."""
    start, end, zone = parse_month(month, timezone)
    before = [e for e in entries if e.seq and e.at < start]
    inside = [e for e in entries if e.seq and start <= e.at < end]
    opening = before[-1].balance_cents if before else 0
    closing = inside[-1].balance_cents if inside else opening
    st = Statement(family_id, name, month, timezone, start, end, opening, closing)
    for e in inside:
        line = {"at": e.at, "date": _local(e.at, zone), "amount_cents": e.amount_cents,
                "balance_cents": e.balance_cents, "ref": e.ref}  # fmt: skip
        if e.kind in DEPOSIT_KINDS:
            what = "AutoPay" if e.kind == "autopay" else "Deposit"
            st.deposits.append(line | {"kind": e.kind, "description": what})
        elif e.kind == "refund":
            what = "Refund of the balance (account closed)" if e.meta.get("close") else "Refund"
            st.refunds.append(line | {"description": what})
        elif e.kind == "credit":
            st.credits.append(line | {"description": "Credit"})
        elif e.kind == "charge":
            st.charges_cents += e.amount_cents
    balances = {e.meta.get("call_id"): e.balance_cents for e in inside if e.kind == "charge"}
    for record in calls:
        settled = float(record.get("settled_at") or 0)
        if not start <= settled < end:
            continue
        began = float(record.get("connected_at") or record.get("started_at") or settled)
        resident = record.get("resident") or {}
        facility = record.get("facility") or {}
        resident_name = resident.get("name") or resident.get("id") or "a resident"
        line = {
            "call_id": record["call_id"],
            "at": settled,
            "date": _local(began, zone),
            "description": f"Call with {resident_name}",
            "resident": {"id": resident.get("id"), "name": resident_name},
            "facility": {
                "id": facility.get("id") or record.get("facility_id"),
                "name": facility.get("name") or record.get("facility_id") or "",
            },
            "duration_s": int(record.get("duration_s") or 0),
            "agency_seconds": int(record.get("agency_seconds") or 0),
            "agency_minutes": round(int(record.get("agency_seconds") or 0) / 60, 1),
            "charged_cents": int(record.get("charged_cents") or 0),
        }
        if record["call_id"] in balances:
            line["balance_cents"] = balances[record["call_id"]]
        st.calls.append(line)
    st.calls.sort(key=lambda c: c["at"])
    return st
