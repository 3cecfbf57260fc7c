"""Protocol error codes and the exception that carries one to an ack or an HTTP response."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_REQUEST = "invalid_request"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    NOT_APPROVED = "not_approved"
    OUTSIDE_HOURS = "outside_hours"
    UNAVAILABLE = "unavailable"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    BUSY = "busy"
    INVALID_STATE = "invalid_state"
    INVALID_SDP = "invalid_sdp"
    PRIVILEGED = "privileged"
    CAPACITY = "capacity"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"
    # v1.2
    NOT_SCHEDULED = "not_scheduled"
    QUOTA_EXHAUSTED = "quota_exhausted"
    INVALID_CREDENTIALS = "invalid_credentials"
    OTP_REQUIRED = "otp_required"
    CODE_EXPIRED = "code_expired"


class ProtocolError(Exception):
    """A refusal with a documented code; becomes ``{"ok": false, "error": {...}}``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_ack(self) -> dict[str, Any]:
        return {"ok": False, "error": {"code": self.code.value, "message": self.message}}
