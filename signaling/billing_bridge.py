"""Connects the call lifecycle to billing: hold at connect, events, settle once at the end.

The cap and its timers live in the call service (durable Redis timers fire the warning and the
``time_limit`` hang-up on any node); this bridge only supplies the money side.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from billing_hooks import (
    Biller,
    CallCharge,
    HookBus,
    Ledger,
    PaymentProcessor,
    Settlement,
    WebhookHook,
)
from billing_hooks.metering.plans import PricingPlans
from core.config import ConfigError, Settings
from core.tasks import Periodic
from signaling.call_state import CallRecord

log = logging.getLogger(__name__)


def hooks_for(settings: Settings, redis: Redis) -> tuple[HookBus, list[WebhookHook]]:
    """Billing hooks: a webhook signed with ``VISITATION_BILLING_WEBHOOK_SECRET`` (required,
    and never the server secret: see :meth:`Settings.check`) when a webhook URL is set."""
    bus = HookBus()
    webhooks: list[WebhookHook] = []
    url = settings.billing_webhook_url
    if url:
        if not settings.billing_webhook_secret:
            raise ConfigError("VISITATION_BILLING_WEBHOOK_SECRET must be set with a webhook URL")
        webhook = WebhookHook(url, settings.billing_webhook_secret.encode(), redis)
        bus.add(webhook)
        webhooks.append(webhook)
    return bus, webhooks


def charge_of(record: CallRecord) -> CallCharge:
    """What the biller settles of an ended call."""
    return CallCharge(
        call_id=record.call_id,
        family_id=record.family_id,
        connected_seconds=record.duration_s,
        end_reason=record.end_reason,
        rate=record.rate_cents_per_minute,
        facility_id=record.facility_id,
        facility_name=record.facility_name,
        resident_id=record.resident_id,
        resident_name=record.resident_name,
        started_at=record.created_at,
        connected_at=record.connected_at,
        ended_at=record.ended_at,
    )


class BillingBridge:
    def __init__(
        self,
        redis: Redis,
        ledger: Ledger,
        hooks: HookBus,
        webhooks: list[WebhookHook],
        processor: PaymentProcessor | None = None,
        *,
        plans: PricingPlans,
    ) -> None:
        """``processor`` None: payments unavailable (see :mod:`billing_hooks.money.processors`).
        ``plans``: the pricing plans the call service quotes with too."""
        self.plans = plans
        self.biller = Biller(
            redis,
            ledger,
            hooks,
            processor=processor,
            plans=self.plans,
        )
        self._webhooks = webhooks
        self._resume = Periodic("billing-resume", self.biller.resume_pending, 30.0, False)

    def start(self) -> None:
        for webhook in self._webhooks:
            webhook.start()
        self._resume.start()

    async def stop(self) -> None:
        await self._resume.stop()
        await self.biller.drain()
        for webhook in self._webhooks:
            await webhook.stop()

    async def authorize(self, record: CallRecord) -> int:
        auth = await self.biller.authorize(
            record.call_id,
            record.family_id,
            record.rate_cents_per_minute,
            record.max_call_seconds,
            resident_id=record.resident_id,
            facility_id=record.facility_id,
        )
        return auth.allowed_seconds

    async def connected(self, record: CallRecord) -> None:
        await self.biller.connected(
            record.call_id, record.family_id, record.allowed_seconds, record.ends_at
        )

    async def warning(self, record: CallRecord) -> None:
        await self.biller.warning(record.call_id, record.family_id)

    async def settle(self, record: CallRecord) -> Settlement:
        return await self.biller.settle(charge_of(record))
