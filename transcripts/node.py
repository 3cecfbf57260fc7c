"""Transcripts on a signaling node, in one object for ``visitation/node.py``: the service
(the recording service's transcripts port: told of each seal and purge, answering its search
and verify), the routes, and optionally
local transcription workers (``serve --transcribers N``), and the transcription metrics
sampling for ``/metrics`` (:mod:`transcripts.metrics`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web
from redis.asyncio import Redis

from core.directory import Directory
from core.tasks import Periodic
from core.tokens import Tokens
from recorder.service import RecordingService
from transcripts.http_api import add_transcript_routes
from transcripts.metrics import SAMPLE_S, TranscriptionSampler
from transcripts.queue import TranscriptionQueue
from transcripts.service import TranscriptService

log = logging.getLogger(__name__)

CATCH_UP_S: Final = 600.0  # how often recordings left without a transcript are queued
CATCH_UP_DAYS: Final = 7


def transcript_service(redis: Redis, redis_url: str, secret: bytes) -> TranscriptService:
    """The node's transcripts service, on the job queue in its Redis: built before the
    recording service, which tells it of each recording sealed and purged."""
    return TranscriptService(redis, secret, TranscriptionQueue(redis_url))


class TranscriptsNode:
    def __init__(
        self,
        app: web.Application,
        *,
        redis: Redis,
        tokens: Tokens,
        directory: Directory,
        service: TranscriptService,
        recordings: RecordingService,
        clock: Callable[[], float] = time.time,
        metrics_interval_s: float = SAMPLE_S,
    ) -> None:
        self.service = service  # the recording service's transcripts port too
        self._recordings = recordings
        self._clock = clock
        self._catch_up = Periodic(
            "transcripts-missing", self.queue_missing, CATCH_UP_S, delay_first=True
        )
        self.metrics = TranscriptionSampler(redis, interval_s=metrics_interval_s)
        add_transcript_routes(
            app, tokens=tokens, directory=directory, service=self.service, recordings=recordings
        )

    async def queue_missing(self) -> None:
        since = self._clock() - CATCH_UP_DAYS * 86400
        queued = await self.service.queue_missing(self._recordings.catalog, since)
        if queued:
            log.info("queued %d recording(s) that had no transcript", queued)

    async def start(self) -> None:
        await self.service.start()
        self._catch_up.start()
        self.metrics.start()

    async def stop(self) -> None:
        await self.metrics.stop()
        await self._catch_up.stop()
        await self._recordings.drain_hooks()
        await self.service.stop()
