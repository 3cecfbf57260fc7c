"""Cases 4 and 5: the machine's CPU taken away, then the recordings disk filled, mid-call.

``cpu_starvation``: ``hogs`` busy-looping processes beside the server for ``starve_s`` (on a
2-core machine, 3 hogs leave the server about a third of the cores). A busy worker is not a
dead one: no call may end; afterwards each is hung up normally and its recording verifies.

``disk_full``: the recordings directory is a small tmpfs; once the call runs, a filler leaves
``disk_leave_bytes`` free, so the recorder runs out of space mid-call. The call goes on (or
ends cleanly), and the recording is finalized ``complete: false`` and verifies (SPEC: "A
recording that could not be written whole (disk full, worker died) says complete: false").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator

from loadtest.faults.case import (
    CaseResult,
    Knobs,
    WorkerWatch,
    add_checks,
    heard_end,
    record_of,
    wait_for,
)
from loadtest.faults.checks import nothing_lost
from loadtest.faults.cluster import Cluster, ClusterSpec
from loadtest.harness import Call, cpu_layout, hang_up, pin, setup_call
from loadtest.processes import CpuHogs
from signaling.call_state import CallState


async def _hang_up_all(cluster: Cluster, result: CaseResult, calls: list[Call]) -> None:
    for call in calls:
        await hang_up(call)
        record = await record_of(cluster, call.call_id)
        result.expect(
            record.end_reason == "hangup",
            f"call {call.call_id} ended {record.end_reason or 'never'}, not by our hang-up",
        )


@contextlib.asynccontextmanager
async def squeezed(cluster: Cluster, knobs: Knobs) -> AsyncIterator[str]:
    """``hogs`` busy processes; with ``starve_pin`` (and 2+ cores), they and every server
    process (worker, nodes, Redis) share one core while the clients keep the others, so the
    server gets a fraction of one core rather than a share of all of them."""
    layout = cpu_layout() if knobs.starve_pin else None
    async with CpuHogs(knobs.hogs) as hogs:
        if layout is None:
            yield "beside the server"
            return
        server_cores, client_cores = layout
        own = os.sched_getaffinity(0)
        server = [cluster.worker_pid(w) for w in cluster.worker_ids]
        server += [node.pid for node in cluster.nodes]
        server += [pid for pid in [cluster.redis_server.pid] if pid is not None]
        try:
            for pid in [p.pid for p in hogs.procs] + server:
                pin(pid, server_cores)
            pin(os.getpid(), client_cores)
            yield f"pinned with the server to core {sorted(server_cores)}"
        finally:
            for pid in [*server, os.getpid()]:
                pin(pid, own)


async def cpu_starvation(knobs: Knobs, result: CaseResult) -> None:
    spec = ClusterSpec(parties=knobs.starve_calls, keep_dir=knobs.keep_dir)
    async with Cluster(spec) as cluster:
        calls: list[Call] = []
        try:
            for i in range(knobs.starve_calls):
                calls.append(await setup_call(cluster, i))
            if not result.expect(all(c.ok for c in calls), f"set-up: {[c.error for c in calls]}"):
                return
            packets = [c.family_peer.sinks["video"].packets for c in calls if c.family_peer]
            async with WorkerWatch(cluster) as watch, squeezed(cluster, knobs) as where:
                started = time.monotonic()
                await asyncio.sleep(knobs.starve_s)  # the fault's length, not a state
                starved = time.monotonic() - started
            after = [c.family_peer.sinks["video"].packets for c in calls if c.family_peer]
            result.saw(
                f"{knobs.hogs} busy processes {where} for {starved:.1f} s, {len(calls)} calls; "
                f"{watch.summary()}; family video packets +{sum(after) - sum(packets)}"
            )
            ended = [c.call_id for c in calls if c.family.pending("call.ended")]
            for call in calls:
                record = await record_of(cluster, call.call_id)
                if record.state != CallState.CONNECTED:
                    ended.append(call.call_id)
            result.expect(not ended, f"calls ended under CPU starvation: {sorted(set(ended))}")
            result.saw(f"{len(calls) - len(set(ended))}/{len(calls)} calls still connected")
            await _hang_up_all(cluster, result, calls)
            losses = await nothing_lost(cluster, [c.call_id for c in calls])
            add_checks(result, losses, "ledger invariant, settled once, recordings")
            result.saw(f"{losses.verified}/{len(calls)} recordings verified")
        finally:
            for call in calls:
                await call.close()


async def disk_full(knobs: Knobs, result: CaseResult) -> None:
    spec = ClusterSpec(parties=1, recordings_tmpfs_bytes=knobs.disk_bytes, keep_dir=knobs.keep_dir)
    async with Cluster(spec) as cluster:
        assert cluster.tmpfs is not None
        tmpfs = cluster.tmpfs
        call = await setup_call(cluster, 0)
        try:
            if not result.expect(call.ok, f"call set-up failed: {call.error}"):
                return
            path = cluster.recording_path(call.call_id)

            async def recording_grows() -> bool:
                return path.exists() and path.stat().st_size > 0

            result.expect(await wait_for(recording_grows, 15.0), "the recording never started")
            filler = await asyncio.to_thread(tmpfs.fill, knobs.disk_leave_bytes)

            async def no_room() -> bool:
                return tmpfs.free_bytes() < 64 << 10

            full = await wait_for(no_room, 60.0)
            full_at = time.time()
            size_at_full = path.stat().st_size
            result.saw(
                f"{filler >> 20} MiB filler; recordings disk "
                + (f"full ({tmpfs.free_bytes() >> 10} KiB free)" if full else "never filled (60 s)")
                + f" with the recording at {size_at_full >> 10} KiB"
            )
            result.expect(full, "the recorder never filled the disk")
            await asyncio.sleep(knobs.disk_after_full_s)  # the call goes on with a full disk
            record = await record_of(cluster, call.call_id)
            growth = path.stat().st_size - size_at_full
            result.saw(
                f"{time.time() - full_at:.0f} s later the call is {record.state.value}"
                + (f" ({record.end_reason})" if record.end_reason else "")
                + f"; recording grew {growth} bytes meanwhile"
            )
            if record.live:
                await hang_up(call)
            else:
                heard = await heard_end(call.family, 5.0)
                result.expect(heard is not None, "the call ended without call.ended")
            losses = await nothing_lost(cluster, [call.call_id])
            add_checks(result, losses, "ledger invariant, settled once, recording")
            rec = losses.recorded[call.call_id]
            manifest = rec.manifest or {}
            why = {k: v for k, v in manifest.items() if "incomplete" in k or k == "reason"}
            result.saw(f"recording complete={rec.complete}, verified={rec.verified} {why}")
            result.expect(
                rec.complete is False,
                f"the recording of a call whose disk filled says complete={rec.complete}",
            )
            reason = str(manifest.get("incomplete_reason") or "")
            result.expect(
                "No space left" in reason or "write failed" in reason,
                f"the recording does not say why it is incomplete: {reason!r}",
            )
        finally:
            await call.close()
