"""Identity upload and review over HTTP (PROTOCOL v1.2 "Accounts and sign-in").

- ``POST /api/v1/account/identity`` (family): a multipart form with ``id_front``, ``id_back`` and
  ``selfie``, each a JPEG or PNG of at most 5 MiB, checked by content and stored re-encoded
  without metadata (:mod:`accounts.images`) → 202 ``{"identity": "pending"}``. The form is read
  as a stream with this route's own limits (the app's body limit is for JSON): a body announced
  over the limit is refused before a byte of it is read (413), one that grows past it is cut
  off there. Anything refused stores nothing. ``GET`` (an addition) tells the family its status;
- ``GET /api/v1/admin/identity?status=pending`` (admin): the submissions awaiting review of
  families with a contact or a contact request at one of the admin's facilities, oldest first;
- ``GET /api/v1/admin/identity/{family_id}/{id_front|id_back|selfie}`` (admin): the image, each
  view an entry of the identity audit log (:mod:`accounts.identity_audit`);
- ``PUT /api/v1/admin/identity/{family_id}`` (admin) ``{"status": "verified"|"rejected",
  "reason"?}``: verified makes the family ``verified`` (SPEC rule 1); a rejected family may
  submit again. ``GET`` (an addition): the review (status, when, by whom, why) with its audit
  entries, who viewed which image and who decided, oldest first.

A family out of the admin's scope answers 404 like one that does not exist.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, Literal

from aiohttp import BodyPartReader, web
from pydantic import BaseModel, ConfigDict, StringConstraints

from accounts.identity import AlreadyVerified, Decision, IdentityReviews, NotReviewable
from accounts.identity_audit import IdentityAudit, Viewer
from accounts.identity_files import IMAGE_KINDS, IdentityFiles
from accounts.images import CONTENT_TYPE, MAX_IMAGE_BYTES, ImageRejected, clean_image
from core.directory import Directory
from core.domain import Staff
from core.http_api import ApiError, guarded, known_admin, parse_body, parse_query
from core.tokens import Claims, Tokens

log = logging.getLogger(__name__)

MAX_FORM_BYTES: Final = len(IMAGE_KINDS) * MAX_IMAGE_BYTES + 64 * 1024  # three images and headers
READ_CHUNK: Final = 64 * 1024
EmailOf = Callable[[str], Awaitable[str | None]]


class ReviewQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["pending"] = "pending"


class ReviewDecision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Decision
    reason: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] | None = None


def _too_large(what: str) -> ApiError:
    return ApiError(413, "payload_too_large", f"{what} is over {MAX_IMAGE_BYTES} bytes (5 MiB)")


async def read_images(request: web.Request) -> dict[str, bytes]:
    """The three images of the form, each read up to its limit (ApiError otherwise)."""
    if (request.content_length or 0) > MAX_FORM_BYTES:
        raise ApiError(
            413, "payload_too_large", f"the upload is over {MAX_FORM_BYTES} bytes; 5 MiB an image"
        )
    if request.content_type != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type", "send the images as multipart/form-data")
    images: dict[str, bytes] = {}
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise ApiError(400, "invalid_request", "a nested multipart is not an image")
            name = part.name or ""
            if name not in IMAGE_KINDS:
                raise ApiError(
                    400,
                    "invalid_request",
                    f"unknown form field {name[:40]!r}; send {', '.join(IMAGE_KINDS)}",
                )
            if name in images:
                raise ApiError(400, "invalid_request", f"{name} is sent twice")
            data = bytearray()
            while chunk := await part.read_chunk(READ_CHUNK):
                data += chunk
                if len(data) > MAX_IMAGE_BYTES:
                    raise _too_large(name)
            images[name] = bytes(data)
    except ApiError:
        raise
    except (ValueError, AssertionError, RuntimeError, web.HTTPException) as exc:
        raise ApiError(400, "invalid_request", f"not a readable multipart form: {exc}") from None
    missing = [kind for kind in IMAGE_KINDS if kind not in images]
    if missing:
        raise ApiError(
            422, "invalid_request", f"missing {', '.join(missing)}; send all three images"
        )
    return images


class IdentityApi:
    def __init__(
        self,
        directory: Directory,
        reviews: IdentityReviews,
        files: IdentityFiles,
        audit: IdentityAudit,
        email_of: EmailOf | None = None,
    ) -> None:
        self._directory = directory
        self._reviews = reviews
        self._files = files
        self._audit = audit
        self._email_of = email_of

    # -- the family's side ----------------------------------------------------------------

    async def _family_id(self, claims: Claims) -> str:
        if not await self._directory.exists("family", claims.subject):
            raise ApiError(404, "not_found", f"no family account {claims.subject!r}")
        return claims.subject

    async def status(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        family_id = await self._family_id(claims)
        record = await self._reviews.get(family_id)
        if record is None:
            # A family verified some other way (a seed, an operator) has no review to show.
            family = await self._directory.family(family_id)
            verified = family is not None and family.verified
            return web.json_response({"identity": "verified" if verified else "none"})
        body: dict[str, Any] = {"identity": record.status, "submitted_at": record.submitted_at}
        if record.status == "rejected" and record.reason:
            body["reason"] = record.reason
        return web.json_response(body)

    async def upload(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        family_id = await self._family_id(claims)
        current = await self._reviews.get(family_id)
        if current is not None and current.status == "verified":
            raise ApiError(409, "already_verified", "your identity is verified already")
        raw = await read_images(request)
        try:
            cleaned = await asyncio.to_thread(
                lambda: {kind: clean_image(raw[kind], kind) for kind in IMAGE_KINDS}
            )
        except ImageRejected as exc:
            raise ApiError(422, "invalid_image", str(exc)) from None
        submission = secrets.token_hex(8)
        try:
            for kind in IMAGE_KINDS:
                await asyncio.to_thread(self._files.put, family_id, submission, kind, cleaned[kind])
            previous = await self._reviews.submit(family_id, submission)
        except AlreadyVerified:
            await asyncio.to_thread(self._files.delete, family_id, submission)
            raise ApiError(409, "already_verified", "your identity is verified already") from None
        except BaseException:
            await asyncio.to_thread(self._files.delete, family_id, submission)
            raise
        if previous is not None and previous.submission != submission:
            try:
                await asyncio.to_thread(self._files.delete, family_id, previous.submission)
            except OSError as exc:
                log.warning("identity images of %s not removed: %s", family_id, exc)
        return web.json_response({"identity": "pending"}, status=202)

    # -- the admins' side -----------------------------------------------------------------

    async def _in_scope(self, admin: Staff, family_id: str) -> bool:
        if not await self._directory.exists("family", family_id):
            return False
        if "*" in admin.facility_ids:
            return True
        return any(admin.covers(f) for f in await self._directory.contact_facilities(family_id))

    async def _scoped_family(self, claims: Claims, family_id: str) -> Staff:
        admin = await known_admin(self._directory, claims)
        if not await self._in_scope(admin, family_id):
            raise ApiError(404, "not_found", f"no family {family_id!r} in your facilities")
        return admin

    async def reviews(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        admin = await known_admin(self._directory, claims)
        parse_query(request, ReviewQuery)
        listed = []
        for family_id, submitted_at in await self._reviews.pending():
            if not await self._in_scope(admin, family_id):
                continue
            family = await self._directory.family(family_id)
            email = await self._email_of(family_id) if self._email_of is not None else None
            listed.append(
                {
                    "family_id": family_id,
                    "name": family.name if family is not None else None,
                    "email": email,
                    "submitted_at": submitted_at,
                }
            )
        return web.json_response({"reviews": listed})

    async def image(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        family_id, kind = request.match_info["family_id"], request.match_info["kind"]
        if kind not in IMAGE_KINDS:
            raise ApiError(
                404, "not_found", f"no image {kind[:40]!r}; one of {', '.join(IMAGE_KINDS)}"
            )
        await self._scoped_family(claims, family_id)
        record = await self._reviews.get(family_id)
        if record is None:
            raise ApiError(404, "not_found", f"family {family_id!r} has submitted no identity")
        try:
            data = await asyncio.to_thread(self._files.get, family_id, record.submission, kind)
        except FileNotFoundError:
            raise ApiError(404, "not_found", f"no {kind} image for {family_id!r}") from None
        viewer = Viewer(
            claims.subject,
            claims.role,
            request.remote or "",
            request.headers.get("User-Agent", ""),
        )
        detail = {"image": kind, "submission": record.submission, "status": record.status}
        await self._audit.append(viewer, "view", family_id, detail)
        headers = {
            "Cache-Control": "no-store, private",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{family_id}-{kind}.jpg"',
        }
        return web.Response(body=data, content_type=CONTENT_TYPE, headers=headers)

    async def review(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        family_id = request.match_info["family_id"]
        await self._scoped_family(claims, family_id)
        record = await self._reviews.get(family_id)
        body: dict[str, Any] = {"family_id": family_id, "identity": "none"}
        if record is not None:
            body.update(record.model_dump(exclude={"status", "submission"}))
            body["identity"] = record.status
        body["audit"] = await self._audit.for_family(family_id)
        return web.json_response(body)

    async def decide(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        family_id = request.match_info["family_id"]
        change = await parse_body(request, ReviewDecision)
        await self._scoped_family(claims, family_id)
        try:
            decided = await self._reviews.decide(
                family_id, change.status, claims.subject, change.reason or None
            )
        except NotReviewable as exc:
            raise ApiError(409, "invalid_state", str(exc)) from None
        family = await self._directory.family(family_id)
        if family is not None and change.status == "verified" and not family.verified:
            await self._directory.save_family(family.model_copy(update={"verified": True}))
        viewer = Viewer(
            claims.subject, claims.role, request.remote or "", request.headers.get("User-Agent", "")
        )
        detail = {
            "status": change.status,
            "reason": change.reason,
            "submission": decided.submission,
        }
        await self._audit.append(viewer, "review", family_id, detail)
        return web.json_response(
            {
                "family_id": family_id,
                "identity": decided.status,
                "verified": change.status == "verified" or bool(family and family.verified),
                "reason": decided.reason,
            }
        )


def add_identity_routes(
    app: web.Application,
    *,
    tokens: Tokens,
    directory: Directory,
    reviews: IdentityReviews,
    files: IdentityFiles,
    audit: IdentityAudit,
    email_of: EmailOf | None = None,
) -> IdentityApi:
    api = IdentityApi(directory, reviews, files, audit, email_of)
    family, admin = {"family"}, {"admin"}
    app.router.add_post("/api/v1/account/identity", guarded(tokens, family, api.upload))
    app.router.add_get("/api/v1/account/identity", guarded(tokens, family, api.status))
    app.router.add_get("/api/v1/admin/identity", guarded(tokens, admin, api.reviews))
    app.router.add_get(
        "/api/v1/admin/identity/{family_id}/{kind}", guarded(tokens, admin, api.image)
    )
    app.router.add_get("/api/v1/admin/identity/{family_id}", guarded(tokens, admin, api.review))
    app.router.add_put("/api/v1/admin/identity/{family_id}", guarded(tokens, admin, api.decide))
    return api
