"""A deployment across hosts (see :mod:`tests.system.net.hosts`): a signaling node (``visitation serve
--workers 0``), an SFU worker (``visitation worker --announce-ip``), Redis and an S3 server, each
in a network namespace of its own, sharing nothing but the data centre's LAN; a family at home
behind NAT, the tablet and the monitor on the facility's side, an investigator over the internet.

A whole call is monitored, recorded into the object store by the worker as it goes, sealed and
signed by the node, settled, and downloaded and verified by the investigator; then the worker's
host is lost in the middle of a call (process killed, cable pulled), and nothing is lost: the call
ends for both parties, the family pays for the time connected only, and the recording that the
worker had uploaded is sealed ``complete: false`` and verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from billing_hooks.money.ledger import Ledger
from core.embedded_redis import find_redis_server
from core.tariff import charge_cents
from core.tokens import Tokens
from loadtest.faults.case import wait_for
from loadtest.s3_server import S3Server
from media.redis_keys import ALIVE
from signaling.call_state import CallState, CallStore
from tests.conftest import SECRET
from tests.seeds import standard_seed
from tests.system.net.hosts import HOSTS, HostsLab
from tests.system.net.lab import MEDIA_PORTS, PUBLIC_SERVER, SIGNALING_PORT
from tests.system.net.procs import Proc
from tests.system.net.test_nat import grew
from visitation.seed import apply_seed

S3_PORT = 9000
BUCKET = "evidence"
WORKER_ID = "dc-worker-1"
PUBLIC_URL = f"http://{PUBLIC_SERVER}:{SIGNALING_PORT}"
LAN_URL = f"http://{HOSTS['node']}:{SIGNALING_PORT}"
# Run inside the S3 host's namespace (the test's own has no route to it).
LIST_KEYS = """
import json, sys, botocore.session
endpoint, bucket = sys.argv[1:3]
s3 = botocore.session.get_session().create_client(
    "s3", endpoint_url=endpoint, region_name="us-east-1",
    aws_access_key_id="testing", aws_secret_access_key="testing")
pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
print(json.dumps({"event": "keys", "keys": [o["Key"] for p in pages for o in p.get("Contents", [])]}))
"""


@dataclass
class DataCentre:
    lab: HostsLab
    redis: Redis  # the test's own look at Redis, through its unix socket
    node: Proc
    worker: Proc
    node_dir: Path
    tokens: Tokens
    s3: S3Server

    async def party(self, role: str, subject: str, where: str, *args: str) -> Proc:
        url = PUBLIC_URL if where == "fam" else LAN_URL
        argv = [*self.lab.exec_prefix(where), sys.executable, "-m", "tests.system.net.party"]
        argv += ["--url", url, "--token", self.tokens.issue(role, subject), "--role", role, *args]
        proc = await Proc.start(f"{role}@{where}", argv)
        await proc.event("ready", timeout=30)
        return proc

    async def object_keys(self) -> list[str]:
        argv = [*self.lab.exec_prefix("s3"), sys.executable, "-c", LIST_KEYS]
        proc = await Proc.start("s3 ls", [*argv, self.s3.url, BUCKET])
        assert await proc.exited(timeout=60) == 0, proc.tail()
        keys: list[str] = proc.events[-1]["keys"]
        return keys

    async def investigate(self, call_id: str) -> dict[str, Any]:
        """The investigator, from the internet: waits for the signed recording, fetches it."""
        argv = [*self.lab.exec_prefix("fam"), sys.executable, "-m", "tests.system.net.investigator"]
        argv += ["--url", PUBLIC_URL, "--token", self.tokens.issue("investigator", "I1")]
        argv += ["--call-id", call_id, "--timeout", "60"]
        proc = await Proc.start("investigator@fam", argv)
        code = await proc.exited(timeout=90)
        assert code == 0 and proc.events, proc.tail()
        return proc.events[-1]


async def started(
    name: str, argv: list[str], ready: str, env: dict[str, str] | None = None
) -> Proc:
    proc = await Proc.start(name, argv, env)
    try:
        await proc.wait_line(ready, timeout=60)
    except BaseException:
        await proc.stop(timeout=5)
        raise
    return proc


@pytest.fixture(scope="module")
async def dc(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DataCentre]:
    workdir = tmp_path_factory.mktemp("dc")
    lab = HostsLab().build()
    procs: list[Proc] = []
    redis: Redis | None = None
    stack = contextlib.AsyncExitStack()
    try:
        password = secrets.token_hex(16)
        sock = workdir / "redis.sock"
        redis_argv = [*lab.exec_prefix("redis"), find_redis_server(), "--bind", HOSTS["redis"]]
        redis_argv += ["--port", "6379", "--requirepass", password, "--dir", str(workdir)]
        redis_argv += ["--unixsocket", str(sock), "--unixsocketperm", "700"]
        redis_argv += ["--appendonly", "yes", "--save", ""]
        procs.append(await started("redis@redis", redis_argv, "accept connections"))
        redis = Redis.from_url(f"unix://{sock}", password=password)
        await apply_seed(redis, standard_seed())

        s3 = S3Server(HOSTS["s3"], S3_PORT, bucket=BUCKET, command_prefix=lab.exec_prefix("s3"))
        await stack.enter_async_context(s3)

        redis_url = f"redis://:{password}@{HOSTS['redis']}:6379/0"
        env = {**s3.env, "VISITATION_SECRET": SECRET.decode(), "VISITATION_LOG_LEVEL": "INFO"}
        worker_argv = [*lab.exec_prefix("worker"), sys.executable, "-m", "visitation.cli"]
        worker_argv += ["worker", "--redis-url", redis_url, "--worker-id", WORKER_ID]
        worker_argv += ["--recordings-dir", env["VISITATION_RECORDINGS_URL"]]
        worker_argv += ["--announce-ip", PUBLIC_SERVER, "--rtc-ports", MEDIA_PORTS]
        worker = await Proc.start("worker@worker", worker_argv, env)
        procs.append(worker)
        node_dir = workdir / "node"
        node_argv = [*lab.exec_prefix("node"), sys.executable, "-m", "visitation.cli", "serve"]
        node_argv += ["--host", "0.0.0.0", "--port", str(SIGNALING_PORT), "--workers", "0"]
        node_argv += ["--data-dir", str(node_dir), "--redis-url", redis_url]
        procs.append(await started("node@node", node_argv, "visitation serving on", env))
        ready = redis  # readiness is a Redis key, nothing to await

        async def heartbeat() -> bool:
            return worker.process.returncode is not None or bool(
                await ready.exists(ALIVE(WORKER_ID))
            )

        assert await wait_for(heartbeat, 30) and worker.process.returncode is None, worker.tail()
        yield DataCentre(lab, redis, procs[-1], worker, node_dir, Tokens(SECRET), s3)
    finally:
        for proc in reversed(procs):
            await proc.stop(timeout=15)
            (workdir / f"{proc.name}.log").write_text("\n".join(proc.lines))
        if redis is not None:
            await redis.aclose()
        await stack.aclose()
        lab.destroy()


@dataclass
class LiveCall:
    tablet: Proc
    family: Proc
    monitor: Proc
    call_id: str


@pytest.fixture
async def live_call(dc: DataCentre) -> AsyncIterator[LiveCall]:
    """Family F1 at home takes R1's call; monitor S1 watches; media flows to all three."""
    procs: list[Proc] = []
    try:
        procs.append(await dc.party("family", "F1", "fam"))
        procs.append(await dc.party("tablet", "R1", "node", "--contact", "F1"))
        family, tablet = procs
        joined = await asyncio.gather(
            tablet.event("joined", timeout=45), family.event("joined", timeout=45)
        )
        call_id = joined[0]["call_id"]
        assert joined[1]["call_id"] == call_id
        assert joined[1]["pair"]["remote"].startswith(f"{PUBLIC_SERVER}:"), joined[1]
        procs.append(await dc.party("monitor", "S1", "node", "--call-id", call_id))
        monitor = procs[-1]
        await monitor.event("joined", timeout=45)
        await asyncio.gather(*(p.event("media", 30, grew({})) for p in (tablet, family, monitor)))
        yield LiveCall(tablet, family, monitor, call_id)
    finally:
        for proc in procs:
            await proc.stop(timeout=5)


async def settled(dc: DataCentre, call_id: str) -> tuple[int, int, int]:
    """(charged cents, connected seconds, settlement entries) once the call is settled."""
    ledger, store = Ledger(dc.redis), CallStore(dc.redis)

    async def over() -> bool:
        record = await store.get(call_id)
        ended = record is not None and record.state == CallState.ENDED
        return ended and await ledger.find("F1", f"settle:{call_id}") is not None

    assert await wait_for(over, 30), await store.get(call_id)
    record = await store.get(call_id)
    assert record is not None
    marker = await ledger.find("F1", f"settle:{call_id}")
    assert marker is not None
    run = [e for e in await ledger.entries("F1") if e.ref == f"settle:{call_id}"]
    hold = await ledger.find("F1", f"hold:{call_id}")
    expected = charge_cents(
        int(marker.meta["connected_seconds"]),
        record.rate_cents_per_minute,
        record.end_reason,
        hold.amount_cents if hold is not None and not hold.void else 0,
    )
    charged = int(marker.meta["charged_cents"])
    assert charged == expected, (charged, expected, marker.meta)
    assert sum(e.amount_cents for e in run if e.kind == "charge") == charged
    assert not await dc.redis.hexists("acct:F1:holds", call_id)
    return charged, int(marker.meta["connected_seconds"]), len(run)


def assert_signed_in_s3(found: dict[str, Any]) -> dict[str, Any]:
    assert found["event"] == "recording", found
    summary: dict[str, Any] = found["summary"]
    assert found["verify"]["ok"] is True, found["verify"]
    assert found["sha256"] == summary["sha256"] and found["size"] == summary["size"], found
    assert found["range"] == {"status": 206, "length": 96}, found["range"]
    return summary


async def test_a_call_across_hosts_is_monitored_recorded_in_s3_settled_and_verified(
    dc: DataCentre, live_call: LiveCall
) -> None:
    await live_call.tablet.send("hangup")
    ended = await asyncio.gather(
        *(p.event("ended", 20) for p in (live_call.tablet, live_call.family, live_call.monitor))
    )
    assert ended[1]["reason"] == "hangup", ended
    charged, connected_s, entries = await settled(dc, live_call.call_id)
    assert entries in (1, 2) and connected_s > 0, (charged, connected_s, entries)
    summary = assert_signed_in_s3(await dc.investigate(live_call.call_id))
    assert summary["complete"] is True, summary
    assert {t["party"] for t in summary["tracks"]} == {"tablet", "family"}, summary["tracks"]
    # The evidence is in the object store (sealed, its parts gone), not on the node's disk.
    keys = await dc.object_keys()
    assert f"recordings/{live_call.call_id}.webm" in keys, keys
    assert not [k for k in keys if live_call.call_id in k and ".part" in k], keys
    assert not list(dc.node_dir.rglob("*.webm*")), list(dc.node_dir.rglob("*.webm*"))


async def test_a_lost_worker_host_loses_no_money_and_no_uploaded_evidence(
    dc: DataCentre, live_call: LiveCall
) -> None:
    """Last in the module: the worker's host stays lost."""
    # Some seconds of uploads in the store before the host goes (parts every ~2 s).
    family_frames = live_call.family.events_of("media")[-1]["frames"]
    await live_call.family.event("media", 30, grew(family_frames, by=100))
    dc.worker.process.kill()  # SIGKILL: no goodbye, no closing upload
    dc.lab.unplug("worker")
    lost_at = time.monotonic()
    ended = await asyncio.gather(
        *(p.event("ended", 20) for p in (live_call.tablet, live_call.family))
    )
    noticed_s = time.monotonic() - lost_at
    assert ended[1]["reason"] == "connection_lost", ended
    assert noticed_s < 15, noticed_s
    await live_call.monitor.event("ended", 20)
    charged, connected_s, _ = await settled(dc, live_call.call_id)
    assert connected_s > 0, (charged, connected_s)
    summary = assert_signed_in_s3(await dc.investigate(live_call.call_id))
    assert summary["complete"] is False and summary["size"] > 0, summary
    print(json.dumps({"noticed_s": round(noticed_s, 2), "charged": charged, **summary}))
