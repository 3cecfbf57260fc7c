"""Transcripts signed like manifests: HMAC-SHA256 over the canonical JSON (sorted keys, no
spaces, ASCII, ``signature`` left out) with a key of their own purpose, so a transcript
signature is never a manifest's, a token's or a webhook's.

What is stored is the signed transcript's canonical JSON with its signature (``body``) and
that body's SHA-256; :meth:`TranscriptSigner.check` says what is wrong with a stored pair for
a given recording.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from pydantic import ValidationError

from core.keys import Purpose, derive_key
from transcripts.model import Transcript


def canonical(transcript: Transcript, *, signed: bool = False) -> bytes:
    exclude = None if signed else {"signature"}
    body = transcript.model_dump(mode="json", exclude=exclude)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TranscriptSigner:
    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, Purpose.TRANSCRIPTS)

    def _mac(self, transcript: Transcript) -> str:
        return hmac.new(self._key, canonical(transcript), hashlib.sha256).hexdigest()

    def sign(self, transcript: Transcript) -> tuple[Transcript, bytes]:
        """The signed transcript and the bytes to store."""
        signed = transcript.model_copy(update={"signature": self._mac(transcript)})
        return signed, canonical(signed, signed=True)

    def check(
        self, body: bytes, sha256: str, call_id: str, recording_sha256: str | None
    ) -> list[str]:
        """Problems with a stored transcript of ``call_id`` made from the recording whose
        hash is ``recording_sha256`` (none: it verifies)."""
        problems: list[str] = []
        if not hmac.compare_digest(sha256_hex(body), sha256):
            problems.append("transcript SHA-256 does not match: the stored transcript was altered")
        try:
            transcript = Transcript.model_validate_json(body)
        except ValidationError:
            return [*problems, "the stored transcript is not readable"]
        if transcript.signature is None or not hmac.compare_digest(
            transcript.signature, self._mac(transcript)
        ):
            problems.append("transcript signature does not match: the transcript was altered")
        if transcript.call_id != call_id:
            problems.append(f"the transcript is of another call ({transcript.call_id})")
        if recording_sha256 is None or transcript.recording_sha256 != recording_sha256:
            problems.append("the transcript was made from another recording (hash differs)")
        return problems
