"""Recorder fixtures: real Redis (seeded, plus scoped investigators), real files, real clips,
a real S3-protocol server (moto's, in a subprocess) for the object-storage tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from core.domain import SeedFile
from loadtest.s3_server import S3Server
from recorder.manifest import Manifest
from recorder.muxer import CallRecording
from recorder.s3_storage import S3Storage
from recorder.service import CallInfo, RecordingService
from recorder.storage import LocalStorage
from tests.conftest import SECRET
from tests.seeds import standard_seed_data
from tests.system.recorder.frames import call_frames, clips
from visitation.seed import apply_seed

DAY = 86400.0


@pytest.fixture(scope="session", autouse=True)
def _clips_cached() -> None:
    clips()  # encode once per machine (disk cache), before any timing-sensitive test


@pytest.fixture(scope="session")
def call_webm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 5 s two-party recording made by the muxer."""
    path = tmp_path_factory.mktemp("webm") / "call.webm"
    write_call(CallRecording.open(path, "fixture"))
    return path.read_bytes()


def write_call(recording: CallRecording, seconds: float = 5.0, origin: float = 1000.0) -> None:
    for frame in call_frames(seconds):
        recording.write(frame.party, frame.kind, frame.packet(), arrival=origin + frame.at)
    recording.close()


@pytest.fixture
async def recorder_seed(redis: Redis) -> SeedFile:
    data = standard_seed_data()
    data["facilities"][1]["retention_days"] = 30  # CLOSED keeps recordings 30 days
    data["staff"] += [
        {"id": "I2", "role": "investigator", "facility_ids": ["SQ"]},
        {"id": "I3", "role": "investigator", "facility_ids": ["CLOSED"]},
    ]
    seed = SeedFile.model_validate(data)
    await apply_seed(redis, seed)
    return seed


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "recordings")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server for the session; each test gets a prefix of its own (``s3_location``)."""
    with S3Server() as server:
        yield server


@pytest.fixture
def s3_location(s3_server: S3Server) -> str:
    return f"s3://{s3_server.bucket}/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3_storage(s3_server: S3Server, s3_location: str) -> Iterator[S3Storage]:
    """Uploads in progress every 0.5 s (tests wait for them with deadlines, never sleeps)."""
    storage = S3Storage.from_url(s3_location, env=s3_server.env, interval_s=0.5)
    yield storage
    storage.close()


@pytest.fixture
def service(redis: Redis, storage: LocalStorage, recorder_seed: SeedFile) -> RecordingService:
    return RecordingService(redis, storage, SECRET)


RESIDENT_FACILITY = {"R1": "SQ", "R2": "SQ", "R3": "CLOSED"}


def call_info(call_id: str, resident: str = "R1", family: str = "F1", **kw: Any) -> CallInfo:
    fields: dict[str, Any] = {
        "call_id": call_id,
        "facility_id": RESIDENT_FACILITY[resident],
        "resident_id": resident,
        "family_id": family,
        "started_at": time.time() - 120,
    }
    return CallInfo(**(fields | kw))


async def record(
    service: RecordingService,
    call_id: str,
    data: bytes,
    *,
    resident: str = "R1",
    family: str = "F1",
    started_at: float | None = None,
    flags: Sequence[dict[str, Any]] = (),
) -> Manifest:
    """A finalized recording whose file holds ``data``."""
    started = time.time() - 120 if started_at is None else started_at
    info = call_info(call_id, resident, family, started_at=started)
    await service.begin(info)
    with service.storage.open_write(call_id) as fh:
        fh.write(data)
    ended = info.model_copy(update={"ended_at": started + 60, "end_reason": "hangup"})
    manifest = await service.finalize(call_id, ended, flags)
    assert manifest is not None
    return manifest
