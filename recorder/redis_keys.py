"""The recorder's Redis keys (the scheme: :mod:`core.keyspace`): the catalog (:mod:`recorder.catalog`),
the recording-access audit log (:mod:`recorder.audit`) and its playback meter
(:mod:`recorder.playback`).

Renamed: the catalog's indexes and sets left the ``rec`` space for ``recordings``, because
``rec:{call_id}`` (a recording's hash, kept) would also read ``rec:open`` or ``rec:idx:all`` as
a recording's (a last slot takes the rest of the key). The audit stream, a bare ``audit``, is
``audit:log``. The ids ``audit:call:{call_id}`` lists are stream entry ids, which a rename
keeps.
"""

from __future__ import annotations

from typing import Final

from core.keyspace import Key, Kind, Rename

RECORDING: Final = Key(
    "rec:{call_id}",
    Kind.HASH,
    "a recording's catalog entry: manifest (JSON), state recording|final|purged, hold, "
    "watch_flags, purged_at",
)
OPEN: Final = Key("recordings:open", Kind.SET, "the calls whose recording is still being made")
FACILITIES: Final = Key(
    "recordings:facilities", Kind.SET, "the facilities that have had a recording (retention)"
)
ALL: Final = Key("recordings:all", Kind.ZSET, "every unpurged recording, by started_at")
FLAGGED: Final = Key(
    "recordings:flagged",
    Kind.ZSET,
    "final recordings with a flag (a monitor's or a transcript's watch word), by started_at",
)
BY_FACILITY: Final = Key(
    "recordings:facility:{facility_id}", Kind.ZSET, "a facility's recordings, by started_at"
)
BY_RESIDENT: Final = Key(
    "recordings:resident:{resident_id}", Kind.ZSET, "a resident's recordings, by started_at"
)
BY_FAMILY: Final = Key(
    "recordings:family:{family_id}", Kind.ZSET, "a family's recordings, by started_at"
)
AUDIT_LOG: Final = Key(
    "audit:log",
    Kind.STREAM,
    "the append-only log of recording access (who listed, viewed, downloaded, verified, "
    "purged, held what)",
)
AUDIT_CALL: Final = Key(
    "audit:call:{call_id}", Kind.LIST, "the ids of the audit entries about a call"
)
AUDIT_ONCE: Final = Key(
    "audit:once:{once+}",
    Kind.STRING,
    "an audit entry already made for this once key (one view per playback)",
    "12 h",
)
PLAYBACK: Final = Key(
    "audit:playback:{playback}",
    Kind.STRING,
    "bytes served to one playback (slot: subject|call_id|file|playback id)",
    "30 min after its first request",
)

KEYS: Final = (
    RECORDING,
    OPEN,
    FACILITIES,
    ALL,
    FLAGGED,
    BY_FACILITY,
    BY_RESIDENT,
    BY_FAMILY,
    AUDIT_LOG,
    AUDIT_CALL,
    AUDIT_ONCE,
    PLAYBACK,
)
# Each old name is a pattern only its own keys match (none starts ``rec:{call_id}``, which
# stays), so they run in any order.
RENAMES: Final = (
    Rename("recorder-open-v1", "rec:open", OPEN),
    Rename("recorder-facilities-v1", "rec:facilities", FACILITIES),
    Rename("recorder-index-all-v1", "rec:idx:all", ALL),
    Rename("recorder-index-flagged-v1", "rec:idx:flagged", FLAGGED),
    Rename("recorder-index-facility-v1", "rec:idx:facility:{facility_id}", BY_FACILITY),
    Rename("recorder-index-resident-v1", "rec:idx:resident:{resident_id}", BY_RESIDENT),
    Rename("recorder-index-family-v1", "rec:idx:family:{family_id}", BY_FAMILY),
    Rename("recorder-audit-log-v1", "audit", AUDIT_LOG),
)
