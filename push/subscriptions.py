"""A family's push subscriptions (PROTOCOL v1.2): validated on the way in, kept in Redis.

What a browser posts is its ``PushSubscription.toJSON()``. It is refused whole (nothing stored)
unless the endpoint lies under an allowed push-service prefix (:mod:`push.endpoints`), ``p256dh``
is an uncompressed point on P-256 (checked by ``cryptography``) and ``auth`` is 16 bytes.

Storage (:mod:`push.redis_keys`): ``push:subs:{family_id}`` hashes subscription id -> JSON record, and
``push:endpoint:{sha256(endpoint)}`` names the family and id holding an endpoint, so the same
endpoint posted again keeps its id (a device moving to another family leaves the first). At most
:data:`MAX_PER_FAMILY`; a new one past that replaces the oldest. One script does each change.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator
from redis.asyncio import Redis

from core.lua import script
from core.redis_text import text
from push.endpoints import MAX_ENDPOINT_CHARS
from push.redis_keys import ENDPOINT, SUBSCRIPTIONS

MAX_PER_FAMILY = 5
MAX_BODY_BYTES = 4096
MAX_DEVICE_CHARS = 80


def b64url_decode(value: str) -> bytes:
    if not value or any(c not in _B64URL for c in value.rstrip("=")):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SubscriptionKeys(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    p256dh: Annotated[str, Field(min_length=1, max_length=128)]
    auth: Annotated[str, Field(min_length=1, max_length=64)]

    @field_validator("p256dh")
    @classmethod
    def _point(cls, value: str) -> str:
        try:
            raw = b64url_decode(value)
        except ValueError:
            raise ValueError("p256dh is not base64url") from None
        if len(raw) != 65 or raw[0] != 4:
            raise ValueError("p256dh is not an uncompressed P-256 point (65 bytes, 0x04 first)")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raise ValueError("p256dh is not a point on the P-256 curve") from None
        return b64url(raw)

    @field_validator("auth")
    @classmethod
    def _secret(cls, value: str) -> str:
        try:
            raw = b64url_decode(value)
        except ValueError:
            raise ValueError("auth is not base64url") from None
        if len(raw) != 16:
            raise ValueError(f"auth must be a 16-byte secret (got {len(raw)} bytes)")
        return b64url(raw)


class SubscriptionIn(BaseModel):
    """``PushSubscription.toJSON()``."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    endpoint: Annotated[str, Field(min_length=1, max_length=MAX_ENDPOINT_CHARS)]
    expiration_time: Annotated[
        StrictInt | StrictFloat | None, Field(alias="expirationTime", ge=0)
    ] = None
    keys: SubscriptionKeys


@dataclass(frozen=True)
class Subscription:
    id: str
    family_id: str
    endpoint: str
    p256dh: str
    auth: str
    created_at: float
    expires_at: float | None = None  # expirationTime, in seconds
    device: str = ""  # a label from the User-Agent, for the family's device list

    def info(self) -> dict[str, Any]:
        """What a push library needs: PushSubscription.toJSON()'s shape."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def listing(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "created_at": self.created_at,
            "device": self.device,
        }

    def to_json(self, endpoint_key: str) -> str:
        body = {
            "id": self.id,
            "endpoint": self.endpoint,
            "p256dh": self.p256dh,
            "auth": self.auth,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "device": self.device,
            "endpoint_key": endpoint_key,
        }
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_json(cls, family_id: str, raw: str | bytes) -> Subscription:
        body = json.loads(raw)
        expires = body.get("expires_at")
        return cls(
            id=str(body["id"]),
            family_id=family_id,
            endpoint=str(body["endpoint"]),
            p256dh=str(body["p256dh"]),
            auth=str(body["auth"]),
            created_at=float(body["created_at"]),
            expires_at=float(expires) if isinstance(expires, int | float) else None,
            device=str(body.get("device") or ""),
        )


@dataclass(frozen=True)
class Added:
    id: str
    created: bool  # False: the same endpoint again (same id)
    replaced: str | None  # the oldest, removed to make room


_ADD: Final = script(__package__, "subscription_add.lua")
_REMOVE: Final = script(__package__, "subscription_remove.lua")
# What subscription_add.lua names another family's subscriptions: ARGV[5] .. <family id>.
SUBSCRIPTIONS_PREFIX: Final = SUBSCRIPTIONS.pattern.removesuffix("{family_id}")


def _endpoint_key(endpoint: str) -> str:
    return ENDPOINT(hashlib.sha256(endpoint.encode()).hexdigest())


def device_label(user_agent: str) -> str:
    """ "Chrome on Android", "Safari on iPhone"...: enough for a family to tell its devices apart."""
    ua = user_agent.lower()
    browser = next(
        (
            name
            for key, name in (
                ("edg/", "Edge"),
                ("firefox/", "Firefox"),
                ("samsungbrowser", "Samsung Internet"),
                ("crios", "Chrome"),
                ("chrome/", "Chrome"),
                ("chromium", "Chromium"),
                ("safari/", "Safari"),
            )
            if key in ua
        ),
        "Browser",
    )
    system = next(
        (
            name
            for key, name in (
                ("iphone", "iPhone"),
                ("ipad", "iPad"),
                ("android", "Android"),
                ("windows", "Windows"),
                ("mac os", "Mac"),
                ("cros", "ChromeOS"),
                ("linux", "Linux"),
            )
            if key in ua
        ),
        "",
    )
    label = f"{browser} on {system}" if system else browser
    return label[:MAX_DEVICE_CHARS]


class SubscriptionStore:
    def __init__(
        self,
        redis: Redis,
        max_per_family: int = MAX_PER_FAMILY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._max = max_per_family
        self._clock = clock
        self._add = redis.register_script(_ADD)
        self._remove = redis.register_script(_REMOVE)

    async def add(self, family_id: str, sub: SubscriptionIn, device: str = "") -> Added:
        key = _endpoint_key(sub.endpoint)
        expires = sub.expiration_time / 1000 if sub.expiration_time else None
        record = Subscription(
            id=uuid.uuid4().hex,
            family_id=family_id,
            endpoint=sub.endpoint,
            p256dh=sub.keys.p256dh,
            auth=sub.keys.auth,
            created_at=round(self._clock(), 3),
            expires_at=expires,
            device=device[:MAX_DEVICE_CHARS],
        )
        result = await self._add(
            keys=[SUBSCRIPTIONS(family_id), key],
            args=[family_id, record.id, record.to_json(key), self._max, SUBSCRIPTIONS_PREFIX],
        )
        sub_id, created, replaced = result
        return Added(text(sub_id), int(created) == 1, text(replaced) or None)

    async def get(self, family_id: str, sub_id: str) -> Subscription | None:
        raw = await self._redis.hget(SUBSCRIPTIONS(family_id), sub_id)
        return Subscription.from_json(family_id, raw) if raw is not None else None

    async def of(self, family_id: str) -> list[Subscription]:
        """The family's live subscriptions, oldest first (one past its expirationTime is not)."""
        now = self._clock()
        raws = await self._redis.hvals(SUBSCRIPTIONS(family_id))
        subs = [Subscription.from_json(family_id, raw) for raw in raws]
        live = [s for s in subs if s.expires_at is None or s.expires_at > now]
        return sorted(live, key=lambda s: (s.created_at, s.id))

    async def reachable(self, family_id: str) -> bool:
        return bool(await self.of(family_id))

    async def remove(self, family_id: str, sub_id: str) -> bool:
        return bool(await self._remove(keys=[SUBSCRIPTIONS(family_id)], args=[family_id, sub_id]))
