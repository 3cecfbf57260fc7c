"""Seed data for tests: one family per way a call can be refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from visitation.domain import SeedFile

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def closed_day() -> str:
    """A weekday three days from today (UTC): never today, never overnight from yesterday."""
    return DAYS[(datetime.now(UTC) + timedelta(days=3)).weekday()]


def standard_seed_data() -> dict[str, Any]:
    always = [{"days": "mon-sun", "start": "00:00", "end": "24:00"}]
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
            }
            for fid, balance, video, verified, blocks in families
        ],
        "contacts": [
            {"resident_id": r, "family_id": f, "status": s, "privileged": p}
            for r, f, s, p in contacts
        ],
        "staff": [
            {"id": "S1", "role": "monitor", "facility_ids": ["SQ"]},
            {"id": "S2", "role": "monitor", "facility_ids": ["CLOSED"]},
            {"id": "I1", "role": "investigator", "facility_ids": ["*"]},
        ],
    }


def standard_seed() -> SeedFile:
    return SeedFile.model_validate(standard_seed_data())
