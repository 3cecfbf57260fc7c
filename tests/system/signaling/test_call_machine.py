"""The declared transition table is what CallStore applies: every (state, event) pair on the
real Redis moves as the table says, or is refused and changes nothing (issue 30)."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from signaling.call_machine import TRANSITIONS, CallEvent, move, render_markdown
from signaling.call_state import CallRecord, CallState, CallStore
from signaling.timers import TIMERS_KEY, timer_member

DOCS = Path(__file__).resolve().parents[3] / "docs" / "architecture.md"
DUE = 4_000_000_000.0


def record_in(state: CallState) -> CallRecord:
    return CallRecord(
        call_id=uuid.uuid4().hex,
        state=state,
        facility_id="FAC",
        facility_name="Facility",
        resident_id=f"R-{uuid.uuid4().hex[:6]}",
        resident_name="Resident",
        family_id=f"F-{uuid.uuid4().hex[:6]}",
        family_name="Family",
        privileged=False,
        rate_cents_per_minute=21,
        max_call_seconds=1800,
        created_at=1.0,
    )


async def stored(store: CallStore, redis: Redis, state: CallState) -> CallRecord:
    """A call stored in ``state``, both parties busy, its ring timer armed."""
    record = record_in(CallState.RINGING)
    assert await store.create(record, ring_timeout_s=45)
    await redis.hset(f"call:{record.call_id}", "state", state.value)
    record.state = state
    return record


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(CallState, CallEvent)), ids=lambda v: str(v)
)
async def test_every_state_and_event(redis: Redis, state: CallState, event: CallEvent) -> None:
    store = CallStore(redis)
    record = await stored(store, redis, state)
    row = move(event)
    due = {kind: DUE for kind in row.arms}
    before = await redis.hgetall(f"call:{record.call_id}")
    result = await store.transition(record, row, set_fields={"end_reason": "x"}, due=due)
    after = await redis.hgetall(f"call:{record.call_id}")
    timers = {t.decode() for t in await redis.zrange(TIMERS_KEY, 0, -1)}
    busy = [
        await redis.get(f"busy:resident:{record.resident_id}"),
        await redis.get(f"busy:family:{record.family_id}"),
    ]
    assert result.previous == state
    if state not in row.sources:
        assert not result.applied
        assert after == before  # refused: nothing changed
        assert timer_member("ring_timeout", record.call_id) in timers
        assert busy == [record.call_id.encode()] * 2
        return
    assert result.applied
    assert after[b"state"] == row.target.value.encode()
    assert after[b"end_reason"] == b"x"
    for kind in row.cancels:
        assert timer_member(kind, record.call_id) not in timers
    for kind in row.arms:
        assert await redis.zscore(TIMERS_KEY, timer_member(kind, record.call_id)) == DUE * 1000
    freed = {"both": [None, None], "family": [record.call_id.encode(), None], "none": None}
    assert busy == (freed[row.releases] or [record.call_id.encode()] * 2)


async def test_a_row_needs_a_due_time_for_each_timer_it_arms_and_no_other(redis: Redis) -> None:
    store = CallStore(redis)
    record = await stored(store, redis, CallState.RINGING)
    with pytest.raises(ValueError, match="arms"):
        await store.transition(record, move(CallEvent.ACCEPT))
    with pytest.raises(ValueError, match="arms"):
        await store.transition(record, move(CallEvent.CANCEL), due={"warning": DUE})
    assert (await store.get(record.call_id)) == record  # nothing applied


def test_every_event_has_one_row_and_the_docs_show_the_table() -> None:
    assert set(TRANSITIONS) == set(CallEvent)
    assert render_markdown() in DOCS.read_text(encoding="utf-8"), (
        "docs/architecture.md's transition table is stale: paste signaling.call_machine."
        "render_markdown() there"
    )


def test_no_transition_outside_the_table() -> None:
    """Every transition goes through a row: no module passes states of its own."""
    root = Path(__file__).resolve().parents[3]
    for path in [*root.glob("signaling/*.py"), *root.glob("visitation/*.py")]:
        source = path.read_text(encoding="utf-8")
        assert "allowed_from=" not in source, path
        assert ".transition(" not in source or path.name == "calls.py", path


def test_no_object_fills_another_objects_hook_lists() -> None:
    root = Path(__file__).resolve().parents[3]
    offenders = []
    for package in (
        "signaling",
        "visitation",
        "billing_hooks",
        "recorder",
        "media",
        "transcripts",
        "push",
        "visits",
        "accounts",
    ):
        for path in (root / package).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            for needle in (
                "_hooks.append(",
                "_hooks.insert(",
                "calls.settle =",
                "calls.authorize =",
            ):
                if needle in source:
                    offenders.append(f"{path.relative_to(root)}: {needle}")
    assert offenders == []
