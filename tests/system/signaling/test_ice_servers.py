"""``session.info``'s ``ice_servers``: STUN/TURN URLs and TURN REST API credentials."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest

from core.ice_servers import IceServers, turn_credential
from tests.conftest import ClientsFactory

TURN_SECRET = "turn-secret-for-tests"
STUN = "stun:stun.example.test:3478"
TURN_UDP = "turn:turn.example.test:3478?transport=udp"
TURN_TCP = "turns:turn.example.test:5349?transport=tcp"


def test_credential_is_base64_hmac_sha1_of_the_username() -> None:
    # The TURN REST API draft's scheme, as coturn's use-auth-secret checks it.
    digest = hmac.new(b"north", b"1700000000:family:F1", hashlib.sha1).digest()
    assert turn_credential("north", "1700000000:family:F1") == base64.b64encode(digest).decode()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="turn-secret"):
        IceServers(turn_urls=(TURN_UDP,))
    with pytest.raises(ValueError, match="bad STUN/TURN URL"):
        IceServers(stun_urls=("http://stun.example.test",))
    with pytest.raises(ValueError, match="stun-url"):
        IceServers(stun_urls=(TURN_UDP,), turn_secret="s")
    servers = IceServers((STUN,), (TURN_UDP,), TURN_SECRET).for_subject("tablet", "R1", now=1000)
    assert [s.as_json() for s in servers][1]["username"] == f"{1000 + 86400}:tablet:R1"


async def test_session_info_hands_out_servers_with_24h_turn_credentials(
    clients_on: ClientsFactory,
) -> None:
    clients = await clients_on(
        stun_urls=[STUN], turn_urls=[TURN_UDP, TURN_TCP], turn_secret=TURN_SECRET
    )
    for role, subject in (("family", "F1"), ("tablet", "R1"), ("monitor", "S1")):
        client = await clients.connect(role, subject)
        before = time.time()
        info = await client.request("session.info")
        stun, turn = info["ice_servers"]
        assert stun == {"urls": [STUN]}
        assert turn["urls"] == [TURN_UDP, TURN_TCP]
        expiry, named_role, named_subject = turn["username"].split(":")
        assert (named_role, named_subject) == (role, subject)
        assert before + 86400 - 5 <= int(expiry) <= time.time() + 86400
        expected = hmac.new(TURN_SECRET.encode(), turn["username"].encode(), hashlib.sha1)
        assert base64.b64decode(turn["credential"]) == expected.digest()


async def test_no_servers_configured_means_an_empty_list(clients_on: ClientsFactory) -> None:
    clients = await clients_on()
    info = await (await clients.connect("family", "F1")).request("session.info")
    assert info["ice_servers"] == []
