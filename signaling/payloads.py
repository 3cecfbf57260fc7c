"""Typed Socket.IO payloads (client to server), validated with size limits."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Id = Annotated[str, Field(min_length=1, max_length=64)]
MAX_SDP = 64 * 1024
MAX_NOTE = 2 * 1024


class Payload(BaseModel):
    # Unknown fields are ignored (clients may be newer than us); known ones are strict.
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Empty(Payload):
    pass


class PlaceCall(Payload):
    contact_id: Id


class CallRef(Payload):
    call_id: Id


class RtcOffer(Payload):
    call_id: Id
    sdp: Annotated[str, Field(min_length=1, max_length=MAX_SDP)]


class Terminate(Payload):
    call_id: Id
    reason: Annotated[str, Field(min_length=1, max_length=MAX_NOTE)]


class Flag(Payload):
    call_id: Id
    note: Annotated[str, Field(min_length=1, max_length=MAX_NOTE)]
