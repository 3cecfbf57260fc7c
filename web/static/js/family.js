// The family app. This module signs in and keeps the page connected; the rest is in:
//   family-auth.js     sign-in, sign-up, the e-mailed confirm and reset links, tokens
//   family-app.js      the page's state and navigation
//   family-account.js  balance, the video-calls switch, contacts, blocks
//   family-money.js    deposits, call history, statement
//   identity.js        "Verify your identity" (photos of an ID and a selfie)
//   family-call.js     an incoming call, its ring (ring.js), the call and its end
//   push.js            notifications on this device and the family's devices (issue 25)
//   family-visits.js   scheduled visits: a week of free slots, book, cancel, upcoming visits

import { $, api, connect } from "./common.js";
import { loadFacilities, onAccount, refreshAccount } from "./family-account.js";
import { go, onScreen, state } from "./family-app.js";
import { sessionEnded, signOut, startAuth } from "./family-auth.js";
import { answerWhenRinging, bindCallEvents, expectSoon } from "./family-call.js";
import "./family-money.js";
import { FamilyVisits } from "./family-visits.js";
import { IdentityCard } from "./identity.js";

// /family?call=<id>[&answer=1 | &decline=1]: a call notification opened the page. Its call.incoming comes
// once the page is connected (the server sends it again to a new socket while it rings).
const askedCall = takeCallParams();
let identity = null;
let push = null; // push.js's handle, once started
let signingOut = false;
const visits = new FamilyVisits();
onScreen("home", () => visits.load());

const who = () => state.account?.name || state.account?.family_id || "";

async function signIn(token) {
  state.token = token;
  state.account = await api(token, "GET", "/api/v1/account"); // also checks the role
  await loadFacilities();
  if (!identity) {
    identity = new IdentityCard(token);
    onAccount((account) => identity.render(account));
  }
  identity.token = token;
  if (askedCall) answerWhenRinging(askedCall.callId, askedCall.action);
  // Bound once connected: the server sends a ringing call's call.incoming again only after
  // the socket's CONNECT (signaling/calls.py ring_on_connect), so none is missed.
  state.client = await connect(token, onLine);
  bindCallEvents(state.client);
  // Scheduled visits: booked, approved, canceled (with the staff's reason), reminded, due.
  for (const event of ["visit.updated", "visit.due", "visit.reminder"]) {
    state.client.on(event, () => visits.loadVisits());
  }
  $("#who").textContent = who();
  $("#signout").hidden = false;
  go("home");
  expectSoon();
  startNotifications(token);
}

/** Lost, back, or ended: `info.expired` (a revoked or expired session) goes to sign-in. */
function onLine(online, message, info = {}) {
  if (signingOut) return;
  // connection.js says `expired`; older versions said it only in words.
  if (!online && (info.expired || /session has ended/i.test(message || ""))) {
    sessionEnded();
    return;
  }
  $("#who").textContent = online ? who() : "offline — reconnecting…";
  if (online) resync();
}

/** Back after a drop or a server restart: what may have changed meanwhile is loaded again. */
function resync() {
  refreshAccount(); // balance, settings, blocks, contacts, identity
  visits.load();
  const screen = document.body.dataset.screen;
  if (screen === "history") go("history");
  expectSoon(); // a ringing call arrives again as call.incoming
}

$("#signout").addEventListener("click", () => {
  signingOut = true;
  state.client?.close();
  try {
    push?.stop();
  } catch {
    // the page reloads next anyway
  }
  signOut(state.token);
});

// ---------------------------------------------------------------- notifications

/** Push notifications (push.js, issue 25): best effort; the page works without them. */
async function startNotifications(token) {
  try {
    const { startPush } = await import("./push.js");
    push = await startPush({
      token,
      card: $("#devices-card"),
      onNotificationCall: (callId, action) => answerWhenRinging(callId, action),
    });
  } catch (exc) {
    // Unsupported here (no service workers, no Push API) or not installed: no notifications.
    console.info("notifications unavailable:", exc?.message || exc);
  }
}

function takeCallParams() {
  const url = new URL(location.href);
  const callId = url.searchParams.get("call");
  if (!callId) return null;
  const yes = (name) => ["1", "true"].includes(url.searchParams.get(name));
  const action = yes("answer") ? "accept" : yes("decline") ? "decline" : "open";
  for (const name of ["call", "answer", "decline"]) url.searchParams.delete(name);
  history.replaceState(null, "", url.pathname + url.search + url.hash);
  return { callId, action };
}

startAuth(signIn);
