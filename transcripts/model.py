"""What a transcript is: segments per party, the watch words heard, the signed record.

A :class:`Transcript` names the call and the SHA-256 of the sealed recording it was made from,
so it cannot be moved to another call or kept for an altered file; its ``signature`` is an
HMAC like a manifest's (see :mod:`transcripts.signing`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.domain import Party as Party

PARTIES: tuple[Party, ...] = ("tablet", "family")
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Status = Literal["pending", "working", "done", "failed", "none"]


class Word(BaseModel):
    """One recognised word and when it starts (seconds from the recording's start)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    w: str
    t: float


class Segment(BaseModel):
    """One utterance of one party (PROTOCOL v1.2); ``words`` is an addition (word timings)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    party: Party
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    text: str
    confidence: float = Field(ge=0, le=1)
    words: list[Word] = Field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class WatchHit(BaseModel):
    """A facility watch word heard in a segment: a flag at ``offset_s`` and an alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    word: str
    party: Party
    offset_s: float = Field(ge=0)
    text: str = ""

    def flag(self) -> dict[str, Any]:
        return {
            "flag_id": f"ww-{self.party}-{round(self.offset_s * 1000)}-{self.word}"[:64],
            "source": "watch_word",
            "word": self.word,
            "party": self.party,
            "offset_s": self.offset_s,
            "note": f"watch word {self.word!r}",
            "by": "transcriber",
        }


class Transcript(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    call_id: str
    facility_id: str
    recording_sha256: Hex64
    engine: str
    language: str
    segments: list[Segment]
    watch_hits: list[WatchHit] = Field(default_factory=list)
    audio_s: float = 0.0
    made_at: float
    made_by: str = ""
    signature: Hex64 | None = None
