"""Identity upload and review on a real node, real Redis, real image bytes made with Pillow."""

from __future__ import annotations

import asyncio
import io
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from redis.asyncio import Redis

from accounts.identity_audit import IdentityAudit
from accounts.images import MAX_IMAGE_BYTES, ImageRejected, clean_image
from accounts.redis_keys import IDENTITY, IDENTITY_PENDING
from core.directory import Directory
from core.domain import Staff
from core.tokens import Tokens
from tests.conftest import Node
from tests.system.accounts.identity_images import (
    gif,
    has_metadata,
    images,
    photo_with_gps,
    png,
    upload,
)

FAMILY = "FUNVERIFIED"  # standard seed: approved contact of R1 (SQ), not verified


@pytest.fixture
async def scoped_admins(node: Node) -> None:
    """ASQ: admin of SQ only (A2 is the admin of CLOSED only, A1 of every facility)."""
    await node.node.directory.save_staff(Staff(id="ASQ", role="admin", facility_ids=["SQ"]))


def auth(tokens: Tokens, role: str, subject: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(role, subject)}"}


async def call(
    node: Node, tokens: Tokens, method: str, path: str, who: tuple[str, str], **kw: Any
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.url + path, headers=auth(tokens, *who), **kw) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.read()


def stored(node: Node) -> list[Path]:
    root = node.node.settings.data_dir / "identity"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# -- the images themselves ------------------------------------------------------------------


def test_a_jpeg_loses_its_exif_and_gps_and_stands_upright() -> None:
    original = photo_with_gps(size=(64, 48))
    assert has_metadata(original)
    cleaned = clean_image(original)
    assert not has_metadata(cleaned)
    with Image.open(io.BytesIO(cleaned)) as image:
        assert image.format == "JPEG"
        assert image.size == (48, 64)  # the EXIF orientation (90°) applied to the pixels


def test_a_png_with_transparency_becomes_a_jpeg() -> None:
    with Image.open(io.BytesIO(clean_image(png(mode="RGBA")))) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (40, 30))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "empty"),
        (b"%PDF-1.4 not an image at all", "not a JPEG or PNG"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 200, "not"),  # a JPEG header and nothing after
        (gif(), "GIF"),
        (photo_with_gps()[:300], "not"),  # truncated
        (b"\xff" * (MAX_IMAGE_BYTES + 1), "over"),
    ],
    ids=["empty", "pdf", "header-only", "gif", "truncated", "too-big"],
)
def test_what_is_no_jpeg_or_png_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(ImageRejected, match=why):
        clean_image(data)


# -- upload -----------------------------------------------------------------------------------


async def test_an_upload_is_stored_private_and_clean(node: Node, tokens: Tokens) -> None:
    status, body = await upload(node.url, tokens.issue("family", FAMILY), images())
    assert (status, body) == (202, {"identity": "pending"})
    files = stored(node)
    assert [f.name.split("-", 1)[1] for f in files] == ["id_back.jpg", "id_front.jpg", "selfie.jpg"]
    for path in files:
        assert path.parent.name == FAMILY
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert not has_metadata(path.read_bytes())
    status, body = await call(node, tokens, "GET", "/api/v1/account/identity", ("family", FAMILY))
    assert status == 200 and body["identity"] == "pending"


async def test_a_second_upload_replaces_the_pending_one(node: Node, tokens: Tokens) -> None:
    token = tokens.issue("family", FAMILY)
    assert (await upload(node.url, token, images()))[0] == 202
    first = stored(node)
    assert (await upload(node.url, token, images()))[0] == 202
    second = stored(node)
    assert len(second) == 3 and not set(first) & set(second)


@pytest.mark.parametrize(
    "bad",
    [
        {"id_front": b"GIF89a not really"},
        {"id_back": gif()},
        {"selfie": b"<svg xmlns='http://www.w3.org/2000/svg'/>"},
        {"selfie": photo_with_gps()[:500]},
    ],
    ids=["text-named-jpg", "gif", "svg", "truncated"],
)
async def test_an_image_that_is_no_image_stores_nothing(
    node: Node, tokens: Tokens, redis: Redis, bad: dict[str, bytes]
) -> None:
    keys = sorted(await redis.keys("identity*"))
    status, body = await upload(node.url, tokens.issue("family", FAMILY), images(**bad))
    assert status == 422 and body["error"]["code"] == "invalid_image", body
    assert next(iter(bad)) in body["error"]["message"]
    assert stored(node) == [] and sorted(await redis.keys("identity*")) == keys


async def test_a_missing_image_or_another_form_is_refused(node: Node, tokens: Tokens) -> None:
    token = tokens.issue("family", FAMILY)
    files = images()
    del files["selfie"]
    status, body = await upload(node.url, token, files)
    assert status == 422 and "selfie" in body["error"]["message"]
    status, body = await upload(node.url, token, {**images(), "extra": png()})
    assert status == 400 and "extra" in body["error"]["message"]
    status, body = await call(
        node, tokens, "POST", "/api/v1/account/identity", ("family", FAMILY), json={"a": 1}
    )
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"
    assert stored(node) == []


async def test_a_50_mb_upload_is_refused_before_it_is_read(node: Node, tokens: Tokens) -> None:
    big = {**images(), "selfie": b"\xff\xd8" + b"\x00" * (50 * 1024 * 1024)}
    status, body = await upload(node.url, tokens.issue("family", FAMILY), big)
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    assert stored(node) == []


async def test_a_50_mb_upload_is_answered_before_it_is_sent(node: Node, tokens: Tokens) -> None:
    """The body announces 50 MB and sends 1 MB, then nothing: the 413 comes all the same, so the
    node answered on the announced size without waiting for (or reading) the rest."""
    stalled = asyncio.Event()

    async def body() -> Any:
        yield b"\x00" * (1024 * 1024)
        await stalled.wait()  # never set: the rest never comes

    headers = {
        **auth(tokens, "family", FAMILY),
        "Content-Type": "multipart/form-data; boundary=xBOUNDARYx",
        "Content-Length": str(50 * 1024 * 1024),
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{node.url}/api/v1/account/identity", data=body(), headers=headers) as resp,
    ):
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "payload_too_large"
    assert stored(node) == []


async def test_a_streamed_image_over_5_mib_is_cut_off(node: Node, tokens: Tokens) -> None:
    """No Content-Length (chunked): the part is read up to its limit, then refused."""

    async def chunks() -> Any:
        boundary = "xBOUNDARYx"
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="id_front"; '
            'filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        for _ in range(12):  # 12 MiB, never closed
            yield b"\x00" * (1024 * 1024)

    headers = {
        **auth(tokens, "family", FAMILY),
        "Content-Type": "multipart/form-data; boundary=xBOUNDARYx",
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{node.url}/api/v1/account/identity", data=chunks(), headers=headers) as resp,
    ):
        assert resp.status == 413
        assert "id_front" in (await resp.json())["error"]["message"]
    assert stored(node) == []


# -- review -----------------------------------------------------------------------------------


async def test_the_review_flow(
    node: Node, tokens: Tokens, redis: Redis, scoped_admins: None
) -> None:
    assert (await upload(node.url, tokens.issue("family", FAMILY), images()))[0] == 202
    pending = "/api/v1/admin/identity?status=pending"
    # The admin of SQ (where the family has a contact) sees it; the admin of CLOSED does not.
    status, body = await call(node, tokens, "GET", pending, ("admin", "ASQ"))
    assert status == 200
    [review] = body["reviews"]
    assert review["family_id"] == FAMILY and review["name"] == f"Family {FAMILY}"
    assert set(review) == {"family_id", "name", "email", "submitted_at"}
    assert (await call(node, tokens, "GET", pending, ("admin", "A2")))[1] == {"reviews": []}
    assert len((await call(node, tokens, "GET", pending, ("admin", "A1")))[1]["reviews"]) == 1

    # Out of scope: 404 for the image and the decision, nothing changed, nothing audited.
    image = f"/api/v1/admin/identity/{FAMILY}/id_front"
    status, body = await call(node, tokens, "GET", image, ("admin", "A2"))
    assert status == 404 and body["error"]["code"] == "not_found"
    decide = f"/api/v1/admin/identity/{FAMILY}"
    status, _ = await call(
        node, tokens, "PUT", decide, ("admin", "A2"), json={"status": "verified"}
    )
    assert status == 404
    audit = IdentityAudit(redis)
    assert await audit.for_family(FAMILY) == []

    # In scope: each view is a JPEG without metadata, and an audit entry.
    for kind in ("id_front", "id_back", "selfie"):
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{node.url}/api/v1/admin/identity/{FAMILY}/{kind}",
                headers={**auth(tokens, "admin", "ASQ"), "User-Agent": "review-desk"},
            ) as response,
        ):
            assert response.status == 200 and response.content_type == "image/jpeg"
            assert response.headers["Cache-Control"].startswith("no-store")
            assert not has_metadata(await response.read())
    status, body = await call(node, tokens, "GET", f"{image[:-8]}passport", ("admin", "ASQ"))
    assert status == 404
    entries = await audit.for_family(FAMILY)
    assert [(e["staff_id"], e["action"], e["detail"]["image"]) for e in entries] == [
        ("ASQ", "view", "id_front"),
        ("ASQ", "view", "id_back"),
        ("ASQ", "view", "selfie"),
    ]
    assert entries[0]["user_agent"] == "review-desk" and entries[0]["remote"] == "127.0.0.1"

    # Verified: the family record says so; the queue is empty; no new submission.
    status, body = await call(
        node, tokens, "PUT", decide, ("admin", "ASQ"), json={"status": "verified"}
    )
    assert status == 200 and body["identity"] == "verified" and body["verified"] is True
    family = await Directory(redis).family(FAMILY)
    assert family is not None and family.verified
    assert (await call(node, tokens, "GET", pending, ("admin", "A1")))[1] == {"reviews": []}
    status, body = await call(
        node, tokens, "PUT", decide, ("admin", "ASQ"), json={"status": "rejected"}
    )
    assert status == 409 and body["error"]["code"] == "invalid_state"
    status, body = await upload(node.url, tokens.issue("family", FAMILY), images())
    assert status == 409 and body["error"]["code"] == "already_verified"
    assert (await audit.for_family(FAMILY))[-1]["action"] == "review"
    assert (await audit.for_family(FAMILY))[-1]["detail"]["status"] == "verified"
    # The review and its history, for the admins who may see the family.
    status, body = await call(node, tokens, "GET", decide, ("admin", "ASQ"))
    assert status == 200 and body["identity"] == "verified" and body["reviewed_by"] == "ASQ"
    assert [e["action"] for e in body["audit"]] == ["view", "view", "view", "review"]
    assert (await call(node, tokens, "GET", decide, ("admin", "A2")))[0] == 404


async def test_a_rejected_family_may_submit_again(
    node: Node, tokens: Tokens, redis: Redis, scoped_admins: None
) -> None:
    token = tokens.issue("family", FAMILY)
    assert (await upload(node.url, token, images()))[0] == 202
    decide = f"/api/v1/admin/identity/{FAMILY}"
    body = {"status": "rejected", "reason": "the photo is blurred"}
    status, answer = await call(node, tokens, "PUT", decide, ("admin", "ASQ"), json=body)
    assert status == 200 and answer["identity"] == "rejected" and answer["verified"] is False
    family = await Directory(redis).family(FAMILY)
    assert family is not None and not family.verified
    status, answer = await call(node, tokens, "GET", "/api/v1/account/identity", ("family", FAMILY))
    assert answer["identity"] == "rejected" and answer["reason"] == "the photo is blurred"
    first = stored(node)
    assert (await upload(node.url, token, images()))[0] == 202
    assert len(stored(node)) == 3 and not set(first) & set(stored(node))
    status, answer = await call(node, tokens, "GET", "/api/v1/admin/identity", ("admin", "ASQ"))
    assert [r["family_id"] for r in answer["reviews"]] == [FAMILY]


async def test_bad_decisions_change_nothing(
    node: Node, tokens: Tokens, redis: Redis, scoped_admins: None
) -> None:
    decide = f"/api/v1/admin/identity/{FAMILY}"
    status, body = await call(
        node, tokens, "PUT", decide, ("admin", "ASQ"), json={"status": "verified"}
    )
    assert status == 409 and "submitted no identity" in body["error"]["message"]
    assert (await upload(node.url, tokens.issue("family", FAMILY), images()))[0] == 202
    before = await redis.get(IDENTITY(FAMILY))
    for bad in ({"status": "approved"}, {"status": "verified", "extra": 1}, {"reason": "x"}):
        status, body = await call(node, tokens, "PUT", decide, ("admin", "ASQ"), json=bad)
        assert status == 422, (bad, body)
    status, _ = await call(node, tokens, "PUT", "/api/v1/admin/identity/NOPE", ("admin", "A1"),
                           json={"status": "verified"})  # fmt: skip
    assert status == 404
    assert await redis.get(IDENTITY(FAMILY)) == before
    family = await Directory(redis).family(FAMILY)
    assert family is not None and not family.verified


async def test_the_pending_list_is_oldest_first(
    node: Node, tokens: Tokens, scoped_admins: None
) -> None:
    for family in ("FNOVIDEO", FAMILY, "FPOOR"):
        assert (await upload(node.url, tokens.issue("family", family), images()))[0] == 202
    status, body = await call(node, tokens, "GET", "/api/v1/admin/identity", ("admin", "ASQ"))
    assert [r["family_id"] for r in body["reviews"]] == ["FNOVIDEO", FAMILY, "FPOOR"]
    times = [r["submitted_at"] for r in body["reviews"]]
    assert times == sorted(times)
    status, body = await call(
        node, tokens, "GET", "/api/v1/admin/identity?status=verified", ("admin", "ASQ")
    )
    assert status == 422


async def test_a_closed_account_forgets_its_images(
    node: Node, tokens: Tokens, redis: Redis
) -> None:
    """What the account-close path calls (node.accounts_admin.forget_identity)."""
    assert (await upload(node.url, tokens.issue("family", FAMILY), images()))[0] == 202
    await node.node.accounts_admin.forget_identity(FAMILY)
    assert stored(node) == []
    assert await redis.get(IDENTITY(FAMILY)) is None
    assert await redis.zscore(IDENTITY_PENDING(), FAMILY) is None
    await node.node.accounts_admin.forget_identity(FAMILY)  # twice: nothing to do


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    """A small file of a huge picture (50 MP of one bit each): refused on its size alone."""
    out = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(out, format="PNG")
    assert len(out.getvalue()) < MAX_IMAGE_BYTES
    with pytest.raises(ImageRejected, match="pixels"):
        clean_image(out.getvalue())
