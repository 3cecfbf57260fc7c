"""Regulatory per-minute rate caps by facility type (SPEC "Call rules" 8)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

# FCC 2025 interim caps for video calls, cents per minute.
DEFAULT_CAPS: Mapping[str, int] = {
    "prison": 25,
    "jail_large": 19,
    "jail_medium": 19,
    "jail_small": 21,
    "jail_very_small": 25,
    "jail_extremely_small": 44,
}


class RateCapError(ValueError):
    """A facility rate above its regulatory cap."""


def load_caps() -> dict[str, int]:
    """The cap table: defaults, overridden by ``VISITATION_RATE_CAPS`` (a JSON object)."""
    caps = dict(DEFAULT_CAPS)
    raw = os.environ.get("VISITATION_RATE_CAPS")
    if raw:
        override = json.loads(raw)
        if not isinstance(override, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in override.values()
        ):
            raise ValueError(
                "VISITATION_RATE_CAPS must map facility types to positive integer cents"
            )
        caps.update(override)
    return caps


def check_rate(
    facility_id: str, facility_type: str, rate_cents: int, caps: Mapping[str, int]
) -> None:
    cap = caps.get(facility_type)
    if cap is None:
        raise RateCapError(
            f"facility {facility_id}: no rate cap is configured for type {facility_type!r}"
        )
    if rate_cents > cap:
        raise RateCapError(
            f"facility {facility_id}: rate {rate_cents}¢/min is above the {facility_type} "
            f"cap of {cap}¢/min"
        )
