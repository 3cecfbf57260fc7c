"""One transcription job: a sealed recording's transcript, signed and stored, its watch words
flagged on the recording and alerted.

Idempotent: a call already done is skipped; the flags and alerts of a try are derived from the
transcript it makes (the same each time) and written before the transcript is stored, so a
try that dies at any point leaves nothing that a retry would duplicate or miss.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from recorder.catalog import Catalog
from recorder.storage import Storage
from transcripts.alerts import AlertStore
from transcripts.audio import decode_party
from transcripts.engine import Engine
from transcripts.model import PARTIES, Segment, Transcript, WatchHit
from transcripts.signing import TranscriptSigner, sha256_hex
from transcripts.store import TranscriptStore
from transcripts.watch_words import WatchWords, find, merged

log = logging.getLogger(__name__)


class GiveUp(Exception):
    """Tried too often (its worker kept dying): dead-letter it without another try."""


@dataclass(frozen=True)
class Outcome:
    call_id: str
    done: bool  # this try stored the transcript
    reason: str = ""
    audio_s: float = 0.0
    cpu_s: float = 0.0


@dataclass
class Transcriber:
    catalog: Catalog
    store: TranscriptStore
    storage: Storage
    engine: Engine
    signer: TranscriptSigner
    watch_words: WatchWords
    alerts: AlertStore
    worker_id: str
    max_tries: int = 3
    clock: Callable[[], float] = time.time

    async def run(self, call_id: str) -> Outcome:
        entry = await self.catalog.get(call_id)
        sha256 = entry.manifest.sha256 if entry is not None else None
        if entry is None or entry.state != "final" or sha256 is None:
            await self.store.fail(call_id, "no sealed recording with media", final=True)
            return Outcome(call_id, False, "no sealed recording")
        m = entry.manifest
        try_no = await self.store.claim(call_id, self.worker_id)
        if try_no == 0:
            return Outcome(call_id, False, "already done")
        if try_no > self.max_tries:
            raise GiveUp(f"call {call_id}: {try_no - 1} tries did not finish")
        words = await self.watch_words.get(m.facility_id)
        started = time.process_time()
        segments, spotted, audio_s = await asyncio.to_thread(self._recognise, call_id, words)
        cpu_s = time.process_time() - started
        hits = merged(find(segments, words), spotted)
        transcript = Transcript(
            call_id=call_id,
            facility_id=m.facility_id,
            recording_sha256=sha256,
            engine=self.engine.name,
            language=self.engine.language,
            segments=segments,
            watch_hits=hits,
            audio_s=round(audio_s, 2),
            made_at=round(self.clock(), 3),
            made_by=self.worker_id,
        )
        _, body = self.signer.sign(transcript)
        if hits:
            await self.catalog.set_watch_flags(call_id, [h.flag() for h in hits])
            await self.alerts.raise_for(call_id, m.facility_id, m.resident_id, m.family_id, hits)
        done = await self.store.finish(
            call_id,
            body,
            sha256_hex(body),
            self.engine.name,
            self.worker_id,
            audio_s=audio_s,
            cpu_s=cpu_s,
        )
        log.info(
            "call %s: transcript %s (%d segments, %d watch words, %.1f s audio in %.1f CPU s)",
            call_id,
            "stored" if done else "was already stored",
            len(segments),
            len(hits),
            audio_s,
            cpu_s,
        )
        return Outcome(call_id, done, "", audio_s, cpu_s)

    def _recognise(
        self, call_id: str, words: list[str]
    ) -> tuple[list[Segment], list[WatchHit], float]:
        segments: list[Segment] = []
        spotted: list[WatchHit] = []
        audio_s = 0.0
        for party in PARTIES:
            audio = decode_party(self.storage, call_id, party)
            audio_s += audio.seconds
            if not len(audio.pcm):
                continue
            found = self.engine.transcribe(audio.pcm, party, words)
            segments += found.segments
            spotted += found.spotted
        segments.sort(key=lambda s: (s.start_s, s.party))
        return segments, spotted, audio_s


TRIES_HELP: Final = "a job is dead-lettered after this many failed tries"
