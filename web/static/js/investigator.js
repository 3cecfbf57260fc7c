// The investigator page: search recordings with the catalog filters and by what was said or
// by name, play one (streamed, with seeking) beside its transcript, read its signed manifest,
// jump to its flags, verify it, download it, put it on legal hold, read the call's audit trail
// and the facilities' watch-word alerts. Every request is audited by the server.
//
// Modules: investigator-state.js (shared state, API paths), investigator-player.js (the two
// synced players, timeline, thumbnails), investigator-transcript.js, investigator-alerts.js,
// investigator-audit.js. Downloads and verification always concern the original, signed call
// file.

import { $, clock, dateTime, el, say, show, tokenSubject } from "./common.js";
import { followAlerts } from "./investigator-alerts.js";
import { loadAudit } from "./investigator-audit.js";
import { fetchMedia, flagLabel, load, loadThumbnails, renderTimeline, seek } from "./investigator-player.js";
import {
  PARTIES, bytes, highlighted, mediaPath, newPlayback, recordingPath, request, searchTerms, state,
} from "./investigator-state.js";
import { loadTranscript } from "./investigator-transcript.js";
import { staffSignIn } from "./staff-signin.js";

const TOKEN_KEY = "visitation.investigator.token";

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
  followAlerts(openAt);
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
  for (const name of ["q", "resident_id", "family_id", "facility_id", "flagged", "limit"]) {
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
  const params = filters();
  const { recordings } = await request("GET", `/api/v1/recordings?${params}`);
  state.q = params.get("q") || "";
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

/** A hit's matching lines: when, who, what (the search's words marked); a click opens there. */
function matchLines(r) {
  const terms = searchTerms(state.q);
  return (r.matches || []).slice(0, 3).map((m) => el("div", { class: "match" },
    el("button", {
      type: "button", class: "link", "data-offset": m.start_s, title: "Open the recording here",
      onclick: () => openAt(r.call_id, m.start_s),
    }, clock(m.start_s)),
    " ", el("small", { class: "muted" }, m.party === "family" ? "family: " : "resident: "),
    ...highlighted(m.text, terms)));
}

function resultRow(r) {
  return el(
    "tr", { "data-call": r.call_id, class: r.call_id === state.callId ? "selected" : null },
    el("td", {}, dateTime(r.started_at)),
    el("td", {}, r.facility_name || r.facility_id),
    named(r.resident_name, r.resident_id),
    named(r.family_name, r.family_id),
    el("td", { class: "num" }, r.duration_s == null ? "—" : clock(r.duration_s)),
    el("td", { class: "num" }, String(r.flags.length)),
    el("td", { class: "said" }, ...matchLines(r)),
    el("td", {}, ...stateBadges(r)),
    el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => open(r.call_id) }, "Open")),
  );
}

// ---------------------------------------------------------------- one recording

/** Open a recording, then play it from `seconds` (once its players can). */
async function openAt(callId, seconds) {
  await open(callId);
  if (callId === state.callId) seek(seconds);
}

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
    await loadTranscript(callId);
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

  $("#flags").replaceChildren(...r.flags.map((flag) => el("li", { "data-source": flag.source || "monitor" },
    el("button", {
      type: "button", class: "link", "data-offset": flag.offset_s,
      title: "Play from this moment", onclick: () => seek(flag.offset_s),
    }, clock(flag.offset_s)),
    el("span", { class: "grow" }, flag.source === "watch_word" ? flagLabel(flag) : flag.note, " ",
      el("small", { class: "muted" }, `— ${flag.by}`)),
  )));
  $("#no-flags").hidden = r.flags.length > 0;
  renderTimeline(r);
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
    const transcript = v.transcript_ok == null ? "" : v.transcript_ok ? " The transcript is as signed." : "";
    result.replaceChildren(
      v.ok ? `✔ Verified: the file and the manifest are as signed.${transcript}` : `✘ Tampered: ${v.problems.join("; ")}.`,
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

staffSignIn(TOKEN_KEY, signIn, "investigator");
