"""Seed data for tests: one family per way a call can be refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from core.domain import SeedFile

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALWAYS_OPEN: list[dict[str, str]] = [{"days": "mon-sun", "start": "00:00", "end": "24:00"}]


#: Who of the standard seed signs in with a password (and families with an e-mail).
SIGN_IN: dict[str, dict[str, str]] = {
    "F1": {"email": "family.one@example.org", "password": "f1-sign-in-pass"},
    "F2": {"email": "family.two@example.org", "password": "f2-sign-in-pass"},
    "S1": {"password": "s1-monitor-pass"},
    "A1": {"password": "a1-admin-pass"},
}


def closed_day() -> str:
    """A weekday three days from today (UTC): never today, never overnight from yesterday."""
    return DAYS[(datetime.now(UTC) + timedelta(days=3)).weekday()]


def short_stay_facility(facility_id: str = "SHORT", name: str = "Short Stay") -> dict[str, Any]:
    """A prison open around the clock at 20 cents a minute, calls at most 70 s: a 25-cent
    balance buys exactly one minute (the balance caps the call, under the 70 s maximum); a
    well-funded family gets the facility's 70 s (charged as two started minutes)."""
    return {
        "id": facility_id,
        "name": name,
        "timezone": "UTC",
        "type": "prison",
        "rate_cents_per_minute": 20,
        "max_call_seconds": 70,
        "calling_hours": ALWAYS_OPEN,
    }


def short_seed_data() -> dict[str, Any]:
    """SHORT: RB-FB capped by FB's balance (one minute), RF-FF by the facility (70 s)."""
    return {
        "facilities": [short_stay_facility()],
        "residents": [
            {"id": "RB", "facility_id": "SHORT", "name": "Bal Capped"},
            {"id": "RF", "facility_id": "SHORT", "name": "Fac Capped"},
        ],
        "families": [
            {"id": "FB", "name": "Balance Family", "balance_cents": 25, "verified": True},
            {"id": "FF", "name": "Facility Family", "balance_cents": 1000, "verified": True},
        ],
        "contacts": [
            {"resident_id": "RB", "family_id": "FB", "status": "approved"},
            {"resident_id": "RF", "family_id": "FF", "status": "approved"},
        ],
    }


def standard_seed_data() -> dict[str, Any]:
    always = ALWAYS_OPEN
    families = [
        ("F1", 1000, True, True, []),
        ("F2", 1000, True, True, []),
        ("FUNVERIFIED", 1000, True, False, []),
        ("FNOVIDEO", 1000, False, True, []),
        ("FBLOCKS", 1000, True, True, ["SQ"]),
        ("FBLOCKSALL", 1000, True, True, ["all"]),
        ("FPOOR", 15, True, True, []),
        ("FPENDING", 1000, True, True, []),
        ("FDENIED", 1000, True, True, []),
        ("FATTY", 1000, True, True, []),
    ]
    contacts = [
        ("R1", "F1", "approved", False),
        ("R2", "F2", "approved", False),
        ("R2", "F1", "approved", False),
        ("R1", "F2", "approved", False),
        ("R1", "FUNVERIFIED", "approved", False),
        ("R1", "FNOVIDEO", "approved", False),
        ("R1", "FBLOCKS", "approved", False),
        ("R1", "FBLOCKSALL", "approved", False),
        ("R1", "FPOOR", "approved", False),
        ("R1", "FPENDING", "pending", False),
        ("R1", "FDENIED", "denied", False),
        ("R1", "FATTY", "approved", True),
        ("R3", "F1", "approved", False),
    ]
    return {
        "facilities": [
            {
                "id": "SQ",
                "name": "San Quentin",
                "timezone": "America/Los_Angeles",
                "type": "prison",
                "rate_cents_per_minute": 16,
                "max_call_seconds": 1800,
                "calling_hours": always,
            },
            {
                "id": "CLOSED",
                "name": "Closed Today",
                "timezone": "UTC",
                "type": "jail_small",
                "rate_cents_per_minute": 21,
                "max_call_seconds": 900,
                "calling_hours": [{"days": closed_day(), "start": "08:00", "end": "20:00"}],
            },
        ],
        "residents": [
            {"id": "R1", "facility_id": "SQ", "name": "James Doe"},
            {"id": "R2", "facility_id": "SQ", "name": "John Roe"},
            {"id": "R3", "facility_id": "CLOSED", "name": "Jim Poe"},
        ],
        "families": [
            {
                "id": fid,
                "name": f"Family {fid}",
                "balance_cents": balance,
                "allow_video_calls": video,
                "verified": verified,
                "blocks": blocks,
                **SIGN_IN.get(fid, {}),
            }
            for fid, balance, video, verified, blocks in families
        ],
        "contacts": [
            {"resident_id": r, "family_id": f, "status": s, "privileged": p}
            for r, f, s, p in contacts
        ],
        "staff": [
            {"id": "S1", "role": "monitor", "facility_ids": ["SQ"], **SIGN_IN["S1"]},
            {"id": "S2", "role": "monitor", "facility_ids": ["CLOSED"]},
            {"id": "I1", "role": "investigator", "facility_ids": ["*"]},
            {"id": "A1", "role": "admin", "facility_ids": ["*"], **SIGN_IN["A1"]},
            {"id": "A2", "role": "admin", "facility_ids": ["CLOSED"]},
        ],
    }


def standard_seed() -> SeedFile:
    return SeedFile.model_validate(standard_seed_data())
