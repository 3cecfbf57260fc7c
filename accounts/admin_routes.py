"""The node's accounts-admin routes in one place: identity upload and review, staff management,
resident PINs and shared-tablet sign-in, with the stores they share (what ``visitation.node``
wires between its ``accounts-admin`` markers, and closes on the way out)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from redis.asyncio import Redis

from accounts.credentials import Credentials
from accounts.identity import IdentityReviews
from accounts.identity_api import IdentityApi, add_identity_routes
from accounts.identity_audit import IdentityAudit
from accounts.identity_files import IdentityFiles, identity_location, open_identity_files
from accounts.lockout import Lockout
from accounts.passwords import SecretHasher
from accounts.pins import Pins
from accounts.staff_admin import StaffAdminApi, add_staff_admin_routes
from accounts.tablet_signin import LOCKOUT_NAME, TabletSignIn, add_tablet_routes
from core.config import Settings
from core.directory import Directory
from core.revocation import Revocations
from core.tokens import Tokens


@dataclass
class AccountsAdmin:
    directory: Directory
    identity: IdentityApi
    staff: StaffAdminApi
    tablets: TabletSignIn
    reviews: IdentityReviews
    audit: IdentityAudit
    files: IdentityFiles
    pins: Pins
    pin_lockout: Lockout

    async def start(self) -> None:
        await self.directory.index_staff()  # staff seeded before the staff index existed

    async def forget_identity(self, family_id: str) -> None:
        """Delete a family's identity images and review (when its account is closed); the
        audit log keeps who viewed them."""
        record = await self.reviews.forget(family_id)
        if record is not None:
            await asyncio.to_thread(self.files.delete, family_id, record.submission)

    def close(self) -> None:
        self.files.close()


def add_accounts_admin_routes(
    app: web.Application,
    *,
    settings: Settings,
    redis: Redis,
    directory: Directory,
    tokens: Tokens,
    revocations: Revocations,
    hasher: SecretHasher,
    credentials: Credentials | None = None,
) -> AccountsAdmin:
    """``credentials``: the node's sign-in credentials (staff passwords, families' e-mails);
    None: a store of this node's own on ``redis`` and ``hasher``."""
    credentials = credentials if credentials is not None else Credentials(redis, hasher)
    reviews = IdentityReviews(redis)
    audit = IdentityAudit(redis)
    files = open_identity_files(identity_location(settings))
    pins = Pins(redis, hasher)
    lockout = Lockout(redis, LOCKOUT_NAME)
    identity = add_identity_routes(
        app,
        tokens=tokens,
        directory=directory,
        reviews=reviews,
        files=files,
        audit=audit,
        email_of=credentials.email_of,
    )
    staff = add_staff_admin_routes(
        app, tokens=tokens, directory=directory, revocations=revocations, credentials=credentials
    )
    tablets = add_tablet_routes(app, tokens=tokens, directory=directory, pins=pins, lockout=lockout)
    return AccountsAdmin(directory, identity, staff, tablets, reviews, audit, files, pins, lockout)
