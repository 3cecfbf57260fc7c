"""One signed-in socket: who it is (role, subject), where it may look, and its token's times."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Session:
    sid: str
    role: str
    subject: str
    facility_ids: list[str] = field(default_factory=list)
    issued_at: float = 0.0  # the token's
    expires_at: float = 0.0
