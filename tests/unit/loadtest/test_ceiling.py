"""The benchmark's ceiling and the limit it recommends (loadtest.report.ceiling)."""

from __future__ import annotations

from typing import Any

from loadtest.report import ceiling, within_targets


def row(asked: int, ok: int, *, cpu: float = 1.6, loss: float = 0.0, setup: float = 200.0,
        kept_up: bool = True) -> dict[str, Any]:  # fmt: skip
    return {
        "calls_requested": asked,
        "calls_ok": ok,
        "worker_cpu_per_call_pct": cpu,
        "loss_pct": loss,
        "accept_to_connected": {"p95_ms": setup},
        "forwarding_delay": {"p95_ms": 0.1},
        "clients": {"kept_up": kept_up, "not_a_measurement": None if kept_up else "busy"},
    }


def test_the_ceiling_is_the_largest_row_within_every_target_by_clients_that_kept_up() -> None:
    sweep = [
        row(8, 8),
        row(25, 25),
        row(40, 40, cpu=1.5),
        row(60, 60, setup=1300.0),  # set-up too slow
        row(70, 70, kept_up=False),  # not a measurement
        row(80, 52, loss=0.7),  # admitted, but lossy
    ]
    top = ceiling({"sweep": sweep})
    assert top == {
        "calls": 40,
        "cpu_per_call_pct": 1.5,
        "max_calls_per_worker": 32,
        "limited_by_the_sweep": False,
    }
    assert not within_targets(sweep[4]) and not within_targets(sweep[5])


def test_admitted_calls_count_and_a_sweep_that_never_failed_says_so() -> None:
    top = ceiling({"sweep": [row(25, 25), row(80, 50, cpu=1.2)]})
    assert top is not None
    assert top["calls"] == 50 and top["limited_by_the_sweep"]
    assert top["max_calls_per_worker"] == 40  # 50 less 20 % (the core allows 75)
    assert ceiling({"sweep": [row(25, 25, loss=3.0)]}) is None
