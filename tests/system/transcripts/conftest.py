"""Transcripts fixtures: one real SFU worker for the package, real transcription worker
processes per test (:class:`transcripts.pool.TranscriberPool`), seeded Redis, espeak-ng speech."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from redis.asyncio import Redis

from core.domain import SeedFile
from recorder.service import RecordingService
from recorder.storage import LocalStorage
from tests.conftest import SECRET, package_sfu_worker, redis_keeping_workers
from tests.seeds import standard_seed_data
from tests.system.transcripts.speech import espeak_available
from transcripts.pool import TranscriberPool
from visitation.seed import apply_seed

sfu_worker = package_sfu_worker("stt-sfu")

StartTranscribers = Callable[..., Awaitable[TranscriberPool]]


@pytest.fixture(autouse=True)
def _espeak() -> None:
    if not espeak_available():
        pytest.fail("espeak-ng is missing: apt-get install -y espeak-ng (make install does it)")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A clean database for each test, keeping the shared SFU worker's registration."""
    async with redis_keeping_workers(redis_url) as client:
        yield client


@pytest.fixture
async def seeded(redis: Redis) -> SeedFile:
    data = standard_seed_data()
    data["staff"] += [
        {"id": "I2", "role": "investigator", "facility_ids": ["SQ"]},
        {"id": "I3", "role": "investigator", "facility_ids": ["CLOSED"]},
    ]
    seed = SeedFile.model_validate(data)
    await apply_seed(redis, seed)
    return seed


@pytest.fixture
async def transcribers(
    redis_url: str, recordings_dir: Path, redis: Redis
) -> AsyncIterator[StartTranscribers]:
    """``await start(n, *extra_args)``: n more real transcription workers, ready."""
    pools: list[TranscriberPool] = []

    async def start(n: int = 1, *extra: str) -> TranscriberPool:
        pool = TranscriberPool(
            redis_url,
            str(recordings_dir),
            log_level="INFO",
            extra_args=["--retry-backoff-ms", "200", *extra],
            env={"VISITATION_SECRET": SECRET.decode()},
            id_prefix=f"stt{len(pools)}",
        )
        pools.append(pool)
        await pool.start(n)
        await pool.wait_ready(redis)
        return pool

    yield start
    for pool in pools:
        await pool.stop()


@pytest.fixture
def service(redis: Redis, recordings_dir: Path) -> RecordingService:
    return RecordingService(redis, LocalStorage(recordings_dir), SECRET)


def distinct_words(text: str) -> set[str]:
    import re

    return set(re.findall(r"[a-z']+", text.lower()))


def word_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> float:
    """Levenshtein distance over words / reference length."""
    ref, hyp = list(reference), list(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))
