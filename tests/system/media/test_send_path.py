"""The send-path benchmark (loadtest.send_path) runs every path over real peers: a smoke run,
no timing asserted (speed is the benchmark's to print)."""

from __future__ import annotations

from loadtest.send_path import FASTPATH, PYTHON, C, measure, report


async def test_every_send_path_sends_every_packet_and_is_reported() -> None:
    results = await measure(packets=1500, rounds=2)  # past SRTP's replay window
    assert set(results) == {FASTPATH, PYTHON, C}  # the compiled one too: it is built here
    assert all(len(times) == 2 and all(t > 0 for t in times) for times in results.values())
    printed = report(results)
    assert "Outlet / fastpath:" in printed and "compiled / Outlet:" in printed
