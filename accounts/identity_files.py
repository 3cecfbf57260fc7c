"""Where identity images live: like recordings, private files under the data dir, or S3.

- :class:`LocalIdentityFiles`: ``DATA_DIR/identity/<family_id>/<submission>-<kind>.jpg``, files
  ``0600`` in ``0700`` directories (:mod:`core.permissions`), created exclusively, never
  overwritten;
- :class:`StorageIdentityFiles`: any :class:`recorder.storage.Storage`, e.g. the recorder's
  :class:`~recorder.s3_storage.S3Storage` when recordings are in S3 (``<recordings
  prefix>/identity/``), each image one whole object named ``<family>.<submission>.<kind>``.

:func:`open_identity_files` picks what the recordings use. Every method blocks: call it from a
thread. Names come from validated ids only (family ids, submission ids, the three kinds).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Final, Protocol

from core.config import Settings
from core.permissions import private_dir
from recorder.storage import Storage, open_storage

IMAGE_KINDS: Final = ("id_front", "id_back", "selfie")
_NAME: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def _check(*parts: str) -> None:
    for part in parts:
        if not _NAME.match(part) or part in (".", ".."):
            raise ValueError(f"not a safe name: {part!r}")


class IdentityFiles(Protocol):
    def put(self, family_id: str, submission: str, kind: str, data: bytes) -> None:
        """Store one image; ``FileExistsError`` if that image exists."""
        ...

    def get(self, family_id: str, submission: str, kind: str) -> bytes:
        """The image's bytes; ``FileNotFoundError`` if none."""
        ...

    def delete(self, family_id: str, submission: str) -> None:
        """Remove every image of a submission (missing ones are fine)."""
        ...

    def close(self) -> None: ...


class LocalIdentityFiles:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, family_id: str, submission: str, kind: str) -> Path:
        _check(family_id, submission, kind)
        return self.root / family_id / f"{submission}-{kind}.jpg"

    def put(self, family_id: str, submission: str, kind: str, data: bytes) -> None:
        path = self.path(family_id, submission, kind)
        private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with open(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    def get(self, family_id: str, submission: str, kind: str) -> bytes:
        return self.path(family_id, submission, kind).read_bytes()

    def delete(self, family_id: str, submission: str) -> None:
        for kind in IMAGE_KINDS:
            self.path(family_id, submission, kind).unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty (another submission), or gone
            (self.root / family_id).rmdir()

    def close(self) -> None:
        pass


class StorageIdentityFiles:
    """Whole images in a recorder :class:`Storage` (its ``open_write``, ``read_range``)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @staticmethod
    def name(family_id: str, submission: str, kind: str) -> str:
        _check(family_id, submission, kind)
        return f"{family_id}.{submission}.{kind}"

    def put(self, family_id: str, submission: str, kind: str, data: bytes) -> None:
        with self.storage.open_write(self.name(family_id, submission, kind)) as out:
            out.write(data)

    def get(self, family_id: str, submission: str, kind: str) -> bytes:
        name = self.name(family_id, submission, kind)
        return self.storage.read_range(name, 0, self.storage.size(name))

    def delete(self, family_id: str, submission: str) -> None:
        for kind in IMAGE_KINDS:
            self.storage.delete(self.name(family_id, submission, kind))

    def close(self) -> None:
        self.storage.close()


def identity_location(settings: Settings) -> str:
    """``<recordings s3 URL>/identity`` when recordings are in S3, else ``DATA_DIR/identity``."""
    if settings.recordings_url:
        return settings.recordings_url.rstrip("/") + "/identity"
    return str(settings.data_dir / "identity")


def open_identity_files(location: str) -> IdentityFiles:
    if location.startswith("s3://"):
        return StorageIdentityFiles(open_storage(location))
    return LocalIdentityFiles(location)
