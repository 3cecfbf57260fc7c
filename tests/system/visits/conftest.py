"""Scheduled-visit tests: the standard seed plus facilities set up for visits, one shared SFU
worker for the package (the calls placed for visits), helpers to pick slots."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from core.domain import SeedFile
from tests.conftest import package_sfu_worker, redis_keeping_workers
from tests.seeds import ALWAYS_OPEN, standard_seed_data
from visitation.seed import apply_seed

sfu_worker = package_sfu_worker("visits-sfu")

RACERS = 50
FV1_EMAIL = "fv1@example.org"


def _facility(fid: str, tz: str, **visits: Any) -> dict[str, Any]:
    return {
        "id": fid,
        "name": f"Facility {fid}",
        "timezone": tz,
        "type": "prison",
        "rate_cents_per_minute": 10,
        "max_call_seconds": 1800,
        "calling_hours": ALWAYS_OPEN,
        "visits": visits,
    }


def visits_seed_data() -> dict[str, Any]:
    data = standard_seed_data()
    data["facilities"] += [
        # The protocol's defaults: 30 min slots, 12 h notice, 14 days ahead, 24 h cutoff.
        _facility("VIS", "America/Los_Angeles", mode="both"),
        _facility("APPR", "UTC", mode="scheduled", requires_approval=True, cancel_cutoff_hours=0),
        _facility("ONDEM", "UTC"),
        _facility("RACE", "UTC", mode="both", concurrent=3, max_per_week=100, min_notice_hours=0),
        # Calls only for due visits; 5 min slots bookable at once.
        _facility(
            "NOW",
            "UTC",
            mode="scheduled",
            slot_minutes=5,
            min_notice_hours=0,
            cancel_cutoff_hours=0,
        ),
    ]
    residents = [("RV1", "VIS"), ("RV2", "VIS"), ("RA1", "APPR"), ("RO1", "ONDEM"), ("RN1", "NOW")]
    residents += [(f"RR{i}", "RACE") for i in range(RACERS)]
    data["residents"] += [
        {"id": rid, "facility_id": fid, "name": f"Resident {rid}"} for rid, fid in residents
    ]
    families = ["FV1", "FV2", "FV3"] + [f"FR{i}" for i in range(RACERS)]
    data["families"] += [
        {"id": fid, "name": f"Family {fid}", "balance_cents": 5000, "verified": True}
        | ({"email": FV1_EMAIL} if fid == "FV1" else {})
        for fid in families
    ]
    contacts = [
        ("RV1", "FV1", "approved"),
        ("RV1", "FV2", "approved"),
        ("RV2", "FV1", "approved"),
        ("RV1", "FV3", "pending"),
        ("RA1", "FV1", "approved"),
        ("RO1", "FV1", "approved"),
        ("RN1", "FV1", "approved"),
    ] + [(f"RR{i}", f"FR{i}", "approved") for i in range(RACERS)]
    data["contacts"] += [{"resident_id": r, "family_id": f, "status": s} for r, f, s in contacts]
    data["staff"] += [
        {"id": "AV", "role": "admin", "facility_ids": ["VIS", "APPR", "NOW"]},
        {"id": "AR", "role": "admin", "facility_ids": ["RACE"]},
    ]
    return data


@pytest.fixture
async def redis(redis_url: str, sfu_worker: str) -> AsyncIterator[Redis]:
    """A clean database for each test, keeping the shared worker's registration (``sfu:*``)."""
    async with redis_keeping_workers(redis_url) as client:
        yield client


@pytest.fixture
async def seeded(redis: Redis) -> SeedFile:
    seed = SeedFile.model_validate(visits_seed_data())
    await apply_seed(redis, seed)
    return seed


def next_slot(after: float, minutes: int = 30) -> int:
    """The first grid slot start at or after ``after`` (facilities open all day)."""
    step = minutes * 60
    return int(math.ceil(after / step) * step)


def slot_in(hours: float, minutes: int = 30) -> int:
    return next_slot(time.time() + hours * 3600, minutes)
