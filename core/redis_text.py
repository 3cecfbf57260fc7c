"""Redis replies to text (the server runs without ``decode_responses``)."""

from __future__ import annotations


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
