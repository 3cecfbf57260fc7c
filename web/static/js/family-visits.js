// Scheduled visits on the family page (PROTOCOL v1.2): for each approved contact a week of
// free slots (GET /api/v1/visits/slots), one tap to book, and the family's upcoming visits with
// their status, the cancellation cutoff shown, and Cancel while it is open.

import { $, api, el, say } from "./common.js";
import { state } from "./family-app.js";

const WEEK_S = 7 * 86400;
const STATUS = {
  pending: "Waiting for approval", booked: "Booked", denied: "Denied", canceled: "Canceled",
  completed: "Done", missed: "Missed",
};
const REFUSALS = {
  slot_full: "That slot was just taken. Pick another one.",
  too_soon: "That slot is too soon to book.",
  too_far: "That slot is too far ahead to book.",
  weekly_limit: "This resident has no visits left that week.",
  conflict: "You or the resident already have a visit then.",
  not_approved: "You are not an approved contact of this resident yet.",
  outside_hours: "Visits can't start then.",
  not_scheduled: "This facility does not take booked visits.",
  too_late_to_cancel: "It is too late to cancel this visit.",
};

const day = (v) => new Date(`${v.start_local.slice(0, 10)}T12:00:00`).toLocaleDateString([], {
  weekday: "short", month: "short", day: "numeric",
});
const hhmm = (local) => local.slice(11, 16);
const when = (unix) => new Date(unix * 1000).toLocaleString([], {
  weekday: "short", month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
});

export class FamilyVisits {
  constructor() {
    this.week = 0;
    this.day = null; // the local date shown (YYYY-MM-DD)
    const week = (n) => () => { this.week = n(this.week); this.day = null; this.loadSlots(); };
    $("#visit-resident").addEventListener("change", week(() => 0));
    $("#visit-prev").addEventListener("click", week((w) => Math.max(0, w - 1)));
    $("#visit-next").addEventListener("click", week((w) => w + 1));
  }

  /** The approved contacts into the picker; the visits and slots loaded. */
  async load() {
    if (!state.token) return;
    let contacts = [];
    try {
      ({ contacts } = await api(state.token, "GET", "/api/v1/account/contacts"));
    } catch (exc) {
      say($("#visits-error"), `Could not load your contacts: ${exc.message}`);
    }
    const approved = contacts.filter((c) => c.status === "approved");
    $("#visits-book").hidden = approved.length === 0;
    const chosen = $("#visit-resident").value;
    $("#visit-resident").replaceChildren(...approved.map((c) => el("option",
      { value: c.resident.id, selected: c.resident.id === chosen }, `${c.resident.name} · ${c.facility.name || c.facility.id}`)));
    await Promise.all([this.loadVisits(), approved.length ? this.loadSlots() : null]);
  }

  async loadVisits() {
    let visits;
    try {
      ({ visits } = await api(state.token, "GET", "/api/v1/account/visits"));
    } catch (exc) {
      return say($("#visits-error"), `Could not load your visits: ${exc.message}`);
    }
    const now = Date.now() / 1000;
    const shown = visits.filter((v) => v.end > now || ["missed", "canceled", "denied"].includes(v.status));
    $("#my-visits").replaceChildren(...shown.map((v) => this.visitItem(v, now)));
    $("#no-my-visits").hidden = shown.length > 0;
    return undefined;
  }

  visitItem(v, now) {
    const open = v.status === "booked" || v.status === "pending";
    const canCancel = open && now <= v.cancel_until;
    const item = el("li", { class: "stack visit", "data-visit": v.visit_id, "data-status": v.status },
      el("div", { class: "row" },
        el("span", { class: "grow" }, el("strong", {}, v.resident.name || v.resident.id), " ",
          el("small", { class: "muted" }, `${when(v.start)} · ${Math.round((v.end - v.start) / 60)} min`)),
        el("span", { class: `badge ${v.status === "booked" ? "connected" : open ? "" : "ended"}` }, STATUS[v.status] || v.status)),
      v.reason ? el("small", { class: "muted reason" }, `Reason: ${v.reason}`) : null,
      open ? el("small", { class: "muted cutoff" }, canCancel
        ? `You can cancel until ${when(v.cancel_until)}.`
        : "Too late to cancel.") : null,
      canCancel ? el("button", { class: "link cancel-visit", type: "button", onclick: () => this.cancel(v) }, "Cancel visit") : null);
    item.style.alignItems = "stretch"; // CSSOM: the CSP allows it
    return item;
  }

  async cancel(v) {
    say($("#visits-error"), "");
    try {
      await api(state.token, "DELETE", `/api/v1/visits/${encodeURIComponent(v.visit_id)}`);
    } catch (exc) {
      say($("#visits-error"), REFUSALS[exc.code] || exc.message);
    }
    await Promise.all([this.loadVisits(), this.loadSlots()]);
  }

  async loadSlots() {
    const resident = $("#visit-resident").value;
    if (!resident) return undefined;
    const from = Math.floor(Date.now() / 1000) + this.week * WEEK_S;
    const query = new URLSearchParams({ resident_id: resident, from: String(from), to: String(from + WEEK_S) });
    let slots;
    try {
      ({ slots } = await api(state.token, "GET", `/api/v1/visits/slots?${query}`));
    } catch (exc) {
      $("#visit-week").replaceChildren();
      return say($("#visits-error"), REFUSALS[exc.code] || exc.message);
    }
    say($("#visits-error"), "");
    $("#visit-prev").disabled = this.week === 0;
    const days = new Map();
    for (const s of slots) {
      const key = s.start_local.slice(0, 10);
      if (!days.has(key)) days.set(key, []);
      days.get(key).push(s);
    }
    // A week as day tabs (with each day's free slots counted), the chosen day's slots below.
    const keys = [...days.keys()];
    if (!keys.includes(this.day)) this.day = keys.find((k) => days.get(k).some((x) => x.available)) || keys[0];
    const tabs = keys.map((key) => {
      const list = days.get(key);
      const free = list.filter((x) => x.available).length;
      return el("button", {
        class: key === this.day ? "day-tab" : "secondary day-tab", type: "button", "data-day": key,
        "aria-pressed": key === this.day ? "true" : "false",
        onclick: () => { this.day = key; this.loadSlots(); },
      }, day(list[0]), el("small", {}, ` · ${free}`));
    });
    const tabRow = $("#visit-days");
    tabRow.replaceChildren(...tabs);
    tabRow.style.flexWrap = "wrap"; // CSSOM (the CSP allows it)
    for (const tab of tabs) tab.style.width = "auto";
    const list = days.get(this.day) || [];
    const free = list.filter((x) => x.available);
    const rows = list.length ? [el("li", { class: "stack day", "data-day": this.day },
      el("strong", {}, day(list[0])),
      free.length
        ? el("div", { class: "row slots" }, ...free.map((x) => el("button", {
          class: "secondary slot", type: "button", "data-start": String(x.start), onclick: () => this.book(resident, x),
        }, hhmm(x.start_local))))
        : el("small", { class: "muted" }, "No free slots that day"))] : [];
    for (const row of rows) {
      row.style.alignItems = "stretch"; // CSSOM: slots wrap on a phone
      const times = row.querySelector(".slots");
      if (times) times.style.flexWrap = "wrap";
    }
    $("#visit-week").replaceChildren(...rows);
    $("#no-slots").hidden = keys.length > 0;
    return undefined;
  }

  async book(resident, slot) {
    say($("#visits-error"), "");
    say($("#visits-done"), "");
    try {
      const visit = await api(state.token, "POST", "/api/v1/visits", { resident_id: resident, start: slot.start });
      say($("#visits-done"), visit.status === "pending"
        ? `Requested ${when(slot.start)}: the facility approves it first.`
        : `Booked ${when(slot.start)}.`);
    } catch (exc) {
      say($("#visits-error"), REFUSALS[exc.code] || exc.message);
    }
    await Promise.all([this.loadVisits(), this.loadSlots()]);
  }
}
