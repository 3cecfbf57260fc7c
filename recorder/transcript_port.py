"""What the recorder tells and asks of transcripts, without depending on them (they sit above
it): each recording sealed and purged, full-text search for ``GET /recordings?q=`` and the
transcript's check for ``verify``.

:mod:`transcripts.service` implements it; the node passes it to the recording service's
constructor. Without one the recorder works as before (``q`` matches names only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from recorder.catalog import CatalogEntry
from recorder.manifest import Manifest


@dataclass(frozen=True)
class TranscriptCheck:
    """``ok`` None: there is no transcript (yet) to check."""

    ok: bool | None
    status: str
    problems: list[str] = field(default_factory=list)


class TranscriptPort(Protocol):
    async def on_sealed(self, manifest: Manifest) -> None:
        """A recording was sealed and signed: queue its transcript."""
        ...

    async def on_purged(self, manifest: Manifest) -> None:
        """A recording's media was purged: its transcript and alerts go too."""
        ...

    async def search(self, q: str, scope: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Call ids whose transcript matches ``q`` in the facilities ``scope`` (``"*"``: all),
        each with its matching lines ``{"party", "start_s", "text"}``."""
        ...

    async def check(self, entry: CatalogEntry) -> TranscriptCheck:
        """Whether the stored transcript of this recording is whole, signed and its own."""
        ...
