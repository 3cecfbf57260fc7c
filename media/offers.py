"""Offers from any WebRTC stack, checked and made servable before aiortc sees them.

SPEC "Real networks": offers from any standards-compliant WebRTC stack work (bundle policies,
codec order, RTX/RED/FEC); what cannot be served gets ``invalid_sdp`` naming what is missing.
:func:`plan_offer` reads an offer once and returns an :class:`OfferPlan`: the offer rewritten
into what aiortc's answerer handles, the bundle policy the SFU's peer connection must use, and
the BUNDLE group its answer must carry (:meth:`OfferPlan.finish_answer`). What it refuses
raises :class:`OfferError` with a message for people:

* **Shape** (PROTOCOL.md "WebRTC"): a party offers 1 audio + 1 video m-line that send, a
  monitor 2 audio + 2 video m-lines that receive ("a monitor's offer needs 2 audio and 2
  video m-lines, got 1 and 1").
* **Codecs**: every audio m-line must offer Opus, every video m-line VP8 ("the offer has no
  VP8 video codec"). Each m-line is cut down to that codec and the RTX that repairs it,
  wherever they were listed (H.264 first, RTX before its codec, RED, ULPFEC, CN,
  telephone-event...): nothing else is ever forwarded, so nothing else is answered.
* **SSRCs**: the first ``a=ssrc`` is taken as the media stream and a second as its RTX, so
  they are put in the order of the ``FID`` group (simulcast layers beyond the first dropped).
* **Lines aiortc's parser trips on**: RFC 8285 extension attributes after an ``a=extmap``
  URI, ``a=fmtp`` / ``a=rtcp-fb`` for a payload type with no ``a=rtpmap``.
* **Transports**: which m-lines share an offerer transport is read from their ICE
  credentials and candidates. If the offer's BUNDLE group covers every m-line and no m-lines
  share a transport other than the tagged one's (``max-bundle``, ``max-compat``, a browser's
  ``balanced``; m-lines with no candidates of their own, like a browser's bundled ones at
  port 9 or ``a=bundle-only`` ones, follow the tag), BUNDLE is accepted as RFC 8843 says: one
  transport, the tagged m-line's, whose ICE and DTLS parameters are copied onto every m-line
  so aiortc uses them.
  Otherwise the SFU mirrors the offerer's transports and answers without BUNDLE. That is the
  case of aiortc's own ``balanced`` policy (one transport per media kind): an offerer that
  already shares a transport between two m-lines of a kind does not move the second one when
  the answer bundles them, so a monitor's family video would stay on a closed transport.
  Mirroring supports the layouts aiortc's answerer can build: all m-lines on one transport,
  one per kind, one per m-line.

On a shared transport packets reach their m-line by SSRC, then by the MID header extension,
then by payload type (:mod:`rtpkit.fastpath`); the SFU's answers always list its SSRCs.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final, Literal

from aiortc import RTCBundlePolicy, RTCConfiguration
from aiortc.codecs import is_rtx
from aiortc.sdp import GroupDescription, MediaDescription, SessionDescription

from media.control import MAX_SDP_BYTES
from rtpkit.rtp import MEDIA_KINDS

OfferRole = Literal["party", "monitor"]

#: The codec each kind must offer (the SFU forwards only these) and how people call it.
REQUIRED: Final[dict[str, tuple[str, str]]] = {
    "audio": ("audio/opus", "Opus audio"),
    "video": ("video/vp8", "VP8 video"),
}
#: m-lines of each kind per role, and the direction each m-line must include.
SHAPE: Final[dict[OfferRole, tuple[int, str]]] = {"party": (1, "send"), "monitor": (2, "recv")}
_DIRECTIONS: Final[dict[str, set[str]]] = {
    "send": {"sendrecv", "sendonly"},
    "recv": {"sendrecv", "recvonly"},
}
_PT_LINE: Final = re.compile(r"^a=(fmtp|rtcp-fb):(\S+)")


class OfferError(ValueError):
    """An offer that cannot be served; ``str()`` says what is missing."""


@dataclass(frozen=True)
class OfferPlan:
    """How to answer one offer: see the module docstring."""

    sdp: str  # the offer as aiortc must see it
    bundle_policy: RTCBundlePolicy
    answer_bundle: tuple[str, ...] | None  # mids of the answer's BUNDLE group, tagged first
    mids: tuple[str, ...]

    def configuration(self, base: RTCConfiguration) -> RTCConfiguration:
        """``base`` (ICE servers, policies) with this offer's bundle policy."""
        return dataclasses.replace(base, bundlePolicy=self.bundle_policy)

    def finish_answer(self, sdp: str) -> str:
        """aiortc's answer with the BUNDLE group this plan accepted (none when mirroring)."""
        lines = [line for line in sdp.splitlines() if not line.startswith("a=group:BUNDLE")]
        if self.answer_bundle:
            at = next((i for i, line in enumerate(lines) if line.startswith("m=")), len(lines))
            lines.insert(at, "a=group:BUNDLE " + " ".join(self.answer_bundle))
        return "\r\n".join(lines) + "\r\n"


def plan_offer(sdp: str, role: OfferRole) -> OfferPlan:
    """Check ``sdp`` for ``role`` and plan its answer; raises :class:`OfferError`."""
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise OfferError(f"SDP larger than {MAX_SDP_BYTES} bytes")
    text, bundle_only = _repair_lines(sdp)
    try:
        description = SessionDescription.parse(text)
        if not description.media:
            raise ValueError("no m-lines")
    except Exception as exc:  # aiortc's parser raises ValueError, AssertionError & co.
        raise OfferError(f"unusable offer: {str(exc) or type(exc).__name__}") from exc
    _check_shape(description.media, role, bundle_only)
    for media in description.media:
        _keep_forwarded_codec(media)
        _order_ssrcs(media)
        if media.rtcp_mux and media.rtcp_port is None:
            media.rtcp_port = media.port  # aiortc writes a=rtcp-mux only after an a=rtcp line
    policy, bundle = _plan_transports(description, bundle_only)
    mids = tuple(str(m.rtp.muxId) for m in description.media)
    return OfferPlan(str(description), policy, bundle, mids)


# ------------------------------------------------------------------------- text repairs


def _repair_lines(sdp: str) -> tuple[str, list[bool]]:
    """Drop what aiortc's parser cannot take; returns the text and each m-line's bundle-only."""
    sections: list[list[str]] = [[]]
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            sections.append([])
        if line:
            sections[-1].append(line)
    out = sections[0]
    bundle_only: list[bool] = []
    for section in sections[1:]:
        if len(section[0].split()) < 4:
            raise OfferError(f"unusable offer: {section[0]!r} lists no codecs")
        mapped = {line[9:].split(" ", 1)[0] for line in section if line.startswith("a=rtpmap:")}
        bundle_only.append("a=bundle-only" in section)
        for line in section:
            if line.startswith("a=extmap:"):
                line = " ".join(line.split()[:2])  # RFC 8285 extension attributes
            match = _PT_LINE.match(line)
            if match and match.group(2) not in mapped and match.group(2) != "*":
                continue  # a parameter of a payload type the offer never mapped
            out.append(line)
    return "\r\n".join(out) + "\r\n", bundle_only


# ------------------------------------------------------------------------- shape and codecs


def _check_shape(media: list[MediaDescription], role: OfferRole, bundle_only: list[bool]) -> None:
    pairs, needs = SHAPE[role]
    counts = {kind: sum(m.kind == kind for m in media) for kind in MEDIA_KINDS}
    others = len(media) - sum(counts.values())
    if counts["audio"] != pairs or counts["video"] != pairs or others:
        plural = "s" if pairs > 1 else ""
        extra = f" (and {others} other m-line{'s' if others > 1 else ''})" if others else ""
        raise OfferError(
            f"a {role}'s offer needs {pairs} audio and {pairs} video m-line{plural}, "
            f"got {counts['audio']} and {counts['video']}{extra}"
        )
    if any(m.rtp.muxId is None for m in media):
        raise OfferError("the offer's m-lines have no a=mid (JSEP, RFC 8843)")
    problems = []
    for kind in MEDIA_KINDS:
        mime, name = REQUIRED[kind]
        lacking = [m for m in media if m.kind == kind and not _offers(m, mime)]
        if lacking and len(lacking) == counts[kind]:
            problems.append(f"the offer has no {name} codec")
        elif lacking:
            problems += [f"the {kind} m-line {_name(m)} has no {name} codec" for m in lacking]
    for m, only in zip(media, bundle_only, strict=True):
        direction = m.direction or "sendrecv"
        if m.port == 0 and not only:
            problems.append(f"the {m.kind} m-line {_name(m)} is disabled (port 0)")
        elif direction not in _DIRECTIONS[needs]:
            wanted = "sendrecv" if role == "party" else "recvonly"
            problems.append(
                f"a {role}'s {m.kind} m-line must {needs} ({wanted}), but {_name(m)} is {direction}"
            )
    if problems:
        raise OfferError("; ".join(problems))


def _name(media: MediaDescription) -> str:
    return f"mid {media.rtp.muxId}"


def _offers(media: MediaDescription, mime: str) -> bool:
    return any(c.mimeType.lower() == mime for c in media.rtp.codecs)


def _keep_forwarded_codec(media: MediaDescription) -> None:
    """The first codec of the forwarded kind and the first RTX that repairs it, nothing else."""
    mime = REQUIRED[media.kind][0]
    primary = next(c for c in media.rtp.codecs if c.mimeType.lower() == mime)
    rtx = [
        c for c in media.rtp.codecs if is_rtx(c) and c.parameters.get("apt") == primary.payloadType
    ]
    media.rtp.codecs = [primary, *rtx[:1]]
    media.fmt = [c.payloadType for c in media.rtp.codecs]


def _order_ssrcs(media: MediaDescription) -> None:
    """aiortc reads ``ssrc[0]`` as the media SSRC and ``ssrc[1]`` as its RTX."""
    fid = next((g for g in media.ssrc_group if g.semantic == "FID" and len(g.items) >= 2), None)
    wanted = [int(s) for s in fid.items[:2]] if fid else [s.ssrc for s in media.ssrc[:1]]
    by_ssrc = {s.ssrc: s for s in media.ssrc}
    media.ssrc = [by_ssrc[s] for s in wanted if s in by_ssrc]
    media.ssrc_group = [fid] if fid and len(media.ssrc) == 2 else []


# ------------------------------------------------------------------------- transports


def _transport_key(media: MediaDescription) -> Hashable:
    """Which offerer transport an m-line is on: its ICE credentials and candidates (its
    address when it lists none)."""
    ice = media.ice
    credentials = (ice.usernameFragment, ice.password) if ice is not None else (None, None)
    if media.ice_candidates:
        where: Hashable = frozenset(
            (c.component, c.protocol.lower(), c.ip, c.port) for c in media.ice_candidates
        )
    else:
        where = (media.host, media.port)
    return (credentials, where)


def _plan_transports(
    description: SessionDescription, bundle_only: list[bool]
) -> tuple[RTCBundlePolicy, tuple[str, ...] | None]:
    media = description.media
    mids = [str(m.rtp.muxId) for m in media]
    bundle = next((g for g in description.group if g.semantic == "BUNDLE"), None)
    others = [g for g in description.group if g.semantic != "BUNDLE"]
    groups: dict[Hashable, list[int]] = {}
    for i, m in enumerate(media):  # m-lines with candidates of their own
        if m.ice_candidates and not bundle_only[i]:
            groups.setdefault(_transport_key(m), []).append(i)
    items = [str(mid) for mid in bundle.items] if bundle is not None else []
    if items and set(items) == set(mids) and len(set(mids)) == len(mids):
        # m-lines without candidates (a browser's max-bundle: port 9, none) follow the tag.
        tagged = mids.index(items[0])
        if all(len(g) == 1 or tagged in g for g in groups.values()):
            if media[tagged].ice_candidates:
                _share_transport(media, media[tagged])
            # aiortc's answerer stops its one transport if the group's first mid is not the
            # first m-line's: it sees the (identical) m-lines in m-line order; the answer
            # keeps the offer's order (the tag first).
            description.group = [GroupDescription("BUNDLE", list[int | str](mids)), *others]
            return RTCBundlePolicy.MAX_BUNDLE, tuple(items)
    # Mirror the offerer's own transports (no BUNDLE in the answer).
    description.group = others
    if any(bundle_only):
        raise OfferError("the offer has bundle-only m-lines but cannot be bundled")
    for i, m in enumerate(media):
        if not m.ice_candidates:
            groups.setdefault(_transport_key(m), []).append(i)
    layout = sorted(sorted(g) for g in groups.values())
    by_kind = sorted(
        sorted(i for i, m in enumerate(media) if m.kind == kind) for kind in {m.kind for m in media}
    )
    if len(layout) == 1:
        return RTCBundlePolicy.MAX_BUNDLE, None
    if all(len(g) == 1 for g in layout):
        return RTCBundlePolicy.MAX_COMPAT, None
    if layout == by_kind:
        return RTCBundlePolicy.BALANCED, None
    raise OfferError(
        "the offer shares transports between m-lines in a way that cannot be answered "
        "(use BUNDLE, one transport per media kind, or one per m-line)"
    )


def _share_transport(media: list[MediaDescription], tagged: MediaDescription) -> None:
    """Every bundled m-line takes the tagged m-line's transport (RFC 8843 section 7.3.1)."""
    for m in media:
        if m is tagged:
            continue
        m.port, m.host = tagged.port, tagged.host
        m.ice = copy.deepcopy(tagged.ice)
        m.ice_candidates = copy.deepcopy(tagged.ice_candidates)
        m.ice_candidates_complete = tagged.ice_candidates_complete
        m.ice_options = tagged.ice_options
        m.dtls = copy.deepcopy(tagged.dtls)
