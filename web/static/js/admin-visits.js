// Scheduled visits on the admin's console (PROTOCOL v1.2): each facility's visit settings
// (validated here as the server does, with the rules explained), the day's schedule per slot
// with the stations used, the visits waiting for approval, and approve / deny / cancel with a
// reason both sides see.

import { $, el, say } from "./common.js";

const MODES = {
  on_demand: "On-demand calls only",
  scheduled: "Scheduled visits only (tablets call only for a due visit)",
  both: "Both on-demand calls and scheduled visits",
};
const STATUS = {
  pending: "Waiting for approval", booked: "Booked", denied: "Denied", canceled: "Canceled",
  completed: "Completed", missed: "Missed",
};
const HOLDING = new Set(["pending", "booked", "completed", "missed"]);
// name, label, min, max, the rule explained
const NUMBERS = [
  ["slot_minutes", "Slot length (minutes)", 5, 240,
    "5 to 240; divides 60 (5, 10, 15, 20, 30, 60) or is a multiple of 60. Slots start on the hour."],
  ["min_notice_hours", "Minimum notice (hours)", 0, 2160, "How long before a slot it may be booked at the latest; 0 allows any time."],
  ["max_advance_days", "Booking horizon (days)", 1, 366, "How far ahead a slot may be booked."],
  ["cancel_cutoff_hours", "Cancellation cutoff (hours)", 0, 2160, "Families may cancel until this long before the start; 0 until the start."],
  ["max_per_week", "Visits per resident a week", 1, 100, "Monday to Sunday in the facility's time zone."],
  ["concurrent", "Video stations (visits at once)", 1, 1000, "Visits at most in one slot."],
];
const DAY_S = 86400;

/** A list item laid out as a column, full width (CSSOM: the CSP allows it). */
function stretched(item) {
  item.style.alignItems = "stretch";
  return item;
}

const localTime = (visit) => visit.start_local.slice(11, 16);
const person = (ref) => ref.name || ref.id;

/** The settings' problem, as the server would refuse them, or "". */
export function settingsProblem(v) {
  for (const [name, label, min, max] of NUMBERS) {
    const n = v[name];
    if (!Number.isInteger(n) || n < min || n > max) return `${label}: a whole number from ${min} to ${max}.`;
  }
  if (60 % v.slot_minutes && v.slot_minutes % 60) return "Slot length: it must divide 60 or be a multiple of 60.";
  return "";
}

export class VisitsAdmin {
  /** `request(method, path, body)`: the admin's API calls; `reload()`: the facilities again. */
  constructor(request, reload) {
    this.request = request;
    this.reload = reload;
    this.facilities = [];
    $("#visits-facility").addEventListener("change", () => this.select());
    $("#visits-day").addEventListener("change", () => this.loadDay());
    $("#visit-settings").addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveSettings();
    });
    $("#visit-settings").addEventListener("input", () => say($("#visit-settings-error"), ""));
  }

  get facility() {
    return this.facilities.find((f) => f.id === $("#visits-facility").value) || this.facilities[0];
  }

  async load(facilities) {
    this.facilities = facilities;
    const chosen = $("#visits-facility").value;
    $("#visits-facility").replaceChildren(...facilities.map((f) =>
      el("option", { value: f.id, selected: f.id === chosen }, f.name)));
    if (!$("#visits-day").value) $("#visits-day").value = new Date().toLocaleDateString("en-CA");
    await this.select();
  }

  async select() {
    const f = this.facility;
    if (!f) return;
    this.fillSettings(f);
    await Promise.all([this.loadDay(), this.loadPending()]);
  }

  // ---------------------------------------------------------------- settings

  fillSettings(f) {
    const v = f.visits;
    const form = $("#visit-settings");
    const mode = el("select", { name: "mode", "aria-label": "Visit mode" },
      ...Object.entries(MODES).map(([value, label]) => el("option", { value, selected: value === v.mode }, label)));
    const numbers = NUMBERS.map(([name, label, min, max, rule]) => el("label", { class: "stack setting" },
      el("span", {}, label),
      el("input", { name, type: "number", min: String(min), max: String(max), step: "1", value: String(v[name]),
        class: "narrow", "aria-label": label }),
      el("small", { class: "muted" }, rule)));
    const approval = el("label", { class: "row setting" },
      el("input", { name: "requires_approval", type: "checkbox", checked: v.requires_approval }),
      el("span", {}, "Staff approve each booking first (it is pending until then)"));
    // CSSOM (the CSP allows it, not inline styles): fields top-aligned, 16rem wide.
    for (const label of numbers) label.style.maxWidth = "16rem";
    approval.style.justifyContent = "flex-start";
    approval.style.maxWidth = "24rem";
    approval.firstChild.style.width = "auto";
    mode.style.maxWidth = "24rem";
    $("#visit-settings-fields").style.alignItems = "flex-start";
    $("#visit-settings-fields").replaceChildren(
      el("label", { class: "stack setting" }, el("span", {}, "Mode"), mode), ...numbers, approval);
    $("#visits-zone").textContent = `Times are in ${f.timezone}. Slots come from the calling hours.`;
    say($("#visit-settings-saved"), "");
    say($("#visit-settings-error"), "");
    form.dataset.facility = f.id;
  }

  readSettings() {
    const form = $("#visit-settings");
    const v = { mode: form.elements.mode.value, requires_approval: form.elements.requires_approval.checked };
    for (const [name] of NUMBERS) {
      const raw = form.elements[name].value.trim();
      v[name] = raw === "" ? NaN : Number(raw);
    }
    return v;
  }

  async saveSettings() {
    const f = this.facility;
    const v = this.readSettings();
    const problem = settingsProblem(v);
    if (problem) return say($("#visit-settings-error"), problem);
    try {
      await this.request("PUT", `/api/v1/admin/facilities/${encodeURIComponent(f.id)}`, { visits: v });
    } catch (exc) {
      return say($("#visit-settings-error"), `Not saved: ${exc.message}`);
    }
    this.facilities = await this.reload();
    this.fillSettings(this.facility);
    say($("#visit-settings-saved"), `Saved the visit settings of ${f.name}.`);
    await this.loadDay();
    return undefined;
  }

  // ---------------------------------------------------------------- the day and the queue

  async visits(query) {
    const params = new URLSearchParams({ facility_id: this.facility.id, ...query });
    const { visits } = await this.request("GET", `/api/v1/admin/visits?${params}`);
    return visits;
  }

  async loadDay() {
    const f = this.facility;
    const day = $("#visits-day").value;
    if (!f || !day) return;
    const noon = Date.parse(`${day}T12:00:00Z`) / 1000; // any zone's day lies within ±1.5 days
    let visits;
    try {
      visits = await this.visits({ from: String(noon - 1.5 * DAY_S), to: String(noon + 1.5 * DAY_S) });
    } catch (exc) {
      return say($("#visits-error"), `Could not load the visits: ${exc.message}`);
    }
    say($("#visits-error"), "");
    const today = visits.filter((v) => v.start_local.slice(0, 10) === day);
    const slots = new Map();
    for (const v of today) {
      if (!slots.has(v.start)) slots.set(v.start, []);
      slots.get(v.start).push(v);
    }
    const rows = [...slots.entries()].sort(([a], [b]) => a - b).map(([start, list]) => {
      const used = list.filter((v) => HOLDING.has(v.status)).length;
      return stretched(el("li", { class: "stack slot", "data-start": String(start) },
        el("div", { class: "row" },
          el("strong", { class: "grow" }, `${localTime(list[0])}–${list[0].end_local.slice(11, 16)}`),
          el("span", { class: "stations" }, `${used} of ${f.visits.concurrent} stations`)),
        el("ul", { class: "list" }, ...list.map((v) => this.visitItem(v)))));
    });
    $("#visits-schedule").replaceChildren(...rows);
    $("#no-visits").hidden = rows.length > 0;
    return undefined;
  }

  async loadPending() {
    let visits;
    try {
      const now = Date.now() / 1000;
      visits = await this.visits({ status: "pending", from: String(Math.floor(now - DAY_S)), to: String(Math.floor(now + 400 * DAY_S)) });
    } catch (exc) {
      return say($("#visits-error"), `Could not load the approvals: ${exc.message}`);
    }
    $("#visits-pending").replaceChildren(...visits.map((v) => this.visitItem(v, true)));
    $("#no-pending").hidden = visits.length > 0;
    return undefined;
  }

  visitItem(v, withDay = false) {
    const error = el("p", { class: "error", role: "alert", hidden: true });
    const reason = el("input", { class: "grow", maxlength: "500", "aria-label": "Reason (both sides see it)",
      placeholder: "Reason (the family and the resident see it)" });
    const act = async (status) => {
      const text = reason.value.trim();
      if (status !== "booked" && !text) return say(error, "Say why: the family and the resident see the reason.");
      try {
        await this.request("PUT", `/api/v1/admin/visits/${encodeURIComponent(v.visit_id)}`,
          status === "booked" ? { status } : { status, reason: text });
      } catch (exc) {
        return say(error, exc.message);
      }
      await Promise.all([this.loadDay(), this.loadPending()]);
      return undefined;
    };
    const actions = [];
    if (v.status === "pending") {
      actions.push(el("button", { class: "ok", type: "button", onclick: () => act("booked") }, "Approve"));
      actions.push(reason, el("button", { class: "danger", type: "button", onclick: () => act("denied") }, "Deny"));
    } else if (v.status === "booked") {
      actions.push(reason, el("button", { class: "danger", type: "button", onclick: () => act("canceled") }, "Cancel visit"));
    }
    const when = withDay ? `${v.start_local.slice(0, 10)} ${localTime(v)}` : localTime(v);
    return stretched(el("li", { class: "stack visit", "data-visit": v.visit_id, "data-status": v.status },
      el("div", { class: "row wrap" },
        el("span", { class: "grow" }, `${when} · ${person(v.resident)} with ${person(v.family)}`),
        el("span", { class: `badge status ${v.status}` }, STATUS[v.status] || v.status)),
      v.reason ? el("small", { class: "muted reason" }, `Reason: ${v.reason}`) : null,
      actions.length ? el("div", { class: "row wrap" }, ...actions) : null,
      error));
  }
}
