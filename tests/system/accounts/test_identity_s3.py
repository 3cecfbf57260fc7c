"""Identity images go to S3 when recordings do (a real S3-protocol server, moto's)."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from core.domain import SeedFile
from core.tokens import Tokens
from loadtest.s3_server import S3Server
from recorder.s3_storage import S3Storage
from tests.conftest import NodeFactory
from tests.system.accounts.identity_images import has_metadata, images, upload
from tests.system.recorder.conftest import s3_server

__all__ = ["s3_server"]  # the session's S3 server fixture


async def test_images_are_stored_in_s3_when_recordings_are(
    start_node: NodeFactory,
    seeded: SeedFile,
    tokens: Tokens,
    s3_server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    location = f"s3://{s3_server.bucket}/test-{uuid.uuid4().hex[:12]}"
    node = await start_node(recordings_url=location)
    status, _ = await upload(node.url, tokens.issue("family", "FUNVERIFIED"), images())
    assert status == 202
    assert not (node.node.settings.data_dir / "identity").exists()
    bucket = S3Storage.from_url(location + "/identity", env=s3_server.env)
    try:
        names = bucket.list()
        assert len(names) == 3 and all(n.startswith("FUNVERIFIED.") for n in names)
        for name in names:
            assert not has_metadata(bucket.read_range(name, 0, bucket.size(name)))
    finally:
        bucket.close()
    headers = {"Authorization": f"Bearer {tokens.issue('admin', 'A1')}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{node.url}/api/v1/admin/identity/FUNVERIFIED/selfie", headers=headers) as r,
    ):
        assert r.status == 200 and r.content_type == "image/jpeg"
        assert not has_metadata(await r.read())
