"""The second engine: Vosk (Kaldi), used where a model is configured (``VISITATION_STT_MODEL``:
a Vosk model directory, e.g. ``vosk-model-small-en-us-0.15`` unpacked). ``pip install vosk``;
nothing is downloaded at run time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from transcripts.engine import SAMPLE_RATE, EngineError, Pcm, Recognition
from transcripts.model import Party, Segment, Word
from transcripts.sphinx import SphinxEngine

CHUNK: Final = SAMPLE_RATE // 2  # samples fed at a time


class VoskEngine:
    name = "vosk"
    language = "en-US"

    def __init__(self, model_path: str) -> None:
        if not Path(model_path).is_dir():
            raise EngineError(f"VISITATION_STT_MODEL {model_path!r} is not a Vosk model directory")
        try:
            import vosk  # type: ignore[import-not-found]
        except ImportError:
            raise EngineError("the vosk engine needs the 'vosk' package") from None
        vosk.SetLogLevel(-1)
        self._vosk: Any = vosk
        self._model: Any = vosk.Model(model_path)
        self._vad = SphinxEngine()  # its voice-activity segmentation only
        self._lock = threading.Lock()

    def transcribe(self, pcm: Pcm, party: Party, watch_words: Sequence[str] = ()) -> Recognition:
        segments: list[Segment] = []
        with self._lock:
            for begin, end in self._vad.utterances(pcm):
                recognizer = self._vosk.KaldiRecognizer(self._model, SAMPLE_RATE)
                recognizer.SetWords(True)
                piece = pcm[begin:end]
                for i in range(0, len(piece), CHUNK):
                    recognizer.AcceptWaveform(piece[i : i + CHUNK].tobytes())
                result = json.loads(recognizer.FinalResult())
                words = result.get("result") or []
                if not words:
                    continue
                base = begin / SAMPLE_RATE
                timed = [
                    Word(w=str(w["word"]).lower(), t=round(base + w["start"], 2)) for w in words
                ]
                confidence = sum(float(w.get("conf", 0.0)) for w in words) / len(words)
                segments.append(
                    Segment(
                        party=party,
                        start_s=timed[0].t,
                        end_s=round(base + float(words[-1]["end"]), 2),
                        text=" ".join(w.w for w in timed),
                        confidence=round(min(1.0, max(0.0, confidence)), 3),
                        words=timed,
                    )
                )
        return Recognition(segments)
