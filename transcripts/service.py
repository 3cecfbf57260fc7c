"""The node's side of transcripts: queue each sealed recording, answer the recorder's search
and verify (:class:`recorder.transcript_port.TranscriptPort`), and say a call's transcript.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from core.directory import Directory
from recorder.catalog import Catalog, CatalogEntry, Query
from recorder.manifest import Manifest
from recorder.transcript_port import TranscriptCheck
from transcripts.alerts import AlertStore
from transcripts.index import TranscriptIndex
from transcripts.model import Status, Transcript
from transcripts.queue import TranscriptionQueue
from transcripts.signing import TranscriptSigner
from transcripts.store import TranscriptStore
from transcripts.watch_words import WatchWords

log = logging.getLogger(__name__)


class TranscriptService:
    def __init__(self, redis: Redis, secret: bytes, queue: TranscriptionQueue | None) -> None:
        """``queue`` None: this node never enqueues (e.g. a read-only node)."""
        self.store = TranscriptStore(redis)
        self.index = TranscriptIndex(self.store)
        self.watch_words = WatchWords(Directory(redis))
        self.alerts = AlertStore(redis)
        self.signer = TranscriptSigner(secret)
        self.queue = queue

    # ------------------------------------------------------------------ after the seal

    async def on_sealed(self, manifest: Manifest) -> None:
        """Queue the transcript of a sealed recording with media (once per call)."""
        if self.queue is None or not manifest.has_media:
            return
        if await self.store.mark_pending(manifest.call_id, manifest.facility_id):
            try:
                await self.queue.enqueue(manifest.call_id)
            except Exception:
                await self.store.forget_pending(manifest.call_id)
                raise  # logged by the recorder's hook runner; the seal is long done
            log.info("call %s: transcript queued", manifest.call_id)

    async def queue_missing(self, catalog: Catalog, since: float, limit: int = 1000) -> int:
        """Queue the signed recordings since ``since`` that have no transcript yet (their seal
        happened while the queue could not be reached, or before transcripts existed)."""
        if self.queue is None:
            return 0
        found = await catalog.search(Query(since=since, limit=limit), ["*"])
        queued = 0
        for entry in found:
            if entry.state == "final" and await self.store.get(entry.manifest.call_id) is None:
                await self.on_sealed(entry.manifest)
                queued += 1
        return queued

    async def on_purged(self, manifest: Manifest) -> None:
        """The recording's media was purged: its transcript and alerts go with it."""
        await self.store.forget(manifest.call_id)
        await self.alerts.forget_call(manifest.call_id, manifest.facility_id)

    # ------------------------------------------------------------------ the recorder's port

    async def search(self, q: str, scope: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        facilities = None if "*" in scope else list(scope)
        found = await self.index.search(q, facilities)
        return {call_id: [m.public() for m in matches] for call_id, matches in found.items()}

    async def check(self, entry: CatalogEntry) -> TranscriptCheck:
        stored = await self.store.get(entry.manifest.call_id)
        if stored is None or stored.status != "done" or stored.body is None:
            return TranscriptCheck(None, self.status_of(entry, stored.status if stored else None))
        problems = self.signer.check(
            stored.body, stored.sha256 or "", entry.manifest.call_id, entry.manifest.sha256
        )
        return TranscriptCheck(not problems, "done", problems)

    # ------------------------------------------------------------------ reading

    @staticmethod
    def status_of(entry: CatalogEntry | None, stored: Status | None) -> Status:
        if entry is None or entry.state == "purged" or not entry.manifest.has_media:
            return "none"
        if stored in ("pending", "working") or (stored is None and entry.state != "final"):
            return "pending"
        return stored or "pending"

    async def view(self, entry: CatalogEntry | None) -> dict[str, Any]:
        """What ``GET /recordings/{call_id}/transcript`` answers (PROTOCOL v1.2)."""
        call_id = entry.manifest.call_id if entry else None
        stored = await self.store.get(call_id) if call_id else None
        status = self.status_of(entry, stored.status if stored else None)
        body: dict[str, Any] = {
            "call_id": call_id,
            "status": status,
            "engine": stored.engine if stored else None,
            "language": None,
            "segments": [],
            "sha256": None,
            "watch_words": [],
        }
        if status == "failed" and stored is not None:
            body["error"] = stored.error
        if status == "done" and stored is not None and stored.body is not None:
            body["sha256"] = stored.sha256
            try:
                transcript = Transcript.model_validate_json(stored.body)
            except ValueError:
                body["error"] = "the stored transcript is not readable (verify says more)"
                return body
            body |= {
                "engine": transcript.engine,
                "language": transcript.language,
                "segments": [s.public() for s in transcript.segments],
                "watch_words": [h.model_dump() for h in transcript.watch_hits],
                "made_at": transcript.made_at,
            }
        return body

    async def start(self) -> None:
        await self.index.catch_up()

    async def stop(self) -> None:
        if self.queue is not None:
            self.queue.close()
        self.index.close()
