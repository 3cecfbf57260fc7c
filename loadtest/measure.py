"""Counters read at the start and end of the steady window, and what they add up to.

* Worker CPU: user + system time of the worker process (all its threads) from
  ``/proc/<pid>/stat``, over the window's wall time; per call = that / calls.
* Frames: every call has 8 streams (tablet->family, family->tablet, tablet->monitor,
  family->monitor; audio and video). Sent = frames the client source handed to its sender,
  received = frames the receiving client's sink got; loss = 1 - received / sent over the window.
  ``upstream`` compares the sources with what the worker received (its publishers' counts).
* Added forwarding delay: the worker's per-call histograms (:mod:`rtpkit.latency`), window delta.
* Machine: all cores' busy time from ``/proc/stat``; what the worker and this process did not
  use went to other processes (the embedded Redis, and anything else running: a busy machine
  skews every number, so the report flags it).
* Setup: ``call.accept`` sent -> ``call.connected`` received by the family, and monitor
  ``monitor.watch`` answered -> first video frame from both parties.
* The longest garbage-collector pause of this process (clients and signaling) during set-up
  and window: one pause stalls every client at once, and shows as slow set-ups.
* The clients themselves (``clients``): this process's CPU over the window in % of the cores
  it may use, how late its frames went out after they were due and how late its pacer's timer
  ran (the loop's lag) (:class:`client.media.Pacer`), and the share of received packets the
  light clients unprotected, and the datagrams the kernel dropped at their full sockets
  (:mod:`loadtest.socket_drops`; the worker's too). :func:`loadtest.report.clients_verdict`
  says whether they kept up; a row where they did not is not a measurement of the worker.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from client.light_peer import LightPeerConnection
from client.media import Pacer
from client.peer import MonitorPeer, PartyPeer
from loadtest.report import clients_verdict
from loadtest.socket_drops import udp_drops
from media.control import SfuControl
from rtpkit.latency import Counts, diff, merge, summarize
from rtpkit.rtp import MEDIA_KINDS

if TYPE_CHECKING:
    from client.media import RtpSink
    from loadtest.harness import Call

Stream = tuple[str, str, str]  # (source party, receiver, kind)
STREAMS: tuple[Stream, ...] = tuple(
    (src, dst, kind)
    for src, dst in (
        ("tablet", "family"),
        ("family", "tablet"),
        ("tablet", "monitor"),
        ("family", "monitor"),
    )
    for kind in MEDIA_KINDS
)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all threads), from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def system_busy_s() -> float:
    """CPU seconds all processes on this machine spent busy (every core), from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as fh:
        cpu = [int(v) for v in fh.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait
    return (sum(cpu[:8]) - cpu[3] - cpu[4]) / os.sysconf("SC_CLK_TCK")


def _sent(call: Call, party: str, kind: str) -> int:
    peer = call.tablet_peer if party == "tablet" else call.family_peer
    assert peer is not None
    track = peer.source.audio if kind == "audio" else peer.source.video
    return track.frames_sent


def _sink(call: Call, stream: Stream) -> RtpSink | None:
    """The sink where ``stream`` (source party, receiver, kind) arrives."""
    src, dst, kind = stream
    if dst == "monitor":
        assert call.monitor_peer is not None
        return call.monitor_peer.sinks["resident" if src == "tablet" else "family"].get(kind)
    peer = call.tablet_peer if dst == "tablet" else call.family_peer
    assert peer is not None
    return peer.sinks.get(kind)


def _received(call: Call, stream: Stream) -> int:
    sink = _sink(call, stream)
    return sink.frames if sink is not None else 0


@dataclass
class Snapshot:
    wall: float
    worker_cpu_s: float
    bench_cpu_s: float
    system_busy_s: float
    stats: dict[str, Any]
    sent: dict[str, dict[Stream, int]]  # call id -> stream -> frames
    received: dict[str, dict[Stream, int]]
    lateness: dict[str, Any]  # the pacer's histograms' snapshots
    loop_lag: dict[str, Any]
    light: dict[str, int]  # light clients' datagrams / decrypted / rejected, summed
    udp_drops: dict[int, int]  # pid -> datagrams dropped at its full UDP receive buffers


def _light_totals(calls: Sequence[Call]) -> dict[str, int]:
    totals = {"datagrams": 0, "decrypted": 0, "rejected": 0}
    for call in calls:
        peers: list[PartyPeer | MonitorPeer | None] = [
            call.tablet_peer,
            call.family_peer,
            call.monitor_peer,
        ]
        for peer in peers:
            pc = peer.pc if peer is not None else None
            stats = pc.light_stats() if isinstance(pc, LightPeerConnection) else None
            if stats is not None:
                totals["datagrams"] += stats.datagrams
                totals["decrypted"] += stats.decrypted
                totals["rejected"] += stats.rejected
    return totals


async def take_snapshot(
    control: SfuControl, worker_id: str, worker_pid: int, calls: Sequence[Call]
) -> Snapshot:
    sent: dict[str, dict[Stream, int]] = {}
    received: dict[str, dict[Stream, int]] = {}
    for call in calls:
        if call.ok:
            sent[call.call_id] = {s: _sent(call, s[0], s[2]) for s in STREAMS}
            received[call.call_id] = {s: _received(call, s) for s in STREAMS}
    wall, cpu, bench = time.monotonic(), process_cpu_s(worker_pid), time.process_time()
    busy = system_busy_s()
    pacer = Pacer.get()
    lateness, lag = pacer.lateness.snapshot(), pacer.loop_lag.snapshot()
    light = _light_totals(calls)
    drops = udp_drops((worker_pid, os.getpid()))
    stats = await control.stats(worker_id)
    return Snapshot(wall, cpu, bench, busy, stats, sent, received, lateness, lag, light, drops)


def socket_drops(before: Snapshot, after: Snapshot, pid: int) -> int:
    """Datagrams ``pid``'s sockets dropped in the window (a socket closed meanwhile: 0)."""
    return max(0, after.udp_drops.get(pid, 0) - before.udp_drops.get(pid, 0))


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms_summary(values_s: Sequence[float]) -> dict[str, float | None]:
    def ms(q: float) -> float | None:
        value = nearest_rank(values_s, q)
        return None if value is None else round(value * 1000, 1)

    return {"p50_ms": ms(0.5), "p95_ms": ms(0.95), "max_ms": ms(1.0)}


def loss_pct(sent: int, received: int) -> float | None:
    return None if sent <= 0 else round(max(0.0, 100.0 * (1 - received / sent)), 3)


EXPECTED_COLOUR = {"tablet": "red", "family": "blue"}  # harness.TABLET_CLIP / FAMILY_CLIP


def content_check(calls: Sequence[Call]) -> dict[str, int]:
    """Video sinks whose decoded (key) frames were checked, and those showing the wrong party."""
    checked = wrong = 0
    for call in calls:
        if not call.ok:
            continue
        for stream in STREAMS:
            sink = _sink(call, stream)
            if stream[2] == "video" and sink is not None and sink.main_colour is not None:
                checked += 1
                wrong += sink.main_colour != EXPECTED_COLOUR[stream[0]]
    return {"checked": checked, "wrong": wrong}


def recording_totals(before: Snapshot, after: Snapshot) -> dict[str, int] | None:
    """Frames the worker's recorders wrote in the window, packets they dropped, backlog."""
    rooms_after = after.stats.get("rooms", {})
    rooms_before = before.stats.get("rooms", {})
    taps = [(cid, r["recording"]) for cid, r in rooms_after.items() if r.get("recording")]
    if not taps:
        return None
    frames = dropped = pending = 0
    for cid, now in taps:
        then = rooms_before.get(cid, {}).get("recording") or {}
        frames += now["frames"] - then.get("frames", 0)
        dropped += now["dropped_packets"] - then.get("dropped_packets", 0)
        pending = max(pending, now["pending_writes"])
    return {"calls": len(taps), "frames": frames, "dropped_packets": dropped, "backlog": pending}


def _party_frames(stats: dict[str, Any], call_id: str, party: str, kind: str) -> int:
    room = stats.get("rooms", {}).get(call_id, {})
    return int(room.get("parties", {}).get(party, {}).get("frames", {}).get(kind, 0))


def _room_delay(before: Snapshot, after: Snapshot, call_id: str) -> Counts | None:
    now = after.stats.get("rooms", {}).get(call_id, {}).get("forwarding_delay")
    if now is None:
        return None
    then = before.stats.get("rooms", {}).get(call_id, {}).get("forwarding_delay")
    return diff(now, then)


class GcPauses:
    """While entered: the longest collector pause of this process, in seconds."""

    def __init__(self) -> None:
        self.longest_s = 0.0
        self._started: float | None = None

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.monotonic()
        elif self._started is not None:
            self.longest_s = max(self.longest_s, time.monotonic() - self._started)
            self._started = None

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def clients_result(before: Snapshot, after: Snapshot, cores: int) -> dict[str, Any]:
    """What the clients cost and whether they kept up over the window."""
    window = after.wall - before.wall
    used = (after.bench_cpu_s - before.bench_cpu_s) / window
    light = {k: after.light[k] - before.light.get(k, 0) for k in after.light}
    clients: dict[str, Any] = {
        "cores": cores,
        "cpu_pct_of_cores": round(100 * used / max(1, cores), 1),
        "send_lateness": summarize(diff(after.lateness, before.lateness)),
        "loop_lag": summarize(diff(after.loop_lag, before.loop_lag)),
        "decrypted_pct": (
            round(100 * light["decrypted"] / light["datagrams"], 1)
            if light.get("datagrams")
            else None
        ),
        "srtp_rejected": light.get("rejected", 0),
        "socket_drops": socket_drops(before, after, os.getpid()),
    }
    kept_up, why = clients_verdict(clients)
    clients["kept_up"] = kept_up
    clients["not_a_measurement"] = why
    return clients


def phase_result(
    name: str,
    requested: int,
    calls: Sequence[Call],
    before: Snapshot,
    after: Snapshot,
    *,
    client_cores: int = 1,
) -> dict[str, Any]:
    window = after.wall - before.wall
    ok = [c for c in calls if c.ok and c.call_id in before.sent and c.call_id in after.sent]
    per_call: list[dict[str, Any]] = []
    total_sent = total_received = upstream_sent = upstream_received = 0
    delays: list[Counts] = []
    for call in ok:
        cid = call.call_id
        sent = sum(after.sent[cid][s] - before.sent[cid][s] for s in STREAMS)
        received = sum(after.received[cid][s] - before.received[cid][s] for s in STREAMS)
        total_sent += sent
        total_received += received
        for party in ("tablet", "family"):
            for kind in MEDIA_KINDS:
                stream = (party, "family" if party == "tablet" else "tablet", kind)
                upstream_sent += after.sent[cid][stream] - before.sent[cid][stream]
                upstream_received += _party_frames(after.stats, cid, party, kind)
                upstream_received -= _party_frames(before.stats, cid, party, kind)
        delay = _room_delay(before, after, cid)
        if delay is not None:
            delays.append(delay)
        summary = summarize(delay) if delay is not None else None
        per_call.append(
            {
                "index": call.index,
                "call_id": cid,
                "frames_sent": sent,
                "frames_received": received,
                "loss_pct": loss_pct(sent, received),
                "forwarding_delay_p50_ms": summary and summary["p50_ms"],
                "forwarding_delay_p95_ms": summary and summary["p95_ms"],
                "accept_to_connected_ms": _ms(call.accept_to_connected_s),
                "stages_ms": {k: _ms(v) for k, v in call.timings.items()},
                "monitor_first_video_ms": _ms(call.monitor_first_video_s),
            }
        )
    worker_cores = (after.worker_cpu_s - before.worker_cpu_s) / window
    bench_cores = (after.bench_cpu_s - before.bench_cpu_s) / window
    busy_cores = (after.system_busy_s - before.system_busy_s) / window
    setups = [c.accept_to_connected_s for c in calls if c.accept_to_connected_s is not None]
    monitors = [c.monitor_first_video_s for c in calls if c.monitor_first_video_s is not None]
    stats = after.stats
    return {
        "pipeline": name,
        "calls_requested": requested,
        "calls_ok": len(ok),
        "calls_failed": requested - len(ok),
        "errors": sorted({c.error for c in calls if c.error})[:5],
        "window_s": round(window, 3),
        "worker_pid": stats.get("pid"),
        "worker_cpu_cores": round(worker_cores, 4),
        "worker_cpu_per_call_pct": round(100 * worker_cores / len(ok), 3) if ok else None,
        "bench_process_cpu_cores": round(bench_cores, 4),
        "clients": (clients := clients_result(before, after, client_cores)),
        "measurement": clients["kept_up"],  # False: the clients did not keep up
        "machine_busy_cores": round(busy_cores, 4),
        "other_processes_cpu_cores": round(max(0.0, busy_cores - worker_cores - bench_cores), 4),
        "frames_sent": total_sent,
        "frames_received": total_received,
        "loss_pct": loss_pct(total_sent, total_received),
        "upstream_frames_sent": upstream_sent,
        "upstream_frames_received": upstream_received,
        "upstream_loss_pct": loss_pct(upstream_sent, upstream_received),
        "worker_socket_drops": socket_drops(before, after, int(stats.get("pid") or 0)),
        "forwarding_delay": summarize(merge(delays)) if delays else None,
        "accept_to_connected": ms_summary(setups),
        "setup_stages": {
            stage: ms_summary([c.timings[stage] for c in calls if stage in c.timings])
            for stage in ("offers_answered_s", "media_both_ways_s")
        },
        "monitor_first_video": ms_summary(monitors),
        "transcoders": stats.get("transcoders"),
        "content": content_check(calls),
        "recording": recording_totals(before, after),
        "per_call": per_call,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)
