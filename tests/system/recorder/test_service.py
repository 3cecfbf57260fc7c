"""Begin/finalize, signatures and tampering, privileged calls, retention with legal hold."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

import pytest
from redis.asyncio import Redis

from recorder.audit import Actor
from recorder.catalog import Query
from recorder.manifest import Manifest, ManifestSigner
from recorder.muxer import CallRecording
from recorder.redis_keys import RECORDING
from recorder.service import PrivilegedCallError, RecordingService, WriterReport
from recorder.storage import LocalStorage
from tests.system.recorder.conftest import DAY, call_info, record

FLAG = {"flag_id": "f1", "offset_s": 2.5, "note": "holding up a paper", "by": "S1", "at": 1.0}


async def test_privileged_call_is_refused_before_anything_is_written(
    service: RecordingService, storage: LocalStorage, redis: Redis
) -> None:
    with pytest.raises(PrivilegedCallError):
        await service.begin(call_info("ATTY1", family="FATTY", privileged=True))
    assert await redis.keys("rec*") == []
    assert storage.list() == [] and not storage.root.exists()
    assert await service.finalize("ATTY1") is None  # nothing to finalize either


async def test_finalize_hashes_signs_and_catalogs(
    service: RecordingService, storage: LocalStorage, call_webm: bytes
) -> None:
    info = call_info("C1")
    begun = await service.begin(info)
    assert begun.complete is False and begun.signature is None
    assert await service.begin(info) == begun  # a retried begin changes nothing
    entry = await service.catalog.get("C1")
    assert entry is not None and entry.state == "recording"
    assert await service.verify("C1") is None  # nothing to verify before finalize

    with storage.open_write("C1") as fh:
        fh.write(call_webm)
    with pytest.raises(FileExistsError):
        storage.open_write("C1")  # evidence is never overwritten
    ended = info.model_copy(update={"ended_at": info.started_at + 5, "end_reason": "hangup"})
    manifest = await service.finalize("C1", ended, [FLAG])
    assert manifest is not None
    assert manifest.complete and manifest.size == len(call_webm)
    assert manifest.duration_s == 5 and manifest.end_reason == "hangup"
    assert [(t.party, t.kind, t.codec) for t in manifest.tracks] == [
        ("tablet", "video", "vp8"), ("tablet", "audio", "opus"),
        ("family", "video", "vp8"), ("family", "audio", "opus"),
    ]  # fmt: skip
    assert manifest.flags[0].note == "holding up a paper" and manifest.flagged
    assert service.signer.signature_ok(manifest)
    assert not ManifestSigner(b"another-server-key-0123").signature_ok(manifest)
    assert await service.finalize("C1", ended, writer=None) == manifest  # once only
    verification = await service.verify("C1")
    assert verification is not None and verification.ok and verification.sha256 == manifest.sha256


async def test_tampering_with_the_file_or_the_manifest_is_detected(
    service: RecordingService, storage: LocalStorage, redis: Redis, call_webm: bytes
) -> None:
    manifest = await record(service, "T1", call_webm)
    path = storage.path("T1")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = await service.verify("T1")
    assert result is not None and not result.ok
    assert (result.signature_ok, result.hash_ok, result.size_ok) == (True, False, True)
    assert result.sha256 != manifest.sha256 and "file was altered" in result.problems[0]

    path.write_bytes(call_webm)  # file restored, but the stored manifest is edited
    raw = await redis.hget(RECORDING("T1"), "manifest")
    assert raw is not None
    stored = json.loads(raw)
    stored["resident_id"] = "R2"
    await redis.hset(RECORDING("T1"), "manifest", json.dumps(stored))
    result = await service.verify("T1")
    assert result is not None and not result.ok
    assert (result.signature_ok, result.hash_ok) == (False, True)
    assert "manifest was altered" in result.problems[0]


async def test_a_call_that_never_got_media_is_dropped(service: RecordingService) -> None:
    await service.begin(call_info("EMPTY"))
    assert await service.finalize("EMPTY", call_info("EMPTY", ended_at=time.time())) is None
    assert await service.catalog.get("EMPTY") is None


async def test_a_muxer_with_no_frames_leaves_no_recording(
    service: RecordingService, storage: LocalStorage
) -> None:
    await service.begin(call_info("NOFRAMES"))
    CallRecording.open(storage.open_recording("NOFRAMES"), "NOFRAMES").close()
    assert await service.finalize("NOFRAMES") is None
    assert storage.list() == [] and storage.recordings_in_progress() == []  # no empty file


async def test_a_connected_call_with_no_media_keeps_a_signed_entry_saying_why(
    service: RecordingService, storage: LocalStorage
) -> None:
    """The header could not be written (disk full): investigators still see the call."""
    info = call_info("NOHEADER", connected_at=time.time() - 100, ended_at=time.time())
    await service.begin(info)
    CallRecording.open(storage.open_recording("NOHEADER"), "NOHEADER").close()
    problem = "cannot start the file: [Errno 28] No space left on device"
    manifest = await service.finalize("NOHEADER", info, writer=WriterReport((problem,)))
    assert manifest is not None and manifest.complete is False and manifest.signature
    assert manifest.size == 0 and manifest.sha256 is None
    assert manifest.incomplete_reason == f"nothing could be recorded; {problem}"
    assert storage.list() == [] and storage.recordings_in_progress() == []
    verification = await service.verify("NOHEADER")
    assert verification is not None and verification.ok, verification


async def test_a_write_failure_mid_call_makes_the_recording_incomplete(
    service: RecordingService, storage: LocalStorage, call_webm: bytes
) -> None:
    info = call_info("DISKFULL", connected_at=time.time() - 100, ended_at=time.time())
    await service.begin(info)
    with storage.open_recording("DISKFULL") as fh:
        fh.write(call_webm)
    problems = ("write failed: [Errno 28] No space left on device", "12 packets not recorded")
    manifest = await service.finalize("DISKFULL", info, writer=WriterReport(problems))
    assert manifest is not None and manifest.complete is False
    assert manifest.incomplete_reason == "; ".join(problems)
    assert manifest.size == len(call_webm)
    verification = await service.verify("DISKFULL")
    assert verification is not None and verification.ok


async def test_manifests_signed_before_later_fields_existed_still_verify(
    service: RecordingService,
) -> None:
    """Fields added later (``incomplete_reason``, ``warned_at``, ``object_key``) are signed
    only once set."""
    manifest = Manifest(
        call_id="OLD", facility_id="SQ", resident_id="R1", family_id="F1", started_at=1.0,
        tracks=[], complete=True,
    )  # fmt: skip
    legacy = json.dumps(
        manifest.model_dump(mode="json", exclude={"signature", "incomplete_reason", "warned_at", "object_key"}),
        sort_keys=True, separators=(",", ":"), ensure_ascii=True,
    ).encode()  # fmt: skip
    signer = service.signer
    signature = hmac.new(signer._key, legacy, hashlib.sha256).hexdigest()
    assert signer.signature_ok(manifest.model_copy(update={"signature": signature}))
    warned = signer.sign(manifest.model_copy(update={"warned_at": 2.5}), 3.0)
    assert signer.signature_ok(warned)
    assert not signer.signature_ok(warned.model_copy(update={"warned_at": 9.5}))  # signed over


async def test_sweep_deletes_recordings_in_progress_that_no_call_owns(
    service: RecordingService, storage: LocalStorage
) -> None:
    with storage.open_recording("STRAY") as fh:
        fh.write(b"x")
    os.utime(storage.part_path("STRAY"), (time.time() - 3600, time.time() - 3600))
    with storage.open_recording("FRESH") as fh:  # its call may be opening right now
        fh.write(b"x")
    await service.sweep_orphans(set())
    assert storage.recordings_in_progress() == ["FRESH"]


async def test_retention_purges_expired_media_except_on_legal_hold(
    service: RecordingService, storage: LocalStorage, call_webm: bytes
) -> None:
    now = time.time()
    ages = {"OLD": ("R1", 200), "HELD": ("R1", 200), "NEW": ("R1", 10),
            "CLOSED_OLD": ("R3", 40), "CLOSED_NEW": ("R3", 20)}  # fmt: skip
    for call_id, (resident, days) in ages.items():
        await record(service, call_id, call_webm, resident=resident, started_at=now - days * DAY)
    await service.begin(call_info("LIVE", started_at=now - 400 * DAY))  # still recording
    investigator = Actor("I1", "investigator", "10.0.0.9", "pytest")
    assert await service.set_legal_hold("HELD", True, investigator)

    purged = await service.purge_expired(now)
    assert sorted(purged) == ["CLOSED_OLD", "OLD"]  # SQ keeps 180 days, CLOSED 30
    assert storage.list() == ["CLOSED_NEW", "HELD", "NEW"]
    assert await service.purge_expired(now) == []
    tombstone = await service.catalog.get("OLD")
    assert tombstone is not None and tombstone.state == "purged"
    found = await service.catalog.search(Query(), ["*"])
    assert {e.manifest.call_id for e in found} == {"HELD", "NEW", "CLOSED_NEW", "LIVE"}

    [purge] = await service.audit.for_call("OLD")
    assert (purge["action"], purge["staff_id"], purge["facility_id"]) == (
        "purge",
        "system:retention",
        "SQ",
    )
    assert purge["detail"]["sha256"] == tombstone.manifest.sha256
    [hold] = await service.audit.for_call("HELD")
    assert (hold["action"], hold["staff_id"], hold["detail"]) == (
        "legal_hold",
        "I1",
        {"hold": True},
    )
    assert hold["remote"] == "10.0.0.9"

    assert await service.set_legal_hold("HELD", False, investigator)
    assert await service.purge_expired(now) == ["HELD"]
    assert not await service.set_legal_hold("OLD", True, investigator)  # purged: too late


async def test_sweep_seals_a_file_its_worker_closed_as_the_worker_reported(
    service: RecordingService, storage: LocalStorage, call_webm: bytes
) -> None:
    """The worker closed the file and said so, but its node never finalized (the close_call
    reply was lost, the node died): the sweep signs what the worker reported, not 'lost'."""
    reports = {"WHOLE": WriterReport(), "GAPS": WriterReport(("video lost for 3 s",))}
    for call_id in (*reports, "LOST"):
        await service.begin(call_info(call_id))
        with storage.open_recording(call_id) as fh:
            fh.write(call_webm)

    async def writer_of(call_id: str) -> WriterReport | None:
        return reports.get(call_id)

    done = await service.sweep_orphans(set(), writer_of=writer_of, min_age_s=0.0)
    manifests = {m.call_id: m for m in done}
    assert sorted(manifests) == ["GAPS", "LOST", "WHOLE"]
    assert manifests["WHOLE"].complete and manifests["WHOLE"].incomplete_reason is None
    assert manifests["GAPS"].incomplete_reason == "video lost for 3 s"
    lost = manifests["LOST"].incomplete_reason
    assert not manifests["LOST"].complete and lost and "did not close the file" in lost
    for call_id, manifest in manifests.items():
        assert manifest.size == len(call_webm) and storage.recordings_in_progress() == []
        verification = await service.verify(call_id)
        assert verification is not None and verification.ok
