"""The signed manifest of a recording, and verification of a file against it.

The signature is HMAC-SHA256 over the manifest's canonical JSON (sorted keys, no spaces,
ASCII, ``signature`` left out) with a key derived from the server secret for this purpose
only, so a manifest signature can never be replayed as a bearer token or a webhook signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.keys import Purpose, derive_key
from recorder.storage import SUFFIX, Storage

CHUNK: Final = 1 << 20
#: What verify and every read answer when the manifest stored for a call is not that call's.
MISMATCH: Final = "manifest belongs to another call"
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Flag(BaseModel):
    """A moment a monitor flagged; ``offset_s`` is seconds since the call connected."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    flag_id: str = Field(min_length=1, max_length=64)
    offset_s: float = Field(ge=0)
    note: str = Field(max_length=2048)
    by: str = Field(max_length=64)
    at: float | None = None


class Track(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    party: Literal["tablet", "family"]
    kind: Literal["audio", "video"]
    codec: Literal["vp8", "opus"]


class Manifest(BaseModel):
    """Call metadata, tracks, file size and hash, flags; ``signature`` once finalized."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    call_id: str
    facility_id: str
    resident_id: str
    family_id: str
    started_at: float
    ended_at: float | None = None
    duration_s: float | None = None
    end_reason: str | None = None
    #: When both parties were told one minute remained (None: never warned), for the timeline.
    warned_at: float | None = None
    container: Literal["webm"] = "webm"
    tracks: list[Track]
    size: int | None = None
    sha256: Hex64 | None = None
    #: The media object hashed (its name in storage, ``<call_id>.webm``), once finalized.
    object_key: str | None = None
    flags: list[Flag] = Field(default_factory=list)
    complete: bool = False
    #: Why ``complete`` is false (the writer died, the disk was full, ...), once finalized.
    incomplete_reason: str | None = None
    signed_at: float | None = None
    signature: Hex64 | None = None

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    @property
    def has_media(self) -> bool:
        """False for a call that connected but of which no byte could be recorded."""
        return self.sha256 is not None

    @property
    def finalized(self) -> bool:
        return self.signature is not None

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def canonical_json(manifest: Manifest) -> bytes:
    # Fields added later are left out while unset, so older signatures still verify.
    later = ("incomplete_reason", "warned_at", "object_key")
    exclude = {"signature"} | {name for name in later if getattr(manifest, name) is None}
    body = manifest.model_dump(mode="json", exclude=exclude)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def object_key(call_id: str) -> str:
    """The name of a call's media object in storage (what its manifest signs)."""
    return call_id + SUFFIX


def binding_problem(manifest: Manifest, call_id: str) -> str | None:
    """:data:`MISMATCH` unless the manifest is ``call_id``'s: its signed call id, and the media
    object it names (manifests signed before ``object_key`` existed name none)."""
    if manifest.call_id != call_id:
        return MISMATCH
    if manifest.object_key is not None and manifest.object_key != object_key(call_id):
        return MISMATCH
    return None


class Verification(BaseModel):
    """What ``verify`` found; ``problems`` names each check that failed."""

    ok: bool
    sha256: str | None  # recomputed from the file (None: no file)
    expected_sha256: str | None
    size: int | None
    signature_ok: bool
    hash_ok: bool
    size_ok: bool
    problems: list[str]


class ManifestSigner:
    def __init__(self, secret: bytes) -> None:
        self._key = derive_key(secret, Purpose.MANIFESTS)

    def _mac(self, manifest: Manifest) -> str:
        return hmac.new(self._key, canonical_json(manifest), hashlib.sha256).hexdigest()

    def sign(self, manifest: Manifest, signed_at: float) -> Manifest:
        unsigned = manifest.model_copy(update={"signed_at": round(signed_at, 3)})
        return unsigned.model_copy(update={"signature": self._mac(unsigned)})

    def signature_ok(self, manifest: Manifest) -> bool:
        return manifest.signature is not None and hmac.compare_digest(
            manifest.signature, self._mac(manifest)
        )

    def verify(
        self, manifest: Manifest, storage: Storage, call_id: str | None = None
    ) -> Verification:
        """Recompute the file's SHA-256 and the manifest's signature (blocking: use a thread).
        ``call_id``: the call asked about; a manifest of another call is not ok
        (:func:`binding_problem`), and no file is read for it."""
        problems: list[str] = []
        signature_ok = self.signature_ok(manifest)
        if call_id is not None and (mismatch := binding_problem(manifest, call_id)):
            return Verification(
                ok=False,
                sha256=None,
                expected_sha256=manifest.sha256,
                size=None,
                signature_ok=signature_ok,
                hash_ok=False,
                size_ok=False,
                problems=[mismatch],
            )
        if not signature_ok:
            problems.append("manifest signature does not match: the manifest was altered")
        try:
            digest, size = file_sha256(storage, manifest.call_id)
        except FileNotFoundError:
            digest, size = None, None
            if manifest.has_media:
                problems.append("the recording file is missing")
        if not manifest.has_media:  # signed as "nothing could be recorded": no file expected
            if digest is not None:
                problems.append("a file exists although the manifest says nothing was recorded")
            ok = signature_ok and digest is None
            return Verification(
                ok=ok,
                sha256=digest,
                expected_sha256=None,
                size=size,
                signature_ok=signature_ok,
                hash_ok=digest is None,
                size_ok=digest is None,
                problems=problems,
            )
        hash_ok = digest is not None and digest == manifest.sha256
        size_ok = size is not None and size == manifest.size
        if digest is not None and not hash_ok:
            problems.append("file SHA-256 does not match the manifest: the file was altered")
        if size is not None and not size_ok:
            problems.append(f"file size {size} differs from the manifest's {manifest.size}")
        return Verification(
            ok=signature_ok and hash_ok and size_ok,
            sha256=digest,
            expected_sha256=manifest.sha256,
            size=size,
            signature_ok=signature_ok,
            hash_ok=hash_ok,
            size_ok=size_ok,
            problems=problems,
        )


def file_sha256(storage: Storage, call_id: str) -> tuple[str, int]:
    """SHA-256 (hex) and size of a call's media file (blocking: use a thread)."""
    digest, offset = hashlib.sha256(), 0
    while chunk := storage.read_range(call_id, offset, CHUNK):
        digest.update(chunk)
        offset += len(chunk)
    if offset == 0 and not storage.exists(call_id):
        raise FileNotFoundError(call_id)
    return digest.hexdigest(), offset
