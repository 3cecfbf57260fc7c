"""SDP munging for interop tests: offers other WebRTC stacks send that aiortc does not make.

Each function takes and returns SDP text, line by line, as a page would munge its offer.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Munge = Callable[[str], str]

_PT_ATTR = re.compile(r"^a=(rtpmap|fmtp|rtcp-fb):(\d+)[ ]")


def _sections(sdp: str) -> list[list[str]]:
    """The session section, then one per m-line."""
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        if line:
            sections[-1].append(line)
    return sections


def _join(sections: list[list[str]]) -> str:
    return "\r\n".join(line for section in sections for line in section) + "\r\n"


def _per_media(edit: Callable[[str, list[str]], list[str]]) -> Munge:
    def munge(sdp: str) -> str:
        sections = _sections(sdp)
        kinds = [section[0][2:].split(" ", 1)[0] for section in sections[1:]]
        return _join([sections[0], *(edit(k, s) for k, s in zip(kinds, sections[1:], strict=True))])

    return munge


def compose(*munges: Munge) -> Munge:
    def munge(sdp: str) -> str:
        for step in munges:
            sdp = step(sdp)
        return sdp

    return munge


def strip_bundle(sdp: str) -> str:
    """No BUNDLE group: every m-line keeps the transport it offers (a pre-BUNDLE stack)."""
    return _join([[line for line in s if not line.startswith("a=group:")] for s in _sections(sdp)])


def tag_last(sdp: str) -> str:
    """The BUNDLE group lists its mids last first: the last m-line is the tagged one."""
    lines = []
    for line in sdp.splitlines():
        if line.startswith("a=group:BUNDLE "):
            mids = line.split(" ")[1:]
            line = " ".join(["a=group:BUNDLE", *mids[::-1]])
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def strip_ssrcs(sdp: str) -> str:
    """No ``a=ssrc`` lines (allowed by JSEP): the SFU must route by MID or payload type."""
    return _join([[line for line in s if not line.startswith("a=ssrc")] for s in _sections(sdp)])


def _codec_blocks(section: list[str]) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(lines before the first codec line, codec lines by payload type, the other lines)."""
    head: list[str] = []
    blocks: dict[str, list[str]] = {}
    tail: list[str] = []
    for line in section[1:]:
        match = _PT_ATTR.match(line)
        if match:
            blocks.setdefault(match.group(2), []).append(line)
        elif blocks:
            tail.append(line)
        else:
            head.append(line)
    return head, blocks, tail


def _reorder(section: list[str], order: list[str], extra: dict[str, list[str]]) -> list[str]:
    head, blocks, tail = _codec_blocks(section)
    blocks.update(extra)
    m_line = section[0].split(" ")[:3] + order
    return [" ".join(m_line), *head, *(line for pt in order for line in blocks.get(pt, [])), *tail]


def _reverse(kind: str, section: list[str]) -> list[str]:
    fmt = section[0].split(" ")[3:]
    return _reorder(section, fmt[::-1], {})


#: Every m-line lists its codecs in reverse: VP8 last, each RTX before the codec it repairs.
reverse_codecs: Munge = _per_media(_reverse)


def _add_fec(kind: str, section: list[str]) -> list[str]:
    fmt = section[0].split(" ")[3:]
    _, blocks, _ = _codec_blocks(section)
    opus = next((pt for pt, lines in blocks.items() if " opus/" in lines[0]), fmt[0])
    if kind == "video":  # RED + its RTX + ULPFEC first, as Chrome offers them
        extra = {
            "110": ["a=rtpmap:110 red/90000"],
            "111": ["a=rtpmap:111 rtx/90000", "a=fmtp:111 apt=110"],
            "112": ["a=rtpmap:112 ulpfec/90000"],
        }
    else:  # RED for Opus (RFC 2198) first
        extra = {"113": ["a=rtpmap:113 red/48000/2", f"a=fmtp:113 {opus}/{opus}"]}
    return _reorder(section, [*extra, *fmt], extra)


#: RED, its RTX and ULPFEC offered (and preferred) alongside VP8; RED for Opus.
add_fec: Munge = _per_media(_add_fec)

_EXTENSIONS = {
    "audio": [
        "a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=extmap:9/sendrecv urn:ietf:params:rtp-hdrext:csrc-audio-level",
        "a=extmap:10 urn:ietf:params:rtp-hdrext:encrypt urn:ietf:params:rtp-hdrext:toffset",
    ],
    "video": [
        "a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        "a=extmap:5 urn:3gpp:video-orientation",
        "a=extmap:6/recvonly http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
        "a=extmap:7 urn:ietf:params:rtp-hdrext:toffset",
        "a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/video-timing",
    ],
}


def _add_extensions(kind: str, section: list[str]) -> list[str]:
    at = next(i for i, line in enumerate(section) if line.startswith("a=")) + 1
    return [*section[:at], *_EXTENSIONS[kind], *section[at:]]


def add_extensions(sdp: str) -> str:
    """Header extensions aiortc does not use (with RFC 8285 directions and attributes), and
    ``a=extmap-allow-mixed``, as browsers offer them."""
    sections = _sections(_per_media(_add_extensions)(sdp))
    sections[0].append("a=extmap-allow-mixed")
    return _join(sections)


def without_codec(name: str) -> Munge:
    """The offer with every ``name`` codec (and its RTX) removed from every m-line."""

    def edit(kind: str, section: list[str]) -> list[str]:
        _, blocks, _ = _codec_blocks(section)
        gone = {
            pt for pt, lines in blocks.items() if lines[0].split(" ", 1)[1].startswith(f"{name}/")
        }
        gone |= {
            pt for pt, lines in blocks.items() if any(f"apt={g}" in x for g in gone for x in lines)
        }
        fmt = [pt for pt in section[0].split(" ")[3:] if pt not in gone]
        return _reorder(section, fmt, {})

    return _per_media(edit)
