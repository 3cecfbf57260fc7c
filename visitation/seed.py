"""``visitation seed``: validate a seed file whole, then write it in one transaction."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from redis.asyncio import Redis

from billing_hooks import Ledger, RateCapError, check_rate, load_caps
from core.directory import Directory
from core.domain import SeedFile

OPENING_REF = "seed:opening-balance"


class SeedError(ValueError):
    """The seed is invalid; the message names the bad field. Nothing was written."""


@dataclass
class SeedReport:
    counts: dict[str, int] = field(default_factory=dict)
    opening_deposits: list[str] = field(default_factory=list)
    balances_kept: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{n} {kind}" for kind, n in self.counts.items()]
        lines = ["seeded " + ", ".join(parts)]
        if self.opening_deposits:
            lines.append("opening balances deposited for: " + ", ".join(self.opening_deposits))
        if self.balances_kept:
            lines.append(
                "opening balance already on the ledger, left unchanged for: "
                + ", ".join(self.balances_kept)
            )
        return "\n".join(lines)


def _loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_seed(text: str) -> SeedFile:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SeedError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    try:
        return SeedFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise SeedError(f"{_loc(first['loc']) or 'seed'}: {first['msg']}{suffix}") from exc


def _no_duplicates(kind: str, ids: list[str]) -> None:
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    if dupes:
        raise SeedError(f"{kind}: id {dupes[0]!r} appears more than once")


async def _check_refs(seed: SeedFile, directory: Directory) -> None:
    facilities = {f.id for f in seed.facilities}
    residents = {r.id for r in seed.residents}
    families = {f.id for f in seed.families}

    async def known(kind: str, record_id: str, in_file: set[str]) -> bool:
        return record_id in in_file or await directory.exists(kind, record_id)

    for i, r in enumerate(seed.residents):
        if not await known("facility", r.facility_id, facilities):
            raise SeedError(f"residents[{i}].facility_id: unknown facility {r.facility_id!r}")
    for i, fam in enumerate(seed.families):
        for j, blocked in enumerate(fam.blocks):
            if blocked != "all" and not await known("facility", blocked, facilities):
                raise SeedError(f"families[{i}].blocks[{j}]: unknown facility {blocked!r}")
    for i, c in enumerate(seed.contacts):
        if not await known("resident", c.resident_id, residents):
            raise SeedError(f"contacts[{i}].resident_id: unknown resident {c.resident_id!r}")
        if not await known("family", c.family_id, families):
            raise SeedError(f"contacts[{i}].family_id: unknown family {c.family_id!r}")
    for i, s in enumerate(seed.staff):
        for j, fid in enumerate(s.facility_ids):
            if fid != "*" and not await known("facility", fid, facilities):
                raise SeedError(f"staff[{i}].facility_ids[{j}]: unknown facility {fid!r}")


async def validate_seed(seed: SeedFile, directory: Directory) -> None:
    _no_duplicates("facilities", [f.id for f in seed.facilities])
    _no_duplicates("residents", [r.id for r in seed.residents])
    _no_duplicates("families", [f.id for f in seed.families])
    _no_duplicates("staff", [s.id for s in seed.staff])
    _no_duplicates("contacts", [f"{c.resident_id}/{c.family_id}" for c in seed.contacts])
    caps = load_caps()
    for i, f in enumerate(seed.facilities):
        try:
            check_rate(f.id, f.type, f.rate_cents_per_minute, caps)
        except RateCapError as exc:
            raise SeedError(f"facilities[{i}].rate_cents_per_minute: {exc}") from exc
    await _check_refs(seed, directory)


async def apply_seed(redis: Redis, seed: SeedFile) -> SeedReport:
    """Validate, then write everything in one MULTI/EXEC: all of it lands or none does."""
    directory = Directory(redis)
    await validate_seed(seed, directory)
    ledger = Ledger(redis)
    deposits: list[str] = []
    async with redis.pipeline(transaction=True) as pipe:
        for facility in seed.facilities:
            Directory.queue_facility(pipe, facility)
        for resident in seed.residents:
            Directory.queue_resident(pipe, resident)
        for family in seed.families:
            Directory.queue_family(pipe, family)
            await ledger.queue_deposit(pipe, family.id, family.balance_cents, OPENING_REF)
            deposits.append(family.id)
        for contact in seed.contacts:
            Directory.queue_contact(pipe, contact)
        for staff in seed.staff:
            Directory.queue_staff(pipe, staff)
        results = await pipe.execute()
    report = SeedReport(
        counts={
            "facilities": len(seed.facilities),
            "residents": len(seed.residents),
            "families": len(seed.families),
            "contacts": len(seed.contacts),
            "staff": len(seed.staff),
        }
    )
    script_results = [r for r in results if isinstance(r, list)]
    for family_id, result in zip(deposits, script_results, strict=True):
        status = result[0].decode() if isinstance(result[0], bytes) else result[0]
        (report.opening_deposits if status == "ok" else report.balances_kept).append(family_id)
    return report


async def seed_file(redis: Redis, path: Path) -> SeedReport:
    try:
        text = await asyncio.to_thread(path.read_text)
    except OSError as exc:
        raise SeedError(f"cannot read {path}: {exc.strerror}") from exc
    return await apply_seed(redis, parse_seed(text))
