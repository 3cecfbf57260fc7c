"""The push side of one signaling node: settings, the VAPID key, the routes, the sender.

Settings (environment):

- ``VISITATION_PUSH_ENDPOINTS``: comma-separated URL prefixes a subscription's endpoint must
  lie under (default: the browsers' push services, :data:`push.endpoints.DEFAULT_ENDPOINTS`);
- ``VISITATION_VAPID_PRIVATE_KEY``: the deployment's VAPID key (else one kept in the data dir);
- ``VISITATION_PUSH_CONTACT``: the VAPID ``sub``, a ``mailto:`` or ``https:`` URI the push
  services may use to reach the operator.

:class:`PushNode` also publishes the public key in Redis at start and logs an error if another
node signs with a different one (every node must share the key: subscriptions are bound to it).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aiohttp import web
from redis.asyncio import Redis

from billing_hooks import BillingEvent
from core.config import ConfigError
from core.directory import Directory
from core.redis_text import text
from core.tokens import Tokens
from push.endpoints import EndpointPolicy
from push.http_api import add_push_routes
from push.notifier import FamilyPush
from push.redis_keys import VAPID_PUBLIC
from push.sender import PushSender, SenderLimits
from push.vapid import CONTACT_ENV, VapidSigner, load_vapid

log = logging.getLogger(__name__)

DEFAULT_CONTACT = "mailto:webpush@localhost"
PUBLIC_KEY_KEY = VAPID_PUBLIC()

#: The node's :class:`FamilyPush`, for route handlers that tell families (contact decisions).
PUSH_NOTIFIER: web.AppKey[FamilyPush] = web.AppKey("push_notifier", FamilyPush)


class LowBalancePush:
    """A billing hook: ``low_balance`` events become ``account.low_balance`` pushes (once per
    event id: a retried settlement does not push twice)."""

    def __init__(self, notifier: FamilyPush) -> None:
        self._notifier = notifier

    async def publish(self, event: BillingEvent) -> None:
        if event.type != "low_balance":
            return
        family_id = str(event.data.get("family_id") or "")
        balance = event.data.get("balance_cents")
        if family_id and isinstance(balance, int):
            self._notifier.low_balance(family_id, balance, event.id)

    def __repr__(self) -> str:
        return "LowBalancePush()"


class PushNode:
    def __init__(
        self,
        app: web.Application,
        *,
        redis: Redis,
        data_dir: Path,
        tokens: Tokens,
        directory: Directory,
        notifier: FamilyPush,
        limits: SenderLimits | None = None,
    ) -> None:
        try:
            policy = EndpointPolicy.from_env()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        contact = os.environ.get(CONTACT_ENV, "").strip()
        if not contact:
            log.warning("%s is not set: push services see %s", CONTACT_ENV, DEFAULT_CONTACT)
        self.redis = redis
        self.signer = VapidSigner(load_vapid(data_dir), contact or DEFAULT_CONTACT)
        try:
            self.signer.authorization("https://push.example")  # a bad contact fails now
        except Exception as exc:
            raise ConfigError(f"{CONTACT_ENV}: {exc}") from None
        self.notifier = notifier
        self.sender = PushSender(
            notifier.outbox, notifier.subscriptions, policy, self.signer, limits
        )
        self.low_balance_hook = LowBalancePush(notifier)
        app[PUSH_NOTIFIER] = notifier
        add_push_routes(
            app,
            tokens=tokens,
            directory=directory,
            subscriptions=notifier.subscriptions,
            policy=policy,
            public_key=self.signer.public_key,
        )

    async def start(self) -> None:
        mine = self.signer.public_key
        await self.redis.set(PUBLIC_KEY_KEY, mine, nx=True, ex=86400)
        theirs = await self.redis.get(PUBLIC_KEY_KEY)
        if theirs is not None and text(theirs) != mine:
            log.error(
                "this node's VAPID key differs from the deployment's (another node published "
                "another one): set the same VISITATION_VAPID_PRIVATE_KEY on every node, or "
                "pushes to subscriptions made through other nodes will be refused"
            )
        self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()
