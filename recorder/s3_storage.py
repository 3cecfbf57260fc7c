"""Recordings in S3-compatible object storage: :class:`S3Storage`, a :class:`Storage`.

``VISITATION_RECORDINGS_URL=s3://bucket/prefix`` (:func:`recorder.storage.open_storage`); the
endpoint, region and credentials come from the usual variables (``AWS_ENDPOINT_URL``,
``AWS_REGION`` / ``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``; without keys, botocore's usual chain: profile, instance role).

Keys under the prefix:

- ``<call_id>.webm``: a sealed recording (or a file made by :meth:`S3Storage.open_write`, e.g.
  a party view), created only if absent (``If-None-Match: *`` and a check first) and never
  overwritten; its user metadata ``modified-at`` is the time of its last write;
- ``<call_id>.webm.parts/``: a recording in progress, uploaded by its writer as it is written
  (:mod:`recorder.s3_upload`): the ``open`` marker (created exclusively: one writer per call),
  part objects, and the ``closed`` marker once the writer closed the file.

Sealing composes ``<call_id>.webm`` from the parts uploaded so far (the latest part wins each
byte range), hashing as it streams (one PUT, or a multipart upload of ``part_size`` parts),
then deletes the parts. A writer still running after that (fenced, or slow) only adds parts
under the prefix, which no reader of the sealed object looks at; the sweep discards them
(:meth:`S3Storage.recordings_in_progress` lists them). Reads of a recording in progress are
composed from its parts the same way, so another host sees it about ``interval_s`` behind.

The store must honour conditional writes (``If-None-Match: *`` on PUT and on completing a
multipart upload: AWS S3, MinIO, moto do): that is what keeps two nodes sealing the same call at
once from both writing it. Each upload of a part spools nothing in memory beyond one part; the
recording itself is spooled on local disk (``spool_dir``, default the system's temp dir).

Every method blocks: each runs a coroutine on the storage's own event loop (a daemon thread,
one aiobotocore client) and waits for it. :meth:`S3Storage.close` ends both.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import urllib.parse
from collections import deque
from collections.abc import AsyncGenerator, Coroutine, Iterable, Mapping
from typing import IO, Any, BinaryIO, Final, TypeVar, cast

from recorder.s3_client import READ_CHUNK, Bucket, LoopThread
from recorder.s3_upload import (
    CLOSED,
    OPENED,
    PARTS,
    NewObjectFile,
    Part,
    Piece,
    SpoolFile,
    clip,
    layout,
    parse_part,
)
from recorder.storage import CALL_ID, SUFFIX, Sealed, check_call_id

log = logging.getLogger(__name__)

T = TypeVar("T")
FETCH_AHEAD: Final = 8  # parts fetched at once while sealing
FETCH_BYTES: Final = 16 << 20  # at most this much of them in memory
_CREDENTIALS: Final = (
    ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
    ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ("aws_session_token", "AWS_SESSION_TOKEN"),
)


class S3Storage:
    """Call recordings in ``bucket`` under ``prefix``; see the module docstring."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        credentials: Mapping[str, str] | None = None,
        timeout_s: float = 60.0,
        seal_timeout_s: float = 3600.0,
        interval_s: float = 2.0,
        close_timeout_s: float = 60.0,
        part_size: int = 8 << 20,
        spool_dir: str | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3 recordings need a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.timeout_s = timeout_s
        self.seal_timeout_s = seal_timeout_s
        self.interval_s = interval_s
        self.close_timeout_s = close_timeout_s
        self.spool_dir = spool_dir
        self._closed = False
        self._loop = LoopThread(f"s3-{bucket}")
        self._stack = contextlib.AsyncExitStack()
        try:
            connect = Bucket.connect(
                self._stack,
                bucket,
                endpoint_url=endpoint_url,
                region=region,
                credentials=dict(credentials or {}),
                part_size=part_size,
            )
            self._bucket = self._loop.run(connect, timeout_s)
        except BaseException:
            self._loop.stop()
            raise

    @classmethod
    def from_url(cls, url: str, env: Mapping[str, str] | None = None, **options: Any) -> S3Storage:
        """``s3://bucket/prefix``, configured from ``env`` (default: the process's)."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
        env = os.environ if env is None else env
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        credentials = {arg: env[var] for arg, var in _CREDENTIALS if env.get(var)}
        return cls(
            parts.netloc,
            parts.path,
            endpoint_url=endpoint,
            region=region,
            credentials=credentials,
            **options,
        )

    def close(self) -> None:
        """Close the S3 client and stop the storage's loop (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.run(self._stack.aclose(), self.timeout_s)
        except Exception as exc:
            log.warning("S3 client not closed cleanly: %s", exc)
        finally:
            self._loop.stop()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self._loop.run(coro, self.timeout_s if timeout is None else timeout)

    # ------------------------------------------------------------------ keys

    def key(self, call_id: str) -> str:
        return self.prefix + check_call_id(call_id) + SUFFIX

    def location(self, call_id: str) -> str:
        return f"s3://{self.bucket}/{self.key(call_id)}"

    async def _parts(self, call_id: str) -> tuple[list[Part], dict[str, float]]:
        """The recording's part objects and its markers (name: last modified)."""
        prefix = self.key(call_id) + PARTS
        objects, _ = await self._bucket.listing(prefix)
        parts: list[Part] = []
        markers: dict[str, float] = {}
        for item in objects:
            name = item.key[len(prefix) :]
            part = parse_part(item.key, name, item.size)
            if part is not None:
                parts.append(part)
            elif "/" not in name:
                markers[name] = item.last_modified
        return parts, markers

    # ------------------------------------------------------------------ writing

    def open_write(self, call_id: str) -> BinaryIO:
        key = self.key(call_id)
        if self._run(self._bucket.head(key)) is not None:
            raise FileExistsError(self.location(call_id))

        def upload(file: IO[bytes], written_at: float) -> None:
            self._run(self._create_from(key, file, written_at), self.seal_timeout_s)

        return cast(BinaryIO, NewObjectFile(upload, self.spool_dir))

    async def _create_from(self, key: str, file: IO[bytes], written_at: float) -> None:
        async with contextlib.aclosing(_chunks_of(file)) as chunks:
            await self._bucket.create(key, chunks, written_at)

    def open_recording(self, call_id: str) -> BinaryIO:
        key = self.key(call_id)
        if self._run(self._bucket.head(key)) is not None:
            raise FileExistsError(f"call {call_id} already has a sealed recording")
        prefix = key + PARTS
        try:
            self._run(self._bucket.put(prefix + OPENED, b"", exclusive=True))
        except FileExistsError:
            raise FileExistsError(f"call {call_id} already has a recording in progress") from None

        def put(name: str, data: bytes) -> None:
            self._run(self._bucket.put(prefix + name, data, exclusive=False))

        spool = SpoolFile(
            f"call {call_id}",
            put,
            interval_s=self.interval_s,
            close_timeout_s=self.close_timeout_s,
            spool_dir=self.spool_dir,
        )
        return cast(BinaryIO, spool)

    def seal(self, call_id: str, *, writer_closed: bool) -> Sealed | None:
        return self._run(self._seal(call_id, writer_closed), self.seal_timeout_s)

    async def _seal(self, call_id: str, writer_closed: bool) -> Sealed | None:
        key = self.key(call_id)
        head = await self._bucket.head(key)
        if head is None:
            parts, markers = await self._parts(call_id)
            if not parts and not markers:
                return None
            if writer_closed and CLOSED not in markers:
                log.warning("call %s: sealed without the writer's closed marker", call_id)
            pieces = self._layout(call_id, parts)
            written = [p.written_at for p in parts] or list(markers.values())
            modified_at = max(written)
            try:
                async with contextlib.aclosing(self._read(pieces)) as chunks:
                    digest, size = await self._bucket.create(key, chunks, modified_at)
            except (FileExistsError, FileNotFoundError):  # sealed by someone else meanwhile
                head = await self._bucket.head(key)
                if head is None:
                    raise
            else:
                await self._delete_under(key + PARTS)
                return Sealed(digest, size, modified_at)
        await self._delete_under(key + PARTS)  # what a writer still running left
        digest, size = await self._hash(key)
        return Sealed(digest, size, head.modified_at)

    def _layout(self, call_id: str, parts: list[Part]) -> list[Piece]:
        pieces = layout(parts)
        extent = max((p.offset + p.size for p in parts), default=0)
        end = pieces[-1].end if pieces else 0
        if end < extent:
            log.warning("call %s: a part is missing at byte %d: the file ends there", call_id, end)
        return pieces

    async def _read(self, pieces: list[Piece]) -> AsyncGenerator[bytes, None]:
        """The pieces' bytes in order, a few fetched ahead."""
        ahead: deque[tuple[int, asyncio.Future[bytes]]] = deque()
        queued, at = 0, 0
        try:
            while at < len(pieces) or ahead:
                while at < len(pieces) and len(ahead) < FETCH_AHEAD:
                    piece = pieces[at]
                    if ahead and queued + piece.length > FETCH_BYTES:
                        break
                    ahead.append((piece.length, asyncio.ensure_future(self._piece(piece))))
                    queued += piece.length
                    at += 1
                length, fetch = ahead.popleft()
                queued -= length
                yield await fetch
        finally:
            for _, fetch in ahead:
                fetch.cancel()

    async def _piece(self, piece: Piece) -> bytes:
        data = await self._bucket.get(piece.key, piece.key_start, piece.length)
        if len(data) != piece.length:
            raise FileNotFoundError(f"{piece.key}: {len(data)} bytes, {piece.length} expected")
        return data

    async def _hash(self, key: str) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        async with contextlib.aclosing(self._bucket.chunks(key)) as chunks:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    async def _delete_under(self, prefix: str) -> bool:
        objects, _ = await self._bucket.listing(prefix)
        await self._bucket.delete([item.key for item in objects])
        return bool(objects)

    def discard_recording(self, call_id: str) -> bool:
        return self._run(self._delete_under(self.key(call_id) + PARTS))

    def delete(self, call_id: str) -> bool:
        return self._run(self._delete(self.key(call_id)))

    async def _delete(self, key: str) -> bool:
        if await self._bucket.head(key) is None:
            return False
        await self._bucket.delete([key])
        return True

    # ------------------------------------------------------------------ reading

    def _names(self, keys: Iterable[str], suffix: str) -> list[str]:
        names = [k[len(self.prefix) : -len(suffix)] for k in keys if k.endswith(suffix)]
        return sorted(n for n in names if CALL_ID.match(n))

    def recordings_in_progress(self) -> list[str]:
        _, prefixes = self._run(self._bucket.listing(self.prefix, delimiter="/"))
        return self._names(prefixes, SUFFIX + PARTS)

    def list(self) -> list[str]:
        objects, _ = self._run(self._bucket.listing(self.prefix, delimiter="/"))
        return self._names((item.key for item in objects), SUFFIX)

    def exists(self, call_id: str) -> bool:
        return self._run(self._exists(call_id))

    async def _exists(self, call_id: str) -> bool:
        key = self.key(call_id)
        return await self._bucket.head(key) is not None or await self._bucket.any_under(key + PARTS)

    def size(self, call_id: str) -> int:
        return self._run(self._stat(call_id))[0]

    def modified_at(self, call_id: str) -> float:
        return self._run(self._stat(call_id))[1]

    async def _stat(self, call_id: str) -> tuple[int, float]:
        head = await self._bucket.head(self.key(call_id))
        if head is not None:
            return head.size, head.modified_at
        parts, markers = await self._parts(call_id)
        if not parts and not markers:
            raise FileNotFoundError(self.location(call_id))
        pieces = layout(parts)
        written = [p.written_at for p in parts] or list(markers.values())
        return (pieces[-1].end if pieces else 0), max(written)

    def read_range(self, call_id: str, start: int, length: int) -> bytes:
        if start < 0 or length < 0:
            raise ValueError("start and length must not be negative")
        return self._run(self._read_range(call_id, start, length))

    async def _read_range(self, call_id: str, start: int, length: int) -> bytes:
        key = self.key(call_id)
        for _ in range(2):  # a recording sealed while it is read: read the sealed object
            if length == 0:
                if not await self._exists(call_id):
                    raise FileNotFoundError(self.location(call_id))
                return b""
            with contextlib.suppress(FileNotFoundError):
                return await self._bucket.get(key, start, length)
            parts, markers = await self._parts(call_id)
            if not parts and not markers:
                raise FileNotFoundError(self.location(call_id))
            wanted = clip(layout(parts), start, start + length)
            try:
                return b"".join(await asyncio.gather(*(self._piece(p) for p in wanted)))
            except FileNotFoundError:
                continue
        raise FileNotFoundError(self.location(call_id))


async def _chunks_of(file: IO[bytes]) -> AsyncGenerator[bytes, None]:
    while chunk := await asyncio.to_thread(file.read, READ_CHUNK):
        yield chunk
