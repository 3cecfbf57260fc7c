"""Transcripts on a signaling node, in one object for ``visitation/node.py``: the service
(hooked to the recorder's seal, answering its search and verify), the routes, and optionally
local transcription workers (``serve --transcribers N``)."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from core.directory import Directory
from core.tokens import Tokens
from recorder.service import RecordingService
from transcripts.http_api import add_transcript_routes
from transcripts.queue import TranscriptionQueue
from transcripts.service import TranscriptService


class TranscriptsNode:
    def __init__(
        self,
        app: web.Application,
        *,
        redis: Redis,
        redis_url: str,
        secret: bytes,
        tokens: Tokens,
        directory: Directory,
        recordings: RecordingService,
    ) -> None:
        self.service = TranscriptService(redis, secret, TranscriptionQueue(redis_url))
        recordings.sealed_hooks.append(self.service.on_sealed)
        recordings.purged_hooks.append(self.service.on_purged)
        recordings.transcripts = self.service
        self._recordings = recordings
        add_transcript_routes(
            app, tokens=tokens, directory=directory, service=self.service, recordings=recordings
        )

    async def start(self) -> None:
        await self.service.start()

    async def stop(self) -> None:
        await self._recordings.drain_hooks()
        await self.service.stop()
