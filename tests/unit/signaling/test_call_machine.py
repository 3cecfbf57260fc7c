"""The declared transition table (``signaling.call_machine``), checked as data: no Redis."""

from __future__ import annotations

from signaling.call_machine import (
    CALL_TIMERS,
    PLACED,
    RING_TIMEOUT,
    SETTLE,
    TRANSITIONS,
    CallEvent,
    move,
    render_markdown,
)
from signaling.call_state import LIVE, TERMINAL, CallState


def test_every_event_has_exactly_one_row() -> None:
    assert set(TRANSITIONS) == set(CallEvent)
    assert all(move(event).event is event for event in CallEvent)


def test_every_terminal_target_frees_both_parties() -> None:
    terminal = [m for m in TRANSITIONS.values() if m.target in TERMINAL]
    assert terminal, "some event must end a call"
    for m in terminal:
        assert m.releases == "both", m.event


def test_non_terminal_targets_keep_the_resident_busy() -> None:
    for m in TRANSITIONS.values():
        if m.target not in TERMINAL:
            assert m.releases in ("none", "family"), m.event


def test_no_move_leaves_a_terminal_state() -> None:
    for m in TRANSITIONS.values():
        assert not (m.sources & set(TERMINAL)), m.event
        assert m.sources, m.event


def test_ending_cancels_every_call_timer_and_arms_settlement() -> None:
    for m in TRANSITIONS.values():
        if m.target is CallState.ENDED:
            assert set(m.cancels) == set(CALL_TIMERS) and m.arms == (SETTLE,)


def test_a_timer_is_never_armed_and_cancelled_by_the_same_move() -> None:
    for m in TRANSITIONS.values():
        assert not set(m.cancels) & set(m.arms), m.event


def test_allows_matches_the_sources_for_every_state() -> None:
    for m in TRANSITIONS.values():
        for state in CallState:
            assert m.allows(state) is (state in m.sources)


def test_every_state_is_reachable_from_placement() -> None:
    reached = {PLACED}
    frontier = [PLACED]
    while frontier:
        state = frontier.pop()
        for m in TRANSITIONS.values():
            if m.allows(state) and m.target not in reached:
                reached.add(m.target)
                frontier.append(m.target)
    assert reached == set(CallState)
    assert PLACED in LIVE


def test_render_markdown_has_a_row_per_event_and_the_placement() -> None:
    lines = render_markdown().splitlines()
    header, rule, *rows = lines
    assert header.startswith("| event |") and set(rule) <= {"|", "-"}
    events = [row.split("|")[1].strip().strip("`") for row in rows]
    assert events == ["place", *(str(m.event) for m in TRANSITIONS.values())]
    assert len(set(events)) == len(events)
    place = rows[0].split("|")
    assert place[3].strip() == f"`{PLACED}`" and place[5].strip() == f"`{RING_TIMEOUT}`"
    for row, m in zip(rows[1:], TRANSITIONS.values(), strict=True):
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[2] == f"`{m.target}`"
        assert cells[5] == (m.releases if m.releases != "none" else "—")
        assert all(f"`{s}`" in cells[1] for s in m.sources)
