"""Transcripts of real calls: espeak-ng speech sent as the family's audio through the SFU,
recorded, sealed, transcribed by a worker process; then search, watch words, alerts, verify and
scope through the investigators' HTTP API."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from redis.asyncio import Redis

from core.domain import SeedFile
from tests.conftest import Clients, Node, accepted, http_as, media_between
from tests.system.transcripts.conftest import StartTranscribers, word_error_rate
from tests.system.transcripts.speech import Speech, speech, speech_call
from tests.waiting import eventually
from transcripts.redis_keys import TRANSCRIPT

SENTENCES = (
    "bring the package to the north gate on tuesday morning",
    "call your brother about the money before the visit",
    "the weather is cold and the food is terrible here",
)
WATCH_WORDS = ["brother", "money"]


@dataclass
class Transcribed:
    call_id: str
    said: Speech
    transcript: dict[str, Any]
    onset_s: float  # when the family's speech starts in the recording


@pytest.fixture(scope="module")
def said() -> Speech:
    return speech(SENTENCES, lead_s=1.5, gap_s=1.0)


@pytest.fixture
async def investigator(node: Node, clients: Clients) -> AsyncIterator[aiohttp.ClientSession]:
    async with http_as(node.url, clients.tokens, "investigator", "I1") as session:
        yield session


def speech_onset(webm: bytes) -> float:
    """When the family's audio first gets loud in the recording (its own energy, no engine)."""
    with av.open(io.BytesIO(webm), mode="r") as container:
        [stream] = [s for s in container.streams.audio if s.metadata.get("title") == "family audio"]
        for frame in container.decode(stream):
            samples = frame.to_ndarray().astype(np.float64)
            if np.sqrt(np.mean(samples**2)) > 0.02 and frame.time is not None:
                return float(frame.time)
    raise AssertionError("the family's speech is not in the recording")


@pytest.fixture
async def transcribed(
    sfu_worker: str,
    seeded: SeedFile,
    node: Node,
    clients: Clients,
    investigator: aiohttp.ClientSession,
    transcribers: StartTranscribers,
    said: Speech,
) -> Transcribed:
    async with http_as(node.url, clients.tokens, "admin", "A1") as admin:
        body = {"watch_words": WATCH_WORDS}
        async with admin.put("/api/v1/admin/facilities/SQ", json=body) as response:
            assert response.status == 200, await response.text()
    await transcribers(1)
    pair = await accepted(clients)
    async with speech_call(pair, said):
        await asyncio.sleep(said.seconds + 1.0)
        await pair.tablet.hangup(pair.call_id)
        await pair.family.next("call.ended")
    path = f"/api/v1/recordings/{pair.call_id}/transcript"
    transcript: dict[str, Any] = {}

    async def done() -> bool:
        nonlocal transcript
        async with investigator.get(path) as response:
            assert response.status == 200, await response.text()
            transcript = await response.json()
        assert transcript["status"] != "failed", transcript
        return bool(transcript["status"] == "done")

    await eventually(done, lambda: f"transcribed: {transcript}", within_s=120, interval_s=0.2)
    async with investigator.get(f"/api/v1/recordings/{pair.call_id}/media") as response:
        onset = speech_onset(await response.read())
    return Transcribed(pair.call_id, said, transcript, onset)


def heard_words(transcript: dict[str, Any], party: str = "family") -> list[str]:
    return [w for s in transcript["segments"] if s["party"] == party for w in s["text"].split()]


async def test_the_transcript_has_the_spoken_words(transcribed: Transcribed) -> None:
    t = transcribed.transcript
    assert t["engine"] == "pocketsphinx" and t["language"] == "en-US"
    assert re.fullmatch(r"[0-9a-f]{64}", t["sha256"])
    for segment in t["segments"]:
        assert set(segment) >= {"party", "start_s", "end_s", "text", "confidence"}
        assert 0 <= segment["confidence"] <= 1 and segment["start_s"] <= segment["end_s"]
    heard = heard_words(t)
    reference = [w for s in SENTENCES for w in s.split()]
    recall = len(set(heard) & transcribed.said.words()) / len(transcribed.said.words())
    wer = word_error_rate(reference, heard[: len(reference) + 5])
    print(f"\nfamily said: {SENTENCES}\nheard: {[s['text'] for s in t['segments']]}")
    print(f"pocketsphinx: distinct-word recall {recall:.0%}, WER {wer:.0%}")
    assert recall >= 0.4


async def test_a_phrase_search_finds_the_call_at_the_offset_it_was_said(
    transcribed: Transcribed, investigator: aiohttp.ClientSession
) -> None:
    heard = " ".join(heard_words(transcribed.transcript))
    # The longest run of words of a sentence that was recognised as said: the phrase to find.
    best: tuple[int, int, int] = (0, 0, 0)  # (length, sentence, first word)
    for n, sentence in enumerate(SENTENCES):
        words = sentence.split()
        for i in range(len(words)):
            for j in range(i + 2, len(words) + 1):
                if f" {' '.join(words[i:j])} " in f" {heard} " and j - i > best[0]:
                    best = (j - i, n, i)
    length, n, first = best
    assert length >= 2, f"no two consecutive words recognised: {heard!r}"
    words = SENTENCES[n].split()
    phrase = " ".join(words[first : first + length])
    start, _ = transcribed.said.sentences[n]
    sentence_s = (
        (
            transcribed.said.sentences[n + 1][0]
            if n + 1 < len(SENTENCES)
            else transcribed.said.seconds
        )
        - start
        - 1.0
    )
    lead = transcribed.said.sentences[0][0]
    expected = transcribed.onset_s + (start - lead) + sentence_s * first / len(words)
    async with investigator.get("/api/v1/recordings", params={"q": f'"{phrase}"'}) as response:
        assert response.status == 200, await response.text()
        found = (await response.json())["recordings"]
    assert [r["call_id"] for r in found] == [transcribed.call_id]
    [match, *_] = found[0]["matches"]
    print(f"\n{phrase!r}: found at {match['start_s']} s, said at ~{expected:.1f} s")
    assert match["party"] == "family" and phrase in match["text"]
    assert abs(match["start_s"] - expected) <= 2.0
    # Words need not be adjacent; with the other filters; a phrase never said finds nothing.
    params = {"q": f"{words[first]} {words[first + 1]}", "resident_id": "R1"}
    async with investigator.get("/api/v1/recordings", params=params) as response:
        assert [r["call_id"] for r in (await response.json())["recordings"]] == [
            transcribed.call_id
        ]
    for params in ({"q": '"morning tuesday gate"'}, {"q": phrase, "resident_id": "R2"}):
        async with investigator.get("/api/v1/recordings", params=params) as response:
            assert (await response.json())["recordings"] == []


async def test_a_watch_word_said_flags_the_recording_and_alerts(
    transcribed: Transcribed, investigator: aiohttp.ClientSession, node: Node, clients: Clients
) -> None:
    heard = set(heard_words(transcribed.transcript))
    spoken = [w for w in WATCH_WORDS if w in transcribed.said.words()]
    async with investigator.get(f"/api/v1/recordings/{transcribed.call_id}") as response:
        flags = (await response.json())["flags"]
    flagged = {f["word"]: f for f in flags if f.get("source") == "watch_word"}
    print(
        f"\nwatch words spoken {spoken}, heard in text {sorted(heard & set(spoken))}, "
        f"flagged {sorted(flagged)}"
    )
    assert set(flagged) == set(spoken)  # every watch word spoken, and no other
    for word, flag in flagged.items():
        assert flag["offset_s"] >= 0 and flag["party"] == "family", word
    async with investigator.get("/api/v1/recordings", params={"flagged": "true"}) as response:
        assert [r["call_id"] for r in (await response.json())["recordings"]] == [
            transcribed.call_id
        ]
    async with investigator.get("/api/v1/alerts") as response:
        alerts = (await response.json())["alerts"]
    assert {a["word"] for a in alerts} == set(spoken)
    assert all(a["call_id"] == transcribed.call_id and not a["read"] for a in alerts)
    assert [a["at"] for a in alerts] == sorted((a["at"] for a in alerts), reverse=True)
    async with investigator.post(f"/api/v1/alerts/{alerts[0]['alert_id']}/read") as response:
        assert response.status == 200
    async with investigator.get("/api/v1/alerts") as response:
        read = {a["alert_id"]: a["read"] for a in (await response.json())["alerts"]}
    assert read[alerts[0]["alert_id"]] is True
    async with http_as(node.url, clients.tokens, "admin", "A2") as admin:  # CLOSED only
        async with admin.get("/api/v1/alerts") as response:
            assert (await response.json())["alerts"] == []


async def test_verify_checks_the_transcript_and_sees_a_flipped_byte(
    transcribed: Transcribed, investigator: aiohttp.ClientSession, redis: Redis
) -> None:
    verify = f"/api/v1/recordings/{transcribed.call_id}/verify"
    async with investigator.post(verify) as response:
        result = await response.json()
    assert result["ok"] is True and result["transcript_ok"] is True, result
    key = TRANSCRIPT(transcribed.call_id)
    raw = await redis.hget(key, "body")
    assert isinstance(raw, bytes)
    body = bytearray(raw)
    at = body.index(b'"text":"') + 9
    body[at] ^= 0x01
    await redis.hset(key, "body", bytes(body))
    async with investigator.post(verify) as response:
        result = await response.json()
    assert result["ok"] is False and result["transcript_ok"] is False
    assert any("transcript SHA-256" in p for p in result["problems"]), result
    async with investigator.get(f"/api/v1/audit?call_id={transcribed.call_id}") as response:
        entries = (await response.json())["entries"]
    assert entries[-1]["action"] == "verify" and entries[-1]["outcome"] == "tampered"
    assert any(
        (e["action"] == "view" and '"transcript": true' in str(e.get("detail", "")).lower())
        or (e["action"] == "view" and "transcript" in str(e))
        for e in entries
    )


async def test_an_investigator_of_another_facility_finds_nothing(
    transcribed: Transcribed, node: Node, clients: Clients
) -> None:
    phrase = " ".join(heard_words(transcribed.transcript)[:2])
    async with http_as(node.url, clients.tokens, "investigator", "I3") as other:  # CLOSED
        for q in (phrase, "James", "Family F1"):
            async with other.get("/api/v1/recordings", params={"q": q}) as response:
                assert response.status == 200
                assert (await response.json())["recordings"] == []
        path = f"/api/v1/recordings/{transcribed.call_id}/transcript"
        async with other.get(path) as response:
            body = await response.json()
        assert response.status == 200 and body["status"] == "none" and body["segments"] == []
        async with other.get("/api/v1/alerts") as response:
            assert (await response.json())["alerts"] == []
    async with http_as(node.url, clients.tokens, "investigator", "I2") as same:  # SQ
        for q in ("james", "AMES D", "family f1"):  # names: substring, any case
            async with same.get("/api/v1/recordings", params={"q": q}) as response:
                found = (await response.json())["recordings"]
            assert [r["call_id"] for r in found] == [transcribed.call_id], q


async def test_a_privileged_call_has_no_transcript(
    sfu_worker: str,
    seeded: SeedFile,
    clients: Clients,
    investigator: aiohttp.ClientSession,
    redis: Redis,
) -> None:
    pair = await accepted(clients, "R1", "FATTY")  # an attorney: never recorded
    async with media_between(pair):
        await asyncio.sleep(1.0)
        await pair.tablet.hangup(pair.call_id)
        await pair.family.next("call.ended")
    async with investigator.get(f"/api/v1/recordings/{pair.call_id}/transcript") as response:
        body = await response.json()
    assert response.status == 200
    assert (body["status"], body["segments"], body["sha256"]) == ("none", [], None)
    assert await redis.exists(TRANSCRIPT(pair.call_id)) == 0  # nothing was ever queued
    async with investigator.get("/api/v1/alerts") as response:
        assert (await response.json())["alerts"] == []


async def test_watch_words_are_set_by_the_facility_admin_within_limits(
    seeded: SeedFile, node: Node, clients: Clients
) -> None:
    async with http_as(node.url, clients.tokens, "admin", "A1") as admin:
        for bad in (["w"] * 201, ["x" * 65], [""], ["   "], "gate", [3]):
            async with admin.put("/api/v1/admin/facilities/SQ", json={"watch_words": bad}) as r:
                assert r.status == 422, bad
                assert (await r.json())["error"]["code"] == "invalid_request"
        words = ["knife", "north gate", "x" * 64] + [f"w{i}" for i in range(197)]
        async with admin.put("/api/v1/admin/facilities/SQ", json={"watch_words": words}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["watch_words"] == words
        async with admin.get("/api/v1/admin/facilities") as r:
            listed = {f["id"]: f for f in (await r.json())["facilities"]}
        assert listed["SQ"]["watch_words"] == words and listed["CLOSED"]["watch_words"] == []
    async with http_as(node.url, clients.tokens, "admin", "A2") as other:  # CLOSED only
        async with other.put("/api/v1/admin/facilities/SQ", json={"watch_words": []}) as r:
            assert r.status == 404
