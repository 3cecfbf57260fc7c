"""Seed files carry sign-in credentials: stored only as hashes, idempotently, all or nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from accounts.credentials import Credentials
from accounts.passwords import SecretHasher
from accounts.redis_keys import LOGIN_EMAIL, LOGIN_FAMILY, LOGIN_STAFF
from core.directory import Directory
from core.redis_keys import FAMILY, STAFF
from tests.seeds import SIGN_IN, standard_seed_data
from tests.system.accounts.conftest import lasting
from visitation import seed as seed_module
from visitation.seed import SeedError, apply_seed, parse_seed
from visitation.serve import demo_seed_text


def seed_of(data: dict[str, Any]) -> Any:
    return parse_seed(json.dumps(data))


async def test_seed_credentials_are_hashes_beside_the_profile(redis: Redis, seeded: object) -> None:
    profile = await redis.get(FAMILY("F1"))
    assert profile is not None
    assert b"password" not in profile and b"@" not in profile
    assert await redis.get(LOGIN_EMAIL(SIGN_IN["F1"]["email"])) == b"F1"
    stored = await redis.hgetall(LOGIN_FAMILY("F1"))
    assert stored[b"email_verified"] == b"1"  # an operator wrote it
    assert stored[b"password"].startswith(b"$argon2id$")
    hasher = SecretHasher()
    assert await hasher.verify(stored[b"password"].decode(), SIGN_IN["F1"]["password"])
    staff = await redis.hget(LOGIN_STAFF("S1"), "password")
    assert staff is not None and await hasher.verify(staff.decode(), SIGN_IN["S1"]["password"])
    assert b"password" not in (await redis.get(STAFF("S1")) or b"")
    assert await redis.hget(LOGIN_STAFF("I1"), "password") is None


async def test_loading_the_same_seed_again_changes_nothing(redis: Redis, seeded: object) -> None:
    before = await lasting(redis)
    await apply_seed(redis, seed_of(standard_seed_data()))
    assert await lasting(redis) == before
    seed_module._hashes.clear()  # a new process: verifies the stored hashes instead
    await apply_seed(redis, seed_of(standard_seed_data()))
    assert await lasting(redis) == before


async def test_a_changed_password_or_email_is_stored(redis: Redis, seeded: object) -> None:
    data = standard_seed_data()
    [f1] = [f for f in data["families"] if f["id"] == "F1"]
    f1["email"], f1["password"] = "Moved.Family@Example.org", "a moved pass phrase"
    await apply_seed(redis, seed_of(data))
    assert await redis.get(LOGIN_EMAIL(SIGN_IN["F1"]["email"])) is None
    assert await redis.get(LOGIN_EMAIL("moved.family@example.org")) == b"F1"
    credentials = Credentials(redis, SecretHasher())
    encoded = await credentials.family_password_hash("F1")
    assert await credentials.hasher.verify(encoded, "a moved pass phrase")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"password": "short"}, "families[0].password: the password must have at least 10"),
        ({"password": "password123"}, "families[0].password: the password is a well-known"),
        ({"email": "not an email"}, "families[0].email: the e-mail must look like"),
        ({"email": "x\x00@example.org"}, "families[0].email: the e-mail must not contain a NUL"),
        ({"email": None, "password": "a long pass phrase"}, "families[0].password: a family"),
        (
            {"email": SIGN_IN["F2"]["email"].upper()},
            "families[1].email: 'family.two@example.org' appears",
        ),
    ],
)
async def test_bad_seed_credentials_write_nothing(
    redis: Redis, change: dict[str, Any], message: str
) -> None:
    data = standard_seed_data()
    data["families"][0] = {**data["families"][0], **change}
    if data["families"][0].get("email") is None:
        data["families"][0].pop("email", None)
    with pytest.raises(SeedError) as refused:
        await apply_seed(redis, seed_of(data))
    assert str(refused.value).startswith(message), str(refused.value)
    assert await redis.keys("*") == []


async def test_an_email_of_another_family_in_redis_is_refused(redis: Redis, seeded: object) -> None:
    before = await lasting(redis)
    other = {
        "families": [
            {"id": "FNEW", "name": "New", "email": SIGN_IN["F1"]["email"], "password": "x" * 12}
        ]
    }
    with pytest.raises(SeedError, match=r"families\[0\].email: .* another family"):
        await apply_seed(redis, seed_of(other))
    assert await lasting(redis) == before


async def test_a_refused_staff_password_names_its_field(redis: Redis) -> None:
    data = standard_seed_data()
    data["staff"][0] = {**data["staff"][0], "password": "S1"}
    with pytest.raises(SeedError, match=r"^staff\[0\].password: "):
        await apply_seed(redis, seed_of(data))
    assert await redis.keys("*") == []


async def test_the_demo_accounts_sign_in(redis: Redis) -> None:
    seed = parse_seed(demo_seed_text())
    await apply_seed(redis, seed)
    credentials = Credentials(redis, SecretHasher())
    directory = Directory(redis)
    for family in seed.families:
        assert family.email and family.password
        login = await credentials.family_login(family.email)
        assert login is not None and login.family_id == family.id
        assert await credentials.hasher.verify(login.password_hash, family.password)
        stored = await directory.family(family.id)
        assert stored == family.profile().model_copy(update={"balance_cents": 0})
    for staff in seed.staff:
        assert staff.password
        encoded = await credentials.staff_password_hash(staff.id)
        assert await credentials.hasher.verify(encoded, staff.password)
