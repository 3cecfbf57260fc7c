// The monitoring console: live calls of the staff member's facilities, updated in real time;
// watch several calls at once (each tile shows both parties), flag, terminate.

import { $, clock, connect, el, say, show, tokenSubject } from "./common.js";
import { endedWords, terminateForm, watchEndedWords } from "./monitor-terminate.js";
import { qualityBadge, showQuality, worst } from "./quality.js";
import { applyAnswer, fullOffer, monitorConnection, play } from "./rtc.js";
import { sessionEnded, signedOut, staffSignIn } from "./staff-signin.js";

const TOKEN_KEY = "visitation.monitor.token";
const WATCHABLE = new Set(["accepted", "connected"]);
const ENDED_TILE_MS = 30_000; // how long an ended call's tile stays on the wall

const state = {
  client: null, offset: 0, calls: new Map(), rows: new Map(), tiles: new Map(),
  quality: new Map(), // call id -> the latest `call.quality`
};

/** Server time (CallSummary times are Unix seconds on the server's clock). */
const now = () => Date.now() / 1000 + state.offset;

async function measureOffset() {
  try {
    const response = await fetch("/healthz", { method: "HEAD", cache: "no-store" });
    const offset = Date.parse(response.headers.get("Date")) / 1000 - Date.now() / 1000;
    state.offset = Math.abs(offset) > 2 ? offset : 0; // the header has 1 s resolution
  } catch {
    state.offset = 0;
  }
}

// ---------------------------------------------------------------- sign in

async function signIn(token) {
  const staff = tokenSubject(token);
  state.client = await connect(token, (online, why, info) => {
    if (!online && sessionEnded(why, info)) return signedOut("Your session has ended. Sign in again.");
    $("#who").textContent = online ? staff : `offline — ${why || "reconnecting…"}`;
    if (!online) for (const tile of state.tiles.values()) tile.ended("disconnected");
    else refresh(); // the server ended our watches with the old connection
    return undefined;
  });
  $("#who").textContent = staff;
  const { client } = state;
  client.on("monitor.call_started", upsert);
  client.on("monitor.call_updated", upsert);
  client.on("call.quality", (quality) => {
    state.quality.set(quality.call_id, quality);
    const row = state.rows.get(quality.call_id);
    if (row) renderQuality(row, quality);
    state.tiles.get(quality.call_id)?.quality(quality);
  });
  client.on("monitor.call_ended", (summary) => {
    state.calls.delete(summary.call_id);
    state.quality.delete(summary.call_id);
    state.rows.get(summary.call_id)?.remove();
    state.rows.delete(summary.call_id);
    state.tiles.get(summary.call_id)?.ended(summary.reason);
    renderCount();
  });
  // The server ended our watch while the call goes on (it turned privileged): the tile says
  // why and leaves; the call's row stays, as its updates show it.
  client.on("monitor.watch_ended", ({ call_id: callId, reason }) => {
    state.tiles.get(callId)?.watchEnded(reason);
  });
  await measureOffset();
  await refresh();
  show("console");
  setInterval(tick, 1000);
}


async function refresh() {
  try {
    const { calls } = await state.client.request("monitor.calls");
    state.calls = new Map(calls.map((c) => [c.call_id, c]));
    for (const row of state.rows.values()) row.remove();
    state.rows.clear();
    for (const call of calls) upsert(call);
    say($("#console-error"), "");
  } catch (exc) {
    say($("#console-error"), `Could not list calls: ${exc.message}`);
    if (exc.code === "forbidden") throw new Error("this token is not a monitoring token");
  }
  renderCount();
}

// ---------------------------------------------------------------- the call list

function upsert(summary) {
  state.calls.set(summary.call_id, summary);
  let row = state.rows.get(summary.call_id);
  if (!row) {
    row = el("tr", { "data-call": summary.call_id });
    state.rows.set(summary.call_id, row);
    $("#calls").append(row);
  }
  renderRow(row, summary);
  state.tiles.get(summary.call_id)?.update(summary);
  renderCount();
}

function renderRow(row, call) {
  const person = (p) => el("td", {}, p.name || p.id, " ", el("small", { class: "muted" }, p.id));
  row.replaceChildren(
    person(call.resident),
    call.privileged // who the attorney is stays private (PROTOCOL v1.1)
      ? el("td", { class: "muted" }, "Privileged (attorney)")
      : person(call.family),
    el("td", {}, call.facility_name || call.facility_id),
    el("td", {}, el("span", { class: `badge ${call.state}` }, call.state), " ", qualityBadge()),
    el("td", { class: "num elapsed" }),
    el("td", { class: "num remaining" }),
    el("td", { class: "num watchers" }, call.privileged ? "—" : String(call.watchers)),
    el("td", {}, action(call)),
  );
  renderTimes(row, call);
  renderQuality(row, state.quality.get(call.call_id));
}

/** The worse party's connection, if weak or poor, next to the call's state. */
function renderQuality(row, quality) {
  showQuality(row.querySelector(".badge.quality"), quality && worst(quality.tablet, quality.family));
}

function action(call) {
  if (call.privileged) return el("span", { class: "badge privileged" }, "not monitored");
  if (state.tiles.has(call.call_id)) return el("span", { class: "muted" }, "watching");
  return el("button", {
    class: "watch",
    disabled: !WATCHABLE.has(call.state),
    onclick: () => watch(call),
  }, "Watch");
}

function renderTimes(row, call) {
  row.querySelector(".elapsed").textContent =
    call.connected_at ? clock(now() - call.connected_at) : "—";
  row.querySelector(".remaining").textContent =
    call.ends_at ? clock(call.ends_at - now()) : "—";
}

function renderCount() {
  const n = state.calls.size;
  $("#count").textContent = n ? `${n} live` : "";
  $("#no-calls").hidden = n > 0;
  $("#no-tiles").hidden = state.tiles.size > 0;
}

function tick() {
  for (const [callId, row] of state.rows) renderTimes(row, state.calls.get(callId));
  for (const tile of state.tiles.values()) tile.tick();
}

// ---------------------------------------------------------------- watching

function watch(call) {
  if (state.tiles.has(call.call_id)) return;
  const tile = new Tile(call);
  state.tiles.set(call.call_id, tile);
  $("#tiles").append(tile.root);
  upsert(state.calls.get(call.call_id) || call);
  tile.start();
}

class Tile {
  constructor(call) {
    this.call = call;
    this.pc = null;
    this.closed = false;
    const video = () => el("video", { autoplay: true, playsinline: true, muted: true });
    this.videos = { resident: video(), family: video() };
    for (const v of Object.values(this.videos)) v.muted = true;
    this.remaining = el("span", { class: "timer" });
    this.badges = { resident: qualityBadge(), family: qualityBadge() };
    this.status = el("span", { class: "badge" }, "connecting");
    this.listen = el("button", { class: "secondary", onclick: () => this.toggleListen() }, "Listen");
    this.log = el("div", { class: "log" });
    this.flagForm = this.form("Note for this moment", "Flag", "secondary", (note) => this.flag(note));
    this.endForm = terminateForm(call, (reason) => this.terminate(reason));
    this.title = el("span", { class: "grow" });
    this.familyCaption = el("figcaption", {});
    this.root = el(
      "article", { class: "tile", "data-call": call.call_id },
      el("header", {},
        this.title, this.status, this.remaining, this.listen,
        el("button", { class: "link", onclick: () => this.close(), title: "Stop watching" }, "✕")),
      el("div", { class: "pair" },
        el("figure", {}, this.videos.resident, el("figcaption", {}, `Resident · ${call.resident.name}`),
          this.badges.resident),
        el("figure", {}, this.videos.family, this.familyCaption, this.badges.family)),
      this.flagForm, this.endForm, this.log,
    );
    this.names(call);
    this.tick();
    const known = state.quality.get(call.call_id);
    if (known) this.quality(known);
  }

  /** `call.quality`: each party's badge on its picture. */
  quality({ tablet, family }) {
    if (this.closed) return;
    showQuality(this.badges.resident, tablet);
    showQuality(this.badges.family, family);
  }

  form(placeholder, label, kind, submit) {
    const input = el("input", { placeholder, maxlength: 2048, required: true, "aria-label": placeholder });
    return el("form", {
      class: label.toLowerCase(),
      onsubmit: async (event) => {
        event.preventDefault();
        const text = input.value.trim();
        if (!text || this.closed) return;
        if (await submit(text)) input.value = "";
      },
    }, input, el("button", { class: kind, type: "submit" }, label));
  }

  note(text, cls = "") {
    this.log.append(el("div", { class: cls }, text));
  }

  async start() {
    const { pc, streams } = monitorConnection();
    this.pc = pc;
    play(this.videos.resident, streams.resident);
    play(this.videos.family, streams.family);
    try {
      const sdp = await fullOffer(pc, await state.client.iceServers());
      const { sdp: answer } = await state.client.request("monitor.watch", { call_id: this.call.call_id, sdp });
      if (this.closed) return;
      await applyAnswer(pc, answer);
      this.status.textContent = "live";
      this.status.className = "badge connected";
    } catch (exc) {
      this.status.textContent = "failed";
      this.note(`Cannot watch: ${exc.message}`, "error");
      pc.close();
    }
  }

  update(call) {
    this.call = call;
    this.names(call);
    this.tick();
  }

  /** Who is on the call; a privileged call's family (an attorney) is never shown. */
  names(call, privileged = call.privileged) {
    const family = privileged ? "Privileged (attorney)" : call.family?.name || call.family?.id;
    this.title.textContent = `${call.resident.name} ↔ ${family}`;
    this.familyCaption.textContent = privileged ? family : `Family · ${family}`;
  }

  tick() {
    const { ends_at: endsAt } = this.call;
    if (!this.closed) this.remaining.textContent = endsAt ? `${clock(endsAt - now())} left` : "";
  }

  toggleListen() {
    const muted = !this.videos.resident.muted;
    for (const v of Object.values(this.videos)) v.muted = muted;
    this.listen.textContent = muted ? "Listen" : "Mute";
  }

  async flag(note) {
    try {
      const { offset_s: offset } = await state.client.request("monitor.flag", { call_id: this.call.call_id, note });
      this.note(`Flagged at ${clock(offset)} — ${note}`);
      return true;
    } catch (exc) {
      this.note(`Flag failed: ${exc.message}`, "error");
      return false;
    }
  }

  async terminate(reason) {
    try {
      await state.client.request("monitor.terminate", { call_id: this.call.call_id, reason });
      this.note(`Terminated: ${reason}`);
      return true;
    } catch (exc) {
      this.note(`Terminate failed: ${exc.message}`, "error");
      return false;
    }
  }

  /** The call ended (`monitor.call_ended`), or this console lost its connection. */
  ended(reason) {
    this.stop("Ended", endedWords(reason), reason);
  }

  /** The server ended this watch while the call goes on (`monitor.watch_ended`). */
  watchEnded(reason) {
    if (this.closed) return;
    const [short, long] = watchEndedWords(reason);
    if (reason === "privileged") this.names(this.call, true);
    this.note(`Watching ended: ${long}.`);
    this.stop("Watch ended", short, reason);
    this.root.classList.add("watch-ended");
  }

  /** No more media: the tile greys, says why, and leaves the wall after a while. */
  stop(what, words, reason) {
    if (this.closed) return;
    this.closed = true;
    this.pc?.close();
    this.root.classList.add("ended");
    for (const badge of Object.values(this.badges)) showQuality(badge, null);
    // Plain words first; the protocol's code after them, for reports (and logs) that use it.
    this.status.replaceChildren(`${what} · ${words}`,
      reason ? el("small", { class: "code" }, ` (${reason})`) : "");
    this.status.className = "badge ended";
    this.remaining.textContent = "";
    for (const control of this.root.querySelectorAll("form input, form button")) control.disabled = true;
    this.listen.disabled = true;
    // The wall keeps live calls: an ended tile says why for a while, then leaves by itself.
    this.leaving = setTimeout(() => this.close(), ENDED_TILE_MS);
  }

  close() {
    clearTimeout(this.leaving);
    if (!this.closed) {
      state.client.request("monitor.unwatch", { call_id: this.call.call_id }).catch(() => {});
      this.closed = true;
      this.pc?.close();
    }
    this.root.remove();
    state.tiles.delete(this.call.call_id);
    const summary = state.calls.get(this.call.call_id);
    if (summary) upsert(summary);
    renderCount();
  }
}

staffSignIn(TOKEN_KEY, signIn, "monitor");
