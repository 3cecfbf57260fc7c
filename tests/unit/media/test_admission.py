"""Admission that holds quality (media.admission): the rule, the learned cost per call, the
default limit from the benchmark. Pure: no Redis, no worker."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.config import Settings
from core.ports import PortRange, calls_that_fit
from media import admission
from media.admission import (
    DEFAULT_MAX_CALLS,
    MAX_LOAD,
    MIN_CALLS_TO_LEARN,
    CallCostMeter,
    has_room,
    recommended_max_calls,
)
from media.control import WorkerStatus


def room(calls: int, **over: float) -> bool:
    fields: dict[str, float] = {"max_calls": 100, "load": 0.1, "loop_lag_avg_ms": 0.0}
    fields |= {"call_cost": 0.01} | over
    return has_room(
        calls,
        max_calls=int(fields["max_calls"]),
        load=fields["load"],
        loop_lag_avg_ms=fields["loop_lag_avg_ms"],
        call_cost=fields["call_cost"],
    )


def test_each_limit_refuses_on_its_own() -> None:
    assert room(10)
    assert not room(100)  # at its limit
    assert not room(10, loop_lag_avg_ms=300)  # late
    assert not room(10, load=0.95)  # busy now
    # idle now, but 10 calls just opened at 0.1 each and the new one would fill the core
    assert not room(10, load=0.05, call_cost=0.1)
    assert room(7, load=0.05, call_cost=0.1)  # 8 x 0.1 = 0.8


@given(st.integers(0, 200), st.floats(0.001, 0.2))
def test_a_burst_is_admitted_only_while_its_cost_fits_the_core(calls: int, cost: float) -> None:
    """Whatever the (lagging) load says, the calls admitted never cost more than MAX_LOAD."""
    if room(calls, load=0.0, call_cost=cost):
        assert (calls + 1) * cost < MAX_LOAD


def test_the_worker_status_applies_the_rule_and_older_workers_get_the_measured_cost() -> None:
    status = WorkerStatus(calls=0, load=0.02, pid=1, started_at=0.0, max_calls=100)
    assert status.call_cost == admission.MEASURED_CALL_COST
    ceiling = int(MAX_LOAD / admission.MEASURED_CALL_COST)
    assert status.has_room(ceiling - 2)
    assert not status.has_room(ceiling)


def test_the_cost_is_learned_only_once_the_calls_held_still_for_a_window() -> None:
    meter = CallCostMeter(prior=0.02, window_s=5.0)
    assert meter.call_cost == 0.02
    for second in range(10):  # a ramp: the count changes every beat
        meter.update(0.05 * second, second + MIN_CALLS_TO_LEARN, float(second))
    assert meter.learned is None
    for second in range(10, 15):  # 20 calls held still, but not a whole window yet
        meter.update(0.3, 20, float(second))
    assert meter.learned is None
    meter.update(0.3, 20, 15.0)
    assert meter.call_cost == 0.3 / 20
    for second in range(16, 60):  # the load settles higher: the estimate follows
        meter.update(0.6, 20, float(second))
    assert abs(meter.call_cost - 0.03) < 0.001


def test_a_few_calls_teach_nothing() -> None:
    """The idle process's own overhead would dominate the cost of 1-3 calls."""
    meter = CallCostMeter(prior=0.02, window_s=1.0)
    for second in range(20):
        meter.update(0.05, MIN_CALLS_TO_LEARN - 1, float(second))
    assert meter.learned is None


def test_the_default_is_the_measured_ceiling_less_the_margin_and_config_uses_it() -> None:
    assert DEFAULT_MAX_CALLS == recommended_max_calls(admission.MEASURED_CEILING, None)
    assert Settings().max_calls_per_worker == DEFAULT_MAX_CALLS
    assert DEFAULT_MAX_CALLS >= 25  # SPEC: a worker carries at least 25 calls


def test_the_recommendation_takes_the_lower_of_the_ceiling_and_the_load_limit() -> None:
    assert recommended_max_calls(60, 0.01) == 48  # the ceiling binds: 60 less 20 %
    assert recommended_max_calls(60, 0.03) == 24  # the core binds: 30 at 3 %, less 20 %
    assert recommended_max_calls(1, 0.5) == 1


def test_calls_that_fit_a_port_range() -> None:
    ports = PortRange(40000, 40199)  # 200 ports
    assert calls_that_fit(ports, 1) == 50
    assert calls_that_fit(ports, 2, turn=True) == 12
    assert calls_that_fit(ports, 0) == 50  # no workers of its own: budgeted as one
