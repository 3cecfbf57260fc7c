// The transcript of the recording open, beside the players: both parties' lines interleaved
// by time; a click on a line seeks both players there; the line being spoken is highlighted as
// the recording plays; the words of the current search are marked.

import { $, clock, el } from "./common.js";
import { seek } from "./investigator-player.js";
import { highlighted, players, recordingPath, request, searchTerms, state } from "./investigator-state.js";

const STATUS_TEXT = {
  pending: "The transcript is being made (after the recording is sealed).",
  failed: "The transcript could not be made.",
  none: "No transcript: nothing was recorded of this call.",
};
const PENDING_RETRY_MS = 5_000;
let lines = [];
let retry = null;

const who = (party) => (party === "family" ? "Family" : "Resident");

export async function loadTranscript(callId) {
  clearTimeout(retry);
  lines = [];
  const list = $("#transcript");
  const status = $("#transcript-status");
  list.replaceChildren();
  status.textContent = "Loading the transcript…";
  let transcript;
  try {
    const query = new URLSearchParams({ playback: state.playback });
    transcript = await request("GET", recordingPath(callId, `/transcript?${query}`));
  } catch (exc) {
    if (callId === state.callId) status.textContent = `No transcript: ${exc.message}`;
    return;
  }
  if (callId !== state.callId) return;
  if (transcript.status !== "done") {
    status.textContent = STATUS_TEXT[transcript.status] || transcript.status;
    if (transcript.status === "pending") retry = setTimeout(() => loadTranscript(callId), PENDING_RETRY_MS);
    return;
  }
  const terms = searchTerms(state.q);
  const segments = [...transcript.segments].sort((a, b) => a.start_s - b.start_s);
  lines = segments.map((segment) => {
    const text = highlighted(segment.text, terms);
    const hit = text.some((node) => node instanceof HTMLElement);
    const line = el("li", {
      "data-start": segment.start_s, "data-end": segment.end_s, "data-party": segment.party,
      class: hit ? "hit" : null, title: `Play from ${clock(segment.start_s)}`,
      onclick: () => seek(segment.start_s),
    },
    el("button", { type: "button", class: "link", "data-offset": segment.start_s }, clock(segment.start_s)),
    el("span", { class: "grow" }, el("b", {}, `${who(segment.party)}: `), ...text),
    el("small", { class: "muted", title: "Recognition confidence" }, `${Math.round(segment.confidence * 100)}%`));
    return { line, start: segment.start_s, end: segment.end_s };
  });
  list.replaceChildren(...lines.map(({ line }) => line));
  const hits = lines.filter(({ line }) => line.classList.contains("hit")).length;
  status.textContent = `${transcript.engine}, ${transcript.language}` +
    (hits ? ` · ${hits} line${hits === 1 ? "" : "s"} match “${state.q.replaceAll("\"", "")}”` : "") +
    " · SHA-256 " + transcript.sha256.slice(0, 12) + "…";
}

/** Highlight the line being spoken at `t` (the latest line started, until the next one). */
function follow(t) {
  let current = null;
  for (const entry of lines) {
    if (entry.start <= t + 0.05 && t <= Math.max(entry.end, entry.start + 1)) current = entry;
  }
  for (const entry of lines) {
    const on = entry === current;
    if (on === entry.line.classList.contains("current")) continue;
    entry.line.classList.toggle("current", on);
    entry.line.toggleAttribute("aria-current", on);
    entry.line.style.background = on ? "#eef4fd" : ""; // through the CSSOM (the CSP)
  }
}

players.tablet.addEventListener("timeupdate", () => follow(players.tablet.currentTime));
players.tablet.addEventListener("seeked", () => follow(players.tablet.currentTime));
