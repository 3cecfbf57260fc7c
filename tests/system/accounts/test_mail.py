"""Mail leaves through a durable outbox: it waits out an SMTP server that is down or deferring,
gives up on one that refuses it for good (dead letters), speaks implicit TLS with a login, and
without a server goes to the log. Real aiosmtpd servers on loopback throughout."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from redis.asyncio import Redis

from accounts.mail import Letters
from accounts.mail_outbox import STREAM, MailOutbox, MailSender
from accounts.mail_transport import SmtpTransport
from accounts.settings import AccountSettings, SmtpServer
from billing_hooks.outbox import Outbox
from core.config import ConfigError, Settings
from core.embedded_redis import _free_port
from tests.conftest import NodeFactory
from tests.system.accounts.conftest import (
    MAIL_FROM,
    Mailbox,
    html_part,
    link_code,
    post,
    start_smtp,
    text_part,
)
from tests.waiting import eventually

SIGNUP = {"email": "mail.test@example.org", "password": "a long pass phrase", "name": "Mail Test"}


def test_letters_have_text_and_html_parts_with_the_links() -> None:
    letters = Letters("https://visits.example.org/", MAIL_FROM)
    confirm = letters.confirm("a@example.org", "c0de-_x")
    assert confirm["From"] == MAIL_FROM and confirm["To"] == "a@example.org"
    assert confirm.get_content_type() == "multipart/alternative"
    assert "https://visits.example.org/family?confirm=c0de-_x" in text_part(confirm)
    assert 'href="https://visits.example.org/family?confirm=c0de-_x"' in html_part(confirm)
    reset = letters.reset("a@example.org", "r3set")
    assert "https://visits.example.org/family?reset=r3set" in text_part(reset)
    tried = letters.someone_tried("a@example.org")
    assert "?confirm=" not in text_part(tried) and "?reset=" not in text_part(tried)
    assert confirm["Message-ID"] != reset["Message-ID"]


def test_smtp_urls() -> None:
    plain = SmtpServer.parse("smtp://mail.example.org:2525")
    assert plain == SmtpServer("mail.example.org", 2525, implicit_tls=False)
    secure = SmtpServer.parse("smtps://user%40x:p%3Ass@mail.example.org")
    assert (secure.port, secure.implicit_tls) == (465, True)
    assert (secure.username, secure.password) == ("user@x", "p:ss")
    assert "p:ss" not in repr(secure) and "p%3Ass" not in repr(secure)
    for bad in ["http://mail:25", "smtp://", "smtp://mail:25/path", "smtp://mail:99999"]:
        with pytest.raises(ConfigError, match="VISITATION_SMTP_URL"):
            SmtpServer.parse(bad)


def test_account_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VISITATION_SMTP_URL", "VISITATION_MAIL_FROM", "VISITATION_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    node = Settings(host="127.0.0.1", port=8123)
    default = AccountSettings.from_env(node)
    assert (default.public_url, default.smtp) == ("http://127.0.0.1:8123", None)
    assert AccountSettings.from_env(Settings(host="0.0.0.0", port=80)).public_url == (
        "http://127.0.0.1:80"
    )
    monkeypatch.setenv("VISITATION_PUBLIC_URL", "https://visits.example.org/")
    assert AccountSettings.from_env(node).public_url == "https://visits.example.org"
    monkeypatch.setenv("VISITATION_SMTP_URL", "smtp://127.0.0.1:2525")
    with pytest.raises(ConfigError, match="VISITATION_MAIL_FROM"):
        AccountSettings.from_env(node)
    monkeypatch.setenv("VISITATION_MAIL_FROM", MAIL_FROM)
    assert AccountSettings.from_env(node).smtp == SmtpServer("127.0.0.1", 2525, False)
    monkeypatch.setenv("VISITATION_PUBLIC_URL", "visits.example.org")
    with pytest.raises(ConfigError, match="VISITATION_PUBLIC_URL"):
        AccountSettings.from_env(node)


async def test_mail_waits_for_a_server_that_is_down(
    start_node: NodeFactory, seeded: object, monkeypatch: pytest.MonkeyPatch, redis: Redis
) -> None:
    mailbox = Mailbox(port=_free_port())  # nothing listens there yet
    monkeypatch.setenv("VISITATION_SMTP_URL", mailbox.url)
    monkeypatch.setenv("VISITATION_MAIL_FROM", MAIL_FROM)
    monkeypatch.setenv("VISITATION_PUBLIC_URL", "https://visits.example.org")
    node = await start_node()
    assert (await post(node.url, "/api/v1/signup", SIGNUP)).status == 201
    sender = node.node.accounts.sender
    await eventually(lambda: sender.failures >= 1, "a failed attempt")
    assert await redis.xlen(STREAM) == 1  # kept, not lost
    controller = start_smtp(mailbox)
    try:
        mail = await mailbox.next_to(SIGNUP["email"], within_s=20)
        code = link_code(mail, "confirm", "https://visits.example.org")
        await eventually(lambda: _empty(redis), "the outbox empties")
        confirmed = await post(node.url, "/api/v1/signup/confirm", {"code": code})
        assert confirmed.status == 200
        assert mailbox.envelopes == [(MAIL_FROM, [SIGNUP["email"]])]
    finally:
        controller.stop()


async def _empty(redis: Redis) -> bool:
    return await redis.xlen(STREAM) == 0


def quick_sender(redis: Redis, transport: SmtpTransport) -> tuple[MailOutbox, MailSender]:
    outbox = MailOutbox(Outbox(redis, stream=STREAM))
    sender = MailSender(outbox, transport, interval_s=0.02, base_backoff_s=0.05, max_backoff_s=0.2)
    return outbox, sender


async def test_a_deferral_is_retried_and_a_refusal_is_dead_lettered(
    redis: Redis, smtp_server: Mailbox
) -> None:
    letters = Letters("https://visits.example.org", MAIL_FROM)
    outbox, sender = quick_sender(
        redis, SmtpTransport(SmtpServer.parse(smtp_server.url), timeout_s=5)
    )
    smtp_server.answers = ["451 4.3.0 try again later"] * 2
    await outbox.queue(letters.reset("deferred@example.org", "one"))
    sender.start()
    try:
        await smtp_server.next_to("deferred@example.org")
        assert smtp_server.refused == 2
        await eventually(lambda: _empty(redis), "the outbox empties")
        smtp_server.answers = ["550 5.1.1 no such mailbox"] * 5
        await outbox.queue(letters.reset("nobody@example.org", "two"))
        await outbox.queue(letters.reset("after@example.org", "three"))
        await smtp_server.next_to("after@example.org")  # not held up for good by the first
        dead = await redis.xrange(f"{STREAM}:dead")
        assert len(dead) == 1 and b"550" in dead[0][1][b"why"]
        assert smtp_server.to("nobody@example.org") == []
        await eventually(lambda: _empty(redis), "the outbox empties")
    finally:
        await sender.stop()


async def test_the_same_message_queued_twice_is_sent_once(
    redis: Redis, smtp_server: Mailbox
) -> None:
    letters = Letters("https://visits.example.org", MAIL_FROM)
    outbox, sender = quick_sender(redis, SmtpTransport(SmtpServer.parse(smtp_server.url)))
    message = letters.confirm("once@example.org", "abc")
    await outbox.queue(message)
    await outbox.queue(message)  # a retried append after an unacknowledged write
    assert await outbox.length() == 1
    sender.start()
    try:
        await smtp_server.next_to("once@example.org")
        await eventually(lambda: _empty(redis), "the outbox empties")
        assert len(smtp_server.to("once@example.org")) == 1
    finally:
        await sender.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext]]:
    """A self-signed certificate for 127.0.0.1: the server's context and a client's that
    trusts it (and nothing else)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    yield server, client


def _authenticator(
    server: object, session: object, envelope: object, mechanism: str, auth_data: object
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"mailer",
        b"s3cret:pw",
    )
    return AuthResult(success=ok, handled=False)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_smtps_with_a_login(
    redis: Redis, tls_files: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server_tls, client_tls = tls_files
    mailbox = Mailbox(port=_free_port())
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=mailbox.port,
        ssl_context=server_tls,
        authenticator=_authenticator,
        auth_required=True,
        auth_require_tls=False,  # aiosmtpd only knows of STARTTLS; this one is TLS throughout
    )
    controller.start()
    try:
        url = f"smtps://mailer:s3cret%3Apw@127.0.0.1:{mailbox.port}"
        transport = SmtpTransport(SmtpServer.parse(url), timeout_s=5, tls_context=client_tls)
        outbox, sender = quick_sender(redis, transport)
        await outbox.queue(
            Letters("https://v.example.org", MAIL_FROM).confirm("tls@example.org", "c")
        )
        sender.start()
        try:
            mail = await mailbox.next_to("tls@example.org")
            assert "https://v.example.org/family?confirm=c" in text_part(mail)
            await eventually(lambda: _empty(redis), "the outbox empties")
        finally:
            await sender.stop()
        # A wrong password is a server we cannot use now: the mail waits, it is not dropped.
        wrong = SmtpServer.parse(f"smtps://mailer:nope@127.0.0.1:{mailbox.port}")
        outbox, sender = quick_sender(
            redis, SmtpTransport(wrong, timeout_s=5, tls_context=client_tls)
        )
        await outbox.queue(
            Letters("https://v.example.org", MAIL_FROM).confirm("kept@example.org", "c")
        )
        sender.start()
        try:
            await eventually(lambda: sender.failures >= 2, "two failed attempts")
            assert await redis.xlen(STREAM) == 1 and await redis.xlen(f"{STREAM}:dead") == 0
        finally:
            await sender.stop()
    finally:
        controller.stop()


async def test_without_smtp_mail_goes_to_the_log(
    start_node: NodeFactory,
    seeded: object,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    redis: Redis,
) -> None:
    monkeypatch.delenv("VISITATION_SMTP_URL", raising=False)
    monkeypatch.delenv("VISITATION_PUBLIC_URL", raising=False)
    caplog.set_level(logging.INFO, logger="accounts.mail_transport")
    node = await start_node()
    assert (await post(node.url, "/api/v1/signup", SIGNUP)).status == 201
    await eventually(
        lambda: any("/family?confirm=" in r.getMessage() for r in caplog.records),
        "the confirmation link in the log",
    )
    [record] = [r for r in caplog.records if "/family?confirm=" in r.getMessage()]
    assert record.levelno == logging.INFO and SIGNUP["email"] in record.getMessage()
    code = record.getMessage().split("/family?confirm=")[1].split()[0]
    assert record.getMessage().count(f"{node.url}/family?confirm={code}") == 1
    assert (await post(node.url, "/api/v1/signup/confirm", {"code": code})).status == 200
    await eventually(lambda: _empty(redis), "the outbox empties")
