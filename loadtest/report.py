"""Benchmark results: the SPEC 'Performance targets' verdicts, JSON, and a readable table."""

from __future__ import annotations

from typing import Any

from media.admission import DEFAULT_MAX_CALLS, recommended_max_calls

MIN_CALLS = 25
CALLS_TARGET = "concurrent calls on one worker"
MAX_LOSS_PCT = 0.5
MAX_P95_DELAY_MS = 30.0
MAX_P95_SETUP_MS = 1000.0
MIN_CPU_RATIO = 10.0
SATURATED_LOSS_PCT = 5.0
BUSY_MACHINE_CORES = 0.25  # other processes' CPU that makes a run suspect
CLIENTS_MAX_CPU_PCT = 70.0  # of the clients' cores: above it they may not keep up
CLIENTS_MAX_LATENESS_MS = 20.0  # p99 of how late the clients sent their frames
CLIENTS_MAX_LOOP_LAG_MS = 20.0  # p99 of how late the clients' pacer timer ran
LONG_GC_PAUSE_MS = 200.0  # the clients' own collector, long enough to skew set-up times
MAX_CPU_GROWTH_PCT = 20.0  # CPU per call from the smallest load to the target load


def clients_verdict(clients: dict[str, Any]) -> tuple[bool, str | None]:
    """(kept up, why not): the clients' CPU share of their cores, their frames' send lateness
    and their loop's lag, each against its limit, and no datagram dropped at their sockets."""
    reasons = []
    cpu = clients.get("cpu_pct_of_cores")
    if cpu is not None and cpu > CLIENTS_MAX_CPU_PCT:
        reasons.append(f"clients at {cpu:g} % of their core(s) > {CLIENTS_MAX_CPU_PCT:g} %")
    late = (clients.get("send_lateness") or {}).get("p99_ms")
    if late is not None and late > CLIENTS_MAX_LATENESS_MS:
        reasons.append(f"frames sent late: p99 {late:.1f} ms > {CLIENTS_MAX_LATENESS_MS:g} ms")
    lag = (clients.get("loop_lag") or {}).get("p99_ms")
    if lag is not None and lag > CLIENTS_MAX_LOOP_LAG_MS:
        reasons.append(f"clients' loop lag p99 {lag:.1f} ms > {CLIENTS_MAX_LOOP_LAG_MS:g} ms")
    drops = clients.get("socket_drops")
    if drops:
        reasons.append(f"clients' sockets dropped {drops:,} datagrams (receive buffers full)")
    return (not reasons, "; ".join(reasons) or None)


def kept_up(phase: dict[str, Any]) -> bool | None:
    """Whether the phase's clients kept up (None for results without the clients' figures)."""
    clients = phase.get("clients")
    return None if not clients else bool(clients.get("kept_up"))


def cpu_ratio(results: dict[str, Any]) -> float | None:
    """Naive worker CPU per call / SFU worker CPU per call."""
    sfu, naive = results["phases"].get("sfu"), results["phases"].get("naive")
    if not sfu or not naive:
        return None
    ours, theirs = sfu["worker_cpu_per_call_pct"], naive["worker_cpu_per_call_pct"]
    if not ours or theirs is None:
        return None
    return round(float(theirs) / float(ours), 2)


def _target(
    name: str, wanted: str, measured: Any, ok: bool | None, note: str = ""
) -> dict[str, Any]:
    verdict = "N/A" if ok is None else ("PASS" if ok else "FAIL")
    return {
        "target": name,
        "wanted": wanted,
        "measured": measured,
        "verdict": verdict,
        "note": note,
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    sfu = results["phases"]["sfu"]
    naive = results["phases"].get("naive")
    ratio = results.get("cpu_ratio")
    out = []
    if naive is None:
        out.append(
            _target(
                "CPU per call vs naive aiortc",
                f">= {MIN_CPU_RATIO:g}x lower",
                None,
                None,
                "naive skipped",
            )
        )
    else:
        note, ok = "", ratio is not None and ratio >= MIN_CPU_RATIO
        lost = naive["loss_pct"] if naive["loss_pct"] is not None else 100.0
        if naive["calls_ok"] < naive["calls_requested"] or lost > SATURATED_LOSS_PCT:
            # It did less than the load asked: its CPU per call (so the ratio) is a lower bound.
            note = f"naive saturated ({naive['calls_ok']} calls ok, {lost:g} % loss): lower bound"
            ok = True if ok else None
        out.append(
            _target(
                "CPU per call vs naive aiortc",
                f">= {MIN_CPU_RATIO:g}x lower",
                ratio and f"{ratio:g}x",
                ok,
                note,
            )
        )
    n, asked = sfu["calls_ok"], sfu["calls_requested"]
    if asked < MIN_CALLS:
        capacity = _target(CALLS_TARGET, f">= {MIN_CALLS}", n, None, f"not tested: --calls {asked}")
    else:
        note = "" if n >= MIN_CALLS else f"{asked - n} calls failed to set up"
        capacity = _target(CALLS_TARGET, f">= {MIN_CALLS}", n, n >= MIN_CALLS, note)
    out.append(capacity)
    loss = sfu["loss_pct"]
    out.append(
        _target(
            "frame loss",
            f"< {MAX_LOSS_PCT:g} %",
            loss,
            None if loss is None else loss < MAX_LOSS_PCT,
        )
    )
    delay = (sfu["forwarding_delay"] or {}).get("p95_ms")
    out.append(
        _target(
            "added forwarding delay p95",
            f"< {MAX_P95_DELAY_MS:g} ms",
            delay,
            None if delay is None else delay < MAX_P95_DELAY_MS,
        )
    )
    setup = sfu["accept_to_connected"]["p95_ms"]
    out.append(
        _target(
            "accept -> connected p95",
            f"< {MAX_P95_SETUP_MS:g} ms",
            setup,
            None if setup is None else setup < MAX_P95_SETUP_MS,
        )
    )
    clients = sfu.get("clients") or {}
    marked = [p["calls_requested"] for p in results.get("sweep", []) if kept_up(p) is False]
    out.append(
        _target(
            "load generator not the bottleneck",
            f"< {CLIENTS_MAX_CPU_PCT:g} % of its core(s), frames on time",
            f"{_fmt(clients.get('cpu_pct_of_cores'))} %",
            kept_up(sfu),
            "; ".join(
                part
                for part in (
                    clients.get("not_a_measurement") or "",
                    f"sweep rows not a measurement: {marked}" if marked else "",
                )
                if part
            ),
        )
    )
    content = sfu.get("content") or {}
    checked, wrong = content.get("checked", 0), content.get("wrong", 0)
    out.append(
        _target(
            "every viewer sees the right party",
            "0 wrong",
            f"{wrong} wrong of {checked} checked",
            checked > 0 and wrong == 0 if checked else None,
        )
    )
    growth = cpu_growth(results)
    out.append(
        _target(
            "CPU per call stable with load",
            f"within +/-{MAX_CPU_GROWTH_PCT:g} %",
            None if growth is None else f"{growth[2]:+.1f} % ({growth[0]} -> {growth[1]} calls)",
            None if growth is None else abs(growth[2]) <= MAX_CPU_GROWTH_PCT,
            "" if growth is not None else "needs --sweep with a smaller load",
        )
    )
    return out


def within_targets(p: dict[str, Any]) -> bool:
    """Whether one sweep row carried its admitted calls within every SPEC target, measured by
    clients that kept up."""
    loss, setup = p.get("loss_pct"), (p.get("accept_to_connected") or {}).get("p95_ms")
    delay = (p.get("forwarding_delay") or {}).get("p95_ms")
    return (
        kept_up(p) is not False
        and loss is not None
        and loss < MAX_LOSS_PCT
        and setup is not None
        and setup < MAX_P95_SETUP_MS
        and delay is not None
        and delay < MAX_P95_DELAY_MS
    )


def ceiling(results: dict[str, Any]) -> dict[str, Any] | None:
    """The most calls a sweep row carried within every target, its CPU per call, and the
    ``--max-calls-per-worker`` to set for this machine (:func:`media.admission.recommended_max_calls`)."""
    rows = [p for p in results.get("sweep", []) if p.get("calls_ok") and within_targets(p)]
    if not rows:
        return None
    best = max(rows, key=lambda p: p["calls_ok"])
    cost = best.get("worker_cpu_per_call_pct")
    per_call = float(cost) / 100 if cost else None
    return {
        "calls": best["calls_ok"],
        "cpu_per_call_pct": cost,
        "max_calls_per_worker": recommended_max_calls(best["calls_ok"], per_call),
        "limited_by_the_sweep": best is max(results["sweep"], key=lambda p: p["calls_requested"]),
    }


def median_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Of one load's runs, the one with the median CPU per call (the lower middle one for an
    even count), with every run's CPU per call beside it."""
    ordered = sorted(runs, key=lambda p: p.get("worker_cpu_per_call_pct") or 0.0)
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["cpu_per_call_runs"] = [p.get("worker_cpu_per_call_pct") for p in runs]
    return chosen


def cpu_growth(results: dict[str, Any]) -> tuple[int, int, float] | None:
    """(smallest load, target load, % change of worker CPU per call between them)."""
    sweep = [p for p in results.get("sweep", []) if p.get("worker_cpu_per_call_pct")]
    target = results["phases"]["sfu"]
    smaller = [p for p in sweep if p["calls_ok"] < target["calls_ok"]]
    if not smaller or not target.get("worker_cpu_per_call_pct"):
        return None
    base = min(smaller, key=lambda p: p["calls_ok"])
    change = 100 * (target["worker_cpu_per_call_pct"] / base["worker_cpu_per_call_pct"] - 1)
    return base["calls_ok"], target["calls_ok"], round(change, 1)


def _fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def _pair(summary: dict[str, Any] | None, a: str = "p50_ms", b: str = "p95_ms") -> str:
    if not summary:
        return "-"
    return f"{_fmt(summary.get(a), '.1f')} / {_fmt(summary.get(b), '.1f')}"


COLUMNS = (
    ("pipeline", 8),
    ("calls", 7),
    ("worker CPU", 10),
    ("CPU/call", 9),
    ("frames sent", 11),
    ("received", 9),
    ("loss %", 7),
    ("uplink loss %", 13),
    ("fwd delay p50/p95 ms", 20),
    ("accept->connected p50/p95 ms", 28),
    ("monitor 1st video p95 ms", 24),
    ("clients CPU", 11),
    ("clients kept up", 15),
)


def _row(cells: list[str]) -> str:
    return "  ".join(cell.ljust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True))


def phase_row(p: dict[str, Any]) -> str:
    return _row(
        [
            p["pipeline"],
            f"{p['calls_ok']}/{p['calls_requested']}",
            f"{100 * p['worker_cpu_cores']:.1f} %",
            f"{_fmt(p['worker_cpu_per_call_pct'], '.2f')} %",
            str(p["frames_sent"]),
            str(p["frames_received"]),
            _fmt(p["loss_pct"], ".3f"),
            _fmt(p["upstream_loss_pct"], ".3f"),
            _pair(p["forwarding_delay"]),
            _pair(p["accept_to_connected"]),
            _fmt(p["monitor_first_video"]["p95_ms"], ".1f"),
            f"{100 * p['bench_process_cpu_cores']:.1f} %",
            _kept_up_cell(p),
        ]
    )


def _kept_up_cell(p: dict[str, Any]) -> str:
    verdict = kept_up(p)
    if verdict is None:
        return "-"
    return "yes" if verdict else "NO: NOT A MEASUREMENT"


def table(results: dict[str, Any], *, per_call: bool = False) -> str:
    cfg, machine = results["config"], results["machine"]
    lines = [
        f"Visitation media benchmark: {cfg['calls']} calls (2 parties + 1 monitor each, 640x360 VP8"
        f" ~500 kbps + Opus), {cfg['seconds']:g} s steady window, 1 worker;"
        f" {machine['cpus']} CPUs, aiortc {machine['aiortc']}",
        "CPU in % of one core (user+sys of the worker process); delays are worker-internal"
        " (datagram in -> sent)",
        _pinning(results),
        _idle(results),
        "",
        _row([name for name, _ in COLUMNS]),
    ]
    sweep = results.get("sweep", [])
    if len(sweep) > 1:
        lines += [phase_row(p) for p in sweep]
        for p in sweep:
            if kept_up(p) is False:
                lines.append(
                    f"  {p['calls_requested']} calls: NOT A MEASUREMENT"
                    f" ({p['clients']['not_a_measurement']})"
                )
        if any(len(p.get("cpu_per_call_runs", ())) > 1 for p in sweep):
            lines.append(
                "  median of runs; CPU/call of each run: "
                + "; ".join(
                    f"{p['calls_ok']}: " + ", ".join(_fmt(v, ".2f") for v in p["cpu_per_call_runs"])
                    for p in sweep
                )
            )
        growth = cpu_growth(results)
        if growth is not None:
            lines.append(f"  CPU per call {growth[0]} -> {growth[1]} calls: {growth[2]:+.1f} %")
        for p in sweep:
            if p["calls_ok"] < p["calls_requested"]:
                lines.append(
                    f"  {p['calls_requested']} asked: {p['calls_ok']} admitted"
                    f" ({_fmt(p['loss_pct'])} % loss), {p['calls_requested'] - p['calls_ok']}"
                    " refused or failed"
                )
        top = results["ceiling"] if "ceiling" in results else ceiling(results)
        if top is None:
            lines.append("  ceiling: no row carried its calls within every SPEC target")
        else:
            more = " (the sweep's largest load: sweep higher to find the real one)"
            lines.append(
                f"  ceiling: {top['calls']} calls within every SPEC target"
                f"{more if top['limited_by_the_sweep'] else ''} at"
                f" {_fmt(top['cpu_per_call_pct'], '.2f')} % of a core per call: set"
                f" --max-calls-per-worker {top['max_calls_per_worker']} on this machine"
                f" (default {DEFAULT_MAX_CALLS})"
            )
        lines.append("")
    for phase in results["phases"].values():
        if phase is not results["phases"].get("sfu") or len(sweep) <= 1:
            lines.append(phase_row(phase))
    for phase in results["phases"].values():
        if phase["errors"]:
            lines.append(f"  {phase['pipeline']} failures: {'; '.join(phase['errors'])}")
        lines.append(
            f"  {phase['pipeline']}: benchmark process (clients + signaling) used"
            f" {100 * phase['bench_process_cpu_cores']:.1f} % of a core, other processes"
            f" {100 * phase['other_processes_cpu_cores']:.1f} %;"
            f" transcoders in worker: {_fmt(phase['transcoders'])}"
        )
        rec = phase.get("recording")
        if rec:
            lines.append(
                f"  {phase['pipeline']}: recorded {rec['calls']} calls, {rec['frames']} frames"
                f" written in the window, {rec['dropped_packets']} packets dropped,"
                f" writer backlog {rec['backlog']} writes waiting"
            )
        clients = phase.get("clients")
        if clients:
            lines.append(
                f"  {phase['pipeline']}: clients ({'light' if phase.get('light_clients') else 'full'})"
                f" {_fmt(clients['cpu_pct_of_cores'])} % of {clients['cores']} core(s);"
                f" frames sent late p50/p99 {_pair(clients['send_lateness'], 'p50_ms', 'p99_ms')} ms;"
                f" loop lag p99 {_fmt(clients['loop_lag'].get('p99_ms'), '.1f')} ms;"
                f" packets unprotected {_fmt(clients['decrypted_pct'])} %"
            )
            lines.append(
                f"  {phase['pipeline']}: datagrams dropped at full UDP receive buffers: clients"
                f" {_fmt(clients.get('socket_drops'))}, worker {_fmt(phase.get('worker_socket_drops'))}"
            )
        if kept_up(phase) is False:
            lines.append(
                f"  WARNING: the clients did not keep up in the {phase['pipeline']} window"
                f" ({clients and clients['not_a_measurement']}): NOT A MEASUREMENT of the"
                " worker; the load generator may have limited these figures"
            )
        pause = phase.get("bench_gc_longest_pause_ms") or 0.0
        if pause > LONG_GC_PAUSE_MS:
            lines.append(
                f"  WARNING: a {pause:.0f} ms garbage-collector pause of the clients' process in"
                f" the {phase['pipeline']} phase stalled every client at once (set-up times"
                " include it)"
            )
        if phase["other_processes_cpu_cores"] > BUSY_MACHINE_CORES:
            lines.append(
                f"  WARNING: other processes were busy during the {phase['pipeline']} window;"
                " its numbers are skewed (rerun on a quiet machine)"
            )
    if results.get("cpu_ratio") is not None:
        lines.append(f"CPU per call, naive / sfu: {results['cpu_ratio']:g}x")
    lines += ["", "SPEC performance targets:"]
    for t in results["targets"]:
        note = f"  ({t['note']})" if t["note"] else ""
        lines.append(
            f"  [{t['verdict']}] {t['target']}: {t['wanted']}, measured {_fmt(t['measured'])}{note}"
        )
    if per_call:
        for phase in results["phases"].values():
            lines += ["", f"{phase['pipeline']} per call:", _per_call_header()]
            lines += [_per_call_row(c) for c in phase["per_call"]]
    return "\n".join(lines)


def _pinning(results: dict[str, Any]) -> str:
    phase = results["phases"].get("sfu") or {}
    pinned = phase.get("pinned")
    if not pinned:
        return "Not pinned: worker and clients shared the machine's cores"
    return (
        f"Pinned: worker on core(s) {pinned['worker']}, clients + signaling + Redis on"
        f" {pinned['clients']}"
    )


def _idle(results: dict[str, Any]) -> str:
    idle = results["machine"].get("idle") or {}
    limit, driver = idle.get("wake_latency_limit_us"), idle.get("cpuidle_driver") or "none"
    if limit is None:
        return f"Idle CPUs: cpuidle driver {driver}, wake-up limit unknown"
    if limit == 0:
        return f"Idle CPUs: polling, not halting (wake-up limit 0 us held; cpuidle {driver})"
    return f"Idle CPUs: may sleep (wake-up limit {limit} us; cpuidle {driver})"


def _per_call_header() -> str:
    return "  call  frames sent  received  loss %   fwd p50/p95 ms  accept->connected ms  monitor 1st video ms"


def _per_call_row(c: dict[str, Any]) -> str:
    return (
        f"  {c['index']:<4}  {c['frames_sent']:<11}  {c['frames_received']:<8}  "
        f"{_fmt(c['loss_pct'], '.3f'):<7}  "
        f"{_fmt(c['forwarding_delay_p50_ms'], '.1f') + ' / ' + _fmt(c['forwarding_delay_p95_ms'], '.1f'):<14}  "
        f"{_fmt(c['accept_to_connected_ms'], '.1f'):<20}  {_fmt(c['monitor_first_video_ms'], '.1f')}"
    )
