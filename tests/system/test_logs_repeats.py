"""A repeated warning is written once a minute with a count; the clock is injected, so
nothing sleeps. And the ids an operator follows a call by are in both formats."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from core.log_repeats import RepeatLimiter
from core.logs import set_context, setup_logging


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO, Clock]]:
    clock = Clock()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    RepeatLimiter(window_s=60.0, clock=clock).attach(handler)
    log = logging.getLogger("tests.repeats")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log, out, clock
    log.removeHandler(handler)
    log.propagate = True


def test_a_repeated_warning_is_written_once_a_minute_with_a_count(
    logger: tuple[logging.Logger, io.StringIO, Clock],
) -> None:
    log, out, clock = logger
    for n in range(313):
        log.warning("admission refused for %s", f"F{n}")
        clock.now += 0.1  # 313 lines in 31.3 s
    assert out.getvalue().splitlines() == ["WARNING tests.repeats: admission refused for F0"]
    clock.now = 1000.0 + 60.0
    log.warning("admission refused for %s", "F999")
    lines = out.getvalue().splitlines()
    assert lines[1:] == [
        "WARNING tests.repeats: admission refused for %s … 312 more in the last minute",
        "WARNING tests.repeats: admission refused for F999",
    ]


def test_the_count_comes_with_any_next_line_once_the_window_is_over(
    logger: tuple[logging.Logger, io.StringIO, Clock],
) -> None:
    log, out, clock = logger
    for _ in range(5):
        log.error("outbox delivery failed: %s", "timeout")
    clock.now += 30
    log.info("call placed")  # INFO is never limited, and the window is not over yet
    log.info("call placed")
    clock.now += 31
    log.info("call ended")
    assert out.getvalue().splitlines() == [
        "ERROR tests.repeats: outbox delivery failed: timeout",
        "INFO tests.repeats: call placed",
        "INFO tests.repeats: call placed",
        "ERROR tests.repeats: outbox delivery failed: %s … 4 more in the last minute",
        "INFO tests.repeats: call ended",
    ]


def test_kinds_are_logger_and_template(logger: tuple[logging.Logger, io.StringIO, Clock]) -> None:
    log, out, clock = logger
    other = log.getChild("other")
    log.warning("worker %s died", "w1")
    log.warning("worker %s died", "w2")  # same template: counted
    other.warning("worker %s died", "w3")  # another logger: its own kind
    log.warning("outbox retry %d", 1)  # another template: its own kind
    assert [line.split(": ", 1)[1] for line in out.getvalue().splitlines()] == [
        "worker w1 died",
        "worker w3 died",
        "outbox retry 1",
    ]
    clock.now += 60
    log.warning("worker %s died", "w4")
    assert out.getvalue().splitlines()[-2:] == [
        "WARNING tests.repeats: worker %s died … 1 more in the last minute",
        "WARNING tests.repeats: worker w4 died",
    ]


def test_the_real_setup_limits_repeats(restore_logging: None) -> None:
    out = io.StringIO()
    setup_logging("INFO", "text", stream=out)
    log = logging.getLogger("visitation.test")
    for n in range(50):
        log.warning("sfu worker %s died", n)
    assert out.getvalue().count("died") == 1


def test_call_ids_are_fields_in_json_and_key_values_in_text(restore_logging: None) -> None:
    extra = {"call_id": "c-42", "facility_id": "FAC1", "role": "family", "reason": "hangup"}
    set_context(node="node-a")
    out = io.StringIO()
    setup_logging("INFO", "json", stream=out)
    logging.getLogger("signaling.calls").info("call ended", extra={**extra, "duration_s": 61})
    record = json.loads(out.getvalue())
    assert record["message"] == "call ended"
    assert record["logger"] == "signaling.calls" and record["level"] == "INFO"
    assert {k: record[k] for k in extra} == extra
    assert record["node"] == "node-a" and record["duration_s"] == 61
    assert "timestamp" in record

    out = io.StringIO()
    setup_logging("INFO", "text", stream=out)
    set_context(node=None, worker="sfu-1")
    logging.getLogger("signaling.calls").info("call placed", extra={"call_id": "c-42"})
    line = out.getvalue().strip()
    assert line.endswith("signaling.calls: call placed call_id=c-42"), line  # not the worker
    set_context(worker=None)
