"""Fixtures of the accounts tests: a real SMTP server on loopback (aiosmtpd), a node that mails
through it, HTTP helpers, and cheap Argon2 parameters where hashing speed is not the point."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cache
from typing import Any

import aiohttp
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from redis.asyncio import Redis

from accounts.passwords import SecretHasher
from core.domain import SeedFile
from core.embedded_redis import _free_port
from tests.conftest import Node, NodeFactory
from tests.system.security.conftest import state
from tests.waiting import eventually

MAIL_FROM = "visits@example.org"


@cache
def cheap_hasher() -> SecretHasher:
    """Argon2id with the smallest cost argon2-cffi accepts: for tests that hash many times."""
    return SecretHasher(time_cost=1, memory_cost_kib=8, parallelism=1)


@dataclass
class Mailbox:
    """What the loopback SMTP server received; ``answers`` are replies to the next DATA
    commands (e.g. ``"451 4.3.0 try later"``) before it accepts again."""

    port: int
    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.received if m["To"] == address]

    async def next_to(self, address: str, seen: int = 0, within_s: float = 10.0) -> EmailMessage:
        """The message to ``address`` after the first ``seen`` of them."""
        await eventually(
            lambda: len(self.to(address)) > seen, f"a mail to {address}", within_s=within_s
        )
        return self.to(address)[seen]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self.answers:
                self.refused += 1
                return self.answers.pop(0)
            raw = envelope.original_content or envelope.content or b""
            content = raw if isinstance(raw, bytes) else raw.encode()
            parsed = email.message_from_bytes(content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self.received.append(parsed)
            self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"


def start_smtp(mailbox: Mailbox) -> Controller:
    controller = Controller(mailbox, hostname="127.0.0.1", port=mailbox.port)
    controller.start()
    return controller


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    mailbox = Mailbox(port=_free_port())
    controller = start_smtp(mailbox)
    yield mailbox
    controller.stop()


@pytest.fixture
async def mail_node(
    start_node: NodeFactory, seeded: SeedFile, smtp_server: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> Node:
    """A node of the standard seed that sends its mail to :func:`smtp_server`."""
    monkeypatch.setenv("VISITATION_SMTP_URL", smtp_server.url)
    monkeypatch.setenv("VISITATION_MAIL_FROM", MAIL_FROM)
    monkeypatch.delenv("VISITATION_PUBLIC_URL", raising=False)
    return await start_node()


async def lasting(redis: Redis) -> dict[bytes, Any]:
    """Every key that holds state (see tests.system.security.conftest.state) but the outboxes'
    leases (which node sends: no state of anyone's)."""
    return {k: v for k, v in (await state(redis)).items() if not k.endswith(b":lease")}


def text_part(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def html_part(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def link_code(message: EmailMessage, kind: str, public_url: str) -> str:
    """The code of the ``/family?<kind>=<code>`` link in the message's plain text."""
    found = re.search(
        re.escape(f"{public_url}/family?{kind}=") + r"([A-Za-z0-9_\-]+)", text_part(message)
    )
    assert found, text_part(message)
    return found.group(1)


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


async def post(
    url: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Answer:
    """POST ``body`` as JSON (or ``data=`` as given) and read the JSON answer."""
    headers = {**({"Authorization": f"Bearer {token}"} if token else {}), **(headers or {})}
    if "data" not in kwargs:
        kwargs["json"] = body
    async with (
        aiohttp.ClientSession(base_url=url) as http,
        http.post(path, headers=headers, **kwargs) as response,
    ):
        return Answer(response.status, await response.json(), dict(response.headers))


async def get(url: str, path: str, token: str) -> Answer:
    async with (
        aiohttp.ClientSession(base_url=url) as http,
        http.get(path, headers={"Authorization": f"Bearer {token}"}) as response,
    ):
        return Answer(response.status, await response.json(), dict(response.headers))
