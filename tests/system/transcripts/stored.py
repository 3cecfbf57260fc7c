"""Transcripts stored straight into the real store (no recording, no worker): for the tests of
what follows the store — the search index, the log, the metrics."""

from __future__ import annotations

from transcripts.model import Segment, Transcript
from transcripts.signing import TranscriptSigner
from transcripts.store import TranscriptStore

SIGNER = TranscriptSigner(b"x" * 32)


async def store_done(
    store: TranscriptStore,
    call_id: str,
    said: str,
    facility: str = "SQ",
    *,
    audio_s: float = 2.5,
    cpu_s: float = 0.5,
) -> None:
    """A signed transcript of ``call_id`` in which the family says ``said`` at 1-3 s."""
    transcript = Transcript(
        call_id=call_id,
        facility_id=facility,
        recording_sha256="0" * 64,
        engine="test",
        language="en-US",
        segments=[Segment(party="family", start_s=1.0, end_s=3.0, text=said, confidence=1.0)],
        made_at=0.0,
    )
    _, body = SIGNER.sign(transcript)
    await store.mark_pending(call_id, facility)
    assert await store.finish(call_id, body, "0" * 64, "test", "w", audio_s=audio_s, cpu_s=cpu_s)
