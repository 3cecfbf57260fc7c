"""All Redis access for domain records (facilities, residents, families, contacts, staff)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from visitation.domain import Contact, Facility, Family, Resident, Staff
from visitation.redis_text import text

M = TypeVar("M", bound=BaseModel)


def _facility_key(facility_id: str) -> str:
    return f"facility:{facility_id}"


def _resident_key(resident_id: str) -> str:
    return f"resident:{resident_id}"


def _family_key(family_id: str) -> str:
    return f"family:{family_id}"


def _contact_key(resident_id: str, family_id: str) -> str:
    return f"contact:{resident_id}:{family_id}"


def _staff_key(staff_id: str) -> str:
    return f"staff:{staff_id}"


class Directory:
    """Reads and writes domain records stored as JSON values."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def _get(self, key: str, model: type[M]) -> M | None:
        raw = await self._redis.get(key)
        return None if raw is None else model.model_validate_json(raw)

    async def facility(self, facility_id: str) -> Facility | None:
        return await self._get(_facility_key(facility_id), Facility)

    async def resident(self, resident_id: str) -> Resident | None:
        return await self._get(_resident_key(resident_id), Resident)

    async def family(self, family_id: str) -> Family | None:
        return await self._get(_family_key(family_id), Family)

    async def contact(self, resident_id: str, family_id: str) -> Contact | None:
        return await self._get(_contact_key(resident_id, family_id), Contact)

    async def staff(self, staff_id: str) -> Staff | None:
        return await self._get(_staff_key(staff_id), Staff)

    async def contacts_of(self, resident_id: str) -> list[Contact]:
        family_ids = sorted(
            text(m) for m in await self._redis.smembers(f"contacts:of:{resident_id}")
        )
        found = [await self.contact(resident_id, fid) for fid in family_ids]
        return [c for c in found if c is not None]

    async def all_facility_ids(self) -> list[str]:
        return sorted(text(m) for m in await self._redis.smembers("facilities"))

    async def exists(self, kind: str, record_id: str) -> bool:
        key = {"facility": _facility_key, "resident": _resident_key, "family": _family_key}[kind]
        return bool(await self._redis.exists(key(record_id)))

    async def save_family(self, family: Family) -> None:
        """Store a family profile (settings, blocks); the balance lives in the ledger."""
        await self._redis.set(_family_key(family.id), _family_json(family))

    # -- writes queued on a MULTI pipeline, so a whole seed lands or nothing does --

    @staticmethod
    def queue_facility(pipe: Pipeline, facility: Facility) -> None:
        pipe.set(_facility_key(facility.id), facility.model_dump_json())
        pipe.sadd("facilities", facility.id)

    @staticmethod
    def queue_resident(pipe: Pipeline, resident: Resident) -> None:
        pipe.set(_resident_key(resident.id), resident.model_dump_json())
        pipe.sadd(f"residents:in:{resident.facility_id}", resident.id)

    @staticmethod
    def queue_family(pipe: Pipeline, family: Family) -> None:
        pipe.set(_family_key(family.id), _family_json(family))

    @staticmethod
    def queue_contact(pipe: Pipeline, contact: Contact) -> None:
        pipe.set(_contact_key(contact.resident_id, contact.family_id), contact.model_dump_json())
        pipe.sadd(f"contacts:of:{contact.resident_id}", contact.family_id)
        pipe.sadd(f"contacts:for:{contact.family_id}", contact.resident_id)

    @staticmethod
    def queue_staff(pipe: Pipeline, staff: Staff) -> None:
        pipe.set(_staff_key(staff.id), staff.model_dump_json())


def _family_json(family: Family) -> str:
    # The opening balance is a ledger deposit, never a stored number.
    return family.model_copy(update={"balance_cents": 0}).model_dump_json()
