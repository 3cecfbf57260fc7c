"""Each party's audio from a sealed call recording, as 16 kHz mono PCM for the engines.

The recording is read through :class:`recorder.storage.Storage` (a directory or S3) and only
decoded here, off every media path. Opus frames are placed at their timestamps, so silence
that was never sent (a muted or lost party) stays silence and offsets stay those of the
recording (seconds since its start, as the players and the manifest's flags count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import av
import numpy as np

from recorder.party_view import ViewError, open_reader, party_streams
from recorder.storage import Storage
from transcripts.engine import SAMPLE_RATE, Pcm
from transcripts.model import Party

GAP_S: Final = 0.03  # a timestamp jump past this is filled with silence


class AudioError(RuntimeError):
    """The recording cannot be decoded (not a WebM, no such stream, corrupt)."""


@dataclass(frozen=True)
class PartyAudio:
    party: Party
    pcm: Pcm

    @property
    def seconds(self) -> float:
        return len(self.pcm) / SAMPLE_RATE


def decode_party(storage: Storage, call_id: str, party: Party) -> PartyAudio:
    """``party``'s audio of the sealed recording (blocking: run in a worker thread)."""
    try:
        size = storage.size(call_id)
        with open_reader(storage, call_id, size) as raw, av.open(raw, mode="r") as container:
            _, stream = party_streams(container, party)
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            chunks: list[Pcm] = []
            length = 0
            for frame in container.decode(stream):
                assert isinstance(frame, av.AudioFrame)
                at = float(frame.time) if frame.time is not None else length / SAMPLE_RATE
                want = round(at * SAMPLE_RATE)
                if want - length > GAP_S * SAMPLE_RATE:
                    chunks.append(np.zeros(want - length, dtype=np.int16))
                    length = want
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.int16)
                    chunks.append(samples)
                    length += len(samples)
            for out in resampler.resample(None):
                samples = out.to_ndarray().reshape(-1).astype(np.int16)
                chunks.append(samples)
                length += len(samples)
    except (ViewError, av.FFmpegError, OSError, ValueError) as exc:
        raise AudioError(f"cannot decode the {party} audio of call {call_id}: {exc}") from exc
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return PartyAudio(party, pcm)
