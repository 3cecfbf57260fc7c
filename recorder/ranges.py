"""HTTP ``Range: bytes=...`` for one file (RFC 9110 §14): what to send, or 416.

Only a single range is honoured; a header that is not a valid single byte range is ignored
(the whole file is sent), as the RFC allows. Unsatisfiable: a first byte at or past the end,
an empty suffix (``bytes=-0``), or any range of an empty file.

Numbers are ASCII digits, at most :data:`MAX_DIGITS` of them once leading zeros are dropped:
no file has that many bytes, so a longer number is out of range (416) — and is never handed
to ``int()``, which refuses more than 4,300 digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_SINGLE: Final = re.compile(r"^\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*$", re.IGNORECASE)
#: Significant digits a byte position may have (10**18 bytes is an exabyte).
MAX_DIGITS: Final = 18


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"the range is outside the recording ({size} bytes)")
        self.size = size


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive
    size: int  # of the whole file

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range to send as 206, ``None`` for the whole file (200), or raises 416's error."""
    if header is None:
        return None
    match = _SINGLE.match(header)
    if match is None:
        return None  # other units, several ranges, garbage: ignored
    first, last = match.group(1), match.group(2)
    first, last = first.lstrip("0") or first[:1], last.lstrip("0") or last[:1]
    if len(first) > MAX_DIGITS or len(last) > MAX_DIGITS:
        raise RangeNotSatisfiable(size)
    if first:
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None  # invalid, not unsatisfiable: ignored
        if start >= size:
            raise RangeNotSatisfiable(size)
        return ByteRange(start, min(end, size - 1), size)
    if not last:
        return None  # "bytes=-"
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise RangeNotSatisfiable(size)
    return ByteRange(max(0, size - suffix), size - 1, size)
