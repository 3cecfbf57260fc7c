// The investigator page: search recordings with the catalog filters, play one (streamed, with
// seeking), read its signed manifest, jump to its flags, verify it, download it, put it on
// legal hold, and read the call's audit trail. Every request is audited by the server.
//
// Browsers play only the first video and audio track of a file, so each party is played from
// its own view of the recording (`/media?party=tablet|family`, remuxed by the server), in two
// players kept in step: the resident's drives, the family's follows. Downloads and
// verification always concern the original, signed call file.

import { $, api, clock, dateTime, el, say, show, tokenSubject } from "./common.js";
import { signedOut, staffSignIn } from "./staff-signin.js";
import { syncVideos } from "./video-sync.js";

const TOKEN_KEY = "visitation.investigator.token";
const PARTIES = ["tablet", "family"];
const players = { tablet: $("#player-tablet"), family: $("#player-family") };
syncVideos(players.tablet, [players.family]);

const state = {
  token: null, callId: null, recording: null, streaming: null, blobUrls: [], playback: null,
};

const recordingPath = (callId, rest = "") =>
  `/api/v1/recordings/${encodeURIComponent(callId)}${rest}`;

/**
 * The whole call file (`party` null), or one party's view of it. With `playback` (the id
 * `open` makes each time a recording is opened), the server's audit counts every request of
 * this playback as one `view`; without it, each request is a `download`.
 */
function mediaPath(callId, party = null, playback = null) {
  const query = new URLSearchParams();
  if (party) query.set("party", party);
  if (playback) query.set("playback", playback);
  return recordingPath(callId, `/media${query.size ? `?${query}` : ""}`);
}

/** A fresh playback id: 16 random bytes as hex. */
function newPlayback() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function request(method, path, body) {
  try {
    return await api(state.token, method, path, body);
  } catch (exc) {
    // A session that ended (expired, revoked, signed out elsewhere): back to sign-in.
    if (exc.status === 401 && state.signedIn) signedOut("Your session has ended. Sign in again.");
    throw exc;
  }
}

/** 1234567 -> "1.2 MB". */
function bytes(n) {
  if (n == null) return "—";
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  for (; n >= 1000 && i < units.length - 1; i++) n /= 1000;
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} bytes`;
}

// ---------------------------------------------------------------- sign in

async function signIn(token) {
  state.token = token;
  try {
    await search(); // a token the API refuses fails the sign-in
  } catch (exc) {
    if (exc.status === 403) throw new Error("this is not an investigator's token");
    throw exc;
  }
  $("#who").textContent = tokenSubject(token);
  state.signedIn = true;
  show("workspace");
  state.streaming = startMediaWorker();
}


/**
 * Register the media service worker (`media-sw.js`), which adds this page's token to its
 * <video> requests so the browser can stream and seek with Range requests. Resolves true once
 * it controls the page; false where service workers are unavailable (not a secure context).
 */
async function startMediaWorker() {
  const { serviceWorker } = navigator;
  if (!serviceWorker) return false;
  serviceWorker.addEventListener("message", (event) => {
    if (event.data === "token?") event.ports[0]?.postMessage(state.token);
  });
  serviceWorker.startMessages();
  const controlled = new Promise((resolve) =>
    serviceWorker.addEventListener("controllerchange", resolve, { once: true }),
  );
  const claimed = serviceWorker.ready.then((registration) => {
    registration.active?.postMessage("claim"); // a first visit, or after a hard reload
    return controlled;
  });
  try {
    const registration = await serviceWorker.register("/media-sw.js", { scope: "/investigator" });
    if (registration && !serviceWorker.controller) {
      await Promise.race([claimed, new Promise((resolve) => setTimeout(resolve, 5000))]);
    }
  } catch (exc) {
    console.warn("media service worker unavailable; playing downloads instead:", exc);
  }
  return Boolean(serviceWorker.controller);
}

// ---------------------------------------------------------------- search

const searchForm = $("#search");

function filters() {
  const params = new URLSearchParams();
  for (const name of ["resident_id", "family_id", "facility_id", "flagged", "limit"]) {
    const value = searchForm.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  for (const [name, pad] of [["from", 0], ["to", 59.999]]) { // "to" takes in its whole minute
    const value = searchForm.elements[name].value;
    if (value) params.set(name, String(new Date(value).getTime() / 1000 + pad));
  }
  return params;
}

async function search() {
  const { recordings } = await request("GET", `/api/v1/recordings?${filters()}`);
  $("#results").replaceChildren(...recordings.map(resultRow));
  $("#no-results").hidden = recordings.length > 0;
  $("#found").textContent = `${recordings.length} found`;
}

searchForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  say($("#search-error"), "");
  try {
    await search();
  } catch (exc) {
    say($("#search-error"), `Search failed: ${exc.message}`);
  }
});

searchForm.addEventListener("reset", () => setTimeout(() => searchForm.requestSubmit()));

function stateBadges(recording) {
  const kind = { final: "connected", purged: "ended" }[recording.state] || "";
  const incomplete = recording.state === "final" && recording.complete === false;
  return [
    el("span", { class: `badge ${kind}` }, recording.state),
    // Signed, but not the whole call: said on the list, not only in the manifest.
    incomplete
      ? el("span", { class: "badge ended incomplete", title: recording.incomplete_reason || "" }, "incomplete")
      : null,
    recording.legal_hold ? el("span", { class: "badge privileged" }, "hold") : null,
  ];
}

const named = (name, id) => el("td", {}, name || id, name ? el("small", { class: "muted" }, ` ${id}`) : null);

function resultRow(r) {
  return el(
    "tr", { "data-call": r.call_id, class: r.call_id === state.callId ? "selected" : null },
    el("td", {}, dateTime(r.started_at)),
    el("td", {}, r.facility_name || r.facility_id),
    named(r.resident_name, r.resident_id),
    named(r.family_name, r.family_id),
    el("td", { class: "num" }, r.duration_s == null ? "—" : clock(r.duration_s)),
    el("td", { class: "num" }, String(r.flags.length)),
    el("td", {}, ...stateBadges(r)),
    el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => open(r.call_id) }, "Open")),
  );
}

// ---------------------------------------------------------------- one recording

async function open(callId) {
  state.callId = callId;
  for (const row of $("#results").rows) row.classList.toggle("selected", row.dataset.call === callId);
  for (const id of ["#rec-error", "#verify-result", "#download-status"]) say($(id), "");
  for (const party of PARTIES) $(`#thumbs-${party}`).replaceChildren();
  $("#thumbs-status").textContent = "";
  $("#audit").replaceChildren();
  $("#recording").hidden = false;
  state.playback = newPlayback();
  try {
    const query = new URLSearchParams({ playback: state.playback });
    const recording = await request("GET", recordingPath(callId, `?${query}`));
    if (callId !== state.callId) return;
    render(recording);
    await load(callId);
    loadThumbnails(callId, recording); // in the background: the players do not wait for it
  } catch (exc) {
    say($("#rec-error"), `Could not open the recording: ${exc.message}`);
  }
  await loadAudit();
  $("#recording").scrollIntoView({ block: "start" });
}

function render(r) {
  state.recording = r;
  $("#rec-title").textContent =
    `${r.resident_name || r.resident_id} ↔ ${r.family_name || r.family_id} · ${dateTime(r.started_at)}`;
  $("#rec-state").replaceWith(el("span", { id: "rec-state" }, ...stateBadges(r)));
  $("#hold").checked = r.legal_hold;
  $("#hold").disabled = r.state === "purged";
  $("#verify").disabled = r.state !== "final";
  $("#download").disabled = r.state === "purged";

  const tracks = r.tracks.map((t) => `${t.party} ${t.kind} (${t.codec})`).join(", ");
  const facts = [
    ["Call", r.call_id],
    ["Facility", r.facility_name ? `${r.facility_name} (${r.facility_id})` : r.facility_id],
    ["Resident", r.resident_name ? `${r.resident_name} (${r.resident_id})` : r.resident_id],
    ["Family", r.family_name ? `${r.family_name} (${r.family_id})` : r.family_id],
    ["Started", dateTime(r.started_at)],
    ["Ended", dateTime(r.ended_at)],
    ["Duration", r.duration_s == null ? "—" : `${clock(r.duration_s)} (${r.duration_s.toFixed(1)} s)`],
    ["End reason", r.end_reason || "—"],
    ["Tracks", tracks || "—"],
    ["Size", r.size == null ? "—" : `${bytes(r.size)} (${r.size} bytes)`],
    ["SHA-256", el("code", {}, r.sha256 || "—")],
    ["Complete", r.complete ? "yes" : `no — ${r.incomplete_reason || "the recorder could not close the file cleanly"}`],
    ["Signed", r.signed_at ? dateTime(r.signed_at) : "not yet (still recording)"],
  ];
  $("#manifest").replaceChildren(
    ...facts.map(([name, value]) => el("div", {}, el("dt", {}, name), el("dd", {}, value))),
  );

  $("#flags").replaceChildren(...r.flags.map((flag) => el("li", {},
    el("button", {
      type: "button", class: "link", "data-offset": flag.offset_s,
      title: "Play from this moment", onclick: () => seek(flag.offset_s),
    }, clock(flag.offset_s)),
    el("span", { class: "grow" }, flag.note, " ", el("small", { class: "muted" }, `— ${flag.by}`)),
  )));
  $("#no-flags").hidden = r.flags.length > 0;
  renderTimeline(r);
}

// ---------------------------------------------------------------- timeline and thumbnails

/** Length of the timeline, in seconds of call: the recording's, else as far as known. */
function timelineLength(r) {
  if (r.duration_s) return r.duration_s;
  const lastFlag = Math.max(0, ...r.flags.map((f) => f.offset_s));
  return Math.max(1, lastFlag, Date.now() / 1000 - r.started_at);
}

/** The call's moments on the call clock (0 = connected): connected, flags, warning, end. */
function timelineEvents(r) {
  const events = [{ kind: "connected", at: 0, label: "Connected" }];
  for (const flag of r.flags) {
    events.push({ kind: "flag", at: flag.offset_s, label: `Flag: ${flag.note} — ${flag.by}` });
  }
  if (r.warned_at) {
    events.push({ kind: "warning", at: r.warned_at - r.started_at, label: "One-minute warning" });
  }
  if (r.duration_s != null && r.ended_at) {
    events.push({ kind: "end", at: r.duration_s, label: `Ended: ${r.end_reason || "—"}` });
  }
  return events.sort((a, b) => a.at - b.at);
}

function renderTimeline(r) {
  const length = timelineLength(r);
  const pct = (at) => `${(100 * Math.min(Math.max(at, 0), length)) / length}%`;
  const marks = timelineEvents(r).map(({ kind, at, label }) => {
    const mark = el("button", {
      type: "button", class: "mark", "data-kind": kind, "data-offset": at,
      title: `${clock(at)} ${label}`, "aria-label": `${clock(at)} ${label}`,
      onclick: (event) => { event.stopPropagation(); seek(at); },
    });
    mark.style.left = pct(at); // through the CSSOM: the page's CSP refuses style attributes
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
async function loadThumbnails(callId, recording) {
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

/** Both players to `seconds` on the call clock, playing. */
function seek(seconds) {
  for (const video of Object.values(players)) {
    if (video.getAttribute("src")) video.currentTime = seconds;
  }
  players.tablet.play().catch(() => {}); // e.g. interrupted by another seek: the position holds
}

/**
 * Point the players at the recording: each party's view, streamed through the service worker,
 * else downloaded. A recording not yet signed has no party views: its whole file plays in the
 * first player (the resident's side only).
 */
async function load(callId) {
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
async function fetchMedia(path, progress) {
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

$("#verify").addEventListener("click", async () => {
  const callId = state.callId;
  const result = $("#verify-result");
  const button = $("#verify");
  button.disabled = true;
  result.className = "muted";
  delete result.dataset.outcome;
  say(result, "Recomputing the SHA-256…");
  try {
    const v = await request("POST", recordingPath(callId, "/verify"));
    result.className = v.ok ? "notice" : "error";
    result.dataset.outcome = v.ok ? "ok" : "tampered";
    result.replaceChildren(
      v.ok ? "✔ Verified: the file and the manifest are as signed." : `✘ Tampered: ${v.problems.join("; ")}.`,
      el("br"),
      "Recomputed SHA-256: ",
      el("code", { class: "sha" }, v.sha256 || "— (no file)"),
    );
  } catch (exc) {
    result.className = "error";
    say(result, `Could not verify: ${exc.message}`);
  }
  button.disabled = false;
  await loadAudit();
});

$("#download").addEventListener("click", async () => {
  const callId = state.callId;
  const status = $("#download-status");
  const button = $("#download");
  button.disabled = true;
  try {
    const blob = await fetchMedia(mediaPath(callId), (got, total) => {
      say(status, `Downloading… ${total ? Math.floor((100 * got) / total) : "?"}%`);
    });
    const url = URL.createObjectURL(blob);
    el("a", { href: url, download: `${callId}.webm` }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    say(status, `Saved ${callId}.webm (${bytes(blob.size)}).`);
  } catch (exc) {
    say(status, `Download failed: ${exc.message}`);
  }
  button.disabled = false;
  await loadAudit();
});

$("#hold").addEventListener("change", async (event) => {
  const hold = event.target.checked;
  try {
    const recording = await request("PUT", recordingPath(state.callId, "/legal-hold"), { hold });
    render(recording);
  } catch (exc) {
    event.target.checked = !hold;
    say($("#rec-error"), `Could not change the legal hold: ${exc.message}`);
  }
  await loadAudit();
});

// ---------------------------------------------------------------- audit trail

async function loadAudit() {
  const callId = state.callId;
  say($("#audit-error"), "");
  try {
    const query = new URLSearchParams({ call_id: callId, limit: "1000" });
    const { entries } = await request("GET", `/api/v1/audit?${query}`);
    if (callId !== state.callId) return;
    $("#audit").replaceChildren(...entries.reverse().map(auditRow)); // newest first
  } catch (exc) {
    say($("#audit-error"), `Could not read the audit trail: ${exc.message}`);
  }
}

$("#audit-refresh").addEventListener("click", loadAudit);
// Others' accesses show up by themselves (reading the audit trail is not itself audited).
const AUDIT_REFRESH_MS = 5_000;
setInterval(() => {
  if (state.callId && document.visibilityState === "visible") loadAudit();
}, AUDIT_REFRESH_MS);

function auditRow(entry) {
  return el(
    "tr", { "data-action": entry.action },
    el("td", {}, dateTime(entry.at)),
    el("td", {}, `${entry.staff_id} `, el("small", { class: "muted" }, entry.role)),
    el("td", {}, entry.action),
    el("td", {}, el("span", { class: `badge ${entry.outcome === "ok" ? "" : "ended"}` }, entry.outcome)),
    el("td", {}, auditDetail(entry)),
    el("td", { class: "muted" }, entry.remote),
  );
}

function auditDetail({ action, detail = {} }) {
  switch (action) {
    case "list": {
      const query = Object.entries(detail.query || {}).map(([k, v]) => `${k}=${v}`).join(" ");
      return `search ${query || "(no filters)"} → ${(detail.call_ids || []).length} found`;
    }
    case "download":
      return [
        detail.party ? `${detail.party} view` : "call file",
        detail.range ? `range ${detail.range}` : "whole",
        detail.status && `HTTP ${detail.status}`,
      ].filter(Boolean).join(", ");
    case "verify":
      if (!("ok" in detail)) return `refused: ${detail.state}`;
      return detail.ok ? "as signed" : `tampered: ${(detail.problems || []).join("; ")}`;
    case "view":
      if (detail.status >= 400) return `refused: HTTP ${detail.status}`;
      return detail.playback ? "opened and played" : "manifest";
    case "legal_hold":
      return detail.hold ? "hold placed" : "hold released";
    default:
      return Object.keys(detail).length ? JSON.stringify(detail) : "";
  }
}

staffSignIn(TOKEN_KEY, signIn, "investigator");
