"""All Redis access for domain records (facilities, residents, families, contacts, staff); their
keys are :mod:`core.redis_keys`'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, cast

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from core.domain import Contact, Facility, Family, Resident, Staff
from core.lua import script
from core.redis_keys import (
    CONTACT,
    CONTACT_REQUESTS,
    CONTACTS_FOR,
    CONTACTS_OF,
    FACILITIES,
    FACILITY,
    FAMILY,
    RESIDENT,
    RESIDENTS_IN,
    STAFF,
    STAFF_INDEX,
)
from core.redis_text import text

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ContactRequest:
    """A contact a family asked for, with when it asked (its status may have changed since)."""

    contact: Contact
    requested_at: float


class Directory:
    """Reads and writes domain records stored as JSON values."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._request_contact = redis.register_script(script(__package__, "contact_request.lua"))

    async def _get_many(self, keys: list[str], model: type[M]) -> list[M]:
        raws = await self._redis.mget(keys) if keys else []
        return [model.model_validate_json(raw) for raw in raws if raw is not None]

    async def _get(self, key: str, model: type[M]) -> M | None:
        raw = await self._redis.get(key)
        return None if raw is None else model.model_validate_json(raw)

    async def facility(self, facility_id: str) -> Facility | None:
        return await self._get(FACILITY(facility_id), Facility)

    async def resident(self, resident_id: str) -> Resident | None:
        return await self._get(RESIDENT(resident_id), Resident)

    async def family(self, family_id: str) -> Family | None:
        return await self._get(FAMILY(family_id), Family)

    async def contact(self, resident_id: str, family_id: str) -> Contact | None:
        return await self._get(CONTACT(resident_id, family_id), Contact)

    async def staff(self, staff_id: str) -> Staff | None:
        return await self._get(STAFF(staff_id), Staff)

    async def contacts_of(self, resident_id: str) -> list[Contact]:
        family_ids = sorted(text(m) for m in await self._redis.smembers(CONTACTS_OF(resident_id)))
        return await self._get_many([CONTACT(resident_id, fid) for fid in family_ids], Contact)

    async def contacts_for(self, family_id: str) -> list[Contact]:
        """The family's contacts (every status), by resident id."""
        resident_ids = sorted(text(m) for m in await self._redis.smembers(CONTACTS_FOR(family_id)))
        keys = [CONTACT(rid, family_id) for rid in resident_ids]
        return await self._get_many(keys, Contact)

    async def facilities(self) -> list[Facility]:
        """Every facility, by name (how people pick one)."""
        keys = [FACILITY(fid) for fid in await self.all_facility_ids()]
        return sorted(await self._get_many(keys, Facility), key=lambda f: (f.name, f.id))

    async def residents_in(self, facility_id: str) -> list[Resident]:
        ids = sorted(text(m) for m in await self._redis.smembers(RESIDENTS_IN(facility_id)))
        return await self._get_many([RESIDENT(rid) for rid in ids], Resident)

    async def request_contact(
        self, resident: Resident, family_id: str, at: float
    ) -> tuple[Contact, bool]:
        """A family asks to become ``resident``'s contact: a pending contact, queued for its
        facility's admins, in one step. Returns the contact and whether it is new (an existing
        contact, whatever its status, is returned unchanged)."""
        contact = Contact(resident_id=resident.id, family_id=family_id, status="pending")
        keys = [
            CONTACT(resident.id, family_id),
            CONTACTS_OF(resident.id),
            CONTACTS_FOR(family_id),
            CONTACT_REQUESTS(resident.facility_id),
        ]
        args = [contact.model_dump_json(), family_id, resident.id, repr(at)]
        existing = await self._request_contact(keys=keys, args=args)
        if existing is None:
            return contact, True
        return Contact.model_validate_json(existing), False

    async def contact_requests(self, facility_id: str) -> list[ContactRequest]:
        """Every contact request made for ``facility_id``'s residents, oldest first."""
        entries = await self._redis.zrange(CONTACT_REQUESTS(facility_id), 0, -1, withscores=True)
        pairs = cast(list[tuple[bytes, float]], entries)  # ("resident:family", when)
        keys = [CONTACT(*text(member).split(":", 1)) for member, _ in pairs]
        raws = await self._redis.mget(keys) if keys else []
        return [
            ContactRequest(Contact.model_validate_json(raw), float(at))
            for raw, (_, at) in zip(raws, pairs, strict=True)
            if raw is not None
        ]

    async def all_facility_ids(self) -> list[str]:
        return sorted(text(m) for m in await self._redis.smembers(FACILITIES()))

    async def exists(self, kind: str, record_id: str) -> bool:
        key = {"facility": FACILITY, "resident": RESIDENT, "family": FAMILY}[kind]
        return bool(await self._redis.exists(key(record_id)))

    async def contact_facilities(self, family_id: str) -> set[str]:
        """The facilities where the family has a contact or a contact request (any status)."""
        resident_ids = [text(m) for m in await self._redis.smembers(CONTACTS_FOR(family_id))]
        residents = await self._get_many([RESIDENT(r) for r in resident_ids], Resident)
        return {resident.facility_id for resident in residents}

    async def all_staff(self) -> list[Staff]:
        """Every staff member, by id."""
        ids = sorted(text(m) for m in await self._redis.smembers(STAFF_INDEX()))
        return await self._get_many([STAFF(sid) for sid in ids], Staff)

    async def index_staff(self) -> int:
        """Add staff stored before the index existed to it (one scan, at a node's start);
        how many were missing."""
        found = [
            parsed[0]
            async for key in self._redis.scan_iter(match=STAFF.glob(), count=1000)
            if (parsed := STAFF.parse(text(key))) is not None
        ]
        return int(await self._redis.sadd(STAFF_INDEX(), *found)) if found else 0

    async def save_staff(self, staff: Staff) -> None:
        """Add or change a staff member (its role and facilities)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            self.queue_staff(pipe, staff)
            await pipe.execute()

    async def delete_staff(self, staff_id: str) -> bool:
        """Remove a staff member; whether there was one."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(STAFF(staff_id))
            pipe.srem(STAFF_INDEX(), staff_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def save_family(self, family: Family) -> None:
        """Store a family profile (settings, blocks); the balance lives in the ledger."""
        await self._redis.set(FAMILY(family.id), _family_json(family))

    # -- writes queued on a MULTI pipeline, so a whole seed lands or nothing does --

    @staticmethod
    def queue_facility(pipe: Pipeline, facility: Facility) -> None:
        pipe.set(FACILITY(facility.id), facility.model_dump_json())
        pipe.sadd(FACILITIES(), facility.id)

    @staticmethod
    def queue_resident(pipe: Pipeline, resident: Resident) -> None:
        pipe.set(RESIDENT(resident.id), resident.model_dump_json())
        pipe.sadd(RESIDENTS_IN(resident.facility_id), resident.id)

    @staticmethod
    def queue_family(pipe: Pipeline, family: Family) -> None:
        pipe.set(FAMILY(family.id), _family_json(family))

    @staticmethod
    def queue_contact(pipe: Pipeline, contact: Contact) -> None:
        pipe.set(CONTACT(contact.resident_id, contact.family_id), contact.model_dump_json())
        pipe.sadd(CONTACTS_OF(contact.resident_id), contact.family_id)
        pipe.sadd(CONTACTS_FOR(contact.family_id), contact.resident_id)

    @staticmethod
    def queue_staff(pipe: Pipeline, staff: Staff) -> None:
        # Only a Staff's own fields, even from a subclass (a seed's, which may carry a password).
        pipe.set(STAFF(staff.id), staff.model_dump_json(include=set(Staff.model_fields)))
        pipe.sadd(STAFF_INDEX(), staff.id)


def _family_json(family: Family) -> str:
    # The opening balance is a ledger deposit, never a stored number.
    # Only a Family's own fields, even from a subclass (a seed's, with an e-mail and password).
    opening = family.model_copy(update={"balance_cents": 0})
    return opening.model_dump_json(include=set(Family.model_fields))
