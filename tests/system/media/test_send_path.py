"""The send-path benchmark (loadtest.send_path) runs both paths over real peers: a smoke run,
no timing asserted (speed is the benchmark's to print)."""

from __future__ import annotations

from loadtest.send_path import measure, report


async def test_both_send_paths_send_every_packet_and_are_reported() -> None:
    results = await measure(packets=1500, rounds=2)  # past SRTP's replay window
    assert set(results) == {"fastpath.send_rtp", "Outlet.send_rtp"}
    assert all(len(times) == 2 and all(t > 0 for t in times) for times in results.values())
    printed = report(results)
    assert "Outlet / fastpath:" in printed and "fastpath.send_rtp" in printed
