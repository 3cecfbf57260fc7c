// The resident tablet: its approved contacts (one tap to call), ringing / no answer, the call.

import { CallView } from "./call-view.js";
import { $, connect, dateTime, duration, el, endReason, say, show, signInForm } from "./common.js";
import { localMedia, stopMedia } from "./rtc.js";

const TOKEN_KEY = "visitation.tablet.token";
const PLACE_ERRORS = {
  not_approved: "This contact is not approved for you.",
  outside_hours: "Calls are not allowed at this time (outside calling hours).",
  unavailable: "This contact cannot take a video call right now.",
  insufficient_funds: "This contact's account does not have enough funds for a call.",
  busy: "A call is already in progress.",
  capacity: "Video calls are busy right now. Try again in a few minutes.",
  forbidden: "This device is not signed in as a resident tablet.",
};

// call: {id, contact: {id, name}, media (Promise<MediaStream>)}; its screen once accepted: `view`
const state = { client: null, resident: null, contacts: [], call: null };
const view = new CallView();

function go(screen) {
  show(screen);
  if (screen === "home") loadContacts();
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("[data-go]");
  if (target) go(target.dataset.go);
});

// ---------------------------------------------------------------- sign in

async function signIn(token) {
  const client = await connect(token, (online) => {
    $("#who").textContent = online ? state.resident.name : "offline — reconnecting…";
  });
  const info = await client.request("session.info");
  if (info.role !== "tablet") {
    client.close();
    throw new Error("this is not a resident tablet's token");
  }
  state.client = client;
  state.resident = info;
  $("#who").textContent = info.name;
  $("#signout").hidden = false;
  bindCallEvents(client);
  go("home");
}

// ---------------------------------------------------------------- contacts

const lastCallKey = () => `visitation.tablet.last.${state.resident.id}`;
const lastCalls = () => JSON.parse(localStorage.getItem(lastCallKey()) || "{}");

function rememberCall(contactId) {
  localStorage.setItem(
    lastCallKey(), JSON.stringify({ ...lastCalls(), [contactId]: Date.now() / 1000 }),
  );
}

async function loadContacts() {
  if (!state.client) return;
  try {
    state.contacts = (await state.client.request("contacts.list")).contacts;
  } catch (exc) {
    say($("#call-error"), `Could not load your contacts: ${exc.message}`);
    return;
  }
  const last = lastCalls();
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
        el("small", { class: "muted" },
          last[contact.id] ? `Last call ${dateTime(last[contact.id])}` : "No calls yet")),
      el("span", { class: "call-label" }, "Call"),
    ),
  ));
  $("#contacts").replaceChildren(
    ...(items.length ? items : [el("li", { class: "empty" }, "No approved contacts yet. Your family can ask to be added.")]),
  );
}

// ---------------------------------------------------------------- placing a call

async function placeCall(contact) {
  if (state.call) return;
  say($("#call-error"), "");
  const call = { id: null, contact, media: localMedia() };
  call.media.catch(() => {}); // reported when the call is accepted
  state.call = call;
  $("#calling-initial").textContent = contact.name.charAt(0).toUpperCase();
  $("#calling-who").textContent = contact.name;
  $("#calling-status").textContent = "Calling…";
  $("#cancel").disabled = false;
  go("calling");
  try {
    const { call_id } = await state.client.request("call.place", { contact_id: contact.id });
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
    $("#noanswer-who").textContent = `${call.contact.name} did not answer.`;
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

signInForm(TOKEN_KEY, signIn);
