"""All Redis access for sign-in credentials: families' e-mail and password, staff passwords and
their TOTP second factor.

Keys (:mod:`accounts.redis_keys`):

- ``login:email:{email}`` -> family id: the e-mail index (e-mails normalised to lower case by
  :func:`normalise_email`, which refuses what is no e-mail: NUL and control characters, over
  254 characters);
- ``login:family:{id}`` (hash): ``email``, ``password`` (Argon2id, never the password),
  ``email_verified`` (``0``/``1``), ``phone``;
- ``login:staff:{id}`` (hash): ``password``, ``totp_pending`` (a secret being enrolled),
  ``totp`` (the enabled secret), both sealed (:mod:`accounts.sealed`: a copy of the database
  gives no second factor away), and ``totp_step`` (the last time step used, so a code is
  accepted once).

A family's profile (name, verified, blocks) stays a :class:`core.domain.Family` record in the
directory; a sign-up writes both in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError
from redis.typing import EncodableT, FieldT

from accounts.passwords import SecretHasher, check_password
from accounts.redis_keys import LOGIN_EMAIL, LOGIN_FAMILY, LOGIN_STAFF
from accounts.sealed import SecretSeal, is_sealed
from core.directory import Directory
from core.domain import Family
from core.lua import script
from core.redis_text import text

MAX_EMAIL_CHARS: Final = 254  # RFC 5321's limit for a path
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+$")

_FAMILY_LOGIN: Final = script(__package__, "family_login.lua")
_USE_STEP: Final = script(__package__, "totp_use_step.lua")
_ENABLE_TOTP: Final = script(__package__, "totp_enable.lua")
# What family_login.lua reads a family's credentials hash as: ARGV[1] .. <family id>.
LOGIN_FAMILY_PREFIX: Final = LOGIN_FAMILY.pattern.removesuffix("{family_id}")
# The names these keys had here before accounts.redis_keys (tests/system/visits still imports one).
email_key: Final = LOGIN_EMAIL
family_key: Final = LOGIN_FAMILY
staff_key: Final = LOGIN_STAFF


class InvalidEmail(ValueError):
    """What was given as an e-mail is none; the message says why."""


def normalise_email(raw: str) -> str:
    """The address as stored and compared: stripped, lower case; InvalidEmail if it is none."""
    if "\x00" in raw:
        raise InvalidEmail("the e-mail must not contain a NUL character")
    address = raw.strip().lower()
    if len(address) > MAX_EMAIL_CHARS:
        raise InvalidEmail(f"the e-mail must have at most {MAX_EMAIL_CHARS} characters")
    if not _EMAIL.match(address):
        raise InvalidEmail("the e-mail must look like name@example.org")
    return address


@dataclass(frozen=True)
class FamilyLogin:
    family_id: str
    password_hash: str | None


class Credentials:
    """Credentials of families and staff; ``hasher`` hashes what is set in clear, ``seal``
    seals TOTP seeds (:mod:`accounts.sealed`; without one, a store for passwords only)."""

    def __init__(self, redis: Redis, hasher: SecretHasher, seal: SecretSeal | None = None) -> None:
        self._redis = redis
        self.hasher = hasher
        self._seal = seal
        self._family_login = redis.register_script(_FAMILY_LOGIN)
        self._use_step = redis.register_script(_USE_STEP)
        self._enable_totp = redis.register_script(_ENABLE_TOTP)

    # -- families ------------------------------------------------------------------------------

    async def register_family(
        self, family: Family, email: str, password_hash: str, phone: str | None = None
    ) -> bool:
        """A new family with this e-mail, in one transaction: its directory record, the index
        and its credentials. False (and nothing written) if the e-mail is taken."""
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(LOGIN_EMAIL(email))
                if await pipe.exists(LOGIN_EMAIL(email)):
                    return False
                pipe.multi()  # type: ignore[no-untyped-call,unused-ignore]
                Directory.queue_family(pipe, family)
                pipe.set(LOGIN_EMAIL(email), family.id)
                fields: dict[FieldT, EncodableT] = {
                    "email": email,
                    "password": password_hash,
                    "email_verified": "0",
                }
                if phone:
                    fields["phone"] = phone
                pipe.hset(LOGIN_FAMILY(family.id), mapping=fields)
                await pipe.execute()
            except WatchError:  # registered by someone else meanwhile
                return False
        return True

    async def family_login(self, email: str) -> FamilyLogin | None:
        """The family of ``email`` and its password hash (one round trip), or None."""
        found = await self._family_login(keys=[LOGIN_EMAIL(email)], args=[LOGIN_FAMILY_PREFIX])
        if not found:
            return None
        family_id, encoded = found
        return FamilyLogin(text(family_id), None if encoded is None else text(encoded))

    async def family_of(self, email: str) -> str | None:
        raw = await self._redis.get(LOGIN_EMAIL(email))
        return None if raw is None else text(raw)

    async def email_of(self, family_id: str) -> str | None:
        raw = await self._redis.hget(LOGIN_FAMILY(family_id), "email")
        return None if raw is None else text(raw)

    async def email_verified(self, family_id: str) -> bool:
        raw = await self._redis.hget(LOGIN_FAMILY(family_id), "email_verified")
        return raw is not None and text(raw) == "1"

    async def confirm_email(self, family_id: str) -> None:
        await self._redis.hset(LOGIN_FAMILY(family_id), "email_verified", "1")

    async def set_family_password_hash(self, family_id: str, password_hash: str) -> None:
        await self._redis.hset(LOGIN_FAMILY(family_id), "password", password_hash)

    async def delete_family(self, family_id: str) -> None:
        """Forget a family's credentials and its e-mail (an account closed)."""
        email = await self.email_of(family_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(LOGIN_FAMILY(family_id))
            if email is not None:
                pipe.delete(LOGIN_EMAIL(email))
            await pipe.execute()

    @staticmethod
    def queue_family_login(
        pipe: Pipeline,
        family_id: str,
        email: str,
        password_hash: str | None,
        previous: str | None = None,
    ) -> None:
        """A seed's e-mail (verified: an operator wrote it) and password hash, on ``pipe``;
        the ``previous`` e-mail of this family leaves the index."""
        if previous is not None and previous != email:
            pipe.delete(LOGIN_EMAIL(previous))
        pipe.set(LOGIN_EMAIL(email), family_id)
        fields: dict[FieldT, EncodableT] = {"email": email, "email_verified": "1"}
        if password_hash is not None:
            fields["password"] = password_hash
        pipe.hset(LOGIN_FAMILY(family_id), mapping=fields)

    async def family_password_hash(self, family_id: str) -> str | None:
        raw = await self._redis.hget(LOGIN_FAMILY(family_id), "password")
        return None if raw is None else text(raw)

    # -- staff ---------------------------------------------------------------------------------

    async def staff_password_hash(self, staff_id: str) -> str | None:
        raw = await self._redis.hget(LOGIN_STAFF(staff_id), "password")
        return None if raw is None else text(raw)

    async def set_staff_password(self, staff_id: str, password: str) -> None:
        """Set a staff member's password (PasswordRefused if it breaks a rule; the staff id
        counts as its name)."""
        check_password(password, staff_id)
        await self.set_staff_password_hash(staff_id, await self.hasher.hash(password))

    async def set_staff_password_hash(self, staff_id: str, password_hash: str) -> None:
        await self._redis.hset(LOGIN_STAFF(staff_id), "password", password_hash)

    @staticmethod
    def queue_staff_password(pipe: Pipeline, staff_id: str, password_hash: str) -> None:
        pipe.hset(LOGIN_STAFF(staff_id), "password", password_hash)

    async def delete_staff(self, staff_id: str) -> None:
        """Forget a staff member's password and second factor."""
        await self._redis.delete(LOGIN_STAFF(staff_id))

    async def begin_totp(self, staff_id: str, secret: str) -> None:
        """A secret to enrol; the one enabled (if any) stays until :meth:`enable_totp`."""
        sealed = self._sealer().seal(secret, staff_id)
        await self._redis.hset(LOGIN_STAFF(staff_id), "totp_pending", sealed)

    async def pending_totp(self, staff_id: str) -> str | None:
        raw = await self._redis.hget(LOGIN_STAFF(staff_id), "totp_pending")
        return None if raw is None else self._sealer().open(text(raw), staff_id)

    async def enable_totp(self, staff_id: str, secret: str) -> bool:
        """Turn ``secret`` on; False if it is no longer the pending one."""
        raw = await self._redis.hget(LOGIN_STAFF(staff_id), "totp_pending")
        if raw is None or self._sealer().open(text(raw), staff_id) != secret:
            return False
        # The script turns on exactly the sealed value read, if it is still the pending one.
        return bool(await self._enable_totp(keys=[LOGIN_STAFF(staff_id)], args=[raw]))

    async def totp_secret(self, staff_id: str) -> str | None:
        """The enabled second factor's secret, or None (no second factor). One stored before
        sealing is sealed now (unless it changed meanwhile)."""
        key = LOGIN_STAFF(staff_id)
        raw = await self._redis.hget(key, "totp")
        if raw is None:
            return None
        stored = text(raw)
        secret = self._sealer().open(stored, staff_id)
        if not is_sealed(stored):
            await self._seal_in_place(key, stored, self._sealer().seal(secret, staff_id))
        return secret

    async def has_totp(self, staff_id: str) -> bool:
        """Whether a second factor is on (without opening it)."""
        return bool(await self._redis.hexists(LOGIN_STAFF(staff_id), "totp"))

    async def reset_totp(self, staff_id: str) -> None:
        """Turn the second factor off (and drop an enrolment under way)."""
        await self._redis.hdel(LOGIN_STAFF(staff_id), "totp", "totp_pending", "totp_step")

    async def _seal_in_place(self, key: str, plain: str, sealed: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                current = await pipe.hget(key, "totp")
                if current is None or text(current) != plain:
                    return  # enrolled anew meanwhile: that one is sealed already
                pipe.multi()  # type: ignore[no-untyped-call,unused-ignore]
                pipe.hset(key, "totp", sealed)
                await pipe.execute()
            except WatchError:
                return

    def _sealer(self) -> SecretSeal:
        if self._seal is None:
            raise RuntimeError("TOTP seeds are sealed: this credential store needs the seal")
        return self._seal

    async def use_totp_step(self, staff_id: str, step: int) -> bool:
        """Record that the code of time step ``step`` was used; False if it (or a later one)
        was used before: a code signs in once."""
        return bool(await self._use_step(keys=[LOGIN_STAFF(staff_id)], args=[step]))
