"""A real S3-protocol server for tests: moto's standalone server in a subprocess.

    with S3Server() as s3:                      # or: async with S3Server() as s3
        storage = S3Storage.from_url(s3.recordings_url, env=s3.env)
        subprocess.run([...], env={**os.environ, **s3.env})

    S3Server(host="10.200.0.5", port=9000, command_prefix=["ip", "netns", "exec", "s3"])

``start()`` runs ``[*command_prefix, sys.executable, "-m", "moto.server", "-H", host, "-p",
port]`` (a free port unless given; another one if it was taken meanwhile), waits with a
deadline (never a fixed sleep) until the server says it listens and answers, and creates
``bucket``. The check runs through ``command_prefix`` too (``[*command_prefix, python, -c,
...]``), so a server in another network namespace works. ``stop()`` (also on any failure to
start, at exit, and when the context ends) kills the server's whole process group. Its output
goes to ``log_path`` (``log_tail()``), removed at stop.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

REGION: Final = "us-east-1"
CREDENTIALS: Final = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}

# Run where the server runs (through the command prefix): wait until it answers, make the bucket.
_READY: Final = """
import sys, time, botocore.session
from botocore.config import Config
endpoint, bucket, deadline = sys.argv[1], sys.argv[2], time.monotonic() + float(sys.argv[3])
s3 = botocore.session.get_session().create_client(
    "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
    aws_secret_access_key="testing",
    config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}))
while True:
    try:
        s3.list_buckets()
        break
    except Exception as exc:
        if time.monotonic() > deadline:
            sys.exit(f"S3 server at {endpoint} not answering: {exc}")
        time.sleep(0.1)
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class S3Server:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        bucket: str = "recordings",
        prefix: str = "recordings",
        command_prefix: Sequence[str] = (),
        python: str = sys.executable,
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self._auto_port = port is None
        self.bucket = bucket
        self.prefix = prefix
        self.command_prefix = list(command_prefix)
        self.python = python
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])

    @property
    def url(self) -> str:
        """The endpoint (``AWS_ENDPOINT_URL``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def recordings_url(self) -> str:
        """``s3://bucket/prefix`` (``VISITATION_RECORDINGS_URL``)."""
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to use the server: ``AWS_*`` and ``VISITATION_RECORDINGS_URL``."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            **CREDENTIALS,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "VISITATION_RECORDINGS_URL": self.recordings_url,
        }

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def start(self) -> S3Server:
        if self.process is not None:
            return self
        for attempt in range(3):  # a free port taken meanwhile: another one
            argv = [*self.command_prefix, self.python, "-m", "moto.server"]
            argv += ["-H", self.host, "-p", str(self.port)]
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
                )
            atexit.register(self.stop)
            try:
                self._wait_ready()
                return self
            except RuntimeError:
                exited = self.process.poll() is not None
                self._kill()
                if not (exited and self._auto_port and attempt < 2):
                    self._remove_log()
                    raise
                self.port = free_port()
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        # Our server bound its port (not another one answering there): it says so, then serves.
        while "Running on" not in self.log_tail(100):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"S3 server {self.url} exited or hung ({self.process.returncode}):\n"
                    + self.log_tail()
                )
            time.sleep(0.05)  # polling its log, with a deadline
        argv = [*self.command_prefix, self.python, "-c", _READY, self.url, self.bucket]
        argv.append(str(self.startup_timeout_s))
        env = {**os.environ, **CREDENTIALS}
        with subprocess.Popen(argv, env=env, stderr=subprocess.PIPE) as check:
            deadline = time.monotonic() + self.startup_timeout_s + 10
            while check.poll() is None:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    check.kill()
                    check.wait()
                    raise RuntimeError(
                        f"S3 server {self.url} exited or hung ({self.process.returncode}):\n"
                        + self.log_tail()
                    )
                time.sleep(0.05)  # polling two processes, each with its own deadline
            assert check.stderr is not None
            if check.returncode != 0:
                why = check.stderr.read().decode(errors="replace")
                raise RuntimeError(f"S3 server {self.url} not ready: {why}\n{self.log_tail()}")

    def stop(self) -> None:
        self._kill()
        self._remove_log()

    def _remove_log(self) -> None:
        self.log_path.unlink(missing_ok=True)

    def _kill(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            try:
                process.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> S3Server:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)
