"""The pricing-plan tests' seed: Montana (one free 10-minute visit a week, then 25¢/min) and
Connecticut (the agency pays, 90 minutes a day per resident), open around the clock."""

from __future__ import annotations

from typing import Any

from tests.seeds import ALWAYS_OPEN

MONTANA_TZ, CONNECTICUT_TZ = "America/Denver", "America/New_York"


def plans_seed() -> dict[str, Any]:
    def facility(
        fid: str, name: str, tz: str, rate: int, pricing: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "id": fid, "name": name, "timezone": tz, "type": "prison",
            "rate_cents_per_minute": rate, "max_call_seconds": 1800,
            "calling_hours": ALWAYS_OPEN, "pricing": pricing,
        }  # fmt: skip

    return {
        "facilities": [
            facility(
                "MT",
                "Montana State Prison",
                MONTANA_TZ,
                25,
                {"payer": "family", "free_minutes": 10, "free_period": "week"},
            ),
            facility(
                "CT",
                "Connecticut CI",
                CONNECTICUT_TZ,
                0,
                {"payer": "agency", "max_minutes_per_day": 90},
            ),
        ],
        "residents": [
            {"id": "RM", "facility_id": "MT", "name": "Monty Resident"},
            {"id": "RC", "facility_id": "CT", "name": "Conn Resident"},
        ],
        "families": [
            {"id": "FM", "name": "Montana Family", "balance_cents": 1000, "verified": True},
            {"id": "FC", "name": "Connecticut Family", "balance_cents": 0, "verified": True},
        ],
        "contacts": [
            {"resident_id": "RM", "family_id": "FM", "status": "approved"},
            {"resident_id": "RC", "family_id": "FC", "status": "approved"},
        ],
        "staff": [{"id": "A1", "role": "admin", "facility_ids": ["*"]}],
    }
