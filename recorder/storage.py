"""Where recording files live: a small blocking interface, a local directory by default.

Every method is blocking (file or network I/O): call it from a thread (``asyncio.to_thread``)
in async code. Files are addressed by call id only, never by a client-supplied path.

A call's recording is written *in progress* (:meth:`Storage.open_recording`) and becomes the
call's media only when sealed (:meth:`Storage.seal`), by whoever finalizes it: the sealed bytes
are then fixed. If the writer said it closed the file, sealing moves it into place; otherwise
(the worker died, was fenced, or is too slow) the bytes written so far are copied into a new
file, so a late write by a writer that is still running lands in the abandoned copy, never in
the signed one. Reads of a call still recording see the bytes written so far.

:func:`open_storage` opens a location: a local directory (:class:`LocalStorage`, the default)
or ``s3://bucket/prefix`` (:class:`recorder.s3_storage.S3Storage`: S3-compatible object
storage, uploaded as it is recorded). Whoever opens a storage closes it (:meth:`Storage.close`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Protocol

CALL_ID: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
SUFFIX: Final = ".webm"
PART: Final = ".part"  # a recording in progress: ``<call_id>.webm.part``
CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class Sealed:
    """A sealed recording: its bytes no longer change."""

    sha256: str
    size: int
    modified_at: float  # the last write into the recording before it was sealed


class Storage(Protocol):
    def location(self, call_id: str) -> str:
        """Where the call's media is (a path or URL), for logs and manifests."""
        ...

    def open_write(self, call_id: str) -> BinaryIO:
        """A new, writable, seekable, unbuffered file; ``FileExistsError`` if one exists."""
        ...

    def open_recording(self, call_id: str) -> BinaryIO:
        """The call's recording in progress (as :meth:`open_write`); ``FileExistsError`` if
        the call has one, in progress or sealed."""
        ...

    def seal(self, call_id: str, *, writer_closed: bool) -> Sealed | None:
        """Fix the recording's bytes as the call's media; ``None`` if it has none. Moves the
        file into place if ``writer_closed``, else copies what was written so far (a writer
        still running cannot touch the copy). Idempotent: a sealed recording is re-hashed."""
        ...

    def discard_recording(self, call_id: str) -> bool:
        """Delete a recording in progress; ``False`` if there was none."""
        ...

    def recordings_in_progress(self) -> list[str]:
        """Call ids with a recording in progress, sorted."""
        ...

    def exists(self, call_id: str) -> bool: ...

    def size(self, call_id: str) -> int:
        """Bytes written so far (sealed, or in progress); ``FileNotFoundError`` if none."""
        ...

    def modified_at(self, call_id: str) -> float:
        """Unix time of the last write; ``FileNotFoundError`` if there is no file."""
        ...

    def read_range(self, call_id: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from offset ``start`` (fewer at the end of the file)."""
        ...

    def delete(self, call_id: str) -> bool:
        """Remove the call's media; ``False`` if there was none."""
        ...

    def list(self) -> list[str]:
        """Call ids with media, sorted."""
        ...

    def close(self) -> None:
        """Release what the storage holds (network clients, threads); idempotent."""
        ...


def open_storage(location: str) -> Storage:
    """``s3://bucket/prefix``: :class:`~recorder.s3_storage.S3Storage` (endpoint and
    credentials from the ``AWS_*`` variables); anything else is a local directory."""
    if location.startswith("s3://"):
        from recorder.s3_storage import S3Storage  # aiobotocore only where S3 is used

        return S3Storage.from_url(location)
    return LocalStorage(location)


def check_call_id(call_id: str) -> str:
    if not CALL_ID.match(call_id) or call_id in (".", ".."):
        raise ValueError(f"not a call id: {call_id!r}")
    return call_id


class LocalStorage:
    """``ROOT/<call_id>.webm``, files created ``0640`` and never overwritten; recordings in
    progress are ``ROOT/<call_id>.webm.part``, sealed read-only (``0440``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, call_id: str) -> Path:
        return self.root / (check_call_id(call_id) + SUFFIX)

    def part_path(self, call_id: str) -> Path:
        return self.root / (check_call_id(call_id) + SUFFIX + PART)

    def location(self, call_id: str) -> str:
        return str(self.path(call_id))

    def _readable(self, call_id: str) -> Path:
        path = self.path(call_id)
        if path.is_file():
            return path
        part = self.part_path(call_id)
        return part if part.is_file() else path

    def _create(self, path: Path) -> BinaryIO:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return open(fd, "wb", buffering=0)  # FileIO: every write goes straight to the OS

    def open_write(self, call_id: str) -> BinaryIO:
        return self._create(self.path(call_id))

    def open_recording(self, call_id: str) -> BinaryIO:
        if self.path(call_id).exists():
            raise FileExistsError(f"call {call_id} already has a sealed recording")
        return self._create(self.part_path(call_id))

    def seal(self, call_id: str, *, writer_closed: bool) -> Sealed | None:
        final, part = self.path(call_id), self.part_path(call_id)
        if not final.exists():
            try:
                modified_at = part.stat().st_mtime
            except FileNotFoundError:
                return None
            if writer_closed:
                os.chmod(part, 0o400)
                self._link(part, final)
            else:
                self._copy_into(part, final)
            os.utime(final, (time.time(), modified_at))
            self._fsync_dir()
        part.unlink(missing_ok=True)  # a writer still running now writes into nothing
        digest, size = _sha256(final)
        return Sealed(digest, size, final.stat().st_mtime)

    def _copy_into(self, part: Path, final: Path) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".seal", dir=self.root)
        try:
            with part.open("rb") as src, open(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
                dst.flush()
                os.fsync(dst.fileno())
            os.chmod(tmp, 0o400)
            self._link(Path(tmp), final)
        finally:
            Path(tmp).unlink(missing_ok=True)

    @staticmethod
    def _link(source: Path, final: Path) -> None:
        """``final`` = ``source``, never replacing a ``final`` someone else sealed first."""
        try:
            os.link(source, final)
        except FileExistsError:
            return

    def _fsync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard_recording(self, call_id: str) -> bool:
        try:
            self.part_path(call_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def recordings_in_progress(self) -> list[str]:
        if not self.root.is_dir():
            return []
        pattern = "*" + SUFFIX + PART
        return sorted(p.name[: -len(SUFFIX + PART)] for p in self.root.glob(pattern))

    def exists(self, call_id: str) -> bool:
        return self._readable(call_id).is_file()

    def size(self, call_id: str) -> int:
        return self._readable(call_id).stat().st_size

    def modified_at(self, call_id: str) -> float:
        return self._readable(call_id).stat().st_mtime

    def read_range(self, call_id: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError("start and length must not be negative")
        with self._readable(call_id).open("rb") as fh:
            fh.seek(start)
            return fh.read(length)

    def delete(self, call_id: str) -> bool:
        try:
            self.path(call_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def list(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name[: -len(SUFFIX)] for p in self.root.glob("*" + SUFFIX) if p.is_file())

    def close(self) -> None:
        pass  # nothing held open


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
