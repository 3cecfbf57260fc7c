"""Private files: everything under the data dir is the server user's alone (0700 / 0600).

The data dir holds the signing secret, the embedded Redis (its password, AOF, log) and the
recordings, whose names are call ids: no other local user may list or read any of it.
:func:`private_umask` makes new files private; :func:`make_private` fixes a tree made before
(directories 0700, files lose every group and other bit, so a sealed read-only file stays 0400).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700


def private_umask() -> int:
    """Make every file this process creates from now on private; the previous umask."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """``path`` (and missing parents) created, and ``path`` itself 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def make_private(root: Path) -> None:
    """Directories under ``root`` 0700, files without group/other bits; symlinks untouched."""
    if not root.exists():
        return
    _restrict(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            _restrict(Path(dirpath) / name)


def _restrict(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:  # removed meanwhile (a sealed part, a Redis temp file)
        return
    if stat.S_ISLNK(mode):
        return
    wanted = DIR_MODE if stat.S_ISDIR(mode) else stat.S_IMODE(mode) & 0o700
    if stat.S_IMODE(mode) != wanted:
        try:
            os.chmod(path, wanted)
        except FileNotFoundError:
            return


def create_once(path: Path, data: bytes) -> bytes:
    """``path``'s content, made from ``data`` (0600) if it does not exist yet.

    Racing processes (nodes starting together on one data dir) all get the same bytes, and a
    reader never sees a file half written: the content goes to a temporary file first, flushed,
    then is linked to ``path`` (atomic, and it fails if ``path`` exists: then that one wins)."""
    private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes()
        return data
    finally:
        os.unlink(tmp)
