"""Test speech: espeak-ng speech (:mod:`loadtest.transcribe_speech`, shared with the
transcription benchmark) sent as a party's audio in a real call (:class:`SpeechPeer`) or written
into a recording by the real muxer beside the tablet's video."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from client.clip import AUDIO_TIME_BASE, ClipSpec, EncodedClip
from client.media import ClipAudio, ClipSource, RtpSink
from client.peer import PartyPeer, close_all, join_call, rtc_config
from loadtest.transcribe_speech import FRAME, Speech, espeak_available, speech
from recorder.muxer import CallRecording
from recorder.service import CallInfo, RecordingService
from rtpkit.passthrough import PassthroughPeerConnection, forwarding_ends
from rtpkit.rtp import MEDIA_KINDS
from tests.conftest import Ringing
from tests.system.recorder.frames import TABLET, Frame, call_frames

__all__ = ["Speech", "SpeechPeer", "espeak_available", "record_speech", "speech", "speech_call"]


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
        for kind in MEDIA_KINDS:
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
