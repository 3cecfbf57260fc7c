"""The engines on espeak-ng speech that went through Opus (as in a call), decoded from a real
recording by :func:`transcripts.audio.decode_party`; the Vosk adapter only where a model is
configured (``VISITATION_STT_MODEL``); watch-word matching; full-text queries."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from redis.asyncio import Redis

from recorder.service import RecordingService
from tests.system.transcripts.conftest import word_error_rate
from tests.system.transcripts.speech import Speech, record_speech, speech
from tests.system.transcripts.stored import store_done
from tests.system.transcripts.test_queue import call
from transcripts.audio import decode_party
from transcripts.engine import Engine, load_engine
from transcripts.index import TranscriptIndex, fts_query
from transcripts.model import Segment, WatchHit, Word
from transcripts.store import TranscriptStore
from transcripts.watch_words import find, merged, normalized

SENTENCES = (
    "bring the package to the north gate on tuesday morning",
    "call your brother about the money before the visit",
    "the weather is cold and the food is terrible here",
)


@pytest.fixture(scope="module")
def said() -> Speech:
    return speech(SENTENCES, lead_s=1.0, gap_s=1.0)


@pytest.fixture
async def family_pcm(service: RecordingService, said: Speech, seeded: object) -> object:
    info = call()
    await record_speech(service, info, said)
    return decode_party(service.storage, info.call_id, "family").pcm


def engines() -> Iterator[object]:
    yield pytest.param({"VISITATION_STT_ENGINE": "pocketsphinx"}, id="pocketsphinx")
    model = os.environ.get("VISITATION_STT_MODEL", "")
    yield pytest.param(
        {"VISITATION_STT_ENGINE": "vosk", "VISITATION_STT_MODEL": model},
        id="vosk",
        marks=pytest.mark.skipif(not model, reason="VISITATION_STT_MODEL is not set (see README)"),
    )


@pytest.mark.parametrize("env", list(engines()))
async def test_engine_word_recall_on_speech_through_opus(
    env: dict[str, str], family_pcm: object, said: Speech
) -> None:
    engine: Engine = load_engine(env)
    started = time.process_time()
    found = engine.transcribe(family_pcm, "family", ["brother", "money"])  # type: ignore[arg-type]
    cpu = time.process_time() - started
    heard = [w for s in found.segments for w in s.text.split()]
    recall = len(set(heard) & said.words()) / len(said.words())
    reference = [w for s in SENTENCES for w in s.split()]
    print(
        f"\n{engine.name}: {[s.text for s in found.segments]}\n"
        f"distinct-word recall {recall:.0%}, WER {word_error_rate(reference, heard):.0%}, "
        f"{said.seconds / cpu:.1f} s of audio per CPU second"
    )
    assert recall >= 0.4
    assert len(found.segments) >= len(SENTENCES) - 1  # one segment per utterance, about
    starts = [s.start_s for s in found.segments]
    assert starts == sorted(starts) and all(s.words for s in found.segments)
    for (at, _), segment in zip(said.sentences, found.segments, strict=False):
        assert abs(segment.start_s - at) < 1.0  # offsets are the recording's
    hits = merged(find(found.segments, ["brother", "money"]), found.spotted)
    assert {h.word for h in hits} == {"brother", "money"}


def test_watch_words_match_whole_words_and_phrases_in_order() -> None:
    segment = Segment(
        party="tablet",
        start_s=3.0,
        end_s=6.0,
        text="meet me at the north gate gateway",
        confidence=0.5,
        words=[
            Word(w=w, t=3.0 + i * 0.4)
            for i, w in enumerate("meet me at the north gate gateway".split())
        ],
    )
    hits = find([segment], ["  North   Gate ", "GATE", "way", "gate north"])
    assert [(h.word, h.offset_s) for h in hits] == [("north gate", 4.6), ("gate", 5.0)]
    assert normalized(["A  b", "a b", "", "C"]) == ["a b", "c"]
    spotted = [
        WatchHit(word="gate", party="tablet", offset_s=5.5),
        WatchHit(word="gate", party="tablet", offset_s=9),
    ]
    assert [h.offset_s for h in merged(hits, spotted) if h.word == "gate"] == [5.0, 9]


def test_user_queries_never_reach_fts5_as_syntax() -> None:
    assert fts_query('north "gate tuesday" OR NEAR(x') == (
        '"north" AND "gate tuesday" AND "or" AND "near x"',
        [["north"], ["gate", "tuesday"], ["or"], ["near", "x"]],
    )
    assert fts_query('" " ***') is None


async def test_the_index_follows_transcripts_stored_by_any_node(redis: Redis) -> None:
    store = TranscriptStore(redis)
    first, second = TranscriptIndex(store), TranscriptIndex(store)  # two nodes
    for n, (facility, said) in enumerate(
        [("SQ", "north gate at noon"), ("CLOSED", "north gate again")]
    ):
        await store_done(store, f"c{n}", said, facility)
        assert set(await first.search('"north gate"', None)) == {f"c{i}" for i in range(n + 1)}
    assert set(await second.search("gate", ["SQ"])) == {"c0"}
    assert await second.search('"gate north"', None) == {}
    first.close()
    second.close()
