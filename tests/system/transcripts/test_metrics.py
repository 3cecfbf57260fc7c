"""Transcription metrics: the queue's backlog by state and the running totals, sampled from the
real Redis into the collector, and served on a real node's ``/metrics``."""

from __future__ import annotations

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from core.domain import SeedFile
from tests.conftest import NodeFactory
from tests.waiting import eventually
from transcripts.metrics import TranscriptionCollector, TranscriptionSampler
from transcripts.queue import TranscriptionQueue
from transcripts.store import TranscriptStore


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
    }


async def test_the_sampler_reads_the_backlog_and_the_totals(redis: Redis, redis_url: str) -> None:
    queue = TranscriptionQueue(redis_url)
    store = TranscriptStore(redis)
    collector = TranscriptionCollector()
    registry = CollectorRegistry()
    registry.register(collector)
    assert generate_latest(registry) == b""  # nothing before the first sample
    try:
        for n in range(3):
            await queue.enqueue(f"queued{n}")  # no worker: they wait
        await store.mark_pending("c1", "SQ")
        assert await store.finish("c1", b"{}", "0" * 64, "test", "w", audio_s=12.5, cpu_s=2.0)
        await store.mark_pending("c2", "SQ")
        await store.fail("c2", "boom", final=False)
        await store.fail("c2", "boom", final=True)
        sample = await TranscriptionSampler(redis, collector=collector).sample()
        assert (sample.depth.queued, sample.depth.backlog, sample.depth.working) == (3, 3, 0)
        got = samples(generate_latest(registry).decode())
        assert got[("visitation_transcription_backlog", ())] == 3
        assert got[("visitation_transcription_jobs", (("state", "queued"),))] == 3
        assert got[("visitation_transcription_jobs", (("state", "dead"),))] == 0
        assert got[("visitation_transcriptions_done_total", ())] == 1
        assert got[("visitation_transcriptions_failed_total", (("outcome", "retried"),))] == 1
        failed_for_good = (
            "visitation_transcriptions_failed_total",
            (("outcome", "dead_lettered"),),
        )
        assert got[failed_for_good] == 1
        assert got[("visitation_transcribed_audio_seconds_total", ())] == 12.5
        assert got[("visitation_transcription_cpu_seconds_total", ())] == 2.0
    finally:
        queue.close()


async def test_the_node_serves_the_transcription_metrics(
    start_node: NodeFactory, seeded: SeedFile, redis: Redis, redis_url: str
) -> None:
    node = await start_node()
    queue = TranscriptionQueue(redis_url)
    try:
        for n in range(4):
            await queue.enqueue(f"queued{n}")
        store = TranscriptStore(redis)
        await store.mark_pending("c1", "SQ")
        await store.finish("c1", b"{}", "0" * 64, "test", "w", audio_s=3.0, cpu_s=1.0)
        seen: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

        async def served() -> bool:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{node.url}/metrics") as resp,
            ):
                seen.update(samples(await resp.text()))
            return (
                seen.get(("visitation_transcription_backlog", ())) == 4
                and seen.get(("visitation_transcriptions_done_total", ())) == 1
            )

        # The node samples every 5 s: the figures show within a few samples.
        await eventually(served, lambda: f"backlog 4 and 1 done on /metrics: {seen}", within_s=20)
    finally:
        queue.close()
