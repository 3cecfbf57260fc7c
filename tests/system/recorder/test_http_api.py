"""The investigator API over a real aiohttp server, real Redis and real files."""

from __future__ import annotations

import base64
import io
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from client.media import dominant_colour
from core.directory import Directory
from core.tokens import Tokens
from recorder.http_api import add_recording_routes
from recorder.ranges import ByteRange, RangeNotSatisfiable, parse_range
from recorder.service import RecordingService
from recorder.storage import LocalStorage
from tests.system.recorder.conftest import DAY, call_info, record
from tests.system.recorder.test_muxer import video_colours

API = "/api/v1"


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    tokens: Tokens

    def headers(self, who: str, role: str = "investigator", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.issue(role, who)}", **extra}

    async def json(
        self, method: str, path: str, who: str = "I1", body: Any = None, **kw: Any
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        headers = self.headers(who)
        if body is not None:
            headers["Content-Type"] = "application/json"
        resp = await self.client.request(method, API + path, data=data, headers=headers, **kw)
        assert resp.content_type == "application/json"
        return resp.status, await resp.json()

    async def ids(self, query: str = "", who: str = "I1") -> list[str]:
        status, body = await self.json("GET", "/recordings" + query, who)
        assert status == 200, body
        return [r["call_id"] for r in body["recordings"]]

    async def actions(self, call_id: str) -> list[str]:
        status, body = await self.json("GET", f"/audit?call_id={call_id}")
        assert status == 200, body
        return [e["action"] for e in body["entries"]]


@pytest.fixture
async def api(service: RecordingService, tokens: Tokens) -> AsyncIterator[Api]:
    app = web.Application()
    add_recording_routes(
        app, tokens=tokens, directory=Directory(service.catalog._redis), service=service
    )
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    yield Api(client, tokens)
    await client.close()


FLAG = {"flag_id": "f1", "offset_s": 1.0, "note": "n", "by": "S1"}


async def test_search_filters_and_facility_scope(api: Api, service: RecordingService) -> None:
    now = time.time()
    await record(service, "A", b"a" * 10, resident="R1", family="F1", started_at=now - 3 * DAY)
    await record(service, "B", b"b" * 10, resident="R2", family="F2", started_at=now - 2 * DAY,
                 flags=[FLAG])  # fmt: skip
    await record(service, "C", b"c" * 10, resident="R3", family="F1", started_at=now - 1 * DAY)

    assert await api.ids() == ["C", "B", "A"]  # newest first
    assert await api.ids("?resident_id=R1") == ["A"]
    assert await api.ids("?family_id=F1") == ["C", "A"]
    assert await api.ids("?facility_id=SQ") == ["B", "A"]
    assert await api.ids("?flagged=true") == ["B"]
    assert await api.ids("?flagged=false") == ["C", "A"]
    assert await api.ids(f"?from={now - 2.5 * DAY}") == ["C", "B"]
    assert await api.ids(f"?to={now - 1.5 * DAY}&family_id=F1") == ["A"]
    assert await api.ids(f"?from={now - 2.5 * DAY}&to={now - 1.5 * DAY}") == ["B"]
    assert await api.ids("?limit=1") == ["C"]
    # Names beside the signed ids, for people reading the list.
    status, listed = await api.json("GET", "/recordings?resident_id=R1")
    [a] = listed["recordings"]
    assert (a["resident_name"], a["family_name"], a["facility_name"]) == (
        "James Doe",
        "Family F1",
        "San Quentin",
    )
    assert (await api.json("GET", "/recordings/B"))[1]["resident_name"] == "John Roe"

    # I2 covers SQ only, I3 covers CLOSED only: nothing outside leaks, not even existence.
    assert await api.ids(who="I2") == ["B", "A"]
    assert await api.ids("?facility_id=CLOSED", who="I2") == []
    assert await api.ids("?family_id=F1", who="I3") == ["C"]
    for path in ("/recordings/C", "/recordings/C/media", "/audit?call_id=C"):
        assert (await api.json("GET", path, "I2"))[0] == 404
    assert (await api.json("POST", "/recordings/C/verify", "I2"))[0] == 404
    assert (await api.json("PUT", "/recordings/C/legal-hold", "I2", {"hold": True}))[0] == 404
    status, missing = await api.json("GET", "/recordings/NOPE", "I2")
    assert status == 404 and missing["error"]["message"] == "no recording of call 'NOPE'"
    status, body = await api.json("GET", "/audit?call_id=C", "I3")  # the probes are on record
    assert [(e["staff_id"], e["action"], e["outcome"]) for e in body["entries"]][-4:] == [
        ("I2", "view", "not_found"),
        ("I2", "download", "not_found"),
        ("I2", "verify", "not_found"),
        ("I2", "legal_hold", "not_found"),
    ]


async def test_bad_requests_get_clear_errors(api: Api, service: RecordingService) -> None:
    for query, status, words in [
        ("?from=yesterday", 422, "from"),
        ("?flagged=maybe", 422, "flagged"),
        ("?limit=0", 422, "limit"),
        ("?from=10&to=5", 422, "'from' must not be after 'to'"),
        ("?resident_id=../etc", 422, "resident_id"),
        ("?colour=red", 422, "colour: unknown field"),
        ("?to=1&to=2", 400, "repeated query parameter: to"),
        ("?from=nan", 422, "from"),
    ]:
        got, body = await api.json("GET", "/recordings" + query)
        assert got == status and words in body["error"]["message"], (query, body)
    assert (await api.json("GET", "/recordings/..%2F..%2Fsecret.key"))[0] in (400, 404)
    assert (await api.json("GET", "/recordings", "S1", None))[0] == 403  # unknown investigator
    resp = await api.client.get(API + "/recordings", headers=api.headers("S1", "monitor"))
    assert resp.status == 403
    assert (await api.client.get(API + "/recordings")).status == 401
    await record(service, "H", b"h")
    for body in ({"hold": "yes"}, {}, {"hold": True, "x": 1}):
        assert (await api.json("PUT", "/recordings/H/legal-hold", body=body))[0] == 422


async def assert_ranges_exact(api: Api, url: str, data: bytes, etag: str) -> int:
    """Whole file, ranges, 416s, ignored and stale ranges, HEAD; returns the requests made."""
    size = len(data)
    full = await api.client.get(url, headers=api.headers("I1"))
    assert full.status == 200 and full.content_type == "video/webm"
    assert full.headers["Accept-Ranges"] == "bytes"
    assert full.headers["ETag"] == etag
    assert await full.read() == data
    for header, start, end in [
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, size - 1),
        ("bytes=-100", size - 100, size - 1),
        ("bytes=300000-300099", 300000, 300099),
        (f"bytes={size - 10}-{size + 500}", size - 10, size - 1),
        (f"bytes=-{size + 10}", 0, size - 1),
    ]:
        resp = await api.client.get(url, headers=api.headers("I1", Range=header))
        assert resp.status == 206, header
        assert resp.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
        assert int(resp.headers["Content-Length"]) == end - start + 1
        assert await resp.read() == data[start : end + 1], header
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
        resp = await api.client.get(url, headers=api.headers("I1", Range=header))
        assert resp.status == 416 and resp.headers["Content-Range"] == f"bytes */{size}"
    for ignored in ("bytes=5-2", "items=0-1", "bytes=0-1,5-6"):
        resp = await api.client.get(url, headers=api.headers("I1", Range=ignored))
        assert resp.status == 200 and len(await resp.read()) == size
    stale = api.headers("I1", Range="bytes=0-9", **{"If-Range": '"0000"'})
    assert (await api.client.get(url, headers=stale)).status == 200
    fresh = api.headers("I1", Range="bytes=0-9", **{"If-Range": etag})
    assert (await api.client.get(url, headers=fresh)).status == 206
    head = await api.client.head(url, headers=api.headers("I1", Range="bytes=-100"))
    assert head.status == 206 and head.headers["Content-Length"] == "100"
    return 1 + 7 + 3 + 3 + 2 + 1


async def test_media_ranges_are_exact(
    api: Api, service: RecordingService, call_webm: bytes
) -> None:
    manifest = await record(service, "M1", call_webm)
    requests = await assert_ranges_exact(
        api, API + "/recordings/M1/media", call_webm, f'"{manifest.sha256}"'
    )
    downloads = [e for e in (await api.json("GET", "/audit?call_id=M1"))[1]["entries"]]
    assert len(downloads) == requests
    assert {e["detail"]["status"] for e in downloads} == {200, 206, 416}
    assert not any("party" in e["detail"] for e in downloads)


async def test_one_view_per_playback_one_download_per_saved_file(
    api: Api, service: RecordingService, call_webm: bytes
) -> None:
    """A player's many Range requests are one ``view`` per playback id and investigator; each
    media request without an id (a saved file), or with one but no Range (the whole file), is
    one ``download`` (issue 31 §1.2; bytes past the size: tests/system/security/test_recording_swap.py)."""
    await record(service, "PB", call_webm)
    url = API + "/recordings/PB/media"

    async def get(who: str, query: str, **headers: str) -> int:
        resp = await api.client.get(url + query, headers=api.headers(who, **headers))
        await resp.read()
        return resp.status

    assert (await api.json("GET", "/recordings/PB?playback=first-play-01"))[0] == 200
    for party in ("tablet", "family"):
        for start in (0, 1000, 5000, 0):  # the player seeks about, reading a little each time
            status = await get(
                "I1", f"?party={party}&playback=first-play-01", Range=f"bytes={start}-{start + 999}"
            )
            assert status == 206
    # Opened again: a new playback; someone else's with the same id: their own.
    assert await get("I1", "?playback=second-play", Range="bytes=0-999") == 206
    assert await get("I2", "?party=tablet&playback=first-play-01", Range="bytes=0-") == 206
    assert await get("I1", "?playback=second-play") == 200  # no Range: the whole file
    assert await get("I1", "") == 200  # two saved files
    assert await get("I1", "") == 200
    for bad in ("short", "has space here", "x" * 65, "first-play-01&playback=again-play"):
        assert await get("I1", f"?playback={bad}") == 422

    entries = (await api.json("GET", "/audit?call_id=PB"))[1]["entries"]
    rows = [
        (e["staff_id"], e["action"], e["outcome"], e["detail"].get("playback")) for e in entries
    ]
    assert rows == [
        ("I1", "view", "ok", "first-play-01"),  # the manifest, both players, every seek
        ("I1", "view", "ok", "second-play"),
        ("I2", "view", "ok", "first-play-01"),
        ("I1", "download", "ok", "second-play"),
        ("I1", "download", "ok", None),
        ("I1", "download", "ok", None),
        ("I1", "view", "refused", "short"),
        ("I1", "view", "refused", "has space here"),
        ("I1", "view", "refused", "x" * 64),
        ("I1", "view", "refused", "first-play-01"),
    ]
    assert entries[0]["detail"] == {"playback": "first-play-01"}  # written by the manifest GET
    # An unknown or out-of-scope recording answers 404 whatever the playback id.
    assert (await api.json("GET", "/recordings/NOPE/media?playback=first-play-01"))[0] == 404


async def test_keyframe_thumbnails_and_the_warning_for_the_timeline(
    api: Api, service: RecordingService, call_webm: bytes
) -> None:
    started = time.time() - 60
    info = call_info("TH", "R1", "F1", started_at=started)
    await service.begin(info)
    with service.storage.open_write("TH") as fh:
        fh.write(call_webm)
    ended = {"ended_at": started + 5, "end_reason": "time_limit", "warned_at": started + 3}
    await service.finalize("TH", info.model_copy(update=ended))
    status, manifest = await api.json("GET", "/recordings/TH?playback=thumbnail-test")
    assert status == 200 and manifest["warned_at"] == round(started + 3, 3)
    assert (await api.json("POST", "/recordings/TH/verify"))[1]["ok"] is True  # it is signed
    for party, colour in (("tablet", "red"), ("family", "blue")):
        query = f"?party={party}&playback=thumbnail-test"
        status, body = await api.json("GET", "/recordings/TH/thumbnails" + query)
        assert status == 200, body
        thumbs = body["thumbnails"]
        assert [t["offset_s"] for t in thumbs] == [0.0, 2.0, 4.0]  # the file's keyframes
        for thumb in thumbs:
            jpeg = base64.b64decode(thumb["src"].removeprefix("data:image/jpeg;base64,"))
            with av.open(io.BytesIO(jpeg)) as container:
                frame = next(container.decode(video=0))
            assert (frame.width, frame.height) == (thumb["width"], thumb["height"]) == (160, 90)
            assert dominant_colour(np.asarray(frame.to_ndarray(format="rgb24"))) == colour
    assert (await api.json("GET", "/recordings/TH/thumbnails?party=monitor"))[0] == 422
    assert (await api.json("GET", "/recordings/TH/thumbnails", "I3"))[0] == 404  # out of scope
    await service.begin(call_info("OPEN", "R1", "F1"))  # still recording: nothing signed yet
    assert (await api.json("GET", "/recordings/OPEN/thumbnails"))[0] == 409
    entries = (await api.json("GET", "/audit?call_id=TH"))[1]["entries"]
    views = [(e["outcome"], e["detail"].get("status")) for e in entries if e["action"] == "view"]
    # The playback's one view, the refusal, the look outside I3's scope.
    assert views == [("ok", None), ("refused", 422), ("not_found", None)]


async def test_party_views_are_served_like_the_file(
    api: Api, service: RecordingService, storage: LocalStorage, call_webm: bytes
) -> None:
    """?party= gives that party's video + audio only, remuxed from the call file, with the
    same Range handling and audit; the signed original is untouched."""
    await record(service, "P1", call_webm)
    url = API + "/recordings/P1/media"
    etags = set()
    for party, colour in (("tablet", "red"), ("family", "blue")):
        resp = await api.client.get(url, params={"party": party}, headers=api.headers("I1"))
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Disposition"] == f'inline; filename="P1-{party}.webm"'
        data = await resp.read()
        assert data == storage.path(f"P1.{party}").read_bytes()  # cached beside the original
        etag = resp.headers["ETag"]
        etags.add(etag)
        requests = await assert_ranges_exact(api, f"{url}?party={party}", data, etag)
        view = storage.root / "view.webm"
        view.write_bytes(data)
        with av.open(str(view)) as container:
            assert [s.metadata["title"] for s in container.streams] == [
                f"{party} video",
                f"{party} audio",
            ]
        decoded, colours = video_colours(view, 0)
        assert decoded > 100 and set(colours) == {colour}
        view.unlink()
        entries = (await api.json("GET", "/audit?call_id=P1"))[1]["entries"]
        mine = [e for e in entries if e["detail"].get("party") == party]
        assert len(mine) == 1 + requests and {e["action"] for e in mine} == {"download"}
        assert {e["detail"]["status"] for e in mine} == {200, 206, 416}
    assert len(etags) == 2
    status, verified = await api.json("POST", "/recordings/P1/verify")  # the original, as signed
    assert status == 200 and verified["ok"] is True
    assert storage.list() == ["P1", "P1.family", "P1.tablet"]

    # Refusals: a bad party (422), out of scope (404), a recording not yet signed (409).
    for query in ("?party=monitor", "?party=", "?party=tablet&party=family", "?party=TABLET"):
        status, body = await api.json("GET", "/recordings/P1/media" + query)
        assert status == 422 and "party" in body["error"]["message"], query
    assert (await api.json("GET", "/recordings/P1/media?party=tablet", "I3"))[0] == 404
    await service.begin(call_info("LIVE2"))
    with storage.open_write("LIVE2") as fh:
        fh.write(call_webm[:100_000])
    status, body = await api.json("GET", "/recordings/LIVE2/media?party=family")
    assert status == 409 and "still being recorded" in body["error"]["message"]
    assert (
        await api.client.get(API + "/recordings/LIVE2/media", headers=api.headers("I1"))
    ).status == 200
    details = [e["detail"] for e in (await api.json("GET", "/audit?call_id=P1"))[1]["entries"]]
    assert {"party": "monitor", "status": 422} in details
    assert {"party": "", "status": 422} in details


async def test_party_views_go_with_the_file(
    api: Api, service: RecordingService, storage: LocalStorage, call_webm: bytes
) -> None:
    """Made again when the file changes; gone once the recording is purged."""
    await record(service, "P2", call_webm, started_at=time.time() - 365 * DAY)
    url = API + "/recordings/P2/media?party=family"
    first = await api.client.get(url, headers=api.headers("I1"))
    assert first.status == 200
    first_data = await first.read()
    later = time.time() + 10
    os.utime(storage.path("P2"), (later, later))  # the original changed (e.g. restored)
    second = await api.client.get(url, headers=api.headers("I1"))
    assert second.status == 200 and second.headers["ETag"] != first.headers["ETag"]
    assert await second.read() != first_data  # made again: its source tag changed
    status, verified = await api.json("POST", "/recordings/P2/verify")
    assert status == 200 and verified["ok"] is True  # the bytes are as signed

    assert await service.purge_expired() == ["P2"]
    assert storage.list() == []  # the purge itself leaves no copy of the recording behind
    status, body = await api.json("GET", "/recordings/P2/media?party=family")
    assert status == 409 and body["error"]["code"] == "purged"


async def test_every_access_is_audited(api: Api, service: RecordingService) -> None:
    await record(service, "V1", b"v" * 64)
    await api.ids()
    assert (await api.json("GET", "/recordings/V1"))[1]["state"] == "final"
    resp = await api.client.get(
        API + "/recordings/V1/media", headers=api.headers("I1", **{"User-Agent": "evidence/1"})
    )
    assert resp.status == 200 and await resp.read() == b"v" * 64
    status, verified = await api.json("POST", "/recordings/V1/verify")
    assert status == 200 and verified["ok"] is True and len(verified["sha256"]) == 64
    status, held = await api.json("PUT", "/recordings/V1/legal-hold", body={"hold": True})
    assert status == 200 and held["legal_hold"] is True
    entries = (await api.json("GET", "/audit?call_id=V1"))[1]["entries"]
    assert [e["action"] for e in entries] == ["list", "view", "download", "verify", "legal_hold"]
    assert {e["staff_id"] for e in entries} == {"I1"}
    assert entries[0]["detail"]["call_ids"] == ["V1"]
    assert entries[2]["user_agent"] == "evidence/1" and entries[2]["remote"] == "127.0.0.1"
    assert entries[3]["detail"]["ok"] is True
    assert all(e["at"] <= time.time() for e in entries)
    status, recent = await api.json("GET", "/audit?limit=2")
    assert [e["action"] for e in recent["entries"]] == ["legal_hold", "verify"]
    assert (await api.json("GET", "/audit", "I3"))[1]["entries"] == []  # other facility


async def test_the_audit_records_what_verify_found(
    api: Api, service: RecordingService, storage: LocalStorage
) -> None:
    await record(service, "T1", b"t" * 64)
    await service.begin(call_info("LIVE2"))
    path = storage.path("T1")
    path.chmod(0o600)  # sealed read-only: only someone going around the server alters it
    with path.open("r+b") as file:
        file.seek(10)
        file.write(b"X")
    status, verified = await api.json("POST", "/recordings/T1/verify")
    assert status == 200 and verified["ok"] is False
    assert (await api.json("POST", "/recordings/LIVE2/verify"))[0] == 409
    assert (await api.json("GET", "/recordings/T1/media?party=x"))[0] == 422
    entries = (await api.json("GET", "/audit?call_id=T1"))[1]["entries"]
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("verify", "tampered"),
        ("download", "refused"),
    ]
    assert entries[0]["detail"]["ok"] is False and entries[0]["detail"]["problems"]
    [refused] = (await api.json("GET", "/audit?call_id=LIVE2"))[1]["entries"]
    assert (refused["action"], refused["outcome"]) == ("verify", "refused")


async def test_unfinished_and_purged_recordings(api: Api, service: RecordingService) -> None:
    await service.begin(call_info("LIVE1"))
    status, body = await api.json("GET", "/recordings/LIVE1")
    assert status == 200 and body["complete"] is False and body["state"] == "recording"
    assert (await api.json("POST", "/recordings/LIVE1/verify"))[0] == 409
    assert (await api.json("GET", "/recordings/LIVE1/media"))[0] == 404  # no media yet
    await record(service, "GONE", b"g", started_at=time.time() - 365 * DAY)
    assert await service.purge_expired() == ["GONE"]
    assert (await api.json("GET", "/recordings/GONE"))[1]["state"] == "purged"
    status, body = await api.json("GET", "/recordings/GONE/media")
    assert status == 409 and body["error"]["code"] == "purged"
    assert "GONE" not in await api.ids()
    assert "purge" in await api.actions("GONE")


def test_parse_range() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=2-4", 10) == ByteRange(2, 4, 10)
    assert parse_range(" Bytes = 2 - ", 10) == ByteRange(2, 9, 10)
    assert parse_range("bytes=-3", 10) == ByteRange(7, 9, 10)
    assert parse_range("bytes=4-2", 10) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-", 0)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-1", 0)
