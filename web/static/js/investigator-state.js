// What the investigator page's modules share: the signed-in token, the recording open, the two
// players, and the API paths of a recording.

import { $, api } from "./common.js";
import { signedOut } from "./staff-signin.js";

export const PARTIES = ["tablet", "family"];
export const players = { tablet: $("#player-tablet"), family: $("#player-family") };

export const state = {
  token: null, callId: null, recording: null, streaming: null, blobUrls: [], playback: null,
  signedIn: false, timelineLength: 0, q: "",
};

export const recordingPath = (callId, rest = "") =>
  `/api/v1/recordings/${encodeURIComponent(callId)}${rest}`;

/**
 * The whole call file (`party` null), or one party's view of it. With `playback` (the id
 * `open` makes each time a recording is opened), the server's audit counts every request of
 * this playback as one `view`; without it, each request is a `download`.
 */
export function mediaPath(callId, party = null, playback = null) {
  const query = new URLSearchParams();
  if (party) query.set("party", party);
  if (playback) query.set("playback", playback);
  return recordingPath(callId, `/media${query.size ? `?${query}` : ""}`);
}

/** A fresh playback id: 16 random bytes as hex. */
export function newPlayback() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function request(method, path, body) {
  try {
    return await api(state.token, method, path, body);
  } catch (exc) {
    // A session that ended (expired, revoked, signed out elsewhere): back to sign-in.
    if (exc.status === 401 && state.signedIn) signedOut("Your session has ended. Sign in again.");
    throw exc;
  }
}

/** 1234567 -> "1.2 MB". */
export function bytes(n) {
  if (n == null) return "—";
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  for (; n >= 1000 && i < units.length - 1; i++) n /= 1000;
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} bytes`;
}

/** The words of a search (`q`): quoted phrases and bare words, lower case. */
export function searchTerms(q) {
  const terms = [];
  for (const [, phrase, word] of (q || "").matchAll(/"([^"]*)"|(\S+)/g)) {
    const text = (phrase ?? word).toLowerCase().replace(/[^a-z0-9' ]+/g, " ").trim();
    if (text) terms.push(text);
  }
  return terms;
}

/** `text` as nodes, the search terms in <mark>. */
export function highlighted(text, terms) {
  if (!terms.length) return [text];
  const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/ +/g, "\\s+"));
  const pattern = new RegExp(`\\b(${escaped.join("|")})\\b`, "gi");
  const out = [];
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) out.push(text.slice(last, match.index));
    const mark = document.createElement("mark");
    mark.textContent = match[0];
    out.push(mark);
    last = match.index + match[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}
