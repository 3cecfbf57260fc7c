// The resident tablet: its approved contacts (one tap to call), ringing / no answer, the call.
// A resident's own tablet signs in with its `tablet` token (`?token=` or pasted); a shared
// facility tablet holds a `device` token and signs residents in with a PIN (tablet-shared.js).

import { CallView } from "./call-view.js";
import { $, connect, dateTime, duration, el, endReason, say, show, signInForm } from "./common.js";
import { localMedia, stopMedia } from "./rtc.js";
import { SharedTablet, deviceToken, enrol, isDeviceToken } from "./tablet-shared.js";
import { TabletVisits } from "./tablet-visits.js";

const TOKEN_KEY = "visitation.tablet.token";
const PLACE_ERRORS = {
  not_approved: "This contact is not approved for you.",
  outside_hours: "Calls are not allowed at this time (outside calling hours).",
  unavailable: "This contact cannot take a video call right now.",
  insufficient_funds: "This contact's account does not have enough funds for a call.",
  busy: "A call is already in progress.",
  capacity: "Video calls are busy right now. Try again in a few minutes.",
  quota_exhausted: "Your free call minutes for today are used up. They are back at midnight.",
  forbidden: "This device is not signed in as a resident tablet.",
  not_scheduled: "Calls here are for booked visits: join your visit when it is due.",
};

// call: {id, contact: {id, name}, media (Promise<MediaStream>)}; its screen once accepted: `view`.
// recent: contact id -> when the resident last called it, from the server's calls.recent (the
// same on every tablet, a shared one included) and this session's calls since. swapTo: a
// renewed token to reconnect with after the call.
const state = {
  client: null, resident: null, contacts: [], call: null, recent: {}, swapTo: null, shared: null,
};
const view = new CallView();
// "Your visits": a due one is placed like a call to its contact, with its visit_id.
const visits = new TabletVisits((visit) => placeCall(
  { id: visit.family.id, name: visit.family.name || visit.family.id, privileged: false }, visit.visit_id,
));

function go(screen) {
  show(screen);
  if (screen === "home") loadContacts();
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-go]");
  if (target) go(target.dataset.go);
});

// ---------------------------------------------------------------- sign in

/** The token form or `?token=`: a resident's tablet token, or a device token (enrol it). */
async function signIn(token) {
  if (isDeviceToken(token)) {
    sessionStorage.removeItem(TOKEN_KEY);
    enrol(token);
    return startShared(token);
  }
  await openResident(token);
  $("#signout").hidden = false;
  return undefined;
}

/**
 * Connect as the resident of `token` and show their contacts (`renewed`: the same resident on a
 * fresh token, so the screen stays where it is).
 */
async function openResident(token, renewed = false) {
  let client = null;
  client = await connect(token, (online, why, info) => onLine(client, online, why, info));
  let info;
  try {
    info = await client.request("session.info");
  } catch (exc) {
    client.close();
    throw exc;
  }
  if (info.role !== "tablet") {
    client.close();
    throw new Error("this is not a resident tablet's token");
  }
  const old = state.client;
  state.client = client;
  state.resident = info;
  old?.close();
  $("#who").textContent = info.name;
  bindCallEvents(client);
  if (!renewed) go("home");
  else if (document.body.dataset.screen === "home") loadContacts();
}

function onLine(client, online, why, info) {
  if (client !== state.client) return; // a connection replaced by a renewed token's
  const ended = !online && (info?.expired || /session has ended|expired|revoked/i.test(String(why || "")));
  if (ended) {
    if (state.shared) return state.shared.signOut("Your session has ended. Sign in again.");
    forget();
    sessionStorage.removeItem(TOKEN_KEY);
    show("signin");
    say($("#signin .error"), "Your session has ended: sign in again with a new link.");
    return undefined;
  }
  $("#who").textContent = online ? state.resident.name : "offline — reconnecting…";
  if (online && !state.call) loadContacts(); // re-sync what the screen shows (issue 32 §1)
  return undefined;
}

// ---------------------------------------------------------------- shared tablets

function startShared(device) {
  state.shared ??= new SharedTablet(device, {
    open: openResident,
    forget,
    busy: () => state.call !== null,
    swap: async (token) => {
      if (state.call?.placed) state.swapTo = token; // never mid-call: reconnect once it is over
      else await openResident(token, true);
    },
  });
  state.shared.device = device;
  state.shared.start();
}

/** Forget the resident: their call, contacts, history and names, on screen and in memory. */
function forget() {
  const { client, call } = state;
  if (call?.id) client?.request("call.hangup", { call_id: call.id }).catch(() => {});
  state.swapTo = null;
  finish();
  client?.close();
  Object.assign(state, { client: null, resident: null, contacts: [], call: null, recent: {}, swapTo: null });
  $("#contacts").replaceChildren();
  visits.clear();
  for (const id of ["#calling-initial", "#calling-who", "#noanswer-who", "#end-reason", "#end-duration",
    "#call-with", "#call-status", "#who"]) {
    const node = $(id);
    if (node) node.textContent = "";
  }
  say($("#call-error"), "");
}

// ---------------------------------------------------------------- contacts

// The resident's history is the server's (calls.recent): nothing of it is kept in the
// browser's storage, so another tablet (or a shared one) shows the same.
async function loadRecent(client) {
  let calls = [];
  try {
    ({ calls } = await client.request("calls.recent"));
  } catch {
    // the contacts show all the same, without their last call; the next load tries again
  }
  const last = {};
  for (const call of calls) last[call.contact_id] = Math.max(last[call.contact_id] || 0, call.placed_at);
  for (const [id, at] of Object.entries(state.recent)) last[id] = Math.max(last[id] || 0, at);
  return last;
}

function rememberCall(contactId) {
  state.recent = { ...state.recent, [contactId]: Date.now() / 1000 }; // until the server lists it
}

/**
 * The resident's free minutes under the facility's pricing plan (session.info `allowance`,
 * PROTOCOL v1.2 pricing plans): what is left today or this week, and when it is whole again.
 */
function showAllowance(allowance) {
  const line = $("#allowance");
  const left = allowance?.free_seconds_remaining;
  let text = "";
  if (allowance?.payer === "agency" && (left === null || left === undefined)) {
    text = "Calls are free.";
  } else if (allowance && allowance.allowance_seconds) {
    const period = allowance.period === "week" ? "this week" : "today";
    const resets = allowance.period === "week" ? "on Monday" : "at midnight";
    const minutes = Math.floor(left / 60);
    const lead = allowance.payer === "agency" ? "Free calls" : "Free minutes";
    text = left > 0
      ? `${lead}: ${minutes} min left ${period}.`
      : `${lead}: none left ${period}; more ${resets}.`;
  }
  line.textContent = text;
  line.hidden = !text;
}

async function refreshAllowance(client) {
  try {
    const info = await client.request("session.info");
    if (client === state.client) showAllowance(info.allowance);
  } catch {
    // the contacts show all the same; the next refresh tries again
  }
}

async function loadContacts() {
  const { client } = state;
  if (!client) return;
  refreshAllowance(client);
  visits.load(client);
  let contacts;
  let last;
  try {
    [{ contacts }, last] = await Promise.all([client.request("contacts.list"), loadRecent(client)]);
  } catch (exc) {
    if (client === state.client) say($("#call-error"), `Could not load your contacts: ${exc.message}`);
    return;
  }
  if (client !== state.client) return; // signed out (or renewed) meanwhile
  state.contacts = contacts;
  const byRecent = [...state.contacts].sort(
    (a, b) => (last[b.id] || 0) - (last[a.id] || 0) || a.name.localeCompare(b.name),
  );
  const items = byRecent.map((contact) => el(
    "li", { "data-contact": contact.id },
    el("button", { class: "contact", onclick: () => placeCall(contact) },
      el("span", { class: "avatar small" }, contact.name.charAt(0).toUpperCase()),
      el("span", { class: "who" },
        el("strong", {}, contact.name),
        contact.privileged ? el("span", { class: "badge privileged" }, "Attorney — private") : null,
        el("small", { class: "muted" }, last[contact.id] ? `Last call ${dateTime(last[contact.id])}` : "No calls yet")),
      el("span", { class: "call-label" }, "Call"),
    ),
  ));
  $("#contacts").replaceChildren(
    ...(items.length ? items : [el("li", { class: "empty" }, "No approved contacts yet. Your family can ask to be added.")]),
  );
}

// ---------------------------------------------------------------- placing a call

async function placeCall(contact, visitId = null) {
  if (state.call) return;
  say($("#call-error"), "");
  const call = { id: null, contact, media: localMedia(), placed: false };
  call.media.catch(() => {}); // reported when the call is accepted
  state.call = call;
  $("#calling-initial").textContent = contact.name.charAt(0).toUpperCase();
  $("#calling-who").textContent = contact.name;
  $("#calling-status").textContent = "Calling…";
  $("#cancel").disabled = false;
  go("calling");
  try {
    // A shared tablet's token lasts 30 min; its socket keeps the token it connected with.
    if (state.shared) await state.shared.freshForCall();
    if (state.call !== call) return; // signed out meanwhile
    call.placed = true;
    const place = visitId ? { contact_id: contact.id, visit_id: visitId } : { contact_id: contact.id };
    const { call_id } = await state.client.request("call.place", place);
    call.id = call.id || call_id;
    rememberCall(contact.id);
  } catch (exc) {
    finish();
    go("home");
    say($("#call-error"), PLACE_ERRORS[exc.code] || exc.message);
  }
}

/** Our call's event (the ack of call.place may arrive after its first event). */
function ours(data) {
  const call = state.call;
  if (!call || (call.id && call.id !== data.call_id)) return null;
  call.id = data.call_id;
  return call;
}

function finish() {
  const call = state.call;
  state.call = null;
  view.close();
  call?.media.then(stopMedia, () => {}); // unused if the call never got to its media
  const renewed = state.swapTo;
  state.swapTo = null;
  if (renewed && state.client) openResident(renewed, true).catch(() => state.shared?.signOut(""));
}

$("#cancel").addEventListener("click", async () => {
  const call = state.call;
  if (!call?.id) return;
  $("#cancel").disabled = true;
  try {
    await state.client.request("call.cancel", { call_id: call.id });
    finish();
    go("home");
  } catch (exc) {
    $("#calling-status").textContent = exc.code === "invalid_state" ? "Answered — connecting…" : exc.message;
  }
});

function bindCallEvents(client) {
  // Only the current connection's events (a renewed token's replaces the old one).
  const on = (event, handler) => client.on(event, (data) => {
    if (client === state.client) handler(data);
  });
  // Scheduled visits: booked, changed, due — the list is read again.
  for (const event of ["visit.updated", "visit.due"]) {
    on(event, () => {
      if (document.body.dataset.screen === "home") visits.load(client);
    });
  }
  on("call.ringing", (data) => {
    if (ours(data)) $("#calling-status").textContent = "Ringing…";
  });
  on("call.unanswered", (data) => {
    const call = ours(data);
    if (!call) return;
    finish();
    $("#noanswer-who").textContent = `${call.contact.name} did not answer.`;
    go("noanswer");
  });
  on("call.accepted", (data) => {
    const call = ours(data);
    if (call) startMedia(call);
  });
  on("call.connected", (data) => {
    if (ours(data)) view.connected(data.allowed_seconds);
  });
  on("call.warning", (data) => {
    if (ours(data)) view.warning();
  });
  on("call.ended", (data) => {
    if (!ours(data)) return;
    finish();
    $("#end-reason").textContent = endReason(data, "tablet");
    $("#end-duration").textContent = data.duration_s ? `Duration ${duration(data.duration_s)}` : "";
    go("ended");
  });
}

async function startMedia(call) {
  view.open(state.client, call.id, call.contact.name);
  go("incall");
  let stream;
  try {
    stream = await call.media;
  } catch (exc) {
    return view.fail(exc);
  }
  if (state.call !== call) return stopMedia(stream);
  await view.start(stream);
}

// A shared tablet's device token (from `?token=` or kept); else a resident's own tablet.
const device = deviceToken();
if (device) sessionStorage.removeItem(TOKEN_KEY);
signInForm(TOKEN_KEY, signIn);
if (device) startShared(device);
