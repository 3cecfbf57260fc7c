"""The call's state machine, declared: every transition a call can make, in one table.

Each row says, for one event, the states it may leave from, the state it moves to, the durable
timers it cancels and arms, and whose "busy" slot it frees. :meth:`CallStore.transition
<signaling.call_state.CallStore.transition>` takes a row and applies it in one Lua run (state
checked and written, timers moved, busy slots freed, all at once), so no transition exists
outside this table; :func:`render_markdown` writes it into docs/architecture.md.

The table encodes SPEC "Call rules" 1-2 and PROTOCOL.md v1.1's hidden reject: a family's reject
moves the call to ``declined`` (the family is free at once) while the tablet rings on until the
ring timeout, which then shows it ``unanswered``, exactly like a call nobody answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Literal

from signaling.call_state import CallState

# The call's durable timers (signaling.timers), by kind.
RING_TIMEOUT: Final = "ring_timeout"
CONNECT_TIMEOUT: Final = "connect_timeout"
WARNING: Final = "warning"
TIME_LIMIT: Final = "time_limit"
SETTLE: Final = "settle"  # finishes an ended call's settlement if its first run did not
CALL_TIMERS: Final = (RING_TIMEOUT, CONNECT_TIMEOUT, WARNING, TIME_LIMIT)

Release = Literal["both", "family", "none"]


class CallEvent(StrEnum):
    CANCEL = "cancel"  # the tablet hangs up while it rings
    WITHDRAW = "withdraw"  # the tablet hangs up after a (hidden) reject
    ACCEPT = "accept"  # the family answers
    REJECT = "reject"  # the family declines
    RING_TIMEOUT = "ring_timeout"  # nobody answered in time
    REJECT_SHOWN = "reject_shown"  # the ring timeout of a declined call
    CONNECT = "connect"  # media flows from both parties
    CONNECT_TIMEOUT = "connect_timeout"  # answered, but media never flowed
    END = "end"  # a party hangs up, the time limit, a lost connection, shutdown
    TERMINATE = "terminate"  # a monitor ends the call, ringing or not


@dataclass(frozen=True)
class Move:
    """One row of the table."""

    event: CallEvent
    sources: frozenset[CallState]
    target: CallState
    cancels: tuple[str, ...] = ()
    arms: tuple[str, ...] = ()
    releases: Release = "none"

    def allows(self, state: CallState) -> bool:
        return state in self.sources


def _move(
    event: CallEvent,
    sources: tuple[CallState, ...],
    target: CallState,
    cancels: tuple[str, ...] = (),
    arms: tuple[str, ...] = (),
    releases: Release = "none",
) -> Move:
    return Move(event, frozenset(sources), target, cancels, arms, releases)


def _ending(event: CallEvent, sources: tuple[CallState, ...]) -> Move:
    """To ``ended``: every call timer goes, the settle timer covers the end-of-call chain."""
    return _move(event, sources, CallState.ENDED, CALL_TIMERS, (SETTLE,), "both")


S = CallState

TRANSITIONS: Final[Mapping[CallEvent, Move]] = MappingProxyType(
    {
        m.event: m
        for m in (
            _move(CallEvent.CANCEL, (S.RINGING,), S.CANCELED, (RING_TIMEOUT,), releases="both"),
            _move(
                CallEvent.WITHDRAW, (S.DECLINED,), S.UNANSWERED, (RING_TIMEOUT,), releases="both"
            ),
            _move(CallEvent.ACCEPT, (S.RINGING,), S.ACCEPTED, (RING_TIMEOUT,), (CONNECT_TIMEOUT,)),
            # The ring timer stays armed: the tablet hears of it at the ring timeout.
            _move(CallEvent.REJECT, (S.RINGING,), S.DECLINED, releases="family"),
            _move(
                CallEvent.RING_TIMEOUT,
                (S.RINGING,),
                S.UNANSWERED,
                (RING_TIMEOUT,),
                releases="both",
            ),
            _move(CallEvent.REJECT_SHOWN, (S.DECLINED,), S.UNANSWERED, releases="both"),
            _move(
                CallEvent.CONNECT,
                (S.ACCEPTED,),
                S.CONNECTED,
                (CONNECT_TIMEOUT,),
                (WARNING, TIME_LIMIT),
            ),
            _ending(CallEvent.CONNECT_TIMEOUT, (S.ACCEPTED,)),
            _ending(CallEvent.END, (S.ACCEPTED, S.CONNECTED)),
            _ending(CallEvent.TERMINATE, (S.RINGING, S.ACCEPTED, S.CONNECTED)),
        )
    }
)

#: Where a call is placed: ``ringing``, its ring timer armed, both parties busy
#: (:meth:`CallStore.create <signaling.call_state.CallStore.create>`).
PLACED: Final = CallState.RINGING


def move(event: CallEvent) -> Move:
    return TRANSITIONS[event]


def render_markdown() -> str:
    """The table as docs/architecture.md shows it (a test keeps the two the same)."""

    def names(items: tuple[str, ...] | frozenset[CallState]) -> str:
        return ", ".join(f"`{i}`" for i in sorted(items)) or "—"

    lines = [
        "| event | from | to | cancels timers | arms timers | frees busy |",
        "|---|---|---|---|---|---|",
        f"| `place` | — | `{PLACED}` | — | `{RING_TIMEOUT}` | — |",
    ]
    for m in TRANSITIONS.values():
        lines.append(
            f"| `{m.event}` | {names(m.sources)} | `{m.target}` | {names(m.cancels)} "
            f"| {names(m.arms)} | {m.releases if m.releases != 'none' else '—'} |"
        )
    return "\n".join(lines) + "\n"
