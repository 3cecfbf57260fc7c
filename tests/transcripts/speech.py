"""Test speech: espeak-ng (Debian's ``espeak-ng``) spoken into Opus, sent as a party's audio in
a real call (:class:`SpeechPeer`) or written into a recording by the real muxer."""

from __future__ import annotations

import contextlib
import fractions
import re
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import av
import numpy as np
import numpy.typing as npt

from client.clip import AUDIO_TIME_BASE, ClipSpec, EncodedClip
from client.media import ClipAudio, ClipSource, RtpSink
from client.peer import KINDS, PartyPeer, close_all, join_call, rtc_config
from recorder.muxer import CallRecording
from recorder.service import CallInfo, RecordingService
from rtpkit.passthrough import PassthroughPeerConnection, forwarding_ends
from tests.conftest import Ringing
from tests.recorder.frames import TABLET, Frame, call_frames

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


class SpeechSource(ClipSource):
    """A clip's video with ``speech`` as the audio (looped, like the clip)."""

    def __init__(self, spec: ClipSpec, said: Speech) -> None:
        super().__init__(spec)
        clip = EncodedClip(spec, self.clip.video, list(said.frames), self.clip.keyframes)
        self.audio = ClipAudio(clip)


class SpeechPeer(PartyPeer):
    """A party that says ``said`` (its video is ``spec``'s clip)."""

    def __init__(self, spec: ClipSpec, said: Speech) -> None:
        self.source = SpeechSource(spec, said)
        self.pc = PassthroughPeerConnection(rtc_config(None))
        self.decode = "none"
        self.sinks: dict[str, RtpSink] = {}
        for kind in KINDS:
            transceiver = self.pc.addTransceiver(kind, direction="sendrecv")
            receiver, sender = forwarding_ends(transceiver)
            sink = self.sinks[kind] = RtpSink(kind, decode=self.decode)
            receiver.on_packet = sink.on_packet
            self.source.stream(kind).attach(sender)


@contextlib.asynccontextmanager
async def speech_call(pair: Ringing, family_says: Speech) -> AsyncIterator[None]:
    """Both parties send media (the family's audio is the speech); yields once connected."""
    tablet = PartyPeer(ClipSpec("red"), decode=False)
    family = SpeechPeer(ClipSpec("blue"), family_says)
    try:
        await join_call(pair.tablet, pair.call_id, tablet)
        await join_call(pair.family, pair.call_id, family)
        await pair.family.next("call.connected")
        await pair.tablet.next("call.connected")
        yield
    finally:
        await close_all(tablet, family)


async def record_speech(service: RecordingService, info: CallInfo, said: Speech) -> None:
    """A sealed, signed recording of ``info`` made by the real muxer: the tablet's clip and
    the family saying ``said``."""
    await service.begin(info)
    recording = CallRecording.open(service.storage.open_recording(info.call_id), info.call_id)
    seconds = said.seconds
    frames = [f for f in call_frames(min(seconds, TABLET.duration_s)) if f.party == "tablet"]
    frames += [
        Frame(i * 0.02, "family", "audio", data, i * FRAME, AUDIO_TIME_BASE)
        for i, data in enumerate(said.frames)
    ]
    frames.sort(key=lambda f: f.at)
    for frame in frames:
        recording.write(frame.party, frame.kind, frame.packet(), arrival=1000.0 + frame.at)
    recording.close()
    ended = info.model_copy(update={"ended_at": info.started_at + seconds, "end_reason": "hangup"})
    await service.finalize(info.call_id, ended)
