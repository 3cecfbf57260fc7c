"""The CPU wake-up latency limit (Linux PM QoS) a worker may hold: held while it runs, gone when
it ends however it ends, refused input changes nothing. Real ``/dev/cpu_dma_latency`` (the
tests run as root, as CI does) and real worker processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from core.spawn import PIPE, spawn
from loadtest.wakeups import measure
from media.pool import WorkerPool
from media.wake_latency import MAX_US, WakeLatencyLimit, current_limit_us, held, parse_us
from tests.waiting import eventually
from visitation.worker import parse_cli


def test_a_held_limit_is_in_force_until_closed() -> None:
    before = current_limit_us()
    with WakeLatencyLimit(7) as limit:
        assert limit.held and current_limit_us() <= 7
    assert not limit.held and current_limit_us() == before
    limit.close()  # twice is harmless


@pytest.mark.parametrize("text", ["-1", "x", "1.5", str(MAX_US + 1)])
def test_bad_limits_are_refused_and_nothing_is_held(text: str) -> None:
    before = current_limit_us()
    with pytest.raises(ValueError, match=r"microseconds|wake-up latency"):
        parse_us(text)
    with pytest.raises(ValueError):
        WakeLatencyLimit(-1)
    with pytest.raises(SystemExit):
        parse_cli(["--redis-url", "redis://x", "--cpu-wake-latency-us", text])
    assert current_limit_us() == before


def test_the_flag_and_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_cli(["--redis-url", "redis://x"]).cpu_wake_latency_us is None
    monkeypatch.setenv("VISITATION_CPU_WAKE_LATENCY_US", "20")
    assert parse_cli(["--redis-url", "redis://x"]).cpu_wake_latency_us == 20
    args = parse_cli(["--redis-url", "redis://x", "--cpu-wake-latency-us", "0"])
    assert args.cpu_wake_latency_us == 0


def test_a_machine_that_refuses_it_costs_a_warning_not_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="media.wake_latency"):
        with held(0, device=tmp_path / "no-such-device") as limit:
            assert limit is None
    assert "cannot limit CPU wake-up latency to 0 us" in caplog.text
    before = current_limit_us()
    with held(None) as limit:  # not asked: nothing tried
        assert limit is None and current_limit_us() == before
    with held(6) as limit:
        assert limit is not None and current_limit_us() <= 6
    assert current_limit_us() == before


async def test_a_killed_holder_leaves_no_limit_behind() -> None:
    before = current_limit_us()
    code = (
        "import signal; from media.wake_latency import WakeLatencyLimit as W\n"
        "limit = W(3); print('held', flush=True); signal.pause()"
    )
    holder = await spawn([sys.executable, "-c", code], stdout=PIPE)
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"held\n"
        assert current_limit_us() <= 3
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        await holder.wait()
    await eventually(lambda: current_limit_us() == before, "the kernel dropped the dead limit")


async def test_a_worker_holds_its_limit_while_it_runs(redis_url: str, redis: Redis) -> None:
    before = current_limit_us()
    pool = WorkerPool(redis_url, log_level="WARNING", extra_args=["--cpu-wake-latency-us", "9"])
    try:
        await pool.start(1)
        await pool.wait_ready(redis)
        assert current_limit_us() <= 9
    finally:
        codes = await pool.stop()
    assert list(codes.values()) == [0]  # SIGTERM: a clean exit
    assert current_limit_us() == before


def test_the_wakeup_benchmark_measures_cpu_per_datagram() -> None:
    cores = sorted(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    cost_us = measure(rate=400, rounds=10, seconds=0.5, cores=(cores[0], cores[-1]))
    assert 0 < cost_us < 10_000  # microseconds of the receiver's CPU per datagram
    assert os.sched_getaffinity(0) == before  # unpinned afterwards
