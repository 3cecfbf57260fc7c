// The facility administrator's console: today's board, contact requests of its facilities
// (approve, approve as an attorney — privileged, never recorded — or deny), identity reviews,
// staff and residents' PINs (admin-identity.js, admin-staff.js), each facility's settings
// (admin-facilities.js) and its scheduled visits (admin-visits.js). Speaks only the HTTP API (PROTOCOL v1.1, v1.2).

import { IdentityReviews } from "./admin-identity.js";
import { Facilities } from "./admin-facilities.js";
import { StaffAdmin } from "./admin-staff.js";
import { VisitsAdmin } from "./admin-visits.js";
import { $, api, dateTime, el, money, say, show, tokenSubject } from "./common.js";
import { signedOut, staffSignIn } from "./staff-signin.js";

const TOKEN_KEY = "visitation.admin.token";
const STATUS_LABELS = { pending: "Waiting", approved: "Approved", denied: "Denied" };
const state = { token: null, signedIn: false };

async function request(method, path, body) {
  try {
    return await api(state.token, method, path, body);
  } catch (exc) {
    // A session that ended (expired, revoked, signed out elsewhere): back to sign-in.
    if (exc.status === 401 && state.signedIn) signedOut("Your session has ended. Sign in again.");
    throw exc;
  }
}

const facilities = new Facilities(request);
const identity = new IdentityReviews(request, () => state.token);
const visits = new VisitsAdmin(request, () => facilities.load());
let staff = null;

async function signIn(token) {
  state.token = token;
  let listed;
  try {
    listed = await facilities.load(); // a token the API refuses fails the sign-in
  } catch (exc) {
    if (exc.status === 403) throw new Error("this is not an administrator's token");
    throw exc;
  }
  state.signedIn = true;
  $("#who").textContent = tokenSubject(token);
  staff = new StaffAdmin(request, tokenSubject(token));
  show("console");
  await Promise.all([
    loadRequests(), loadBoard(), identity.load(), staff.load(listed), visits.load(listed),
  ]);
  setInterval(loadBoard, BOARD_REFRESH_MS);
}

// ---------------------------------------------------------------- the board

const BOARD_REFRESH_MS = 10_000;
const REASONS = {
  outside_hours: "outside hours", capacity: "capacity", insufficient_funds: "insufficient funds",
  unavailable: "unavailable", not_approved: "not approved", busy: "busy",
  quota_exhausted: "daily cap used", not_scheduled: "no due visit",
};

async function loadBoard() {
  let facilities;
  try {
    ({ facilities } = await request("GET", "/api/v1/admin/board"));
  } catch (exc) {
    say($("#board-error"), `Could not load the board: ${exc.message}`);
    return;
  }
  say($("#board-error"), "");
  $("#board").replaceChildren(...facilities.map(boardRow));
  $("#board-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function refusalChart(refused) {
  const entries = Object.entries(refused);
  if (!entries.length) return el("span", { class: "muted" }, "none");
  const most = Math.max(...entries.map(([, n]) => n));
  return el("div", { class: "refusals" }, ...entries.map(([reason, n]) => {
    const fill = el("span", { class: "fill" });
    fill.style.width = `${Math.max(6, Math.round((100 * n) / most))}%`; // CSSOM: allowed by the CSP
    return el(
      "div", { class: "refusal", "data-reason": reason },
      el("span", { class: "label" }, REASONS[reason] || reason), fill,
      el("span", { class: "count" }, String(n)),
    );
  }));
}

function boardRow(f) {
  const t = f.today;
  return el(
    "tr", { "data-facility": f.id },
    el("td", {}, f.name),
    el("td", { class: "num now" }, String(f.live_calls),
      f.live.ringing ? el("small", { class: "muted" }, ` (${f.live.ringing} ringing)`) : null),
    el("td", { class: "num calls" }, String(t.calls)),
    el("td", { class: "num minutes" }, String(t.minutes)),
    el("td", { class: "num revenue" }, money(t.revenue_cents)),
    el("td", { class: "num agency" }, `${t.agency_minutes ?? 0} min`),
    el("td", { class: "refused" }, refusalChart(t.refused)),
  );
}

// ---------------------------------------------------------------- contact requests

$("#request-status").addEventListener("change", () => loadRequests());

async function loadRequests() {
  const status = $("#request-status").value;
  say($("#request-error"), "");
  let contacts;
  try {
    ({ contacts } = await request("GET", `/api/v1/admin/contacts${status ? `?status=${status}` : ""}`));
  } catch (exc) {
    say($("#request-error"), `Could not load the requests: ${exc.message}`);
    return;
  }
  $("#requests").replaceChildren(...contacts.map(requestRow));
  $("#no-requests").hidden = contacts.length > 0;
}

function requestRow(c) {
  const who = (ref) => el("td", {}, ref.name || ref.id, " ", el("small", { class: "muted" }, ref.id));
  const answer = (label, body, cls = "secondary") => el("button", {
    class: cls, onclick: () => decide(c, body),
  }, label);
  const actions = [];
  if (c.status !== "approved" || c.privileged) actions.push(answer("Approve", { status: "approved", privileged: false }, "ok"));
  if (!c.privileged) actions.push(answer("Approve as attorney…", { status: "approved", privileged: true }));
  if (c.status !== "denied") actions.push(answer("Deny", { status: "denied" }, "danger"));
  return el(
    "tr", { "data-resident": c.resident.id, "data-family": c.family.id },
    el("td", {}, dateTime(c.requested_at)),
    who(c.family), who(c.resident),
    el("td", {}, c.facility ? c.facility.name || c.facility.id : "—"),
    el("td", { class: "status" },
      el("span", { class: `badge ${c.status === "approved" ? "connected" : c.status === "denied" ? "ended" : ""}` },
        STATUS_LABELS[c.status] || c.status),
      c.privileged ? el("span", { class: "badge privileged" }, "attorney") : null),
    el("td", {}, el("div", { class: "row" }, ...actions)),
  );
}

async function decide(contact, body) {
  if (body.privileged) {
    const ok = confirm(
      `Mark ${contact.family.name || contact.family.id} as ${contact.resident.name || contact.resident.id}'s attorney?\n\n` +
      "Privileged calls are never recorded and never monitored.",
    );
    if (!ok) return;
  }
  say($("#request-error"), "");
  const path = `/api/v1/admin/contacts/${encodeURIComponent(contact.resident.id)}/${encodeURIComponent(contact.family.id)}`;
  try {
    await request("PUT", path, body);
  } catch (exc) {
    say($("#request-error"), exc.message);
    return;
  }
  await loadRequests();
}

staffSignIn(TOKEN_KEY, signIn, "admin");
