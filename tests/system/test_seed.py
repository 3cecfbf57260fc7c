"""Seed validation (field named, nothing partial) and idempotency, in-process and via the CLI."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from billing_hooks import Ledger
from core.embedded_redis import EmbeddedRedis
from tests.seeds import standard_seed_data
from visitation.seed import SeedError, apply_seed, parse_seed


async def snapshot(redis: Redis) -> dict[bytes, Any]:
    """Every key with its value, for comparing whole databases."""
    out: dict[bytes, Any] = {}
    for key in sorted(await redis.keys("*")):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            out[key] = await redis.get(key)
        elif kind == "hash":
            out[key] = await redis.hgetall(key)
        elif kind == "set":
            out[key] = sorted(await redis.smembers(key))
        elif kind == "list":
            out[key] = await redis.lrange(key, 0, -1)
    return out


async def test_seed_is_idempotent(redis: Redis) -> None:
    text = json.dumps(standard_seed_data())
    first = await apply_seed(redis, parse_seed(text))
    assert "F1" in first.opening_deposits
    before = await snapshot(redis)
    second = await apply_seed(redis, parse_seed(text))
    assert await snapshot(redis) == before
    assert "F1" in second.balances_kept and not second.opening_deposits
    entries = await Ledger(redis).entries("F1")
    assert [(e.kind, e.amount_cents, e.balance_cents) for e in entries] == [("deposit", 1000, 1000)]


async def test_opening_balance_is_a_ledger_deposit_not_an_overwrite(redis: Redis) -> None:
    data = standard_seed_data()
    await apply_seed(redis, parse_seed(json.dumps(data)))
    await Ledger(redis).charge("F1", 300, "some-call")
    data["families"][0]["balance_cents"] = 5000  # a later seed must not reset a live balance
    await apply_seed(redis, parse_seed(json.dumps(data)))
    assert (await Ledger(redis).balance("F1")).balance_cents == 700
    # The stored profile holds no money: the ledger is the only balance.
    assert json.loads(await redis.get("family:F1") or "{}")["balance_cents"] == 0


def broken(path: list[str | int], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(standard_seed_data())
    target: Any = data
    for part in path[:-1]:
        target = target[part]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


CASES = [
    (["facilities", 0, "rate_cents_per_minute"], -5, "facilities[0].rate_cents_per_minute"),
    (["facilities", 0, "rate_cents_per_minute"], "16", "facilities[0].rate_cents_per_minute"),
    (["facilities", 0, "rate_cents_per_minute"], 16.5, "facilities[0].rate_cents_per_minute"),
    (["facilities", 0, "timezone"], "Mars/Olympus", "facilities[0].timezone"),
    (["facilities", 0, "type"], "spaceport", "facilities[0].type"),
    (
        ["facilities", 0, "calling_hours", 0, "start"],
        "25:00",
        "facilities[0].calling_hours[0].start",
    ),
    (
        ["facilities", 0, "calling_hours", 0, "days"],
        "mon-funday",
        "facilities[0].calling_hours[0].days",
    ),
    (["facilities", 0, "name"], KeyError, "facilities[0].name"),
    (["residents", 1, "facility_id"], "NOPE", "residents[1].facility_id"),
    (["families", 0, "balance_cents"], -1, "families[0].balance_cents"),
    (["families", 0, "verified"], "yes", "families[0].verified"),
    (["families", 0, "blocks"], ["NOPE"], "families[0].blocks[0]"),
    (["contacts", 0, "status"], "maybe", "contacts[0].status"),
    (["contacts", 0, "family_id"], "NOPE", "contacts[0].family_id"),
    (["contacts", 0, "resident_id"], "NOPE", "contacts[0].resident_id"),
    (["staff", 0, "facility_ids"], ["NOPE"], "staff[0].facility_ids[0]"),
    (["staff", 0, "role"], "warden", "staff[0].role"),
    (["families", 0, "surprise"], 1, "families[0].surprise"),
]


@pytest.mark.parametrize(("path", "value", "field"), CASES)
async def test_invalid_seed_names_the_field_and_writes_nothing(
    redis: Redis, path: list[str | int], value: Any, field: str
) -> None:
    with pytest.raises(SeedError) as err:
        await apply_seed(redis, parse_seed(json.dumps(broken(path, value))))
    assert str(err.value).startswith(field), str(err.value)
    assert await redis.dbsize() == 0


async def test_rate_over_the_regulatory_cap_names_both(redis: Redis) -> None:
    data = broken(["facilities", 1, "rate_cents_per_minute"], 22)  # jail_small cap is 21
    with pytest.raises(SeedError) as err:
        await apply_seed(redis, parse_seed(json.dumps(data)))
    message = str(err.value)
    assert "facilities[1].rate_cents_per_minute" in message
    assert "22" in message and "21" in message and "jail_small" in message
    assert await redis.dbsize() == 0


async def test_duplicate_ids_are_refused(redis: Redis) -> None:
    data = standard_seed_data()
    data["residents"].append(dict(data["residents"][0]))
    with pytest.raises(SeedError, match="residents: id 'R1' appears more than once"):
        await apply_seed(redis, parse_seed(json.dumps(data)))
    assert await redis.dbsize() == 0


async def test_references_may_point_at_earlier_seeds(redis: Redis) -> None:
    await apply_seed(redis, parse_seed(json.dumps(standard_seed_data())))
    extra = {"contacts": [{"resident_id": "R2", "family_id": "FATTY", "status": "pending"}]}
    report = await apply_seed(redis, parse_seed(json.dumps(extra)))
    assert report.counts["contacts"] == 1
    assert await redis.exists("contact:R2:FATTY")


def test_malformed_json_says_where() -> None:
    with pytest.raises(SeedError, match="invalid JSON at line 1 column"):
        parse_seed('{"facilities": [')


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "visitation.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(env or {})},
        cwd=cwd,
    )


async def test_cli_seed_against_a_redis_url(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    good = tmp_path / "seed.json"
    good.write_text(json.dumps(standard_seed_data()))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(broken(["contacts", 2, "family_id"], "GHOST")))
    result = run_cli("seed", str(bad), "--redis-url", redis_url)
    assert result.returncode == 1
    assert "contacts[2].family_id: unknown family 'GHOST'" in result.stderr
    assert "nothing was written" in result.stderr
    assert await redis.dbsize() == 0
    result = run_cli("seed", str(good), "--redis-url", redis_url)
    assert result.returncode == 0, result.stderr
    assert "seeded 2 facilities, 3 residents" in result.stdout
    before = await snapshot(redis)
    assert run_cli("seed", str(good), "--redis-url", redis_url).returncode == 0
    assert await snapshot(redis) == before


def test_cli_seed_with_embedded_redis(tmp_path: Path) -> None:
    """Without --redis-url, seed starts the data dir's embedded Redis, and stops what it started."""
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(standard_seed_data()))
    data_dir = tmp_path / "var"
    # A relative data dir, like the default ./var of `make run`.
    result = run_cli("seed", str(seed), "--data-dir", "var", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert EmbeddedRedis(data_dir).aof_files()  # its AOF, under redis/appendonlydir/
    again = run_cli("seed", str(seed), "--data-dir", "var", cwd=tmp_path)
    assert "left unchanged" in again.stdout  # the data persisted in the AOF


def test_cli_token_round_trip(tmp_path: Path) -> None:
    env = {"VISITATION_SECRET": ""}
    result = run_cli("token", "family", "F1", "--ttl", "60", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 0 and result.stdout.count(".") == 2
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert run_cli("token", "janitor", "X", "--data-dir", str(tmp_path), env=env).returncode == 2
    assert (
        run_cli("token", "family", "F1", "--ttl", "0", "--data-dir", str(tmp_path)).returncode == 2
    )
