"""The transcription queue with real worker processes: each sealed recording transcribed once,
a SIGKILLed worker's job done by another, a poison recording dead-lettered, 20 at once."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from core.directory import Directory
from core.domain import SeedFile
from recorder.service import CallInfo, RecordingService
from tests.conftest import SECRET
from tests.system.transcripts.conftest import StartTranscribers
from tests.system.transcripts.speech import Speech, record_speech, speech
from tests.waiting import eventually
from transcripts.queue import QueueSettings, TranscriptionQueue
from transcripts.service import TranscriptService
from transcripts.store import TranscriptStore

SENTENCE = "bring the package to the north gate on tuesday morning"


def call(facility: str = "SQ", resident: str = "R1", family: str = "F1") -> CallInfo:
    now = time.time()
    return CallInfo(
        call_id=uuid.uuid4().hex,
        facility_id=facility,
        resident_id=resident,
        family_id=family,
        started_at=now,
        connected_at=now,
    )


@pytest.fixture
async def transcripts(redis: Redis, redis_url: str) -> AsyncIterator[TranscriptService]:
    made = TranscriptService(redis, SECRET, TranscriptionQueue(redis_url, QueueSettings()))
    yield made
    await made.stop()


@pytest.fixture
async def wired(
    redis: Redis, service: RecordingService, transcripts: TranscriptService
) -> AsyncIterator[RecordingService]:
    """The recording service as a node builds it: telling ``transcripts`` of each seal and
    purge (``service``, on the same storage and Redis, tells nobody)."""
    made = RecordingService(redis, service.storage, SECRET, transcripts=transcripts)
    yield made
    await made.drain_hooks()


@pytest.fixture(scope="module")
def said() -> Speech:
    return speech([SENTENCE])


async def done(store: TranscriptStore, call_id: str) -> bool:
    stored = await store.get(call_id)
    return stored is not None and stored.status == "done"


async def test_a_sealed_recording_is_transcribed_once(
    seeded: SeedFile,
    wired: RecordingService,
    transcripts: TranscriptService,
    transcribers: StartTranscribers,
    said: Speech,
) -> None:
    await transcribers(1)
    info = call()
    await record_speech(wired, info, said)
    await eventually(lambda: done(transcripts.store, info.call_id), "transcribed", within_s=60)
    stored = await transcripts.store.get(info.call_id)
    assert stored is not None and stored.completions == 1 and stored.tries == 1
    entry = await wired.catalog.get(info.call_id)
    assert entry is not None
    view = await transcripts.view(entry)
    heard = {w for s in view["segments"] for w in s["text"].split()}
    print("heard:", [s["text"] for s in view["segments"]])
    assert view["status"] == "done" and view["engine"] == "pocketsphinx"
    assert len(heard & said.words()) / len(said.words()) >= 0.4


FAST_RECOVERY = ("--heartbeat-timeout-s", "2", "--maintenance-chance", "1000000")


async def test_a_job_whose_worker_is_killed_is_done_exactly_once_by_another(
    seeded: SeedFile,
    wired: RecordingService,
    transcripts: TranscriptService,
    transcribers: StartTranscribers,
) -> None:
    long_speech = speech([SENTENCE] * 6)
    first = await transcribers(1, *FAST_RECOVERY)
    info = call()
    await record_speech(wired, info, long_speech)
    [(first_id, process)] = first.processes.items()

    async def working() -> bool:
        stored = await transcripts.store.get(info.call_id)
        return stored is not None and stored.status == "working" and stored.by == first_id

    await eventually(working, "the first worker took the job", within_s=30, interval_s=0.005)
    process.send_signal(signal.SIGKILL)
    await process.wait()
    second = await transcribers(1, *FAST_RECOVERY)
    [second_id] = second.processes
    await eventually(lambda: done(transcripts.store, info.call_id), "redone", within_s=90)
    stored = await transcripts.store.get(info.call_id)
    assert stored is not None
    assert (stored.by, stored.completions, stored.tries) == (second_id, 1, 2)


async def test_a_poison_recording_is_dead_lettered_after_its_tries(
    seeded: SeedFile,
    service: RecordingService,
    transcripts: TranscriptService,
    transcribers: StartTranscribers,
    said: Speech,
) -> None:
    await transcribers(1, "--max-tries", "3")
    info = call()
    # ``service`` tells no transcripts service: queued by hand below
    await record_speech(service, info, said)
    path = service.storage.path(info.call_id)  # type: ignore[attr-defined]
    path.chmod(0o644)
    path.write_bytes(b"\x1aE\xdf\xa3 not a webm at all" * 100)
    entry = await service.catalog.get(info.call_id)
    assert entry is not None
    await transcripts.on_sealed(entry.manifest)

    async def failed() -> bool:
        stored = await transcripts.store.get(info.call_id)
        return stored is not None and stored.status == "failed"

    await eventually(failed, "dead-lettered", within_s=60)
    stored = await transcripts.store.get(info.call_id)
    assert stored is not None and stored.tries == 3 and stored.completions == 0
    assert "AudioError" in (stored.error or "")
    assert [d["call_id"] for d in await transcripts.store.dead()] == [info.call_id]
    assert transcripts.queue is not None
    await eventually(lambda: _dead_letters(transcripts), "in the queue's dead letters", within_s=10)


async def _dead_letters(transcripts: TranscriptService) -> bool:
    assert transcripts.queue is not None
    return await transcripts.queue.dead_letters() == 1


async def test_twenty_recordings_at_once_are_all_transcribed_by_two_workers(
    seeded: SeedFile,
    service: RecordingService,
    transcripts: TranscriptService,
    transcribers: StartTranscribers,
) -> None:
    short = speech(["north gate on tuesday"], lead_s=0.5, gap_s=0.5)
    calls = [call() for _ in range(20)]
    # ``service`` tells no transcripts service: queued by hand below
    for info in calls:
        await record_speech(service, info, short)
    pool = await transcribers(2)
    started = time.monotonic()
    for info in calls:  # all queued at once
        entry = await service.catalog.get(info.call_id)
        assert entry is not None
        await transcripts.on_sealed(entry.manifest)

    async def all_done() -> bool:
        return all(await asyncio.gather(*(done(transcripts.store, c.call_id) for c in calls)))

    await eventually(all_done, "all 20 transcribed", within_s=180, interval_s=0.1)
    elapsed = time.monotonic() - started
    stored = [await transcripts.store.get(c.call_id) for c in calls]
    assert all(s is not None and s.completions == 1 for s in stored)
    by = {s.by or "" for s in stored if s is not None}
    audio = sum(s.audio_s for s in stored if s is not None)
    cpu = sum(s.cpu_s for s in stored if s is not None)
    print(
        f"\n20 recordings in {elapsed:.1f} s by {sorted(by)}: {audio:.0f} s of audio in "
        f"{cpu:.1f} CPU s, {audio / cpu:.1f} s of audio per CPU second"
    )
    assert by == set(pool.processes)


async def test_a_queue_that_cannot_be_reached_never_delays_the_seal(
    seeded: SeedFile, service: RecordingService, redis: Redis, said: Speech, caplog: Any
) -> None:
    closed = TranscriptionQueue("redis://127.0.0.1:1/0")  # nothing listens on port 1
    unreachable = TranscriptService(redis, SECRET, closed)
    telling = RecordingService(redis, service.storage, SECRET, transcripts=unreachable)
    info = call()
    try:
        await record_speech(telling, info, said)
        entry = await telling.catalog.get(info.call_id)
        assert entry is not None and entry.state == "final" and entry.manifest.signature
        await telling.drain_hooks()
    finally:
        await unreachable.stop()
    assert "queueing its transcript failed" in caplog.text
    assert await unreachable.store.get(info.call_id) is None  # not left pending for ever


async def test_a_purged_recording_takes_its_transcript_and_alerts_with_it(
    seeded: SeedFile,
    wired: RecordingService,
    transcripts: TranscriptService,
    transcribers: StartTranscribers,
    redis: Redis,
) -> None:
    facility = await wired.directory.facility("SQ")
    assert facility is not None
    async with redis.pipeline(transaction=True) as pipe:  # its watch words, as an admin sets
        Directory.queue_facility(pipe, facility.model_copy(update={"watch_words": ["tuesday"]}))
        await pipe.execute()
    await transcribers(1)
    info = call()
    await record_speech(wired, info, speech([SENTENCE]))
    await eventually(lambda: done(transcripts.store, info.call_id), "transcribed", within_s=60)
    assert await transcripts.search("tuesday", ["SQ"]) != {}
    assert [a["word"] for a in await transcripts.alerts.recent(["SQ"], "I1")] == ["tuesday"]
    purged = await wired.purge_expired(now=time.time() + 400 * 86400)
    assert purged == [info.call_id]
    assert await transcripts.store.get(info.call_id) is None
    assert await transcripts.search("tuesday", ["SQ"]) == {}
    assert await transcripts.alerts.recent(["SQ"], "I1") == []
    entry = await wired.catalog.get(info.call_id)
    assert (await transcripts.view(entry))["status"] == "none"


async def test_recordings_sealed_while_the_queue_was_away_are_queued_later(
    seeded: SeedFile,
    service: RecordingService,
    transcripts: TranscriptService,
    transcribers: StartTranscribers,
    said: Speech,
) -> None:
    # ``service`` tells no transcripts service, as if its queue was unreachable
    info = call()
    await record_speech(service, info, said)
    assert await transcripts.store.get(info.call_id) is None
    assert await transcripts.queue_missing(service.catalog, since=time.time() - 3600) == 1
    assert await transcripts.queue_missing(service.catalog, since=time.time() - 3600) == 0
    await transcribers(1)
    await eventually(lambda: done(transcripts.store, info.call_id), "transcribed", within_s=60)
