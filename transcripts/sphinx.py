"""The default engine: CMU PocketSphinx with the US English model its wheel ships.

Tuned for what a call recording is (measured on espeak-ng speech sent through a real call):

- voice-activity segmentation (pocketsphinx's :class:`Endpointer`): each utterance is decoded
  on its own, so a segment is one utterance with its own offsets and the language model's
  sentence boundaries fall on pauses;
- word timings from the decoder's segmentation (frames of 10 ms), a confidence per segment
  (the mean posterior of its words);
- watch words are also looked for with pocketsphinx's keyword-spotting search over the whole
  party's audio (a strict threshold: a spotted word not in the text is reported, never a
  guess at the text).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
from pocketsphinx import Decoder, Endpointer, Vad  # type: ignore[import-untyped]

from transcripts.engine import SAMPLE_RATE, Pcm, Recognition
from transcripts.model import Party, Segment, WatchHit, Word

log = logging.getLogger(__name__)

FRAME_S: Final = 0.01  # pocketsphinx's frame rate: 100 frames a second
KWS_THRESHOLD: Final = "1e-10"
PAD_S: Final = 0.15  # audio kept either side of a detected utterance
MAX_UTTERANCE_S: Final = 20.0
FILLERS: Final = frozenset({"<s>", "</s>", "<sil>", "[noise]", "[laugh]", "<unk>"})


def _word(raw: str) -> str:
    word = raw.strip()
    if "(" in word and word.endswith(")"):  # an alternative pronunciation: "the(2)"
        word = word[: word.index("(")]
    return word.lower()


class SphinxEngine:
    name = "pocketsphinx"
    language = "en-US"

    def __init__(self, **config: Any) -> None:
        self._config = {"loglevel": "FATAL", **config}
        self._decoder: Decoder | None = None
        self._lock = threading.Lock()  # one decoder, one utterance at a time

    def _lm_decoder(self) -> Decoder:
        if self._decoder is None:
            self._decoder = Decoder(**self._config)
        return self._decoder

    def transcribe(self, pcm: Pcm, party: Party, watch_words: Sequence[str] = ()) -> Recognition:
        with self._lock:
            segments = [s for s in self._segments(pcm, party) if s.text]
            spotted = self._spot(pcm, party, watch_words) if watch_words else []
        return Recognition(segments, spotted)

    # ------------------------------------------------------------------ utterances

    def utterances(self, pcm: Pcm) -> list[tuple[int, int]]:
        """Sample ranges of speech, by pocketsphinx's voice-activity endpointer."""
        ep = Endpointer(window=0.3, ratio=0.9, vad_mode=Vad.LOOSE, sample_rate=SAMPLE_RATE)
        step = ep.frame_bytes // 2
        regions: list[tuple[int, int]] = []
        start: int | None = None
        for offset in range(0, len(pcm) - step + 1, step):
            frame = pcm[offset : offset + step].tobytes()
            was = ep.in_speech
            ep.process(frame)
            if not was and ep.in_speech:
                start = round(ep.speech_start * SAMPLE_RATE)
            elif was and not ep.in_speech and start is not None:
                regions.append((start, round(ep.speech_end * SAMPLE_RATE)))
                start = None
        if start is not None:
            regions.append((start, len(pcm)))
        return _split_long(_padded(regions, len(pcm)))

    def _segments(self, pcm: Pcm, party: Party) -> list[Segment]:
        decoder = self._lm_decoder()
        out: list[Segment] = []
        for begin, end in self.utterances(pcm):
            decoder.start_utt()
            decoder.process_raw(pcm[begin:end].tobytes(), full_utt=True)
            decoder.end_utt()
            base = begin / SAMPLE_RATE
            words: list[Word] = []
            probs: list[float] = []
            for seg in decoder.seg() or ():
                word = _word(seg.word)
                if word in FILLERS or word.startswith("["):
                    continue
                words.append(Word(w=word, t=round(base + seg.start_frame * FRAME_S, 2)))
                probs.append(float(seg.prob))
            if not words:
                continue
            out.append(
                Segment(
                    party=party,
                    start_s=round(words[0].t, 2),
                    end_s=round(end / SAMPLE_RATE, 2),
                    text=" ".join(w.w for w in words),
                    confidence=round(min(1.0, max(0.0, sum(probs) / len(probs))), 3),
                    words=words,
                )
            )
        return out

    # ------------------------------------------------------------------ keyword spotting

    def _spot(self, pcm: Pcm, party: Party, watch_words: Sequence[str]) -> list[WatchHit]:
        lm = self._lm_decoder()
        known = [w for w in dict.fromkeys(x.lower() for x in watch_words) if _in_dict(lm, w)]
        if not known:
            return []
        with tempfile.NamedTemporaryFile("w", suffix=".kws", delete=False) as fh:
            fh.writelines(f"{w} /{KWS_THRESHOLD}/\n" for w in known)
        try:
            decoder = Decoder(kws=fh.name, **self._config)
            decoder.start_utt()
            decoder.process_raw(pcm.tobytes(), full_utt=True)
            decoder.end_utt()
            return [
                WatchHit(
                    word=_word(s.word), party=party, offset_s=round(s.start_frame * FRAME_S, 2)
                )
                for s in decoder.seg() or ()
            ]
        except RuntimeError as exc:
            log.warning("keyword spotting failed: %s", exc)
            return []
        finally:
            os.unlink(fh.name)


def _in_dict(decoder: Decoder, phrase: str) -> bool:
    words = phrase.split()
    return bool(words) and all(decoder.lookup_word(w) is not None for w in words)


def _padded(regions: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    pad = round(PAD_S * SAMPLE_RATE)
    out: list[tuple[int, int]] = []
    for begin, end in regions:
        begin, end = max(0, begin - pad), min(total, end + pad)
        if out and begin <= out[-1][1]:
            out[-1] = (out[-1][0], end)
        elif end > begin:
            out.append((begin, end))
    return out


def _split_long(regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Utterances longer than :data:`MAX_UTTERANCE_S` cut in pieces (the decoder's cost and
    a segment's span stay bounded when the endpointer hears no pause)."""
    most = round(MAX_UTTERANCE_S * SAMPLE_RATE)
    out: list[tuple[int, int]] = []
    for begin, end in regions:
        out += [(b, min(end, b + most)) for b in range(begin, end, most)]
    return out


def as_pcm(samples: Any) -> Pcm:
    return np.asarray(samples, dtype=np.int16)
