"""Where recording files live: a small blocking interface, a local directory by default.

Every method is blocking (file or network I/O): call it from a thread (``asyncio.to_thread``)
in async code. Files are addressed by call id only, never by a client-supplied path. An object
store can implement :class:`Storage` (``open_write`` then spools locally and uploads on close).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import BinaryIO, Final, Protocol

CALL_ID: Final = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
SUFFIX: Final = ".webm"


class Storage(Protocol):
    def location(self, call_id: str) -> str:
        """Where the call's media is (a path or URL), for logs and manifests."""
        ...

    def open_write(self, call_id: str) -> BinaryIO:
        """A new, writable, seekable, unbuffered file; ``FileExistsError`` if one exists."""
        ...

    def exists(self, call_id: str) -> bool: ...

    def size(self, call_id: str) -> int:
        """Bytes written so far; ``FileNotFoundError`` if there is no file."""
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


def check_call_id(call_id: str) -> str:
    if not CALL_ID.match(call_id) or call_id in (".", ".."):
        raise ValueError(f"not a call id: {call_id!r}")
    return call_id


class LocalStorage:
    """``ROOT/<call_id>.webm``, files created ``0640`` and never overwritten."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, call_id: str) -> Path:
        return self.root / (check_call_id(call_id) + SUFFIX)

    def location(self, call_id: str) -> str:
        return str(self.path(call_id))

    def open_write(self, call_id: str) -> BinaryIO:
        path = self.path(call_id)
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        return open(fd, "wb", buffering=0)  # FileIO: every write goes straight to the OS

    def exists(self, call_id: str) -> bool:
        return self.path(call_id).is_file()

    def size(self, call_id: str) -> int:
        return self.path(call_id).stat().st_size

    def modified_at(self, call_id: str) -> float:
        return self.path(call_id).stat().st_mtime

    def read_range(self, call_id: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError("start and length must not be negative")
        with self.path(call_id).open("rb") as fh:
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
