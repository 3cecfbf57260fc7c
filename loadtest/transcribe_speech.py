"""Speech for transcription tests and the transcription benchmark: espeak-ng (Debian's
``espeak-ng``) spoken into Opus as a browser's voice call sends it, and written into a sealed
recording by the real muxer."""

from __future__ import annotations

import fractions
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import av
import numpy as np
import numpy.typing as npt

from client.clip import AUDIO_TIME_BASE
from recorder.muxer import CallRecording, Party
from recorder.service import CallInfo, RecordingService

RATE: Final = 48000
FRAME: Final = 960  # 20 ms
Pcm = npt.NDArray[np.int16]


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, *, voice: str = "en-us", words_per_minute: int = 140) -> Pcm:
    """``text`` spoken by espeak-ng, 48 kHz mono."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        with av.open(str(wav)) as container:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            chunks = [
                out.to_ndarray().reshape(-1)
                for frame in container.decode(audio=0)
                for out in resampler.resample(frame)
            ]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.int16)


@dataclass(frozen=True)
class Speech:
    """Sentences at known offsets (seconds from the start of the audio) and their Opus frames."""

    sentences: tuple[tuple[float, str], ...]
    frames: tuple[bytes, ...]

    @property
    def seconds(self) -> float:
        return len(self.frames) * FRAME / RATE

    def words(self) -> set[str]:
        return {w for _, s in self.sentences for w in re.findall(r"[a-z']+", s.lower())}


def speech(sentences: Sequence[str], *, lead_s: float = 1.0, gap_s: float = 1.0) -> Speech:
    """The sentences spoken one after another, silence before, between and after."""
    parts: list[Pcm] = [np.zeros(round(lead_s * RATE), dtype=np.int16)]
    at, placed = lead_s, []
    for sentence in sentences:
        pcm = speak(sentence)
        placed.append((round(at, 2), sentence))
        parts += [pcm, np.zeros(round(gap_s * RATE), dtype=np.int16)]
        at += (len(pcm) + gap_s * RATE) / RATE
    pcm = np.concatenate(parts)
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME, dtype=np.int16)])
    return Speech(tuple(placed), tuple(opus(pcm)))


def opus(pcm: Pcm, bitrate: int = 32_000) -> list[bytes]:
    """20 ms Opus frames, as a browser's voice call sends them."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, RATE)
    codec.options = {"application": "voip"}
    out: list[bytes] = []
    for index in range(len(pcm) // FRAME):
        chunk = pcm[index * FRAME : (index + 1) * FRAME].reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = index * FRAME
        frame.time_base = AUDIO_TIME_BASE
        out.extend(bytes(p) for p in codec.encode(frame))
    out.extend(bytes(p) for p in codec.encode(None))
    return out


def audio_packet(data: bytes, index: int) -> av.Packet[Any]:
    """The ``index``-th 20 ms Opus frame of a party's audio, as the muxer is given it."""
    packet = av.Packet(data)
    packet.pts = packet.dts = index * FRAME
    packet.time_base = AUDIO_TIME_BASE
    return packet


async def record_voices(
    service: RecordingService, info: CallInfo, said: Mapping[Party, Speech]
) -> None:
    """A sealed, signed, audio-only recording of ``info`` by the real muxer: each party in
    ``said`` saying its speech."""
    await service.begin(info)
    recording = CallRecording.open(service.storage.open_recording(info.call_id), info.call_id)
    frames = sorted(
        (i * 0.02, party, i, data)
        for party, speech_ in said.items()
        for i, data in enumerate(speech_.frames)
    )
    for at, party, index, data in frames:
        recording.write(party, "audio", audio_packet(data, index), arrival=1000.0 + at)
    recording.close()
    seconds = max(s.seconds for s in said.values())
    ended = info.model_copy(update={"ended_at": info.started_at + seconds, "end_reason": "hangup"})
    await service.finalize(info.call_id, ended)
