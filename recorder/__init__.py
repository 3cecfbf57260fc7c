"""Recorder: crash-safe zero-transcode call recordings, signed manifests, catalog, audit.

Both tiers open the same recordings with ``storage = open_storage(location)`` (a directory, or
``s3://bucket/prefix``: :mod:`recorder.s3_storage`) and ``storage.close()`` it when they stop.

SFU worker (has the media): ``rec = CallRecording.open(storage.open_recording(call_id), call_id)``
and ``tap = RecorderTap.for_room(room, rec)`` when a non-privileged room opens;
``await tap.aclose()`` after ``room.close()``, then report ``tap.problems()`` (what could not
be recorded) to the signaling tier.

Signaling tier (has the call record): ``await service.begin(CallInfo(...))`` before the call
is placed on a worker (raises :class:`PrivilegedCallError` for attorney calls: then never ask
the worker to record); ``await service.finalize(call_id, CallInfo(...), flags, writer=...)``
once the worker reported the room closed (``writer=None`` if it never did: the file is then
copied as written and signed ``complete: false``); periodically ``service.sweep_orphans(live_call_ids)`` and
``service.purge_expired()``.

The investigators' HTTP API is :func:`recorder.http_api.add_recording_routes`, imported by the
application that serves it (not here, so a worker never loads it).
"""

from recorder.audit import Actor, AuditLog
from recorder.catalog import Catalog, CatalogEntry, Query
from recorder.manifest import Flag, Manifest, ManifestSigner, Verification
from recorder.muxer import CallRecording, MuxerOptions, RecordingStats
from recorder.service import CallInfo, PrivilegedCallError, RecordingService, WriterReport
from recorder.storage import LocalStorage, Storage, open_storage
from recorder.tap import RecorderTap

__all__ = [
    "Actor",
    "AuditLog",
    "CallInfo",
    "CallRecording",
    "Catalog",
    "CatalogEntry",
    "Flag",
    "LocalStorage",
    "Manifest",
    "ManifestSigner",
    "MuxerOptions",
    "PrivilegedCallError",
    "Query",
    "RecorderTap",
    "RecordingService",
    "RecordingStats",
    "Storage",
    "Verification",
    "WriterReport",
    "open_storage",
]
