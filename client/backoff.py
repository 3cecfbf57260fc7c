"""How long a client waits before its next reconnect attempt: exponential, capped, jittered.

Every client of a node loses its connection at the same moment when the node stops; without
jitter they would all come back in the same second. Each delay is its nominal value
(``initial_s * 2**attempt``, at most ``max_s``) times a random factor in
``[1 - jitter, 1 + jitter]``, so the clients spread over the window, and wider windows as the
outage lasts (the browsers' socket.io-client does the same with its ``reconnectionDelay``,
``reconnectionDelayMax`` and ``randomizationFactor``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 1.0
    max_s: float = 30.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.max_s) or not (0 <= self.jitter < 1):
            raise ValueError("backoff: 0 < initial_s <= max_s and 0 <= jitter < 1")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds before attempt number ``attempt`` (0 for the first)."""
        nominal = min(self.max_s, self.initial_s * 2.0 ** min(attempt, 32))
        return nominal * (1 - self.jitter + 2 * self.jitter * rand())
