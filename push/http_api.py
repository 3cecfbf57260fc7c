"""The push routes (PROTOCOL v1.2 "Reaching families: Web Push").

- ``GET /api/v1/push/key`` (public): the VAPID public key for ``pushManager.subscribe``.
- ``POST /api/v1/account/push-subscriptions`` (family): ``PushSubscription.toJSON()`` ->
  201 ``{"id"}``, or 200 with the same id for an endpoint the family has already; a sixth
  replaces the oldest (``"replaced"``: its id, an addition). Refused whole, nothing stored:
  a body over :data:`~push.subscriptions.MAX_BODY_BYTES`, an endpoint outside the allowed push
  services, a ``p256dh`` that is not a P-256 point or an ``auth`` that is not 16 bytes: 422
  ``invalid_request`` saying which.
- ``GET /api/v1/account/push-subscriptions`` (family): ``{"subscriptions": [{"id", "endpoint",
  "created_at", "device"}]}``, oldest first.
- ``DELETE /api/v1/account/push-subscriptions/{id}`` (family): ``{}``; 404 if not the family's.
"""

from __future__ import annotations

import re

from aiohttp import web

from core.directory import Directory
from core.http_api import ApiError, guarded, parse_body
from core.tokens import Claims, Tokens
from push.endpoints import EndpointPolicy, EndpointRefused
from push.subscriptions import MAX_BODY_BYTES, SubscriptionIn, SubscriptionStore, device_label

KEY_PATH = "/api/v1/push/key"
SUBSCRIPTIONS_PATH = "/api/v1/account/push-subscriptions"
_ID = re.compile(r"^[0-9a-f]{32}$")


class PushApi:
    def __init__(
        self,
        subscriptions: SubscriptionStore,
        policy: EndpointPolicy,
        directory: Directory,
        public_key: str,
    ) -> None:
        self._subscriptions = subscriptions
        self._policy = policy
        self._directory = directory
        self._public_key = public_key

    async def key(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"vapid_public_key": self._public_key}, headers={"Cache-Control": "no-cache"}
        )

    async def _family(self, claims: Claims) -> str:
        if not await self._directory.exists("family", claims.subject):
            raise ApiError(404, "not_found", f"no family account {claims.subject!r}")
        return claims.subject

    async def subscribe(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        if (request.content_length or 0) > MAX_BODY_BYTES or len(
            await request.read()
        ) > MAX_BODY_BYTES:
            raise ApiError(
                422, "invalid_request", f"the body is over {MAX_BODY_BYTES} bytes (a subscription)"
            )
        body = await parse_body(request, SubscriptionIn)
        try:
            self._policy.check(body.endpoint)
        except EndpointRefused as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        family_id = await self._family(claims)
        added = await self._subscriptions.add(
            family_id, body, device_label(request.headers.get("User-Agent", ""))
        )
        out: dict[str, str] = {"id": added.id}
        if added.replaced:
            out["replaced"] = added.replaced
        return web.json_response(out, status=201 if added.created else 200)

    async def listing(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        family_id = await self._family(claims)
        subs = await self._subscriptions.of(family_id)
        return web.json_response({"subscriptions": [s.listing() for s in subs]})

    async def remove(self, request: web.Request, claims: Claims) -> web.StreamResponse:
        sub_id = request.match_info["sub_id"]
        family_id = await self._family(claims)
        if not _ID.match(sub_id) or not await self._subscriptions.remove(family_id, sub_id):
            raise ApiError(404, "not_found", f"no push subscription {sub_id[:40]!r} of yours")
        return web.json_response({})


def add_push_routes(
    app: web.Application,
    *,
    tokens: Tokens,
    directory: Directory,
    subscriptions: SubscriptionStore,
    policy: EndpointPolicy,
    public_key: str,
) -> None:
    api = PushApi(subscriptions, policy, directory, public_key)
    family = {"family"}
    app.router.add_get(KEY_PATH, api.key)
    app.router.add_post(SUBSCRIPTIONS_PATH, guarded(tokens, family, api.subscribe))
    app.router.add_get(SUBSCRIPTIONS_PATH, guarded(tokens, family, api.listing))
    app.router.add_delete(f"{SUBSCRIPTIONS_PATH}/{{sub_id}}", guarded(tokens, family, api.remove))
