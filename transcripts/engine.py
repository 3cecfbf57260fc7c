"""The speech-recognition engine interface and how one is chosen.

An engine turns one party's audio (16 kHz mono signed 16-bit PCM) into segments; it never
sends audio anywhere. ``VISITATION_STT_ENGINE`` picks it: ``pocketsphinx`` (default: its wheel
ships an English model), ``vosk`` (needs ``VISITATION_STT_MODEL``, a Vosk model directory), or
``module:factory`` (a callable returning an :class:`Engine`). ``VISITATION_STT_MODEL`` alone
selects Vosk.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

import numpy as np
import numpy.typing as npt

from transcripts.model import Party, Segment, WatchHit

SAMPLE_RATE: Final = 16000
Pcm = npt.NDArray[np.int16]


class EngineError(RuntimeError):
    """The engine is not available (no model, a missing package) or failed."""


@dataclass(frozen=True)
class Recognition:
    """An engine's result for one party: segments, and watch words its keyword spotter heard
    (``spotted``; engines without one leave it empty)."""

    segments: list[Segment]
    spotted: list[WatchHit] = field(default_factory=list)


class Engine(Protocol):
    name: str
    language: str

    def transcribe(self, pcm: Pcm, party: Party, watch_words: Sequence[str] = ()) -> Recognition:
        """Segments of ``pcm`` (offsets in seconds from its first sample). ``watch_words``
        lets an engine with keyword spotting look for them too (the caller still matches
        them in the text)."""
        ...


def load_engine(env: Mapping[str, str] | None = None) -> Engine:
    env = os.environ if env is None else env
    model = env.get("VISITATION_STT_MODEL", "").strip()
    name = env.get("VISITATION_STT_ENGINE", "").strip() or ("vosk" if model else "pocketsphinx")
    if name == "pocketsphinx":
        from transcripts.sphinx import SphinxEngine

        return SphinxEngine()
    if name == "vosk":
        if not model:
            raise EngineError("the vosk engine needs VISITATION_STT_MODEL (a model directory)")
        from transcripts.vosk_engine import VoskEngine

        return VoskEngine(model)
    module_name, _, factory = name.partition(":")
    if not factory:
        raise EngineError(f"unknown speech engine {name!r}: pocketsphinx, vosk or module:factory")
    try:
        made = cast(Engine, getattr(importlib.import_module(module_name), factory)())
    except (ImportError, AttributeError) as exc:
        raise EngineError(f"cannot load speech engine {name!r}: {exc}") from None
    return made
