"""Recordings in S3-compatible object storage, against a real S3-protocol server (moto's).

The storage contract runs on both backends; then what only object storage has to get right:
bytes reach other hosts while the call is recorded, a killed or fenced writer, the muxer's
seek-back rewrites, multipart uploads, and a whole call recorded by a real SFU worker process,
signed by a signaling node and served to an investigator with ranges.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import av
import botocore.session
import pytest
from botocore.exceptions import ClientError
from redis.asyncio import Redis

from core.domain import SeedFile
from core.spawn import PIPE, spawn
from core.tokens import Tokens
from loadtest.s3_server import S3Server
from media.pool import WorkerPool
from recorder.muxer import CallRecording
from recorder.party_view import PartyViews, open_reader, remux_party
from recorder.s3_storage import S3Storage
from recorder.s3_upload import Part, Piece, Ranges, clip, layout
from recorder.service import RecordingService
from recorder.storage import LocalStorage, Storage, open_storage
from tests.conftest import SECRET, Clients, NodeFactory, accepted, http_as, media_between
from tests.system.recorder.conftest import call_info, record, write_call
from tests.system.recorder.frames import call_frames
from tests.system.recorder.test_muxer import video_colours
from tests.system.signaling.test_recording_calls import video_colours as call_colours
from tests.waiting import eventually as eventually_async
from tests.waiting import eventually_sync
from visitation.worker import parse_cli

ROOT = Path(__file__).resolve().parents[3]
WITHIN_S = 60.0  # deadline for what another process or thread does (a shared, busy machine)


def eventually(check: Callable[[], bool], what: str, within: float = WITHIN_S) -> None:
    eventually_sync(check, what, within_s=within)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def whole(storage: Storage, call_id: str) -> bytes:
    return storage.read_range(call_id, 0, storage.size(call_id))


@pytest.fixture
def other_host(s3_server: S3Server, s3_location: str) -> Iterator[S3Storage]:
    """A second client of the same bucket and prefix, as a signaling node on another host."""
    storage = S3Storage.from_url(s3_location, env=s3_server.env)
    yield storage
    storage.close()


@pytest.fixture(params=["local", "s3"])
def any_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "recordings")
    else:
        yield request.getfixturevalue("s3_storage")


# ---------------------------------------------------------------------- the contract


def test_a_file_is_written_once_and_read_by_range(any_storage: Storage) -> None:
    data = os.urandom(300_000)
    before = time.time()
    with any_storage.open_write("C1") as fh:
        fh.write(data[:1000])
        fh.write(data[1000:])
    with pytest.raises(FileExistsError):
        any_storage.open_write("C1")
    with pytest.raises(FileExistsError):
        any_storage.open_recording("C1")
    assert any_storage.exists("C1") and any_storage.size("C1") == len(data)
    assert before - 1 <= any_storage.modified_at("C1") <= time.time() + 1
    assert any_storage.read_range("C1", 0, 10) == data[:10]
    assert any_storage.read_range("C1", 123_456, 70_000) == data[123_456:193_456]
    assert any_storage.read_range("C1", len(data) - 10, 100) == data[-10:]
    assert any_storage.read_range("C1", len(data), 10) == b""
    assert any_storage.read_range("C1", 5, 0) == b""
    with pytest.raises(ValueError):
        any_storage.read_range("C1", -1, 10)
    assert whole(any_storage, "C1") == data
    assert any_storage.list() == ["C1"] and any_storage.recordings_in_progress() == []
    assert any_storage.delete("C1") and not any_storage.delete("C1")
    assert not any_storage.exists("C1") and any_storage.list() == []
    for missing in (any_storage.size, any_storage.modified_at):
        with pytest.raises(FileNotFoundError):
            missing("C1")
    with pytest.raises(FileNotFoundError):
        any_storage.read_range("C1", 0, 10)


def test_a_recording_is_sealed_once_and_its_bytes_never_change(any_storage: Storage) -> None:
    data = bytearray(os.urandom(200_000))
    fh = any_storage.open_recording("R1")
    fh.write(bytes(data))
    fh.seek(100)
    fh.write(b"X" * 50)  # the muxer rewrites earlier bytes when it closes
    fh.seek(0, io.SEEK_END)
    fh.write(b"tail")
    data[100:150] = b"X" * 50
    data += b"tail"
    with pytest.raises(FileExistsError):
        any_storage.open_recording("R1")  # one writer per call
    assert any_storage.recordings_in_progress() == ["R1"] and any_storage.list() == []
    assert any_storage.exists("R1")
    fh.close()
    assert whole(any_storage, "R1") == data  # in progress, read as written

    sealed = any_storage.seal("R1", writer_closed=True)
    assert sealed is not None and (sealed.sha256, sealed.size) == (sha(data), len(data))
    assert any_storage.list() == ["R1"] and any_storage.recordings_in_progress() == []
    assert any_storage.seal("R1", writer_closed=True) == sealed  # idempotent: re-hashed
    assert any_storage.modified_at("R1") == sealed.modified_at
    assert whole(any_storage, "R1") == data
    for reopen in (any_storage.open_recording, any_storage.open_write):
        with pytest.raises(FileExistsError):
            reopen("R1")


def test_a_writer_that_never_closed_is_sealed_as_written(any_storage: Storage) -> None:
    first, late = os.urandom(100_000), os.urandom(50_000)
    fh = any_storage.open_recording("R2")
    fh.write(first)
    eventually(lambda: any_storage.size("R2") == len(first), "the bytes stored")
    sealed = any_storage.seal("R2", writer_closed=False)
    assert sealed is not None and (sealed.sha256, sealed.size) == (sha(first), len(first))
    fh.write(late)  # a writer still running (fenced, slow) writes on
    fh.close()
    assert whole(any_storage, "R2") == first
    again = any_storage.seal("R2", writer_closed=True)
    assert again is not None and again.sha256 == sealed.sha256


def test_empty_missing_and_discarded_recordings(any_storage: Storage) -> None:
    assert any_storage.seal("NONE", writer_closed=True) is None
    assert not any_storage.discard_recording("NONE") and not any_storage.exists("NONE")
    assert not any_storage.delete("NONE") and any_storage.list() == []

    any_storage.open_recording("EMPTY").close()
    sealed = any_storage.seal("EMPTY", writer_closed=True)
    assert sealed is not None and (sealed.size, sealed.sha256) == (0, sha(b""))

    with any_storage.open_recording("GONE") as fh:
        fh.write(b"abc")
    assert any_storage.discard_recording("GONE") and not any_storage.discard_recording("GONE")
    assert not any_storage.exists("GONE") and any_storage.seal("GONE", writer_closed=True) is None
    any_storage.open_recording("GONE").close()  # may be recorded afresh
    assert any_storage.recordings_in_progress() == ["GONE"]

    for bad in ("../x", "a/b", "", "."):
        with pytest.raises(ValueError):
            any_storage.exists(bad)


def test_open_storage_picks_the_backend(tmp_path: Path, s3_server: S3Server) -> None:
    local = open_storage(str(tmp_path / "rec"))
    assert isinstance(local, LocalStorage) and local.root == tmp_path / "rec"
    with pytest.MonkeyPatch.context() as env:
        for name, value in s3_server.env.items():
            env.setenv(name, value)
        s3 = open_storage("s3://recordings/some/prefix/")
    try:
        assert isinstance(s3, S3Storage) and s3.location("C9").endswith("some/prefix/C9.webm")
        assert s3.list() == []  # reaches the server with the AWS_* variables
    finally:
        s3.close()
        s3.close()  # idempotent
    with pytest.raises(ValueError):
        S3Storage.from_url("s3:///prefix")


@pytest.mark.parametrize("seed", range(5))
def test_parts_make_the_file_as_written_the_latest_part_winning(seed: int) -> None:
    """Random writes and rewrites, uploaded as dirty ranges now and then (as the spool does):
    the parts, each later one overwriting, give back exactly the file and any range of it."""
    rng = random.Random(seed)
    file, dirty = bytearray(), Ranges()
    parts: list[Part] = []
    stored: dict[str, bytes] = {}

    def upload() -> None:
        for start, end in dirty.take():
            for at in range(start, end, 700):  # small parts: many overlaps
                key = f"part{len(parts)}"
                stored[key] = bytes(file[at : min(end, at + 700)])
                parts.append(Part(key, len(parts), at, len(stored[key]), 0.0))

    for _ in range(400):
        at = rng.randrange(len(file) + 1) if rng.random() < 0.3 else len(file)
        data = rng.randbytes(rng.randrange(1, 2000))
        file[at : at + len(data)] = data
        dirty.add(at, at + len(data))
        if rng.random() < 0.1:
            upload()
    upload()
    rng.shuffle(parts)  # listed in any order

    def read(pieces: list[Piece]) -> bytes:
        return b"".join(stored[p.key][p.key_start : p.key_start + p.length] for p in pieces)

    pieces = layout(parts)
    assert read(pieces) == file
    for _ in range(50):
        start = rng.randrange(len(file))
        length = rng.randrange(1, 5000)
        assert read(clip(pieces, start, start + length)) == file[start : start + length]
    hole = len(file) // 2  # every part holding this byte lost: the file ends before it
    cut = layout([p for p in parts if not p.offset <= hole < p.offset + p.size])
    assert cut and cut[-1].end <= hole


def test_dirty_ranges_are_kept_exactly_and_merged() -> None:
    rng = random.Random(7)
    for _ in range(100):
        ranges, covered = Ranges(), set()
        for _ in range(50):
            start = rng.randrange(500)
            end = start + rng.randrange(40)
            ranges.add(start, end)
            covered |= set(range(start, end))
        assert ranges.total == len(covered)
        spans = ranges.take()
        assert {at for s, e in spans for at in range(s, e)} == covered
        assert all(a[1] < b[0] for a, b in itertools.pairwise(spans))  # disjoint
        assert ranges.take() == []


def test_workers_take_a_directory_or_an_s3_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VISITATION_RECORDINGS_URL", raising=False)
    monkeypatch.setenv("VISITATION_RECORDINGS_DIR", "/srv/recordings")
    base = ["--redis-url", "redis://127.0.0.1:1/0"]
    assert parse_cli(base).recordings == "/srv/recordings"
    monkeypatch.setenv("VISITATION_RECORDINGS_URL", "s3://evidence/calls")
    assert parse_cli(base).recordings == "s3://evidence/calls"
    for flag in ("--recordings", "--recordings-dir"):
        assert parse_cli([*base, flag, "s3://other/x"]).recordings == "s3://other/x"
        assert parse_cli([*base, flag, "/var/rec"]).recordings == "/var/rec"


# ---------------------------------------------------------------------- object storage


def test_bytes_reach_other_hosts_while_the_call_is_recorded(
    s3_storage: S3Storage, other_host: S3Storage
) -> None:
    first = os.urandom(200_000)
    fh = s3_storage.open_recording("LIVE")
    fh.write(first)
    eventually(lambda: other_host.size("LIVE") == len(first), "the first bytes uploaded")
    assert whole(other_host, "LIVE") == first
    assert other_host.recordings_in_progress() == ["LIVE"] and other_host.list() == []

    fh.seek(1000)
    fh.write(b"R" * 5000)  # rewrites bytes already uploaded: a later part wins
    fh.seek(0, io.SEEK_END)
    more = os.urandom(100_000)
    fh.write(more)
    expected = first[:1000] + b"R" * 5000 + first[6000:] + more
    eventually(lambda: whole(other_host, "LIVE") == expected, "the rewrite uploaded")
    fh.close()
    sealed = other_host.seal("LIVE", writer_closed=True)
    assert sealed is not None and sealed.sha256 == sha(expected)
    assert whole(s3_storage, "LIVE") == expected


def test_a_crashed_writer_leaves_exactly_what_was_uploaded(
    s3_server: S3Server, s3_location: str, other_host: S3Storage
) -> None:
    """The writer's host dies: what its uploader sent is the recording, nothing else."""
    writer_host = S3Storage.from_url(
        s3_location, env=s3_server.env, interval_s=0.2, close_timeout_s=0.5
    )
    fh = writer_host.open_recording("CRASH0")
    uploaded = os.urandom(150_000)
    fh.write(uploaded)
    eventually(lambda: other_host.size("CRASH0") == len(uploaded), "the bytes uploaded")
    writer_host.close()  # the host is gone: its uploads stop here
    fh.write(os.urandom(10_000))  # written locally, never uploaded
    sealed = other_host.seal("CRASH0", writer_closed=False)
    assert sealed is not None and (sealed.sha256, sealed.size) == (sha(uploaded), len(uploaded))
    assert whole(other_host, "CRASH0") == uploaded
    with pytest.raises(OSError):
        fh.close()  # its last upload cannot be made: the file is incomplete
    assert whole(other_host, "CRASH0") == uploaded


def test_uploads_that_cannot_finish_make_the_recording_incomplete(
    s3_server: S3Server, s3_location: str, other_host: S3Storage
) -> None:
    """The store is unreachable when the worker closes the file: the muxer says so (the
    worker reports it, the manifest says ``complete: false``); what was uploaded stays."""
    writer_host = S3Storage.from_url(s3_location, env=s3_server.env, close_timeout_s=0.5)
    recording = CallRecording.open(writer_host.open_recording("UNREACHABLE"), "UNREACHABLE")
    for frame in call_frames(2.0):
        recording.write(frame.party, frame.kind, frame.packet(), arrival=1000 + frame.at)
    writer_host.close()
    stats = recording.close()
    assert stats.failed and "not uploaded" in stats.failed, stats.failed
    assert other_host.recordings_in_progress() == ["UNREACHABLE"]


class Tee(io.RawIOBase):
    """Every write and seek into two files; counts the writes over earlier bytes."""

    def __init__(self, *files: BinaryIO) -> None:
        super().__init__()
        self.files = files
        self.pos = self.end = self.rewrites = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = bytes(b)
        for f in self.files:
            assert f.write(data) == len(data)
        self.rewrites += self.pos < self.end
        self.pos += len(data)
        self.end = max(self.end, self.pos)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        for f in self.files:
            self.pos = f.seek(offset, whence)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        if not self.closed:
            for f in self.files:
                f.close()
        super().close()


def test_the_muxers_seek_back_rewrites_reach_the_sealed_file(
    s3_storage: S3Storage, tmp_path: Path
) -> None:
    local = tmp_path / "local.webm"
    tee = Tee(cast(BinaryIO, local.open("xb", buffering=0)), s3_storage.open_recording("MUX"))
    write_call(CallRecording.open(cast(BinaryIO, tee), "MUX"), seconds=3.0)
    assert tee.rewrites > 0  # the muxer went back (duration, cues, sizes) when it closed
    sealed = s3_storage.seal("MUX", writer_closed=True)
    expected = local.read_bytes()
    assert sealed is not None and sealed.sha256 == sha(expected)
    data = whole(s3_storage, "MUX")
    assert data == expected
    with av.open(io.BytesIO(data)) as container:
        assert container.duration and len(container.streams) == 4


def test_large_files_go_up_in_parts(s3_server: S3Server, s3_location: str) -> None:
    storage = S3Storage.from_url(s3_location, env=s3_server.env, part_size=5 << 20)
    raw = botocore.session.get_session().create_client(
        "s3", endpoint_url=s3_server.url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    try:
        big = bytearray(os.urandom(12 << 20))
        with storage.open_recording("BIG") as fh:
            fh.write(bytes(big))  # more than one upload part (8 MiB) at once
            fh.seek(7 << 20)
            fh.write(b"Z" * 4096)  # across what were two parts
            big[7 << 20 : (7 << 20) + 4096] = b"Z" * 4096
        sealed = storage.seal("BIG", writer_closed=True)
        assert sealed is not None and (sealed.sha256, sealed.size) == (sha(big), len(big))
        head = raw.head_object(Bucket=s3_server.bucket, Key=storage.key("BIG"))
        assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB: a multipart upload
        at = (5 << 20) - 100
        assert storage.read_range("BIG", at, 300) == big[at : at + 300]

        view = os.urandom(11 << 20)
        with storage.open_write("BIGVIEW") as fh:
            fh.write(view)
        head = raw.head_object(Bucket=s3_server.bucket, Key=storage.key("BIGVIEW"))
        assert head["ETag"].strip('"').endswith("-3") and whole(storage, "BIGVIEW") == view
    finally:
        raw.close()
        storage.close()


def test_a_new_file_made_twice_at_once_keeps_the_first(s3_storage: S3Storage) -> None:
    """Two nodes make the same party view: both start, the second to finish is refused."""
    first, second = s3_storage.open_write("VIEW"), s3_storage.open_write("VIEW")
    first.write(b"first")
    second.write(b"second")
    first.close()
    with pytest.raises(FileExistsError):
        second.close()
    assert whole(s3_storage, "VIEW") == b"first"


def test_a_store_without_conditional_writes_is_checked_first(
    s3_storage: S3Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = s3_storage._bucket.client
    real_put = client.put_object

    async def put_object(**args: Any) -> Any:
        if "IfNoneMatch" in args:
            error = {"Error": {"Code": "NotImplemented", "Message": "A header is not implemented"}}
            raise ClientError(error, "PutObject")
        return await real_put(**args)

    monkeypatch.setattr(client, "put_object", put_object)
    with s3_storage.open_write("PLAIN") as fh:
        fh.write(b"one")
    assert s3_storage._bucket.conditional is False
    late = s3_storage.open_write("PLAIN2")
    with s3_storage.open_write("PLAIN2") as fh:
        fh.write(b"first")
    late.write(b"second")
    with pytest.raises(FileExistsError):
        late.close()
    with s3_storage.open_recording("PLAINREC") as fh:
        fh.write(b"recorded")
    sealed = s3_storage.seal("PLAINREC", writer_closed=True)
    assert sealed is not None and sealed.sha256 == sha(b"recorded")
    assert [whole(s3_storage, k) for k in ("PLAIN", "PLAIN2")] == [b"one", b"first"]


async def test_service_flows_on_object_storage(
    redis: Redis, recorder_seed: SeedFile, s3_storage: S3Storage, call_webm: bytes
) -> None:
    """Finalize, verify, party views, the stray sweep and retention, all through S3."""
    service = RecordingService(redis, s3_storage, SECRET)
    manifest = await record(service, "S3C1", call_webm)
    assert manifest.complete and manifest.sha256 == sha(call_webm)
    verification = await service.verify("S3C1")
    assert verification is not None and verification.ok

    views = PartyViews(s3_storage)
    view = await asyncio.to_thread(views.get, "S3C1", "family", manifest.sha256 or "")
    assert await asyncio.to_thread(views.get, "S3C1", "family", manifest.sha256 or "") == view
    target = io.BytesIO()
    with open_reader(s3_storage, view.key, view.size) as reader:
        assert remux_party(reader, target, "family") > 100

    with s3_storage.open_recording("STRAY") as fh:  # no call owns it
        fh.write(b"x")
    later = RecordingService(redis, s3_storage, SECRET, clock=lambda: time.time() + 3600)
    await later.sweep_orphans(set())
    assert s3_storage.recordings_in_progress() == []

    assert await later.purge_expired(time.time() + 400 * 86400) == ["S3C1"]
    assert s3_storage.list() == []  # the recording and its view


# ---------------------------------------------------------------------- killed and fenced


@contextlib.asynccontextmanager
async def writer_process(s3_server: S3Server, location: str, call_id: str) -> AsyncIterator[int]:
    """A writer process recording into S3 in real time (SIGKILLed on exit); yields the bytes
    it had written when it reached the real-time part."""
    argv = [sys.executable, "-m", "tests.system.recorder.crash_writer", location, call_id, "3"]
    proc = await spawn(argv, cwd=ROOT, stdout=PIPE, env={**os.environ, **s3_server.env})
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), WITHIN_S)).decode()
        assert line.startswith("written"), line
        yield int(line.split()[2])
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()


async def test_a_killed_writer_leaves_a_playable_incomplete_recording(
    redis: Redis,
    recorder_seed: SeedFile,
    s3_server: S3Server,
    s3_location: str,
    s3_storage: S3Storage,
    tmp_path: Path,
) -> None:
    service = RecordingService(redis, s3_storage, SECRET)
    await service.begin(call_info("CRASH1"))
    async with writer_process(s3_server, s3_location, "CRASH1") as written:
        await asyncio.to_thread(
            eventually, lambda: s3_storage.size("CRASH1") >= written, "the fast part uploaded"
        )
    uploaded = await asyncio.to_thread(whole, s3_storage, "CRASH1")  # killed: no more
    open_ids = await service.catalog.open_call_ids()
    swept = await service.sweep_orphans(set(), min_age_s=0.0)
    assert len(swept) == 1, (open_ids, await service.catalog.get("CRASH1"), len(uploaded))
    [manifest] = swept
    assert manifest.call_id == "CRASH1" and manifest.complete is False
    assert manifest.incomplete_reason and "did not close the file" in manifest.incomplete_reason
    sealed = await asyncio.to_thread(whole, s3_storage, "CRASH1")
    assert manifest.size == len(sealed) >= written and sealed.startswith(uploaded)
    assert s3_storage.recordings_in_progress() == []
    verification = await service.verify("CRASH1")
    assert verification is not None and verification.ok

    path = tmp_path / "sealed.webm"
    path.write_bytes(sealed)
    for index, colour in ((0, "red"), (2, "blue")):
        decoded, colours = video_colours(path, index)
        assert decoded >= 30 and set(colours) == {colour}
    view = await asyncio.to_thread(
        PartyViews(s3_storage).get, "CRASH1", "tablet", manifest.sha256 or ""
    )
    assert view.size > 0


async def test_a_fenced_writer_cannot_change_a_sealed_recording(
    redis: Redis,
    recorder_seed: SeedFile,
    s3_server: S3Server,
    s3_location: str,
    s3_storage: S3Storage,
) -> None:
    """Finalized as lost while the worker still runs: what it uploads afterwards never reaches
    the signed object, and the sweep discards it."""
    service = RecordingService(redis, s3_storage, SECRET)
    await service.begin(call_info("LATE1"))
    async with writer_process(s3_server, s3_location, "LATE1") as written:
        await asyncio.to_thread(
            eventually, lambda: s3_storage.size("LATE1") >= written, "the fast part uploaded"
        )
        manifest = await service.finalize("LATE1", None, writer=None)
        assert manifest is not None and manifest.complete is False and manifest.size
        signed = await asyncio.to_thread(whole, s3_storage, "LATE1")
        assert sha(signed) == manifest.sha256
        await asyncio.to_thread(
            eventually,
            lambda: s3_storage.recordings_in_progress() == ["LATE1"],
            "the writer uploading after the seal",
        )
        assert await asyncio.to_thread(whole, s3_storage, "LATE1") == signed
    verification = await service.verify("LATE1")
    assert verification is not None and verification.ok, verification
    later = RecordingService(redis, s3_storage, SECRET, clock=lambda: time.time() + 3600)
    await later.sweep_orphans(set())
    assert s3_storage.recordings_in_progress() == [] and s3_storage.list() == ["LATE1"]
    assert await asyncio.to_thread(whole, s3_storage, "LATE1") == signed


# ---------------------------------------------------------------------- a whole call


async def test_a_whole_call_is_recorded_into_s3_signed_and_served_with_ranges(
    redis: Redis,
    redis_url: str,
    seeded: SeedFile,
    tokens: Tokens,
    start_node: NodeFactory,
    s3_server: S3Server,
    s3_location: str,
    other_host: S3Storage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)  # the node's storage: AWS_* from its environment
    pool = WorkerPool(
        redis_url,
        log_level="WARNING",
        id_prefix="s3-rec",
        extra_args=["--recordings", s3_location],
        env=s3_server.env,
    )
    clients: Clients | None = None
    try:
        await pool.start(1)
        await pool.wait_ready(redis)
        node = await start_node(recordings_url=s3_location)
        clients = Clients(tokens, node.url)
        pair = await accepted(clients)

        def uploading() -> bool:
            return pair.call_id in other_host.recordings_in_progress() and (
                other_host.size(pair.call_id) > 50_000
            )

        async with media_between(pair):  # until the worker's uploads are seen from here
            await asyncio.to_thread(eventually, uploading, "the call's recording uploading")
            await pair.tablet.hangup(pair.call_id)
            await pair.family.next("call.ended")

        async with http_as(node.url, tokens, "investigator", "I1") as investigator:
            manifest = await _signed(investigator, pair.call_id)
            assert manifest["complete"] is True, manifest
            url = f"/api/v1/recordings/{pair.call_id}/media"
            async with investigator.get(url) as response:
                assert response.status == 200
                data = await response.read()
            assert len(data) == manifest["size"] and sha(data) == manifest["sha256"]
            async with investigator.get(url, headers={"Range": "bytes=100-195"}) as response:
                assert response.status == 206
                assert response.headers["Content-Range"] == f"bytes 100-195/{len(data)}"
                assert await response.read() == data[100:196]
            async with investigator.post(f"/api/v1/recordings/{pair.call_id}/verify") as resp:
                assert (await resp.json())["ok"] is True
        colours, _, codecs = call_colours(data)
        assert codecs == ["opus", "opus", "vp8", "vp8"]
        assert sorted(colours.values()) == ["blue", "red"]
        assert other_host.list() == [pair.call_id] and other_host.recordings_in_progress() == []
    finally:
        if clients is not None:
            await clients.close_all()
        await pool.stop()


async def _signed(investigator: Any, call_id: str) -> dict[str, Any]:
    manifest: dict[str, Any] = {}

    async def signed() -> bool:
        nonlocal manifest
        async with investigator.get(f"/api/v1/recordings/{call_id}") as response:
            manifest = await response.json()
        return bool(manifest.get("signature"))

    await eventually_async(signed, lambda: f"a signed manifest: {manifest}", within_s=WITHIN_S)
    return manifest
