// The facility administrator's console: contact requests of its facilities (approve, approve
// as an attorney — privileged, never recorded — or deny) and each facility's settings (rate
// under its regulatory cap, longest call). Speaks only the HTTP API (PROTOCOL v1.1).

import { $, api, dateTime, duration, el, money, rate, say, show, signInForm, tokenSubject } from "./common.js";

const TOKEN_KEY = "visitation.admin.token";
const STATUS_LABELS = { pending: "Waiting", approved: "Approved", denied: "Denied" };
const state = { token: null };
const request = (method, path, body) => api(state.token, method, path, body);

async function signIn(token) {
  state.token = token;
  try {
    await loadFacilities(); // a token the API refuses fails the sign-in
  } catch (exc) {
    if (exc.status === 403) throw new Error("this is not an administrator's token");
    throw exc;
  }
  $("#who").textContent = tokenSubject(token);
  $("#signout").hidden = false;
  show("console");
  await Promise.all([loadRequests(), loadBoard()]);
  setInterval(loadBoard, BOARD_REFRESH_MS);
}

// ---------------------------------------------------------------- the board

const BOARD_REFRESH_MS = 10_000;
const REASONS = {
  outside_hours: "outside hours", capacity: "capacity", insufficient_funds: "insufficient funds",
  unavailable: "unavailable", not_approved: "not approved", busy: "busy",
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

// ---------------------------------------------------------------- facilities

const hours = (windows) => windows.map((w) => `${w.days} ${w.start}–${w.end}`).join("; ");

async function loadFacilities() {
  const { facilities } = await request("GET", "/api/v1/admin/facilities");
  $("#facilities").replaceChildren(...facilities.map(facilityRow));
}

function facilityRow(f) {
  const form = el("form", { class: "row", "aria-label": `Change ${f.name}` },
    el("input", { name: "rate", type: "number", min: "1", max: String(f.rate_cap_cents_per_minute || 10000),
      value: String(f.rate_cents_per_minute), "aria-label": "Rate in cents a minute", class: "narrow" }),
    el("span", { class: "muted" }, "¢/min"),
    el("input", { name: "minutes", type: "number", min: "1", max: "240",
      value: String(Math.round(f.max_call_seconds / 60)), "aria-label": "Longest call in minutes", class: "narrow" }),
    el("span", { class: "muted" }, "min"),
    el("button", { class: "secondary", type: "submit" }, "Save"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // Only what was changed: a 70 s maximum shown as "1" min is kept when only the rate moves.
    const change = {};
    const { rate: rateInput, minutes } = form.elements;
    if (rateInput.value !== rateInput.defaultValue) change.rate_cents_per_minute = Number(rateInput.value);
    if (minutes.value !== minutes.defaultValue) change.max_call_seconds = Number(minutes.value) * 60;
    if (Object.keys(change).length) saveFacility(f, change);
  });
  return el(
    "tr", { "data-facility": f.id },
    el("td", {}, f.name, " ", el("small", { class: "muted" }, `${f.id} · ${f.timezone}`)),
    el("td", {}, f.type.replace("_", " ")),
    el("td", { class: "num" }, rate(f.rate_cents_per_minute), " ",
      el("small", { class: "muted" }, f.rate_cap_cents_per_minute ? `cap ${rate(f.rate_cap_cents_per_minute)}` : "no cap")),
    el("td", { class: "num" }, duration(f.max_call_seconds)),
    el("td", {}, el("small", {}, hours(f.calling_hours))),
    el("td", { class: "num" }, `${f.retention_days} days`),
    el("td", {}, form),
  );
}

async function saveFacility(facility, change) {
  say($("#facility-error"), "");
  try {
    await request("PUT", `/api/v1/admin/facilities/${encodeURIComponent(facility.id)}`, change);
  } catch (exc) {
    say($("#facility-error"), `${facility.name}: ${exc.message}`);
    return;
  }
  await loadFacilities();
}

signInForm(TOKEN_KEY, signIn);
