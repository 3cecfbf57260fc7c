// A call to the family: the incoming screen and its ring, accept / reject, the call screen
// (call-view.js) and the end. A call can also be asked for by a notification (push.js's
// onNotificationCall, or /family?call=<id>&answer=1 when the notification opened the page):
// it is shown, or answered at once, when its call.incoming arrives (the server sends it again
// to a socket that connects while the call rings).

import { CallView } from "./call-view.js";
import { $, duration, endReason, money, rate, say } from "./common.js";
import { rememberFacility } from "./family-account.js";
import { go, notice, state } from "./family-app.js";
import { Ring } from "./ring.js";
import { localMedia, stopMedia } from "./rtc.js";

const GRACE_MS = 5000; // after the ring timeout: the server's call.canceled should be here
const WANTED_MS = 10_000; // a notification's call that has not arrived by then has ended

const view = new CallView(); // the call in progress: view.callId
const ring = new Ring({ audio: $("#ring-audio"), announce: $("#ring-announce"), hint: $("#ring-hint") });
let ringTicker = null;
let wanted = null; // {callId, action: "accept" | "decline" | "show", timer}
let accepting = false; // Accept was pressed: the camera starts, the call is being accepted

export const inCall = () => Boolean(view.callId);

export function bindCallEvents(client) {
  client.on("call.incoming", onIncoming);
  client.on("call.canceled", ({ call_id }) => {
    if (state.incoming?.call_id !== call_id || view.callId) return;
    missed();
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

/**
 * A notification asked for call `callId`: `action` "accept" answers it, "decline" rejects it,
 * anything else shows the incoming screen. Now if it is ringing here, else when it arrives.
 */
export function answerWhenRinging(callId, action) {
  if (!callId || view.callId === callId) return;
  const kind = { accept: "accept", answer: "accept", decline: "decline", reject: "decline" }[action]
    || "show";
  clearTimeout(wanted?.timer);
  wanted = { callId, action: kind, timer: null };
  if (state.incoming?.call_id === callId) return onIncoming(state.incoming);
  if (state.client) expectSoon();
}

/** Connected: a call asked for by a notification should arrive now, or it is over. */
export function expectSoon() {
  if (!wanted || wanted.timer) return;
  wanted.timer = setTimeout(() => {
    if (!wanted) return;
    wanted = null;
    if (!state.incoming && !view.callId) notice("That call is no longer ringing.");
  }, WANTED_MS);
}

/**
 * What the call costs, with the agency's part (PROTOCOL v1.2 `free_seconds`): "Free (paid by the
 * agency)", "First 10 min free, then 25¢/min", or the rate.
 */
export function priceOf(call) {
  const free = call.free_seconds || 0;
  if (free > 0 && free >= call.allowed_seconds) return "Free (paid by the agency)";
  if (free > 0) return `First ${duration(free)} free, then ${rate(call.rate_cents_per_minute)}`;
  return rate(call.rate_cents_per_minute);
}

function onIncoming(call) {
  if (view.callId) return; // the server never rings a family that is in a call
  const again = state.incoming?.call_id === call.call_id; // re-sent after a reconnect
  state.incoming = call;
  rememberFacility(call.facility.id, call.facility.name);
  $("#in-initial").textContent = (call.resident.name || "?").trim().charAt(0).toUpperCase();
  $("#in-caller").textContent = call.resident.name;
  $("#in-facility").textContent = call.facility.name;
  $("#in-balance").textContent = money(call.balance_cents);
  $("#in-rate").textContent = priceOf(call);
  $("#in-max").textContent = duration(call.max_call_seconds);
  $("#in-allowed").textContent = duration(call.allowed_seconds);
  if (!again) {
    say($("#in-error"), "");
    for (const button of [$("#accept"), $("#reject")]) button.disabled = false;
  }
  countdown(call);
  go("incoming");
  const asked = wanted?.callId === call.call_id ? wanted.action : null;
  if (asked) {
    clearTimeout(wanted.timer);
    wanted = null;
  }
  if (asked === "accept") return accept();
  if (asked === "decline") return reject();
  if (!accepting && (!again || !ring.ringing)) {
    ring.start(`Incoming call from ${call.resident.name} at ${call.facility.name}`);
  }
}

function countdown(call) {
  const until = performance.now() + call.ring_timeout_s * 1000;
  const tick = () => {
    const left = Math.max(0, Math.ceil((until - performance.now()) / 1000));
    $("#in-ring").textContent = left ? `Ringing · ${left} s` : "Ringing";
    // Past the ring timeout with no word from the server (the connection dropped meanwhile):
    // the call is over.
    if (performance.now() > until + GRACE_MS && state.incoming === call && !view.callId) missed();
  };
  clearInterval(ringTicker);
  tick();
  ringTicker = setInterval(tick, 500);
}

function missed() {
  const caller = state.incoming?.resident.name;
  endRinging();
  go("home");
  if (caller) notice(`Missed call from ${caller}.`);
}

function endRinging() {
  clearInterval(ringTicker);
  ring.stop();
  state.incoming = null;
}

async function reject() {
  const call = state.incoming;
  if (!call) return;
  endRinging();
  go("home");
  try {
    await state.client.request("call.reject", { call_id: call.call_id });
  } catch {
    // already canceled or timed out: nothing to undo
  }
}

async function accept() {
  const call = state.incoming;
  if (!call || accepting) return;
  accepting = true;
  try {
    await answer(call);
  } finally {
    accepting = false;
  }
}

async function answer(call) {
  ring.stop(); // answered: silence at once, while the camera starts
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
    notice(exc.code === "invalid_state" ? "That call is no longer available." : exc.message);
    return;
  }
  endRinging();
  view.open(state.client, call.call_id, `${call.resident.name} · ${call.facility.name}`);
  go("incall");
  view.start(stream);
}

$("#reject").addEventListener("click", reject);
$("#accept").addEventListener("click", accept);

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
