// The resident tablet: call an approved contact, ringing / no answer, the call, hang up.
//
// PROTOCOL.md has no event listing a resident's contacts, so the tablet takes a contact id and
// remembers recent ones on this device, per resident.

import { CallView } from "./call-view.js";
import { $, connect, duration, el, endReason, say, show, signInForm, tokenSubject } from "./common.js";
import { localMedia, stopMedia } from "./rtc.js";

const TOKEN_KEY = "visitation.tablet.token";
const RECENT_MAX = 8;
const PLACE_ERRORS = {
  not_approved: "This contact is not approved for you.",
  outside_hours: "Calls are not allowed at this time (outside calling hours).",
  unavailable: "This contact cannot take a video call right now.",
  insufficient_funds: "This contact's account does not have enough funds for a call.",
  busy: "A call is already in progress.",
  invalid_request: "Enter a valid contact id.",
  forbidden: "This device is not signed in as a resident tablet.",
};

// call: {id, contact, media (Promise<MediaStream>)}; its screen once accepted: `view`
const state = { client: null, resident: "", call: null };
const view = new CallView();

function go(screen) {
  show(screen);
  if (screen === "home") renderRecent();
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-go]");
  if (target) go(target.dataset.go);
});

// ---------------------------------------------------------------- sign in

async function signIn(token) {
  state.client = await connect(token, (online) => {
    $("#who").textContent = online ? state.resident : "offline — reconnecting…";
  });
  state.resident = tokenSubject(token);
  $("#who").textContent = state.resident;
  $("#signout").hidden = false;
  bindCallEvents(state.client);
  go("home");
}


// ---------------------------------------------------------------- recent contacts

const recentKey = () => `visitation.tablet.recent.${state.resident}`;
const recent = () => JSON.parse(localStorage.getItem(recentKey()) || "[]");

function remember(contactId) {
  const list = [contactId, ...recent().filter((id) => id !== contactId)].slice(0, RECENT_MAX);
  localStorage.setItem(recentKey(), JSON.stringify(list));
}

function renderRecent() {
  const items = recent().map((id) => el(
    "li", {},
    el("span", { class: "grow" }, el("strong", {}, id)),
    el("button", { onclick: () => placeCall(id) }, "Call"),
  ));
  $("#recent").replaceChildren(
    ...(items.length ? items : [el("li", { class: "empty" }, "Contacts you call appear here.")]),
  );
}

// ---------------------------------------------------------------- placing a call

$("#call-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const contact = $("#contact").value.trim();
  if (contact) placeCall(contact);
});

async function placeCall(contact) {
  if (state.call) return;
  say($("#call-error"), "");
  const call = { id: null, contact, media: localMedia() };
  call.media.catch(() => {}); // reported when the call is accepted
  state.call = call;
  $("#calling-initial").textContent = contact.charAt(0).toUpperCase();
  $("#calling-who").textContent = contact;
  $("#calling-status").textContent = "Calling…";
  $("#cancel").disabled = false;
  go("calling");
  try {
    const { call_id } = await state.client.request("call.place", { contact_id: contact });
    call.id = call.id || call_id;
    remember(contact);
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
  client.on("call.ringing", (data) => {
    if (ours(data)) $("#calling-status").textContent = "Ringing…";
  });
  client.on("call.unanswered", (data) => {
    const call = ours(data);
    if (!call) return;
    finish();
    $("#noanswer-who").textContent = `${call.contact} did not answer.`;
    go("noanswer");
  });
  client.on("call.accepted", (data) => {
    const call = ours(data);
    if (call) startMedia(call);
  });
  client.on("call.connected", (data) => {
    if (ours(data)) view.connected(data.allowed_seconds);
  });
  client.on("call.warning", (data) => {
    if (ours(data)) view.warning();
  });
  client.on("call.ended", (data) => {
    if (!ours(data)) return;
    finish();
    $("#end-reason").textContent = endReason(data, "tablet");
    $("#end-duration").textContent = data.duration_s ? `Duration ${duration(data.duration_s)}` : "";
    go("ended");
  });
}

async function startMedia(call) {
  view.open(state.client, call.id, call.contact);
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

signInForm(TOKEN_KEY, signIn);
