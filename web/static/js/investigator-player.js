// The two synced players of a recording, its timeline (connected, flags — a monitor's or a
// watch word's —, the one-minute warning, the end) and each party's keyframe thumbnails.
//
// Browsers play only the first video and audio track of a file, so each party is played from
// its own view of the recording (`/media?party=tablet|family`, remuxed by the server), in two
// players kept in step: the resident's drives, the family's follows.

import { $, clock, el } from "./common.js";
import { PARTIES, bytes, mediaPath, players, recordingPath, request, state } from "./investigator-state.js";
import { syncVideos } from "./video-sync.js";

syncVideos(players.tablet, [players.family]);

/** Both players to `seconds` on the call clock, playing. */
export function seek(seconds) {
  for (const video of Object.values(players)) {
    if (video.getAttribute("src")) video.currentTime = seconds;
  }
  players.tablet.play().catch(() => {}); // e.g. interrupted by another seek: the position holds
}

/** Length of the timeline, in seconds of call: the recording's, else as far as known. */
function timelineLength(r) {
  if (r.duration_s) return r.duration_s;
  const lastFlag = Math.max(0, ...r.flags.map((f) => f.offset_s));
  return Math.max(1, lastFlag, Date.now() / 1000 - r.started_at);
}

export const flagLabel = (flag) => flag.source === "watch_word"
  ? `Watch word “${flag.word}” (${flag.party === "family" ? "family" : "resident"})`
  : `Flag: ${flag.note} — ${flag.by}`;

/** The call's moments on the call clock (0 = connected): connected, flags, warning, end. */
function timelineEvents(r) {
  const events = [{ kind: "connected", at: 0, label: "Connected" }];
  for (const flag of r.flags) {
    events.push({ kind: "flag", at: flag.offset_s, label: flagLabel(flag), source: flag.source || "monitor" });
  }
  if (r.warned_at) {
    events.push({ kind: "warning", at: r.warned_at - r.started_at, label: "One-minute warning" });
  }
  if (r.duration_s != null && r.ended_at) {
    events.push({ kind: "end", at: r.duration_s, label: `Ended: ${r.end_reason || "—"}` });
  }
  return events.sort((a, b) => a.at - b.at);
}

export function renderTimeline(r) {
  const length = timelineLength(r);
  const pct = (at) => `${(100 * Math.min(Math.max(at, 0), length)) / length}%`;
  const marks = timelineEvents(r).map(({ kind, at, label, source }) => {
    const mark = el("button", {
      type: "button", class: "mark", "data-kind": kind, "data-offset": at, "data-source": source || null,
      title: `${clock(at)} ${label}`, "aria-label": `${clock(at)} ${label}`,
      onclick: (event) => { event.stopPropagation(); seek(at); },
    });
    mark.style.left = pct(at); // through the CSSOM: the page's CSP refuses style attributes
    if (source === "watch_word") mark.style.background = "#b26a00";
    return mark;
  });
  $("#timeline-track").replaceChildren($("#timeline-playhead"), ...marks);
  $("#timeline-end").textContent = clock(length);
  state.timelineLength = length;
}

$("#timeline-track").addEventListener("click", (event) => {
  const box = event.currentTarget.getBoundingClientRect();
  if (state.timelineLength) seek(((event.clientX - box.left) / box.width) * state.timelineLength);
});
players.tablet.addEventListener("timeupdate", () => {
  const length = state.timelineLength || 1;
  const at = Math.min(players.tablet.currentTime, length);
  $("#timeline-playhead").style.left = `${(100 * at) / length}%`;
});

/** Each party's keyframe thumbnails under the timeline (signed recordings only). */
export async function loadThumbnails(callId, recording) {
  const status = $("#thumbs-status");
  if (recording.state !== "final" || !recording.sha256) {
    status.textContent = recording.state === "purged" ? "" : "Thumbnails come once the recording is signed.";
    return;
  }
  status.textContent = "Making thumbnails from the keyframes…";
  try {
    const strips = await Promise.all(PARTIES.map((party) => {
      const query = new URLSearchParams({ party, playback: state.playback });
      return request("GET", recordingPath(callId, `/thumbnails?${query}`));
    }));
    if (callId !== state.callId) return;
    for (const { party, thumbnails } of strips) {
      $(`#thumbs-${party}`).replaceChildren(...thumbnails.map((t) => el("button", {
        type: "button", "data-offset": t.offset_s, title: `Play from ${clock(t.offset_s)}`,
        onclick: () => seek(t.offset_s),
      }, el("img", { src: t.src, width: t.width, height: t.height, alt: `${party} at ${clock(t.offset_s)}` }),
      el("small", {}, clock(t.offset_s)))));
    }
    const none = strips.every((strip) => strip.thumbnails.length === 0);
    status.textContent = none ? "No keyframes to show." : "";
  } catch (exc) {
    if (callId === state.callId) status.textContent = `No thumbnails: ${exc.message}`;
  }
}

/**
 * Point the players at the recording: each party's view, streamed through the service worker,
 * else downloaded. A recording not yet signed has no party views: its whole file plays in the
 * first player (the resident's side only).
 */
export async function load(callId) {
  const status = $("#player-status");
  for (const video of Object.values(players)) {
    video.pause();
    video.removeAttribute("src");
    video.load(); // stop the previous recording
  }
  for (const url of state.blobUrls) URL.revokeObjectURL(url);
  state.blobUrls = [];
  const recording = state.recording;
  players.family.closest("figure").hidden = recording.state !== "final";
  if (recording.state === "purged") {
    status.textContent = "The media was purged under the retention policy; the manifest remains.";
    return;
  }
  const sources = recording.state === "final" ? PARTIES : [null];
  const partial = recording.state === "final" ? "" : " Still being recorded: the resident's side only until it is signed.";
  if (await state.streaming) {
    sources.forEach((party, i) => {
      players[PARTIES[i]].src = mediaPath(callId, party, state.playback);
    });
    status.textContent = `Streaming from the server; the two sides play in step.${partial}`;
    return;
  }
  const got = sources.map(() => 0);
  const totals = sources.map(() => null);
  const blobs = await Promise.all(sources.map((party, i) => fetchMedia(mediaPath(callId, party, state.playback), (n, total) => {
    [got[i], totals[i]] = [n, total];
    const sum = (list) => list.reduce((a, b) => a + (b || 0), 0);
    status.textContent = `Loading the recording… ${bytes(sum(got))} of ${bytes(sum(totals) || null)}`;
  })));
  if (callId !== state.callId) return;
  blobs.forEach((blob, i) => {
    const url = URL.createObjectURL(blob);
    state.blobUrls.push(url);
    players[PARTIES[i]].src = url;
  });
  status.textContent = `Loaded in full (this browser cannot stream it).${partial}`;
}

/** A media file (a `mediaPath`) through an authenticated fetch, reporting progress. */
export async function fetchMedia(path, progress) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${state.token}` },
    cache: "no-store",
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.error?.message || `HTTP ${response.status}`);
  }
  const total = Number(response.headers.get("Content-Length")) || null;
  const reader = response.body.getReader();
  const chunks = [];
  for (let got = 0; ;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    progress((got += value.length), total);
  }
  return new Blob(chunks, { type: "video/webm" });
}

for (const video of Object.values(players)) {
  video.addEventListener("error", () => {
    if (video.getAttribute("src")) {
      const side = video.dataset.party === "family" ? "family's" : "resident's";
      $("#player-status").textContent = `The ${side} side could not be played (refused, or not a playable file).`;
    }
  });
}
