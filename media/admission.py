"""Admission that holds quality: what one more call would cost a worker, before it is let in.

A worker's measured load (CPU seconds per wall second, smoothed over :data:`LOAD_WINDOW_S` so one
busy set-up refuses nothing) trails its calls: a call opened a moment ago shows in it only
seconds later, once its media flows and the smoothing catches up. Admission by load alone
therefore lets a burst of calls in (every one placed before the load shows the first), and
then all of them share a core too small for them: the loss is spread over everyone, which the
SPEC forbids ("overload is refused at the door"). So admission also asks what the calls *will*
cost: ``call_cost * (calls + 1)`` must stay under :data:`MAX_LOAD`, where ``calls`` is counted
now (not from the heartbeat) and ``call_cost`` is

* learned by the worker itself (:class:`CallCostMeter`): its smoothed load divided by its calls,
  taken only once the number of calls has held still for a whole smoothing window (so set-up
  work and calls whose media has not started yet do not skew it), and only with at least
  :data:`MIN_CALLS_TO_LEARN` calls (so the idle process's own overhead does not);
* until then, :data:`MEASURED_CALL_COST`: what ``make bench`` measured per call (2 parties +
  1 monitor + the recording) on the reference machine.

:data:`DEFAULT_MAX_CALLS`, the hard limit, comes from the same measurement: the calls the bench
carried within every SPEC target, less a margin (``make bench`` prints what to set for another
machine).
"""

from __future__ import annotations

from typing import Final

LOAD_WINDOW_S: Final = 5.0  # the worker's load and call count are smoothed over this long
MAX_LOOP_LAG_MS: Final = 250.0  # a worker this late takes no new call
# nor one that is, or with one more call would be, using this much of its core
MAX_LOAD: Final = 0.9

# `make bench --sweep 8,25,40,60,80 --calls 25` on the reference machine (2 cores, one pinned to
# the worker; issue 31's note has the table): 1.5-1.9 % of a core per call, every SPEC target
# held at 40 calls (60 could not be judged: the clients' own core was full).
MEASURED_CALL_COST: Final = 0.016
MEASURED_CEILING: Final = 40  # calls within every SPEC target on the reference machine
CEILING_MARGIN: Final = 0.2  # the default keeps this share of the ceiling free
MIN_CALLS_TO_LEARN: Final = 4


def recommended_max_calls(ceiling: int, call_cost: float | None) -> int:
    """``--max-calls-per-worker`` for a machine whose benchmark carried ``ceiling`` calls
    within every target at ``call_cost`` of a core each: the ceiling less the margin, and no
    more than the load limit allows with the same margin."""
    limit = ceiling
    if call_cost:
        limit = min(limit, int(MAX_LOAD / call_cost))
    return max(1, int(limit * (1 - CEILING_MARGIN)))


DEFAULT_MAX_CALLS: Final = recommended_max_calls(MEASURED_CEILING, MEASURED_CALL_COST)  # 32


def has_room(
    calls: int,
    *,
    max_calls: int,
    load: float,
    loop_lag_avg_ms: float,
    call_cost: float,
) -> bool:
    """Whether a worker with ``calls`` open (counted now) takes one more: below its limit, its
    event loop on time, its core not full now, and not full with the calls it has and the new
    one at ``call_cost`` each (see the module docstring)."""
    return (
        calls < max_calls
        and loop_lag_avg_ms < MAX_LOOP_LAG_MS
        and load < MAX_LOAD
        and call_cost * (calls + 1) < MAX_LOAD
    )


class CallCostMeter:
    """A worker's own cost per call, learned from its smoothed load while its calls hold still.

    :meth:`update` is fed every heartbeat with the smoothed load, the calls open and the time
    (any monotonic clock; tests pass their own); :attr:`call_cost` is the latest estimate, or
    ``prior`` until there is one."""

    def __init__(self, prior: float = MEASURED_CALL_COST, window_s: float = LOAD_WINDOW_S):
        self.prior = prior
        self.window_s = window_s
        self.learned: float | None = None
        self._calls = -1
        self._since = 0.0

    @property
    def call_cost(self) -> float:
        return self.prior if self.learned is None else self.learned

    def update(self, load: float, calls: int, now: float) -> None:
        if calls != self._calls:
            self._calls, self._since = calls, now
            return
        if calls < MIN_CALLS_TO_LEARN or now - self._since < self.window_s:
            return
        sample = load / calls
        if self.learned is None:
            self.learned = sample
        else:  # the same smoothing as the load's, one heartbeat at a time
            self.learned += (sample - self.learned) * 0.2
