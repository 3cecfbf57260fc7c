"""One signaling node: the application that assembles the HTTP app (Socket.IO signaling, billing,
recordings, admin and contact routes, the pages) and runs its background services."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from billing_hooks import (
    Ledger,
    PaymentProcessor,
    ProcessorError,
    add_account_routes,
    load_processor,
)
from billing_hooks.metering.plans import PricingPlans
from billing_hooks.outbox import Outbox
from core import http_guard
from core.config import ConfigError, Settings
from core.directory import Directory
from core.rate_limits import RateLimiter
from core.redis_pool import connect
from core.revocation import Revocations
from core.tokens import Tokens
from media.control import SfuControl
from recorder.http_api import add_recording_routes
from signaling.admin_board import add_board_routes
from signaling.billing_bridge import BillingBridge, hooks_for
from signaling.call_state import CallStore
from signaling.calls import CallService
from signaling.media_bridge import MediaBridge
from signaling.media_plane import MediaPlane
from signaling.metrics import NodeMetrics
from signaling.monitoring import Monitoring
from signaling.presence import Presence
from signaling.privilege import PrivilegeCheck
from signaling.recording_bridge import RecordingBridge
from signaling.session_policy import SessionPolicy
from signaling.sio_redis import FollowingRedisManager
from signaling.sio_server import GuardedServer, engineio_logger
from signaling.sockets import SocketApi
from signaling.timers import DurableTimers
from visitation.admin_api import add_admin_routes
from visitation.contacts_api import add_contacts_routes
from web import add_page_routes

# --- accounts imports (issue 26) ---
# isort: split
from accounts.services import AccountServices
from accounts.settings import AccountSettings

# --- end accounts imports ---
# --- accounts-admin imports (issue 26: identity, staff, tablets) ---
# isort: split
from accounts.admin_routes import add_accounts_admin_routes
from accounts.sealed import SecretSeal

# --- end accounts-admin imports ---
# --- transcripts imports (issue 29) ---
# isort: split
from transcripts.node import TranscriptsNode, transcript_service

# --- end transcripts imports ---
# --- visits imports (issue 27) ---
# isort: split
from signaling.call_events import family_room, tablet_room
from visits.mail import VisitMail
from visits.wiring import Visits, call_gate

# --- end visits imports ---
# --- push imports (issue 25) ---
# isort: split
from push.service import PushNode

# --- end push imports ---

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024


def node_name(settings: Settings) -> str:
    """This node's name among signaling nodes, the same after a restart (unlike
    ``settings.node_id``): ``VISITATION_NODE_NAME``, else the host and the port it serves
    (two live nodes never share both)."""
    if name := os.environ.get("VISITATION_NODE_NAME"):
        return name
    if not settings.port:  # a port picked by the OS says nothing about the next run
        return settings.node_id
    return f"{socket.gethostname()}:{settings.port}"


Step = Callable[[], object] | None


def lifecycle(start: Step, stop: Step) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp ``cleanup_ctx`` entry: ``start`` on startup, ``stop`` on cleanup (either may be
    a coroutine function, or None)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        if start is not None and inspect.isawaitable(started := start()):
            await started
        yield
        if stop is not None and inspect.isawaitable(stopped := stop()):
            await stopped

    return context


class SignalingNode:
    """Owns every long-lived object of one node; ``start``/``stop`` bound their lifetime."""

    def __init__(
        self,
        settings: Settings,
        redis_url: str,
        secret: bytes,
        processor: PaymentProcessor | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``processor`` None: the one ``settings`` name (none, unless asked for or demo).
        ``clock``: the time the call's rules, its timers, its charge, the ledger's entries and
        the agency allowance's period read (tests move it on instead of waiting)."""
        settings.check(secret)
        if processor is None:
            try:
                processor = load_processor(settings.payment_processor, demo=settings.demo)
            except ProcessorError as exc:
                raise ConfigError(str(exc)) from None
        self.settings = settings
        self.redis = connect(redis_url)
        # Pub/sub ignores database numbers: name the channel after ours, so deployments
        # sharing one Redis server in different databases never hear each other's events.
        db = self.redis.connection_pool.connection_kwargs.get("db", 0)
        origins = settings.allowed_origins
        self.sio = GuardedServer(
            async_mode="aiohttp",
            client_manager=FollowingRedisManager(redis_url, channel=f"visitation-sio-{db}"),
            # None: same origin only; "*" only when configured so.
            cors_allowed_origins="*" if origins and "*" in origins else origins,
            max_http_buffer_size=MAX_MESSAGE_BYTES,
            logger=False,
            engineio_logger=engineio_logger(),
        )
        self.directory = Directory(self.redis)
        self.ledger = Ledger(self.redis, clock)  # entries stamped by the calls' clock
        self.timers = DurableTimers(self.redis, clock=clock)
        # Presence is the sockets' liveness: real time, not the calls' (movable) clock.
        self.presence = Presence(self.redis, settings.node_id, settings.presence_ttl_s)
        store = CallStore(self.redis, settings.call_retention_s)
        control = SfuControl(self.redis)  # the one control channel to the SFU workers
        # The call's collaborators first (signaling.ports), then the call service they serve.
        self.monitoring = Monitoring(
            self.redis,
            store,
            self._emit,
            max_flags=settings.rate_limits.flags_per_call,
            retention_s=settings.call_retention_s,
        )
        # Transcripts (issue 29): told of each recording sealed and purged, asked for search.
        transcripts = transcript_service(self.redis, redis_url, secret)
        self.recording = RecordingBridge(
            self.redis,
            settings,
            secret,
            self.directory,
            store,
            control,
            self.monitoring,
            transcripts=transcripts,
        )
        privilege = PrivilegeCheck(
            self.directory, store, control, self.monitoring, self.recording, self._emit
        )
        # Pricing plans (issue 28): the call service quotes with them, billing settles with them.
        self.plans = PricingPlans(self.redis, self.directory, clock)  # the allowance's period
        hooks, webhooks = hooks_for(settings, self.redis)
        self.billing = BillingBridge(
            self.redis,
            self.ledger,
            hooks,
            webhooks,
            processor,
            plans=self.plans,
        )
        self.calls = CallService(
            directory=self.directory,
            ledger=self.ledger,
            store=store,
            presence=self.presence,
            timers=self.timers,
            emit=self._emit,
            billing=self.billing,
            media=MediaPlane(control, self.monitoring, settings.media_timeout_s),
            recording=self.recording,
            privilege=privilege,
            ring_timeout_s=settings.ring_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            settle_retry_s=settings.settle_retry_s,
            plans=self.plans,
            visits=call_gate(self.redis, clock),  # scheduled visits (issue 27)
            clock=clock,
        )
        # Worker events (connected, media lost, quality, dead workers) move calls along.
        self.media = MediaBridge(
            self.redis, control, self.calls, self.monitoring, privilege, node_name(settings)
        )
        self.tokens = Tokens(secret)
        self.revocations = Revocations(self.redis)
        self.limiter = RateLimiter(self.redis, redis_url, settings.rate_limits)
        self.policy = SessionPolicy(
            self.sio, self.presence, self.revocations, self.limiter, settings.session_sweep_s
        )
        # --- accounts wiring (issue 26) ---
        # Sign-up, sign-in, logout, reset, staff TOTP; the mail outbox. ``self.accounts``
        # .credentials / .hasher serve the accounts-admin block below.
        self.accounts = AccountServices(
            self.redis,
            AccountSettings.from_env(settings),
            directory=self.directory,
            tokens=self.tokens,
            revocations=self.revocations,
            seal=SecretSeal.from_secret(secret),  # staff TOTP seeds, sealed in Redis
        )
        # --- end accounts wiring ---
        # --- visits wiring (issue 27) ---
        # Scheduled visits: routes, the tablet's visits.list, reminders/due/end on the timers.
        self.visits = Visits(
            self.redis,
            clock=clock,
            directory=self.directory,
            timers=self.timers,
            emit=self._emit,
            tablet_room=tablet_room,
            family_room=family_room,
            push=self.calls.notifier,
            mail=VisitMail(  # reminders by e-mail too, to a confirmed sign-in address
                self.accounts.credentials.email_of,
                self.accounts.mail.queue,
                self.accounts.settings.mail_from,
                self.accounts.settings.public_url,
                verified=self.accounts.credentials.email_verified,
            ),
        )
        # --- end visits wiring ---
        # Every Socket.IO event, in one route table (signaling.sockets).
        self.sockets = SocketApi(
            self.sio,
            self.tokens,
            self.directory,
            self.calls,
            self.policy,
            self.monitoring,
            self.media,
            self.visits,
            settings.ice_servers,
        )
        self.metrics = NodeMetrics(
            self.redis,
            roles=lambda: [session.role for session in self.sockets.sessions.values()],
            facility_ids=self.directory.all_facility_ids,
            outboxes=[webhook.outbox for webhook in webhooks] or [Outbox(self.redis)],
        )
        self.app = web.Application(client_max_size=MAX_MESSAGE_BYTES)
        http_guard.install(self.app, self.revocations, self.limiter)
        self.sio.attach(self.app)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/metrics", self._metrics)
        add_account_routes(
            self.app,
            redis=self.redis,
            ledger=self.ledger,
            directory=self.directory,
            tokens=self.tokens,
            biller=self.billing.biller,
        )
        add_admin_routes(self.app, redis=self.redis, directory=self.directory, tokens=self.tokens)
        add_contacts_routes(self.app, directory=self.directory, tokens=self.tokens)
        add_board_routes(self.app, calls=self.calls, directory=self.directory, tokens=self.tokens)
        self.accounts.add_routes(self.app)  # sign-up, sign-in, reset, staff TOTP (issue 26)
        # --- accounts-admin wiring (issue 26: identity, staff, tablets) ---
        self.accounts_admin = add_accounts_admin_routes(
            self.app,
            settings=settings,
            redis=self.redis,
            directory=self.directory,
            tokens=self.tokens,
            revocations=self.revocations,
            hasher=self.accounts.hasher,
            credentials=self.accounts.credentials,
        )
        # --- end accounts-admin wiring ---
        # --- transcripts wiring (issue 29) ---
        # Sealed recordings are queued for transcription (after the seal, in the background);
        # the recorder's search (?q=) and verify ask this; transcript and alert routes.
        self.transcripts = TranscriptsNode(
            self.app,
            redis=self.redis,
            tokens=self.tokens,
            directory=self.directory,
            service=transcripts,
            recordings=self.recording.service,
        )
        # --- end transcripts wiring ---
        self.visits.add_routes(self.app, self.tokens)  # scheduled visits (issue 27)
        # --- push wiring (issue 25) ---
        # The call service queues the pushes (self.calls.notifier); this sends them, serves the
        # routes and the key; billing's low_balance events become pushes too.
        self.push = PushNode(
            self.app,
            redis=self.redis,
            data_dir=settings.data_dir,
            tokens=self.tokens,
            directory=self.directory,
            notifier=self.calls.notifier,
        )
        hooks.add(self.push.low_balance_hook)
        # --- end push wiring ---
        add_page_routes(self.app)
        add_recording_routes(
            self.app, tokens=self.tokens, directory=self.directory, service=self.recording.service
        )
        # Each service starts in this order and stops in the reverse one (aiohttp's cleanup_ctx):
        # what ends calls (worker events, timers) stops first, then end-of-call chains in
        # progress while they can still emit, then billing and recording, Redis last.
        self.app.cleanup_ctx.extend(
            [
                lifecycle(self.redis.ping, self.redis.aclose),
                lifecycle(self.metrics.start, self.metrics.stop),
                lifecycle(self.presence.start, self.presence.stop),
                lifecycle(self.policy.start, self.policy.stop),
                lifecycle(self.recording.start, self.recording.stop),
                lifecycle(self.billing.start, self.billing.stop),
                lifecycle(None, self._stop_pubsub_listener),
                lifecycle(None, self.calls.stop),
                lifecycle(self.timers.start, self.timers.stop),
                lifecycle(self.media.start, self.media.stop),
                lifecycle(self._started, None),
            ]
        )
        # --- accounts services (issue 26): self.app.cleanup_ctx.append(lifecycle(...)) ---
        self.app.cleanup_ctx.append(lifecycle(self.accounts.start, self.accounts.stop))
        # --- end accounts services ---
        # --- accounts-admin services ---
        self.app.cleanup_ctx.append(lifecycle(self.accounts_admin.start, self.accounts_admin.close))
        # --- end accounts-admin services ---
        # --- transcripts services (issue 29) ---
        self.app.cleanup_ctx.append(lifecycle(self.transcripts.start, self.transcripts.stop))
        # --- end transcripts services ---
        # --- visits services (issue 27): none of its own (its timers are the node's) ---
        # --- end visits services ---
        # --- push services (issue 25) ---
        self.app.cleanup_ctx.append(lifecycle(self.push.start, self.push.stop))
        # --- end push services ---
        self.app.on_shutdown.append(self._on_shutdown)

    async def _emit(self, event: str, data: dict[str, Any], room: str) -> None:
        await self.sio.emit(event, data, room=room)

    def _started(self) -> None:
        log.info("signaling node %s started", self.settings.node_id)

    async def _on_shutdown(self, app: web.Application) -> None:
        # Calls ended just now (e.g. server_shutdown) finish in the background: let the
        # families hear their charge first (bounded).
        await self.calls.finisher.drain()
        # Before aiohttp waits for open handlers: close every client's transport now (each
        # client's websocket handler would otherwise run until its ping timeout, ~45 s). Not a
        # Socket.IO disconnect: socket.io clients take that for "do not come back", while a
        # transport closed is retried by every client with its own backoff and jitter. The
        # server-side disconnect handlers run for each (presence, rooms), bounded.
        engine = self.sio.eio
        transports = list(engine.sockets.values())
        if transports:
            # ValueError: the last client went away meanwhile (engine.io waits on no task).
            with contextlib.suppress(TimeoutError, ValueError):
                await asyncio.wait_for(engine.disconnect(), 5.0)
        for transport in transports:
            # Engine.IO sent CLOSE, which browsers ignore; an empty item wakes its websocket
            # writer, which then closes the websocket itself (as when a client goes away).
            transport.queue.put_nowait(None)
        await self.sio.shutdown()

    async def _stop_pubsub_listener(self) -> None:
        """python-socketio has no stop for its Redis listener task: cancel it, and its client."""
        manager = self.sio.manager
        task = getattr(manager, "thread", None)
        if isinstance(task, asyncio.Task):
            for _ in range(5):
                if task.done():
                    break
                task.cancel()
                await asyncio.wait([task], timeout=1.0)
        client = getattr(manager, "redis", None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _healthz(self, request: web.Request) -> web.Response:
        """200 ``{"ok": true, ...}`` when Redis answers and an SFU worker is alive, else 503 with
        a ``reason``. Under ``serve`` the node's Redis is watched every second
        (:class:`visitation.redis_watch.RedisHealth`): past its budget this says for how long
        Redis has not answered, without waiting on Redis (the node's clients retry for ~5 s)."""
        from visitation.redis_watch import REDIS_HEALTH, lost_body

        health = request.app.get(REDIS_HEALTH)
        lost = health.reason() if health is not None else None
        if lost is not None:
            return web.json_response(lost_body(lost), status=503)
        reason = None
        try:
            redis_ok = bool(await asyncio.wait_for(self.redis.ping(), 3.0))
            workers = await asyncio.wait_for(self.media.live_workers(), 3.0)
        except Exception:
            redis_ok, workers, reason = False, 0, "redis unreachable"
        if redis_ok and workers == 0:
            reason = "no live SFU worker"
        ok = redis_ok and workers > 0
        body: dict[str, object] = {"ok": ok, "redis": redis_ok, "sfu_workers": workers}
        if reason is not None:
            body["reason"] = reason
        return web.json_response(body, status=200 if ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        """This node's metrics and every live SFU worker's (see :mod:`signaling.metrics`)."""
        body = await self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
