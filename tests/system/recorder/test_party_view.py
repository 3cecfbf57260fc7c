"""Party views: one party's video + audio remuxed from the call file (never transcoded), cached
beside it in storage and made again when it changes."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO

import av
import pytest
from av.codec.context import CodecContext

from recorder.muxer import CallRecording
from recorder.party_view import (
    PartyViews,
    Source,
    ViewBusyError,
    ViewError,
    finished_size,
    remux_party,
    view_key,
)
from recorder.storage import LocalStorage
from tests.system.recorder.frames import call_frames, clips
from tests.system.recorder.test_muxer import packet_times, video_colours

SHA = "ab" * 32
PARTY_STREAMS = {"tablet": (0, 1, "red"), "family": (2, 3, "blue")}  # in the call file


def packets(path: Path) -> dict[int, list[tuple[int | None, bytes]]]:
    """Every packet's (pts, bytes) per stream, demuxed without decoding."""
    found: dict[int, list[tuple[int | None, bytes]]] = {}
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size:
                found.setdefault(packet.stream.index, []).append((packet.pts, bytes(packet)))
    return found


@pytest.fixture
def call_file(tmp_path: Path, call_webm: bytes) -> Path:
    path = tmp_path / "call.webm"
    path.write_bytes(call_webm)
    return path


@pytest.mark.parametrize("party", ["tablet", "family"])
def test_a_party_view_is_that_partys_streams_copied(
    call_file: Path, tmp_path: Path, party: Any
) -> None:
    video_index, audio_index, colour = PARTY_STREAMS[party]
    view = tmp_path / f"{party}.webm"
    with call_file.open("rb") as source, view.open("xb") as target:
        copied = remux_party(source, target, party, "a title", "a tag")
    with av.open(str(call_file)) as original, av.open(str(view)) as container:
        streams = container.streams
        assert [(s.codec_context.name, s.metadata.get("title")) for s in streams] == [
            ("vp8", f"{party} video"),
            ("opus", f"{party} audio"),
        ]
        assert container.metadata["title"] == "a title"
        assert container.metadata["VISITATION_SOURCE"] == "a tag"
        video, audio = streams
        assert (video.codec_context.width, video.codec_context.height) == (320, 180)
        assert audio.codec_context.sample_rate == 48000
        extradata = audio.codec_context.extradata
        assert extradata == original.streams[audio_index].codec_context.extradata
        assert extradata is not None and extradata[:8] == b"OpusHead"
        assert container.duration is not None and original.duration is not None
        assert abs(container.duration - original.duration) <= 100_000  # 0.1 s
    # Every packet of the party, byte for byte, at the same time on the call clock.
    before, after = packets(call_file), packets(view)
    assert after == {0: before[video_index], 1: before[audio_index]}
    assert copied == len(before[video_index]) + len(before[audio_index])
    decoded, colours = video_colours(view, 0)
    tablet_clip, family_clip = clips()
    assert decoded == len((tablet_clip if party == "tablet" else family_clip).video)
    assert set(colours) == {colour}


def test_timestamps_stay_on_the_call_clock(tmp_path: Path) -> None:
    """A family whose video starts 2 s into the call starts 2 s into its view too, so both
    views of a call play in step (a flag's offset is the same moment in both)."""
    call = tmp_path / "late.webm"
    recording = CallRecording.open(call, "C1")
    for frame in call_frames():
        if not (frame.party == "family" and frame.at < 2.0):
            recording.write(frame.party, frame.kind, frame.packet(), arrival=frame.at)
    recording.close()
    view = tmp_path / "family.webm"
    with call.open("rb") as source, view.open("xb") as target:
        remux_party(source, target, "family")
    times = packet_times(view)
    assert times[0][0] == pytest.approx(2000, abs=5) and times[1][0] == pytest.approx(2000, abs=5)
    assert times[0] == packet_times(call)[2]


def test_no_decoder_or_encoder_is_opened_while_remuxing(call_file: Path, tmp_path: Path) -> None:
    """Looks at every codec context alive while the view is being written (each write)."""
    gc.collect()  # other tests' decoders awaiting collection are not this remux's
    opened: list[str] = []
    seen: set[int] = set()

    class Spy:
        def __init__(self, file: BinaryIO) -> None:
            self.file = file

        def write(self, data: bytes) -> int:
            for obj in gc.get_objects():
                if isinstance(obj, CodecContext):
                    seen.add(id(obj))
                    if obj.is_open:
                        opened.append(obj.name)
            return self.file.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.file, name)

    with call_file.open("rb") as source, (tmp_path / "v.webm").open("xb") as target:
        assert remux_party(source, Spy(target), "tablet") > 0
    assert len(seen) >= 3  # the input's parameter holders and the audio copy's ...
    assert opened == []  # ... none of them ever opened


def test_a_call_file_cut_short_gives_a_view_of_what_can_be_read(
    call_file: Path, tmp_path: Path
) -> None:
    cut = tmp_path / "cut.webm"
    cut.write_bytes(call_file.read_bytes()[: call_file.stat().st_size * 2 // 3])
    view = tmp_path / "view.webm"
    with cut.open("rb") as source, view.open("xb") as target:
        assert remux_party(source, target, "family") > 0
    decoded, colours = video_colours(view, 0)
    assert decoded > 30 and set(colours) == {"blue"}


# ---------------------------------------------------------------------- the cache


def unfinished(head: bytes) -> bytes:
    """The start of a file as the muxer writes it before closing: the Segment's size unknown."""
    at = head.index(b"\x18\x53\x80\x67") + 4  # the Segment, then its 8-byte size
    return head[:at] + b"\x01" + b"\xff" * 7 + head[at + 8 :]


@pytest.fixture
def stored(tmp_path: Path, call_webm: bytes) -> LocalStorage:
    storage = LocalStorage(tmp_path / "recordings")
    with storage.open_write("C1") as fh:
        fh.write(call_webm)
    return storage


def test_views_are_made_once_and_remade_when_the_original_changes(
    stored: LocalStorage,
) -> None:
    views = PartyViews(stored)
    tablet = views.get("C1", "tablet", SHA)
    assert tablet.key == view_key("C1", "tablet") == "C1.tablet"
    assert stored.list() == ["C1", "C1.tablet"]
    data = stored.path("C1.tablet").read_bytes()
    assert finished_size(data[:64]) == len(data) == tablet.size
    assert views.get("C1", "tablet", SHA) == tablet  # cached
    assert PartyViews(stored).get("C1", "tablet", SHA) == tablet  # found again (its tag read)
    family = views.get("C1", "family", SHA)
    assert family.key == "C1.family" and family.etag != tablet.etag

    # Made again from the same file: bit-exact, the same bytes.
    stored.delete("C1.tablet")
    assert views.get("C1", "tablet", SHA).size == tablet.size
    assert stored.path("C1.tablet").read_bytes() == data

    # Another hash in the manifest, or the file rewritten: made again, from the file as it is.
    remade = views.get("C1", "tablet", "cd" * 32)
    assert remade.source.sha256 == "cd" * 32 and remade.etag != tablet.etag
    later = time.time() + 5
    os.utime(stored.path("C1"), (later, later))
    again = views.get("C1", "tablet", "cd" * 32)
    assert again.source == Source.of(stored, "C1", "cd" * 32) != remade.source

    assert sorted(views.discard("C1")) == ["C1.family", "C1.tablet"]
    assert stored.list() == ["C1"] and views.discard("C1") == []


class WatchedStorage(LocalStorage):
    """A store that tells when a reader has checked how recent ``C1.family`` is twice (once per
    round of waiting for another writer)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.looks = 0
        self.looked_twice = threading.Event()

    def modified_at(self, call_id: str) -> float:
        if call_id == "C1.family":
            self.looks += 1
            if self.looks >= 2:
                self.looked_twice.set()
        return super().modified_at(call_id)


def test_an_unfinished_view_is_waited_for_or_remade_if_abandoned(stored: LocalStorage) -> None:
    views = PartyViews(stored, wait_s=0.5, abandoned_s=30)
    with stored.open_write("C1.family") as fh:  # another writer, mid-way (no trailer yet)
        fh.write(unfinished(stored.read_range("C1", 0, 4096)))
    assert finished_size(stored.read_range("C1.family", 0, 64)) is None
    with pytest.raises(ViewBusyError):
        views.get("C1", "family", SHA)

    # The other writer finishes while this one waits: its view is used.
    watched = WatchedStorage(stored.root)

    def finish() -> None:
        assert watched.looked_twice.wait(10)  # the waiter found it unfinished, and looks again
        stored.delete("C1.family")
        PartyViews(stored).get("C1", "family", SHA)

    helper = threading.Thread(target=finish)
    helper.start()
    view = PartyViews(watched, wait_s=10, abandoned_s=30).get("C1", "family", SHA)
    helper.join()
    assert view.size == stored.size("C1.family")

    # A writer that died mid-way: its file is old and unfinished, so it is made again.
    stored.delete("C1.family")
    with stored.open_write("C1.family") as fh:
        fh.write(unfinished(stored.read_range("C1", 0, 4096)))
    old = time.time() - 60
    os.utime(stored.path("C1.family"), (old, old))
    assert views.get("C1", "family", SHA).size == view.size


def test_a_file_that_is_not_a_call_recording(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with storage.open_write("JUNK") as fh:
        fh.write(b"not a webm" * 100)
    with pytest.raises(ViewError):
        PartyViews(storage).get("JUNK", "tablet", SHA)
    assert storage.list() == ["JUNK"]  # nothing left behind
    with pytest.raises(FileNotFoundError):
        PartyViews(storage).get("NONE", "tablet", SHA)


def test_view_keys() -> None:
    assert view_key("0f" * 16, "family") == "0f" * 16 + ".family"
    long_key = view_key("x" * 128, "tablet")
    assert long_key.startswith("view-") and long_key.endswith(".tablet") and len(long_key) <= 128
    assert finished_size(b"") is None and finished_size(b"\x1a\x45\xdf\xa3garbage") is None
