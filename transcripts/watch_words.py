"""A facility's watch words (``Facility.watch_words``, set by its admins with
``PUT /api/v1/admin/facilities/{id}``) and finding them in transcript segments.

Compared case-insensitively on whole words: "gate" is heard in "the north gate" but not in
"gateway"; a phrase ("north gate") must be said in that order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from core.directory import Directory
from transcripts.model import Segment, WatchHit

WORD: Final = re.compile(r"[a-z0-9']+")


def tokens(text_: str) -> list[str]:
    return WORD.findall(text_.lower())


def normalized(words: Iterable[str]) -> list[str]:
    """Lower case, inner spaces single, duplicates and empty ones dropped, order kept."""
    out = (" ".join(tokens(w)) for w in words)
    return list(dict.fromkeys(w for w in out if w))


class WatchWords:
    """A facility's watch words, normalized (see :func:`normalized`)."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    async def get(self, facility_id: str) -> list[str]:
        facility = await self._directory.facility(facility_id)
        return normalized(facility.watch_words) if facility is not None else []


def find(segments: Sequence[Segment], watch_words: Sequence[str]) -> list[WatchHit]:
    """Every watch word said in a segment, at the time of its first word (the segment's
    start if the engine gave no word timings)."""
    wanted = [(w, w.split()) for w in normalized(watch_words)]
    hits: list[WatchHit] = []
    for segment in segments:
        said = [(w.w, w.t) for w in segment.words] or [
            (t, segment.start_s) for t in tokens(segment.text)
        ]
        words = [w for w, _ in said]
        for phrase, parts in wanted:
            for i in range(len(words) - len(parts) + 1):
                if words[i : i + len(parts)] == parts:
                    at = said[i][1]
                    hits.append(
                        WatchHit(word=phrase, party=segment.party, offset_s=at, text=segment.text)
                    )
                    break
    return hits


def merged(
    heard: list[WatchHit], spotted: Iterable[WatchHit], within_s: float = 2.0
) -> list[WatchHit]:
    """``heard`` (in the text) plus the spotted ones not already heard near the same time."""
    out = list(heard)
    for hit in spotted:
        if not any(h.word == hit.word and abs(h.offset_s - hit.offset_s) <= within_s for h in out):
            out.append(hit)
    return sorted(out, key=lambda h: (h.offset_s, h.word))
