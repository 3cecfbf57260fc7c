"""The S3 side of :class:`recorder.s3_storage.S3Storage`: one aiobotocore client on a private
event loop (a daemon thread of its own), and the few object operations the storage needs.

Every S3 failure comes out as an ``OSError`` (what storage callers already handle): a missing
object as ``FileNotFoundError``, a conditional write refused because the object exists
(``If-None-Match: *``) as ``FileExistsError``, anything else (the endpoint unreachable, a
timeout, access denied, no such bucket) as a plain ``OSError`` naming the operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

T = TypeVar("T")
MIN_PART_SIZE: Final = 5 << 20  # S3: every part of a multipart upload but the last
READ_CHUNK: Final = 1 << 20
MODIFIED_AT: Final = "modified-at"  # user metadata: the last write into the object's bytes
_FAILURES: Final = (ClientError, BotoCoreError, aiohttp.ClientError, asyncio.TimeoutError)
_MISSING: Final = frozenset({"NoSuchKey", "NotFound", "404"})
_EXISTS: Final = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict"})
_UNSUPPORTED: Final = frozenset({"NotImplemented", "501"})


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def os_error(exc: BaseException, what: str) -> OSError:
    """``exc`` (botocore, aiohttp, a timeout) as the ``OSError`` storage callers expect."""
    code = _code(exc)
    if code in _MISSING:
        return FileNotFoundError(what)
    if code in _EXISTS:
        return FileExistsError(what)
    return OSError(f"{what}: {exc}")


class LoopThread:
    """An asyncio event loop running in a daemon thread; blocking callers submit to it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop and wait for it (``TimeoutError`` after ``timeout``)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking S3 call from the S3 loop itself")
        try:
            future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        except RuntimeError as exc:  # the loop is closed
            coro.close()
            raise OSError(f"S3 storage is closed: {exc}") from None
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise TimeoutError(f"S3 did not answer within {timeout} s") from None

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()


@dataclass(frozen=True)
class Head:
    size: int
    modified_at: float  # the user metadata if set, else the object's LastModified


@dataclass(frozen=True)
class Listed:
    key: str
    size: int
    last_modified: float


class Bucket:
    """Object operations on one bucket; coroutines for the :class:`LoopThread`'s loop."""

    def __init__(self, name: str, client: Any, part_size: int) -> None:
        self.name = name
        self.client = client
        self.part_size = max(part_size, MIN_PART_SIZE)
        self.conditional = True  # the store honours If-None-Match (else: a check first)

    @classmethod
    async def connect(
        cls,
        stack: contextlib.AsyncExitStack,
        name: str,
        *,
        endpoint_url: str | None,
        region: str,
        credentials: Mapping[str, str],
        part_size: int,
    ) -> Bucket:
        style = {"addressing_style": "path"} if endpoint_url else {}
        config = AioConfig(
            s3=style,  # an S3-compatible server on a plain host name: path-style addressing
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=32,
            # S3-compatible servers do not all know the newer default checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = await stack.enter_async_context(
            get_session().create_client(
                "s3", region_name=region, endpoint_url=endpoint_url, config=config, **credentials
            )
        )
        return cls(name, client, part_size)

    async def head(self, key: str) -> Head | None:
        try:
            found = await self.client.head_object(Bucket=self.name, Key=key)
        except _FAILURES as exc:
            error = os_error(exc, f"HEAD {key}")
            if isinstance(error, FileNotFoundError):
                return None
            raise error from exc
        stamp = found.get("Metadata", {}).get(MODIFIED_AT)
        try:
            modified = float(stamp)
        except (TypeError, ValueError):
            modified = found["LastModified"].timestamp()
        return Head(int(found["ContentLength"]), modified)

    async def get(self, key: str, start: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``start`` (``b""`` past the end); ``FileNotFoundError``."""
        if length <= 0:
            return b""
        wanted = f"bytes={start}-{start + length - 1}"
        try:
            found = await self.client.get_object(Bucket=self.name, Key=key, Range=wanted)
            async with found["Body"] as body:
                data: bytes = await body.read()
        except _FAILURES as exc:
            if _code(exc) == "InvalidRange":
                return b""
            raise os_error(exc, f"GET {key} {wanted}") from exc
        return data[:length]  # a server that ignores Range sends everything from 0

    async def chunks(self, key: str) -> AsyncGenerator[bytes, None]:
        """The whole object, streamed."""
        try:
            found = await self.client.get_object(Bucket=self.name, Key=key)
            async with found["Body"] as body:
                while chunk := await body.read(READ_CHUNK):
                    yield chunk
        except _FAILURES as exc:
            raise os_error(exc, f"GET {key}") from exc

    async def put(
        self, key: str, data: bytes, *, exclusive: bool, modified_at: float | None = None
    ) -> None:
        """``exclusive``: only if there is no such object (``FileExistsError``)."""
        extra: dict[str, Any] = {}
        if modified_at is not None:
            extra["Metadata"] = {MODIFIED_AT: repr(modified_at)}
        if exclusive:
            await self.conditionally(
                key, lambda condition: self.client.put_object(
                    Bucket=self.name, Key=key, Body=data, **extra, **condition
                )
            )  # fmt: skip
            return
        try:
            await self.client.put_object(Bucket=self.name, Key=key, Body=data, **extra)
        except _FAILURES as exc:
            raise os_error(exc, f"PUT {key}") from exc

    async def conditionally(
        self, key: str, write: Callable[[dict[str, str]], Awaitable[object]]
    ) -> None:
        """``write(condition)`` only if ``key`` does not exist: with ``If-None-Match: *``, or,
        on a store that does not implement it, after checking (a race then goes unnoticed)."""
        if self.conditional:
            try:
                await write({"IfNoneMatch": "*"})
                return
            except _FAILURES as exc:
                if _code(exc) not in _UNSUPPORTED:
                    raise os_error(exc, f"writing {key}") from exc
            self.conditional = False
            log.warning("S3 %s: no conditional writes (If-None-Match): checking first", self.name)
        if await self.head(key) is not None:
            raise FileExistsError(key)
        try:
            await write({})
        except _FAILURES as exc:
            raise os_error(exc, f"writing {key}") from exc

    async def listing(self, prefix: str, *, delimiter: str = "") -> tuple[list[Listed], list[str]]:
        """Every object under ``prefix`` (and, with a delimiter, the common prefixes)."""
        objects: list[Listed] = []
        prefixes: list[str] = []
        args: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        try:
            async for page in self.client.get_paginator("list_objects_v2").paginate(**args):
                for item in page.get("Contents", ()):
                    stamp = item["LastModified"].timestamp()
                    objects.append(Listed(item["Key"], int(item["Size"]), stamp))
                prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", ())]
        except _FAILURES as exc:
            raise os_error(exc, f"LIST {prefix}") from exc
        return objects, prefixes

    async def any_under(self, prefix: str) -> bool:
        try:
            page = await self.client.list_objects_v2(Bucket=self.name, Prefix=prefix, MaxKeys=1)
        except _FAILURES as exc:
            raise os_error(exc, f"LIST {prefix}") from exc
        return bool(page.get("Contents"))

    async def delete(self, keys: list[str]) -> None:
        for at in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[at : at + 1000]]
            try:
                answer = await self.client.delete_objects(
                    Bucket=self.name, Delete={"Objects": batch, "Quiet": True}
                )
            except _FAILURES as exc:
                raise os_error(exc, f"DELETE {len(batch)} objects") from exc
            if answer.get("Errors"):
                raise OSError(f"DELETE: {answer['Errors'][:3]}")

    async def create(
        self, key: str, chunks: AsyncIterator[bytes], modified_at: float
    ) -> tuple[str, int]:
        """A new object made of ``chunks``, never replacing one (``FileExistsError``): one PUT
        if it fits one part, else a multipart upload. Returns its SHA-256 and size."""
        digest, size = hashlib.sha256(), 0
        buffer = bytearray()
        upload: _Multipart | None = None
        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer += chunk
                while len(buffer) > self.part_size:  # what is left may be the last part
                    upload = upload or await _Multipart.start(self, key, modified_at)
                    await upload.part(bytes(buffer[: self.part_size]))
                    del buffer[: self.part_size]
            if upload is None:
                await self.put(key, bytes(buffer), exclusive=True, modified_at=modified_at)
            else:
                await upload.part(bytes(buffer))
                await upload.complete()
        except BaseException:
            if upload is not None:
                await asyncio.shield(upload.abort())
            raise
        return digest.hexdigest(), size


class _Multipart:
    def __init__(self, bucket: Bucket, key: str, upload_id: str) -> None:
        self.bucket = bucket
        self.key = key
        self.upload_id = upload_id
        self.parts: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, bucket: Bucket, key: str, modified_at: float) -> _Multipart:
        try:
            created = await bucket.client.create_multipart_upload(
                Bucket=bucket.name, Key=key, Metadata={MODIFIED_AT: repr(modified_at)}
            )
        except _FAILURES as exc:
            raise os_error(exc, f"multipart upload of {key}") from exc
        return cls(bucket, key, created["UploadId"])

    async def part(self, data: bytes) -> None:
        number = len(self.parts) + 1
        try:
            done = await self.bucket.client.upload_part(
                Bucket=self.bucket.name,
                Key=self.key,
                UploadId=self.upload_id,
                PartNumber=number,
                Body=data,
            )
        except _FAILURES as exc:
            raise os_error(exc, f"part {number} of {self.key}") from exc
        self.parts.append({"PartNumber": number, "ETag": done["ETag"]})

    async def complete(self) -> None:
        await self.bucket.conditionally(
            self.key, lambda condition: self.bucket.client.complete_multipart_upload(
                Bucket=self.bucket.name,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
                **condition,
            )
        )  # fmt: skip

    async def abort(self) -> None:
        try:
            await self.bucket.client.abort_multipart_upload(
                Bucket=self.bucket.name, Key=self.key, UploadId=self.upload_id
            )
        except _FAILURES as exc:  # left for the bucket's lifecycle rule
            log.warning("S3: multipart upload of %s not aborted: %s", self.key, exc)
