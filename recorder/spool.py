"""A write-behind file: the muxer writes on the event loop, a thread of its own touches the disk.

The recorder muxes on the worker's event loop (see :mod:`recorder.tap` for why). Its writes
(a Matroska cluster about once a second, plus the header) go into a :class:`Spool`, which
queues them for one thread that writes them, in order, to the real file: a local file, or an
object-storage upload. A slow or stalled disk therefore delays only that thread. The spool
says how long its oldest write has waited (:attr:`Spool.backlog_s`), so the recorder can drop
media instead of holding more than it should in memory.

Seeking waits for every queued write first. The muxer seeks only when it finishes the file
(the duration and the cue index), from the thread that closes the recording.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = logging.getLogger(__name__)


class Spool(io.RawIOBase):
    """Writes to ``file`` from a thread, in order; see the module docstring.

    One thread writes (the muxer's); ``close``, ``seek`` and ``flush`` wait for the disk.
    A failed write fails every later call with the same :class:`OSError`."""

    def __init__(
        self,
        file: BinaryIO,
        *,
        name: str = "recorder-spool",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._file = file
        self._clock = clock
        self._position = file.tell()
        # Each write not yet on disk, and when it was queued; the head is being written.
        self._waiting: deque[tuple[bytes, float]] = deque()
        self._changed = threading.Condition()  # a write queued or done, or the spool closing
        self._stopping = False
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the muxer's side

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def write(self, data: ReadableBuffer) -> int:
        self._raise_error()
        chunk = bytes(data)
        with self._changed:
            self._waiting.append((chunk, self._clock()))
            self._changed.notify_all()
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if (whence, offset) in ((io.SEEK_CUR, 0), (io.SEEK_SET, self._position)):
            return self._position  # where it is already: no need to wait for the disk
        self._drain()
        self._position = self._file.seek(offset, whence)
        return self._position

    def flush(self) -> None:
        if self._thread.is_alive():
            self._drain()

    @property
    def error(self) -> OSError | None:
        """The write that failed, if one did (nothing after it was written)."""
        return self._error

    @property
    def pending(self) -> int:
        """Writes not yet on disk."""
        with self._changed:
            return len(self._waiting)

    @property
    def backlog_s(self) -> float:
        """How long the oldest write not yet on disk has waited (0 if none waits)."""
        with self._changed:
            oldest = self._waiting[0][1] if self._waiting else None
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    def close(self) -> None:
        """Write what is queued, stop the thread, close ``file``; raises a write's error."""
        if self.closed:
            return
        try:
            self._drain()
        finally:
            with self._changed:
                self._stopping = True
                self._changed.notify_all()
            self._thread.join()
            try:
                self._file.close()
            finally:
                super().close()

    # ------------------------------------------------------------------ the disk's side

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._waiting or self._stopping)
                if not self._waiting:
                    return  # stopping, and everything is written
                chunk = self._waiting[0][0]
            try:
                if self._error is None:
                    self._write_all(chunk)
            except OSError as exc:
                self._error = exc
                log.error("recording file %s: write failed: %s", self._name(), exc)
            except Exception as exc:  # a file object that fails in some other way
                self._error = OSError(f"write failed: {exc!r}")
                log.exception("recording file %s: write failed", self._name())
            with self._changed:
                self._waiting.popleft()
                self._changed.notify_all()

    def _write_all(self, chunk: bytes) -> None:
        """``file.write`` until all of ``chunk`` is written (a raw file may take part of it)."""
        view = memoryview(chunk)
        while view:
            written = self._file.write(view)
            if not written:  # None (non-blocking, full) or 0: it would never take the rest
                raise OSError(f"the file took none of the last {len(view)} bytes")
            view = view[written:]

    def _drain(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: not self._waiting)
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _name(self) -> str:
        return str(getattr(self._file, "name", "?"))
