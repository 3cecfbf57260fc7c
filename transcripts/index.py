"""Full-text search over transcripts: SQLite FTS5 on each node, fed from Redis.

The transcripts themselves live in Redis (the cluster's shared state, :mod:`transcripts.store`);
every transcript done is an entry of the ``transcripts:log`` stream. Each node keeps an FTS5 index
(in memory, one row per segment) and, before each search, applies the stream entries it has
not seen yet — so every node answers from every transcript, including one stored a moment ago
by a worker on another host. The stream keeps only its newest entries (see
:mod:`transcripts.store`): a node that starts, or whose last entry seen was trimmed away (it fell
further behind than the stream keeps), rebuilds its index from the set of calls done, then follows
the stream from the newest entry it noted before reading that set. FTS5 does the tokenising (``unicode61``, diacritics folded), the word and phrase
matching and the ranking (``bm25``); nothing here is an index of its own.

Queries: words (all must be in one segment) and ``"quoted phrases"``; every term is quoted
before it reaches FTS5, so no user text is ever FTS5 syntax.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from transcripts.model import Transcript
from transcripts.store import TranscriptStore
from transcripts.watch_words import tokens

TERM: Final = re.compile(r'"([^"]*)"|(\S+)')
MAX_HITS: Final = 1000

SCHEMA: Final = """
CREATE VIRTUAL TABLE IF NOT EXISTS segments USING fts5(
    text, call_id UNINDEXED, facility_id UNINDEXED, party UNINDEXED, start_s UNINDEXED,
    words UNINDEXED, tokenize = 'unicode61 remove_diacritics 2'
);
"""


@dataclass(frozen=True)
class Match:
    party: str
    start_s: float
    text: str

    def public(self) -> dict[str, Any]:
        return {"party": self.party, "start_s": self.start_s, "text": self.text}


def fts_query(q: str) -> tuple[str, list[list[str]]] | None:
    """The FTS5 expression for a user query, and its terms (each a list of words); ``None``
    if it has no word at all."""
    terms: list[list[str]] = []
    for phrase, word in TERM.findall(q):
        words = tokens(phrase or word)
        if words:
            terms.append(words)
    if not terms:
        return None
    return " AND ".join('"' + " ".join(t) + '"' for t in terms), terms


def _first_offset(words_json: str, start_s: float, terms: list[list[str]]) -> float:
    """When the first term is said in the segment (its start if no word timings)."""
    words = json.loads(words_json) if words_json else []
    said = [str(w["w"]) for w in words]
    for term in terms:
        for i in range(len(said) - len(term) + 1):
            if said[i : i + len(term)] == term:
                return float(words[i]["t"])
    return start_s


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class TranscriptIndex:
    def __init__(self, store: TranscriptStore) -> None:
        self._store = store
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.executescript(SCHEMA)
        self._seen = "0"  # the last transcripts:log entry applied
        self._seen_n: int | None = None  # its number
        self._lock = asyncio.Lock()

    async def catch_up(self) -> int:
        """Apply the transcripts done since the last call; how many."""
        async with self._lock:
            return await self._catch_up()

    async def _catch_up(self) -> int:
        applied = 0
        if await self._behind_the_log():
            applied += await self._rebuild()
        while batch := await self._store.log_since(self._seen):
            bodies = await self._store.bodies([e.call_id for e in batch])
            changed = [(e.call_id, bodies.get(e.call_id)) for e in batch]
            await asyncio.to_thread(self._apply, changed)
            self._seen, self._seen_n = batch[-1].entry_id, batch[-1].n
            applied += len(batch)
        return applied

    async def _behind_the_log(self) -> bool:
        """Whether entries this index has not applied may have been trimmed from the log."""
        if self._seen == "0":
            return True  # a new index: the log may no longer hold every transcript
        bounds = await self._store.log_bounds()
        if bounds is None:
            return False
        oldest = bounds[0]
        if _stream_id(oldest.entry_id) <= _stream_id(self._seen):
            return False  # the last entry seen is still there: what follows it is too
        # The oldest entry is newer than the last seen: it is the next one, or some were trimmed.
        return oldest.n is None or self._seen_n is None or oldest.n > self._seen_n + 1

    async def _rebuild(self) -> int:
        """Every transcript done, from the store's set of them (and the calls the log still
        names: transcripts stored before that set was kept, which join it); the log is then
        followed from the newest entry noted before the set was read (re-applying an entry is
        harmless). Searches wait meanwhile (they take the same lock)."""
        bounds = await self._store.log_bounds()
        done = await self._store.done_calls()
        logged = {e.call_id for e in await self._store.log_since("0", count=None)}
        call_ids = sorted(set(done) | logged)
        await asyncio.to_thread(self._clear)
        for start in range(0, len(call_ids), 500):
            chunk = call_ids[start : start + 500]
            bodies = await self._store.bodies(chunk)
            await asyncio.to_thread(self._apply, [(c, bodies.get(c)) for c in chunk])
            await self._store.note_done([c for c in bodies if c in logged])
        if bounds is None:
            self._seen, self._seen_n = "0-1", 0  # nothing logged yet: the first entry is n 1
        else:
            self._seen, self._seen_n = bounds[1].entry_id, bounds[1].n
        return len(call_ids)

    def _clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM segments")

    def _apply(self, changed: Sequence[tuple[str, bytes | None]]) -> None:
        """Each call's rows replaced by its transcript's segments (none if it was deleted)."""
        with self._db:
            for call_id, body in changed:
                self._db.execute("DELETE FROM segments WHERE call_id = ?", (call_id,))
                if body is None:
                    continue
                try:
                    t = Transcript.model_validate_json(body)
                except ValidationError:
                    continue  # an altered transcript: verify says so; search skips it
                self._db.executemany(
                    "INSERT INTO segments (text, call_id, facility_id, party, start_s, words) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            s.text,
                            t.call_id,
                            t.facility_id,
                            s.party,
                            s.start_s,
                            json.dumps([w.model_dump() for w in s.words]),
                        )
                        for s in t.segments
                    ],
                )

    async def search(
        self, q: str, facility_ids: Sequence[str] | None, limit: int = MAX_HITS
    ) -> dict[str, list[Match]]:
        """Calls whose transcript matches ``q`` (in these facilities; ``None``: all), best
        first, each with its matching segments in time order."""
        parsed = fts_query(q)
        if parsed is None:
            return {}
        expression, terms = parsed
        async with self._lock:
            await self._catch_up()
            return await asyncio.to_thread(self._search, expression, terms, facility_ids, limit)

    def _search(
        self,
        expression: str,
        terms: list[list[str]],
        facility_ids: Sequence[str] | None,
        limit: int,
    ) -> dict[str, list[Match]]:
        sql = "SELECT call_id, party, start_s, text, words FROM segments WHERE segments MATCH ?"
        args: list[Any] = [expression]
        if facility_ids is not None:
            if not facility_ids:
                return {}
            sql += f" AND facility_id IN ({','.join('?' * len(facility_ids))})"
            args += list(facility_ids)
        sql += " ORDER BY bm25(segments) LIMIT ?"
        args.append(limit * 20)
        found: dict[str, list[Match]] = {}
        for call_id, party, start_s, text_, words in self._db.execute(sql, args):
            if call_id not in found and len(found) >= limit:
                continue
            at = _first_offset(words, float(start_s), terms)
            found.setdefault(call_id, []).append(Match(party, round(at, 2), text_))
        for matches in found.values():
            matches.sort(key=lambda m: m.start_s)
        return found

    def close(self) -> None:
        self._db.close()
