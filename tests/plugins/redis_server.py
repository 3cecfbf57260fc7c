"""Says once, in the test run's header, which server the tests' embedded Redis runs."""

from __future__ import annotations

import subprocess

import pytest

from core.embedded_redis import EmbeddedRedisError, find_redis_server, server_banner


def pytest_report_header(config: pytest.Config) -> str:
    try:
        binary = find_redis_server()
        return f"redis server: {server_banner(binary)} ({binary})"
    except (EmbeddedRedisError, subprocess.SubprocessError, OSError) as exc:
        return f"redis server: none found ({exc})"
