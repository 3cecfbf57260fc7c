"""A real RFC 8030 push service on loopback, for tests: it decrypts and checks everything.

Each :class:`Device` is a browser's side of a subscription: its own P-256 key pair and 16-byte
auth secret (made here, never by the server), and an endpoint on this service. For every POST to
an endpoint the service checks the VAPID ``Authorization`` (RFC 8292: ``vapid t=<JWT>,k=<key>``,
the key the server publishes, the JWT's ES256 signature, ``aud`` this service's origin, ``exp``
in the future and at most 24 h away, ``sub`` a ``mailto:`` or ``https:`` URI), the ``TTL`` and
``Urgency`` headers, and decrypts the ``aes128gcm`` body (RFC 8291) with the device's private
key and auth secret (http_ece). What it received is kept, with the time it arrived; anything
wrong goes to :attr:`PushService.problems` (the tests assert it stays empty).

A device may be told how to answer: a status (410, 429...), a number of times, and a delay
(a slow push service).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

import http_ece
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt

from core.embedded_redis import _free_port


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    device: str
    payload: dict[str, Any]
    headers: dict[str, str]
    at: float  # time.time() when it arrived
    claims: dict[str, Any]


@dataclass
class Device:
    name: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    # How to answer: ``status`` for the next ``times`` requests (None: always), after ``delay_s``.
    status: int = 201
    times: int | None = None
    delay_s: float = 0.0
    location: str = ""  # with a 3xx status: where it redirects
    reply_bytes: int = 0  # the size of the answer's body
    requests: int = 0

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def subscription(self) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }

    def answer(self, status: int, times: int | None = None, delay_s: float = 0.0) -> None:
        self.status, self.times, self.delay_s = status, times, delay_s


class PushService:
    def __init__(self) -> None:
        self.port = _free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.prefix = f"{self.origin}/push/"
        self.devices: dict[str, Device] = {}
        self.received: list[Received] = []
        self.problems: list[str] = []
        self.vapid_public_key: str | None = None  # the server's, once known
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    def device(self, name: str) -> Device:
        device = Device(name, f"{self.prefix}{name}-{b64url(os.urandom(6))}")
        self.devices[device.endpoint.rsplit("/", 1)[1]] = device
        return device

    async def start(self) -> PushService:
        app = web.Application()
        app.router.add_post("/push/{token}", self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests wait for ------------------------------------------------------------------

    def of(
        self, device: Device, type: str | None = None, call_id: str | None = None
    ) -> list[Received]:
        return [
            r
            for r in self.received
            if r.device == device.name
            and (type is None or r.payload.get("type") == type)
            and (call_id is None or r.payload.get("call_id") == call_id)
        ]

    async def wait_for(
        self,
        device: Device,
        type: str,
        count: int = 1,
        within_s: float = 10.0,
        *,
        call_id: str | None = None,
    ) -> list[Received]:
        """The first ``count`` pushes of ``type`` to ``device`` (of ``call_id`` if given: a
        push may come twice, at least once being the rule), failing after ``within_s``."""

        def enough() -> bool:
            return len(self.of(device, type, call_id)) >= count

        async with self._arrived:
            try:
                await asyncio.wait_for(self._arrived.wait_for(enough), within_s)
            except TimeoutError:
                raise AssertionError(
                    f"{device.name}: {count} x {type} not received within {within_s} s; got "
                    f"{[r.payload.get('type') for r in self.of(device)]}, problems {self.problems}"
                ) from None
        return self.of(device, type, call_id)[:count]

    # -- the service --------------------------------------------------------------------------

    async def _push(self, request: web.Request) -> web.StreamResponse:
        device = self.devices.get(request.match_info["token"])
        if device is None:
            return web.Response(status=404)
        device.requests += 1
        body = await request.read()
        if device.delay_s:
            await asyncio.sleep(device.delay_s)
        if device.times is None or device.times > 0:
            if device.times is not None:
                device.times -= 1
            if device.status >= 300:
                headers = {"Location": device.location} if device.location else {}
                return web.Response(status=device.status, text="no", headers=headers)
        try:
            claims = self._check_vapid(request.headers.get("Authorization", ""))
            self._check_headers(request.headers)
            plain = http_ece.decrypt(
                body, private_key=device.private_key, auth_secret=device.auth, version="aes128gcm"
            )
            payload = json.loads(plain)
        except Exception as exc:  # anything wrong is a test failure, reported by the test
            self.problems.append(f"{device.name}: {type(exc).__name__}: {exc}")
            return web.Response(status=400, text=str(exc))
        async with self._arrived:
            self.received.append(
                Received(device.name, payload, dict(request.headers), time.time(), claims)
            )
            self._arrived.notify_all()
        return web.Response(
            status=201,
            body=b"x" * device.reply_bytes,
            headers={"Location": f"{self.origin}/message/1"},
        )

    def _check_vapid(self, header: str) -> dict[str, Any]:
        scheme, _, params = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError(f"Authorization scheme {scheme!r}, not vapid")
        parts = dict(p.strip().split("=", 1) for p in params.split(","))
        token, key = parts["t"], parts["k"]
        if self.vapid_public_key is not None and key != self.vapid_public_key:
            raise ValueError("k is not the server's published VAPID key")
        claims: dict[str, Any] = vapid_jwt.decode(token, key)  # the ES256 signature
        header_json = json.loads(b64url_decode(token.split(".")[0]))
        if header_json.get("alg") != "ES256":
            raise ValueError(f"JWT alg {header_json.get('alg')!r}")
        if claims.get("aud") != self.origin:
            raise ValueError(f"aud {claims.get('aud')!r} is not {self.origin!r}")
        now = time.time()
        if not now < float(claims["exp"]) <= now + 86400:
            raise ValueError(f"exp {claims['exp']} not within 24 h from now")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError(f"sub {claims.get('sub')!r}")
        return claims

    @staticmethod
    def _check_headers(headers: Any) -> None:
        if headers.get("Content-Encoding") != "aes128gcm":
            raise ValueError(f"Content-Encoding {headers.get('Content-Encoding')!r}")
        ttl = headers.get("TTL")
        if ttl is None or not ttl.isdigit():
            raise ValueError(f"TTL {ttl!r}")
        if headers.get("Urgency") not in ("very-low", "low", "normal", "high"):
            raise ValueError(f"Urgency {headers.get('Urgency')!r}")
