// The family app: account, deposits, blocks, history; answering and holding a video call.

import { CallView } from "./call-view.js";
import {
  $, api, connect, dateTime, duration, el, endReason, money, randomId, rate, say, show,
  signInForm,
} from "./common.js";
import { localMedia, stopMedia } from "./rtc.js";

const TOKEN_KEY = "visitation.family.token";
const FACILITIES_KEY = "visitation.family.facilities"; // id -> name, learnt from calls
const TABS = ["home", "history", "deposit"];
const ENTRY_LABELS = {
  deposit: "Deposit", autopay: "AutoPay deposit", credit: "Credit", hold: "Reserved for a call",
  release: "Reservation released", charge: "Call charge", refund: "Refund", close: "Account closed",
};
const PLUS = new Set(["deposit", "autopay", "credit"]);
const HELD = new Set(["hold", "release"]);

const state = { token: null, client: null, account: null, incoming: null, contacts: [], facilityNames: {} };
const view = new CallView(); // the call in progress: view.callId
let ringTicker = null;

// ---------------------------------------------------------------- navigation

function go(screen) {
  show(screen);
  $("#tabs").hidden = !TABS.includes(screen);
  for (const tab of document.querySelectorAll("#tabs button")) {
    if (tab.dataset.go === screen) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  if (screen === "home") refreshAccount();
  if (screen === "history") loadHistory();
  if (screen === "deposit") say($("#deposit-error"), "");
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-go]");
  if (target) go(target.dataset.go);
});

// A notice ("Added $10.00", "Missed call") is about the last thing that happened: the next
// action clears it (before that action's own handler may post a new one).
for (const type of ["click", "submit", "change"]) {
  document.addEventListener(type, (event) => {
    if (event.target.closest?.("button, input, select, form, [data-go]")) say($("#home-notice"), "");
  }, true);
}

// ---------------------------------------------------------------- sign in

async function signIn(token) {
  state.token = token;
  state.account = await api(token, "GET", "/api/v1/account"); // also checks the role
  await loadFacilities();
  const who = () => state.account.name || state.account.family_id;
  state.client = await connect(token, (online) => {
    $("#who").textContent = online ? who() : "offline — reconnecting…";
  });
  bindCallEvents(state.client);
  $("#who").textContent = who();
  $("#signout").hidden = false;
  go("home");
}


// ---------------------------------------------------------------- account

const facilities = () => JSON.parse(localStorage.getItem(FACILITIES_KEY) || "{}");
const facilityName = (id) => state.facilityNames[id] || facilities()[id] || id;
function rememberFacility(id, name) {
  const known = facilities();
  if (id === "all" || (known[id] && !name)) return;
  localStorage.setItem(FACILITIES_KEY, JSON.stringify({ ...known, [id]: name || id }));
}

async function refreshAccount() {
  if (!state.token) return;
  try {
    state.account = await api(state.token, "GET", "/api/v1/account");
  } catch (exc) {
    say($("#home-notice"), "");
    say($("#settings-error"), `Could not load your account: ${exc.message}`);
    return;
  }
  renderAccount();
}

function renderAccount() {
  const account = state.account;
  $("#balance").textContent = money(account.balance_cents);
  $("#allow-video").checked = account.allow_video_calls;
  $("#video-hint").textContent = account.allow_video_calls
    ? "Residents can call you."
    : "Calls to you will not ring.";
  renderBlocks(account.blocks || []);
  loadContacts();
}

// ---------------------------------------------------------------- facilities and contacts

const STATUS_LABELS = { approved: "Approved", pending: "Waiting for approval", denied: "Not approved" };

async function loadFacilities() {
  const { facilities: listed } = await api(state.token, "GET", "/api/v1/facilities");
  state.facilityNames = Object.fromEntries(listed.map((f) => [f.id, f.name]));
  const options = (first) => [
    ...(first ? [el("option", { value: first.value }, first.label)] : []),
    ...listed.map((f) => el("option", { value: f.id }, f.name)),
  ];
  $("#contact-search select").replaceChildren(...options(null));
  $("#block-form select").replaceChildren(...options({ value: "all", label: "All facilities" }));
}

async function loadContacts() {
  try {
    const { contacts } = await api(state.token, "GET", "/api/v1/account/contacts");
    state.contacts = contacts;
  } catch (exc) {
    say($("#contact-error"), `Could not load your contacts: ${exc.message}`);
    return;
  }
  const items = state.contacts.map((c) => el(
    "li", { "data-resident": c.resident.id },
    el("span", { class: "grow" }, c.resident.name, " ",
      el("small", { class: "muted" }, `${c.facility.name || c.facility.id} · ${c.resident.id}`)),
    el("span", { class: `badge ${c.status === "approved" ? "connected" : c.status === "denied" ? "ended" : ""}` },
      STATUS_LABELS[c.status] || c.status),
  ));
  $("#contacts").replaceChildren(
    ...(items.length ? items : [el("li", { class: "empty" }, "No contacts yet.")]),
  );
}

$("#contact-search").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target.elements;
  say($("#contact-error"), "");
  const query = new URLSearchParams({ facility_id: form.facility.value, q: form.q.value.trim() });
  let residents;
  try {
    ({ residents } = await api(state.token, "GET", `/api/v1/residents?${query}`));
  } catch (exc) {
    say($("#contact-error"), exc.message);
    return;
  }
  const known = new Map((state.contacts || []).map((c) => [c.resident.id, c.status]));
  const items = residents.map((r) => el(
    "li", { "data-resident": r.id },
    el("span", { class: "grow" }, r.name, " ", el("small", { class: "muted" }, r.id)),
    known.has(r.id)
      ? el("span", { class: "muted" }, STATUS_LABELS[known.get(r.id)] || known.get(r.id))
      : el("button", { class: "secondary", onclick: () => askContact(r) }, "Add contact"),
  ));
  $("#resident-results").replaceChildren(
    ...(items.length ? items : [el("li", { class: "empty" }, "Nobody found. Check the spelling or the ID number.")]),
  );
});

async function askContact(resident) {
  say($("#contact-error"), "");
  try {
    await api(state.token, "POST", "/api/v1/account/contacts", { resident_id: resident.id });
  } catch (exc) {
    say($("#contact-error"), exc.message);
    return;
  }
  $("#resident-results").replaceChildren();
  $("#contact-search").elements.q.value = "";
  say($("#home-notice"), `Asked to add ${resident.name}. ${facilityName(resident.facility_id)} will approve or decline.`);
  await loadContacts();
}

$("#allow-video").addEventListener("change", async (event) => {
  const allow = event.target.checked;
  say($("#settings-error"), "");
  try {
    state.account = await api(state.token, "PUT", "/api/v1/account/settings", {
      allow_video_calls: allow,
    });
  } catch (exc) {
    say($("#settings-error"), exc.message);
  }
  renderAccount();
});

function renderBlocks(blocked) {
  const ids = [...new Set([...blocked, ...Object.keys(facilities())])];
  const items = ids.map((id) => {
    const isBlocked = blocked.includes(id) || blocked.includes("all");
    const label = id === "all" ? "All facilities" : facilityName(id);
    return el(
      "li", { "data-facility": id },
      el("span", { class: "grow" }, label, " ",
        label === id ? null : el("small", { class: "muted" }, id)),
      isBlocked && !blocked.includes(id)
        ? el("span", { class: "muted" }, "blocked (all)")
        : el("button", {
          class: isBlocked ? "secondary" : "danger",
          onclick: () => setBlocked(id, !isBlocked),
        }, isBlocked ? "Unblock" : "Block"),
    );
  });
  $("#blocks").replaceChildren(
    ...(items.length ? items : [el("li", { class: "empty" }, "No facilities blocked.")]),
  );
}

async function setBlocked(facilityId, block) {
  say($("#block-error"), "");
  try {
    const result = block
      ? await api(state.token, "POST", "/api/v1/account/blocks", { facility_id: facilityId })
      : await api(state.token, "DELETE", `/api/v1/account/blocks/${encodeURIComponent(facilityId)}`);
    rememberFacility(facilityId); // stays listed, so it can be unblocked with one tap
    state.account = { ...state.account, blocks: result.blocks };
    renderBlocks(result.blocks);
    return true;
  } catch (exc) {
    say($("#block-error"), exc.message);
    return false;
  }
}

$("#block-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await setBlocked(event.target.elements.facility.value, true);
});

// ---------------------------------------------------------------- deposits

/** "20", "$12.50" -> cents; or the reason it is not a valid deposit ($2.00 to $100.00). */
export function parseDeposit(text) {
  const value = text.trim().replace(/^\$/, "");
  if (!/^\d{1,6}(\.\d{1,2})?$/.test(value)) {
    return { error: "Enter an amount in dollars, like 20 or 12.50." };
  }
  const cents = Math.round(Number(value) * 100);
  if (cents < 200) return { error: "The minimum deposit is $2.00." };
  if (cents > 10000) return { error: "The maximum deposit is $100.00." };
  return { cents };
}

// One key per intended deposit: a retry after a network error cannot deposit twice.
let depositKey = randomId();
$("#amount").addEventListener("input", () => {
  depositKey = randomId();
});

for (const chip of document.querySelectorAll("[data-amount]")) {
  chip.addEventListener("click", () => {
    $("#amount").value = chip.dataset.amount;
    depositKey = randomId();
    say($("#deposit-error"), "");
  });
}

$("#deposit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("#deposit-error");
  const { cents, error: invalid } = parseDeposit($("#amount").value);
  if (invalid) return say(error, invalid);
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const result = await api(
      state.token, "POST", "/api/v1/account/deposits", { amount_cents: cents },
      { "Idempotency-Key": depositKey },
    );
    depositKey = randomId();
    $("#amount").value = "";
    go("home");
    say($("#home-notice"), `Added ${money(cents)}. New balance ${money(result.balance_cents)}.`);
  } catch (exc) {
    say(error, exc.message);
  } finally {
    button.disabled = false;
  }
});

// ---------------------------------------------------------------- history

async function loadHistory() {
  try {
    const [{ calls }, { entries }] = await Promise.all([
      api(state.token, "GET", "/api/v1/account/calls"),
      api(state.token, "GET", "/api/v1/account/statement"),
    ]);
    renderCalls(calls);
    renderStatement(entries, calls);
  } catch (exc) {
    $("#calls").replaceChildren(el("li", { class: "error" }, exc.message));
  }
}

function renderCalls(calls) {
  const items = calls.map((call) => {
    const who = call.resident?.name ? `Call with ${call.resident.name}` : "Call";
    const where = call.facility?.name || facilityName(call.facility_id);
    const connected = Boolean(call.connected_at);
    return el(
      "li", { "data-call": call.call_id },
      el("span", { class: "grow" },
        el("strong", {}, connected ? `${who} — ${duration(call.duration_s)}` : `${who} — not connected`), el("br"),
        el("small", { class: "muted" }, `${dateTime(call.connected_at || call.started_at)} · ${where}`)),
      el("span", { class: `amount ${call.charged_cents ? "minus" : "held"}` },
        call.charged_cents ? money(call.charged_cents) : "no charge"),
    );
  });
  $("#calls").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No calls yet.")]));
}

function renderStatement(entries, calls = []) {
  // A call's hold only reserves money while it lasts; once the call is settled (charged, and
  // what was left released) the charge line says what it cost, so hold and release are not
  // shown. A hold whose call is not settled yet is one pending line.
  const settled = new Set(
    entries.filter((e) => e.kind === "charge" || e.kind === "release").map((e) => e.call_id),
  );
  const withWhom = new Map(calls.map((c) => [c.call_id, c.resident?.name]));
  const shown = entries.filter((e) => !(HELD.has(e.kind) && e.call_id && settled.has(e.call_id)));
  const items = shown.slice().reverse().map((e) => {
    const kind = HELD.has(e.kind) ? "held" : PLUS.has(e.kind) ? "plus" : "minus";
    const sign = { held: "", plus: "+", minus: "−" }[kind];
    const who = withWhom.get(e.call_id);
    let label = ENTRY_LABELS[e.kind] || e.kind;
    if (e.kind === "charge" && who) label = `Call with ${who}`;
    if (e.kind === "hold") label = "Pending — reserved for a call in progress";
    return el(
      "li", { "data-kind": e.kind },
      el("span", { class: "grow" },
        label, el("br"),
        el("small", { class: "muted" }, `${dateTime(e.at)} · available ${money(e.available_cents)}`)),
      el("span", { class: `amount ${kind}` }, `${sign}${money(e.amount_cents)}`),
    );
  });
  $("#statement").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No entries.")]));
}

// ---------------------------------------------------------------- calls

function bindCallEvents(client) {
  client.on("call.incoming", onIncoming);
  client.on("call.canceled", ({ call_id }) => {
    if (state.incoming?.call_id !== call_id || view.callId) return;
    const caller = state.incoming.resident.name;
    endRinging();
    go("home");
    say($("#home-notice"), `Missed call from ${caller}.`);
  });
  client.on("call.connected", (data) => {
    if (view.callId === data.call_id) view.connected(data.allowed_seconds);
  });
  client.on("call.warning", (data) => {
    if (view.callId === data.call_id) view.warning();
  });
  client.on("call.quality", (data) => {
    if (view.callId === data.call_id) view.quality(data.family, data.tablet);
  });
  client.on("call.ended", onEnded);
}

function onIncoming(call) {
  if (view.callId) return; // the server never rings a family that is in a call
  state.incoming = call;
  rememberFacility(call.facility.id, call.facility.name);
  $("#in-initial").textContent = (call.resident.name || "?").trim().charAt(0).toUpperCase();
  $("#in-caller").textContent = call.resident.name;
  $("#in-facility").textContent = call.facility.name;
  $("#in-balance").textContent = money(call.balance_cents);
  $("#in-rate").textContent = rate(call.rate_cents_per_minute);
  $("#in-max").textContent = duration(call.max_call_seconds);
  $("#in-allowed").textContent = duration(call.allowed_seconds);
  say($("#in-error"), "");
  for (const button of [$("#accept"), $("#reject")]) button.disabled = false;
  const until = performance.now() + call.ring_timeout_s * 1000;
  const tick = () => {
    const left = Math.max(0, Math.ceil((until - performance.now()) / 1000));
    $("#in-ring").textContent = `Ringing · ${left} s`;
  };
  clearInterval(ringTicker);
  tick();
  ringTicker = setInterval(tick, 500);
  go("incoming");
}

function endRinging() {
  clearInterval(ringTicker);
  state.incoming = null;
}

$("#reject").addEventListener("click", async () => {
  const call = state.incoming;
  if (!call) return;
  endRinging();
  go("home");
  try {
    await state.client.request("call.reject", { call_id: call.call_id });
  } catch {
    // already canceled or timed out: nothing to undo
  }
});

$("#accept").addEventListener("click", async () => {
  const call = state.incoming;
  if (!call) return;
  for (const button of [$("#accept"), $("#reject")]) button.disabled = true;
  let stream;
  try {
    stream = await localMedia();
  } catch (exc) {
    say($("#in-error"), `Your camera or microphone is unavailable (${exc.message}). Allow them and try again.`);
    for (const button of [$("#accept"), $("#reject")]) button.disabled = false;
    return;
  }
  try {
    await state.client.request("call.accept", { call_id: call.call_id });
  } catch (exc) {
    stopMedia(stream);
    endRinging();
    go("home");
    say($("#home-notice"), exc.code === "invalid_state" ? "That call is no longer available." : exc.message);
    return;
  }
  endRinging();
  view.open(state.client, call.call_id, `${call.resident.name} · ${call.facility.name}`);
  go("incall");
  view.start(stream);
});

function onEnded(ended) {
  if (view.callId !== ended.call_id) return;
  view.close();
  $("#end-reason").textContent = endReason(ended, "family");
  $("#end-duration").textContent = duration(ended.duration_s || 0);
  $("#end-charge").textContent = money(ended.charged_cents ?? 0);
  $("#end-balance").textContent =
    ended.balance_cents == null ? "—" : money(ended.balance_cents);
  go("ended");
}

signInForm(TOKEN_KEY, signIn);
