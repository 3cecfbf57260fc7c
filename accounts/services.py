"""What a node runs for sign-in: the credential store, the sign-in service and its routes, and
the mail outbox with its sender (started and stopped with the node)."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from accounts.codes import OneTimeCodes
from accounts.credentials import Credentials
from accounts.lockout import Lockout
from accounts.mail import Letters
from accounts.mail_outbox import STREAM, MailOutbox, MailSender
from accounts.mail_transport import transport_for
from accounts.passwords import SecretHasher
from accounts.sealed import SecretSeal
from accounts.settings import AccountSettings
from accounts.signin import FAILURES, LOCK_WINDOW_S, SignIn
from accounts.signin_api import add_signin_routes
from billing_hooks.outbox import Outbox
from core.directory import Directory
from core.revocation import Revocations
from core.tokens import Tokens


class AccountServices:
    def __init__(
        self,
        redis: Redis,
        settings: AccountSettings,
        *,
        directory: Directory,
        tokens: Tokens,
        revocations: Revocations,
        seal: SecretSeal,
        hasher: SecretHasher | None = None,
    ) -> None:
        self.settings = settings
        self.hasher = hasher or SecretHasher()
        self.credentials = Credentials(redis, self.hasher, seal)
        self.letters = Letters(settings.public_url, settings.mail_from)
        self.mail = MailOutbox(Outbox(redis, stream=STREAM))
        self.sender = MailSender(self.mail, transport_for(settings.smtp))
        self.tokens = tokens
        self.signin = SignIn(
            credentials=self.credentials,
            directory=directory,
            tokens=tokens,
            revocations=revocations,
            lockout=Lockout(redis, "signin", limit=FAILURES, window_s=LOCK_WINDOW_S),
            confirm_codes=OneTimeCodes(redis, "confirm"),
            reset_codes=OneTimeCodes(redis, "reset"),
            letters=self.letters,
            mail=self.mail,
        )

    def add_routes(self, app: web.Application) -> None:
        add_signin_routes(app, signin=self.signin, tokens=self.tokens)

    def start(self) -> None:
        self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()
