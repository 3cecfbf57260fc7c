"""Counts every way aiortc could decode or encode media in a process: the SFU worker's
``stats`` report it, and it must stay 0 (nothing is transcoded)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import aiortc.codecs
import aiortc.rtcrtpreceiver
import aiortc.rtcrtpsender
from aiortc.codecs.base import Decoder, Encoder


class CodecCounters:
    """Counts every way aiortc could decode or encode media in this process."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self._originals: list[tuple[Any, str, Any]] = []

    def install(self) -> CodecCounters:
        if self._originals:
            return self
        for module in (aiortc.codecs, aiortc.rtcrtpreceiver, aiortc.rtcrtpsender):
            for name in ("get_decoder", "get_encoder", "decoder_worker"):
                if hasattr(module, name):
                    self._wrap(module, name, f"{module.__name__}.{name}")
        for obj in vars(aiortc.codecs).values():
            if isinstance(obj, type) and issubclass(obj, Decoder) and obj is not Decoder:
                self._wrap(obj, "__init__", f"{obj.__name__}.__init__")  # a decoder context
            if isinstance(obj, type) and issubclass(obj, Encoder) and obj is not Encoder:
                self._wrap(obj, "encode", f"{obj.__name__}.encode")
                if obj.__name__ == "OpusEncoder":  # creates its libopus context up front
                    self._wrap(obj, "__init__", f"{obj.__name__}.__init__")
        return self

    def _wrap(self, owner: Any, attr: str, name: str) -> None:
        original: Callable[..., Any] = getattr(owner, attr)
        self._originals.append((owner, attr, owner.__dict__.get(attr)))  # None: inherited

        @functools.wraps(original)
        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return original(*args, **kwargs)

        setattr(owner, attr, counting)

    def uninstall(self) -> None:
        for owner, attr, original in reversed(self._originals):
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)
        self._originals.clear()

    @property
    def installed(self) -> bool:
        return bool(self._originals)

    @property
    def total(self) -> int:
        return sum(self.calls.values())
