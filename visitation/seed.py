"""``visitation seed``: validate a seed file whole, then write it in one transaction.

A seed family may carry ``"email"`` and ``"password"``, a seed staff member ``"password"``
(PROTOCOL v1.2): the e-mail goes to the sign-in index (confirmed: an operator wrote it), the
password only as its Argon2id hash, never into the stored profile. Passwords follow the sign-in
rules. Loading the same file again keeps a stored hash that still matches its password, so it
changes nothing (and this process remembers the hashes it made, so it need not hash again).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from redis.asyncio import Redis

from accounts.credentials import Credentials, InvalidEmail, normalise_email
from accounts.passwords import PasswordRefused, SecretHasher, check_password
from billing_hooks import Ledger, RateCapError, check_rate, load_caps
from core.directory import Directory
from core.domain import SeedFile
from core.keyspace import VERSION_KEY
from visitation import keyspace

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


@dataclass(frozen=True)
class _FamilyLogin:
    family_id: str
    email: str
    previous: str | None  # the e-mail it had, if another
    password_hash: str | None  # None: none given, or the stored one still matches


_hashes: dict[tuple[str, str, str], str] = {}  # (kind, id, password) -> the hash made here
_default_hasher: list[SecretHasher] = []


def _hasher() -> SecretHasher:
    if not _default_hasher:
        _default_hasher.append(SecretHasher())
    return _default_hasher[0]


async def _new_hash(
    hasher: SecretHasher, kind: str, subject: str, password: str, stored: str | None
) -> str | None:
    """The hash to store for ``password``, or None if ``stored`` already matches it."""
    made = _hashes.get((kind, subject, password))
    if stored is not None and (stored == made or await hasher.verify(stored, password)):
        return None
    if made is None or hasher.needs_rehash(made):
        made = _hashes[(kind, subject, password)] = await hasher.hash(password)
    return made


def _checked(where: str, password: str, name: str) -> str:
    try:
        check_password(password, name)
    except PasswordRefused as exc:
        raise SeedError(f"{where}.password: {exc}") from None
    return password


async def _family_logins(
    seed: SeedFile, credentials: Credentials, hasher: SecretHasher
) -> list[_FamilyLogin]:
    """Validate the families' e-mails and passwords, and hash what must be stored."""
    owners: dict[str, str] = {}
    logins: list[_FamilyLogin] = []
    for i, fam in enumerate(seed.families):
        where = f"families[{i}]"
        if fam.email is None:
            if fam.password is not None:
                raise SeedError(f"{where}.password: a family signs in with an email; add one")
            continue
        try:
            email = normalise_email(fam.email)
        except InvalidEmail as exc:
            raise SeedError(f"{where}.email: {exc}") from None
        if owners.setdefault(email, fam.id) != fam.id:
            raise SeedError(f"{where}.email: {email!r} appears more than once")
        owner = await credentials.family_of(email)
        if owner is not None and owner != fam.id:
            raise SeedError(f"{where}.email: {email!r} is the e-mail of another family")
        password_hash = None
        if fam.password is not None:
            password = _checked(where, fam.password, email)
            stored = await credentials.family_password_hash(fam.id)
            password_hash = await _new_hash(hasher, "family", fam.id, password, stored)
        logins.append(
            _FamilyLogin(fam.id, email, await credentials.email_of(fam.id), password_hash)
        )
    return logins


async def _staff_hashes(
    seed: SeedFile, credentials: Credentials, hasher: SecretHasher
) -> dict[str, str]:
    hashes: dict[str, str] = {}
    for i, staff in enumerate(seed.staff):
        if staff.password is None:
            continue
        password = _checked(f"staff[{i}]", staff.password, staff.id)
        stored = await credentials.staff_password_hash(staff.id)
        made = await _new_hash(hasher, "staff", staff.id, password, stored)
        if made is not None:
            hashes[staff.id] = made
    return hashes


async def apply_seed(
    redis: Redis, seed: SeedFile, hasher: SecretHasher | None = None
) -> SeedReport:
    """Validate, then write everything in one MULTI/EXEC: all of it lands or none does."""
    directory = Directory(redis)
    await validate_seed(seed, directory)
    hasher = hasher or _hasher()
    credentials = Credentials(redis, hasher)
    logins = await _family_logins(seed, credentials, hasher)
    staff_hashes = await _staff_hashes(seed, credentials, hasher)
    ledger = Ledger(redis)
    deposits: list[str] = []
    async with redis.pipeline(transaction=True) as pipe:
        # What is written now has today's key names: no rename is left to apply to it.
        pipe.sadd(VERSION_KEY, *[rename.name for rename in keyspace.renames()])
        for facility in seed.facilities:
            Directory.queue_facility(pipe, facility)
        for resident in seed.residents:
            Directory.queue_resident(pipe, resident)
        for family in seed.families:
            Directory.queue_family(pipe, family.profile())
            await ledger.queue_deposit(pipe, family.id, family.balance_cents, OPENING_REF)
            deposits.append(family.id)
        for login in logins:
            Credentials.queue_family_login(
                pipe, login.family_id, login.email, login.password_hash, login.previous
            )
        for contact in seed.contacts:
            Directory.queue_contact(pipe, contact)
        for staff in seed.staff:
            Directory.queue_staff(pipe, staff.record())
            if staff.id in staff_hashes:
                Credentials.queue_staff_password(pipe, staff.id, staff_hashes[staff.id])
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
