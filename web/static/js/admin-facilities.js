// The admin's facilities: rate (its regulatory cap and why, beside the field; the server's
// message when a change is refused), longest call, and an editor for the calling hours (days,
// start, end, in the facility's time zone), type and how long recordings are kept.

import { pricingCell } from "./admin-pricing.js";
import { $, duration, el, rate, say } from "./common.js";

const TYPES = {
  prison: "prison",
  jail_large: "large jail",
  jail_medium: "medium jail",
  jail_small: "small jail",
  jail_very_small: "very small jail",
  jail_extremely_small: "extremely small jail",
};
const DAY = "(mon|tue|wed|thu|fri|sat|sun)";
const DAYS = new RegExp(`^${DAY}(-${DAY})?(,${DAY}(-${DAY})?)*$`);
const HHMM = /^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$/;

const typeName = (type) => TYPES[type] || String(type).replace(/_/g, " ");
const hours = (windows) => windows.map((w) => `${w.days} ${w.start}–${w.end}`).join("; ");

/** "FCC cap for a prison: 25¢ a minute" (SPEC "Call rules" 8). */
export function capReason(facility) {
  const cap = facility.rate_cap_cents_per_minute;
  if (!cap) return "No rate cap is configured for this type.";
  return `FCC cap for a ${typeName(facility.type)}: ${cap}¢ a minute`;
}

export class Facilities {
  /** `request(method, path, body)`: the admin's API calls. */
  constructor(request) {
    this.request = request;
    this.list = [];
    this.editing = null;
    $("#facility-editor").addEventListener("submit", (event) => {
      event.preventDefault();
      this.saveEditor();
    });
    $("#editor-add-hours").addEventListener("click", () => this.addWindow({ days: "mon-sun", start: "08:00", end: "20:00" }));
    $("#editor-cancel").addEventListener("click", () => this.closeEditor());
    $("#facility-editor").addEventListener("input", () => say($("#editor-error"), ""));
  }

  async load() {
    const { facilities } = await this.request("GET", "/api/v1/admin/facilities");
    this.list = facilities;
    $("#facilities").replaceChildren(...facilities.map((f) => this.row(f)));
    return facilities;
  }

  row(f) {
    const error = el("p", { class: "error row-error", role: "alert", hidden: true });
    // No `max`: the browser's own "must be less than or equal to" says nothing of why; the
    // cap and its reason stand beside the field, and the server's refusal is shown.
    const form = el("form", { class: "row wrap", novalidate: true, "aria-label": `Change ${f.name}` },
      el("input", { name: "rate", type: "number", min: "1", step: "1",
        value: String(f.rate_cents_per_minute), "aria-label": "Rate in cents a minute", class: "narrow" }),
      el("span", { class: "muted" }, "¢/min"),
      el("small", { class: "cap", title: capReason(f) }, capReason(f)),
      el("input", { name: "minutes", type: "number", min: "1", max: "240",
        value: String(Math.round(f.max_call_seconds / 60)), "aria-label": "Longest call in minutes", class: "narrow" }),
      el("span", { class: "muted" }, "min"),
      el("button", { class: "secondary", type: "submit" }, "Save"),
      error,
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      // Only what was changed: a 70 s maximum shown as "1" min is kept when only the rate moves.
      const change = {};
      const { rate: rateInput, minutes } = form.elements;
      if (rateInput.value !== rateInput.defaultValue) change.rate_cents_per_minute = Number(rateInput.value);
      if (minutes.value !== minutes.defaultValue) change.max_call_seconds = Number(minutes.value) * 60;
      const bad = Object.values(change).find((v) => !Number.isInteger(v) || v <= 0);
      if (bad !== undefined) return say(error, "Enter whole numbers above 0.");
      if (Object.keys(change).length) this.save(f, change, error);
      return undefined;
    });
    return el(
      "tr", { "data-facility": f.id },
      el("td", {}, f.name, " ", el("small", { class: "muted" }, `${f.id} · ${f.timezone}`)),
      el("td", {}, typeName(f.type)),
      el("td", { class: "num" }, rate(f.rate_cents_per_minute), " ",
        el("small", { class: "muted" }, f.rate_cap_cents_per_minute ? `cap ${rate(f.rate_cap_cents_per_minute)}` : "no cap")),
      pricingCell(f, (change, err) => this.save(f, change, err)),
      el("td", { class: "num" }, duration(f.max_call_seconds)),
      el("td", { class: "hours" }, el("small", {}, hours(f.calling_hours))),
      el("td", { class: "num" }, `${f.retention_days} days`),
      el("td", {}, form,
        el("button", { class: "link edit-hours", type: "button", onclick: () => this.openEditor(f) },
          "Edit hours, type, retention…")),
    );
  }

  async save(facility, change, error) {
    say(error, "");
    try {
      await this.request("PUT", `/api/v1/admin/facilities/${encodeURIComponent(facility.id)}`, change);
    } catch (exc) {
      say(error, `Not saved: ${exc.message}`);
      return false;
    }
    await this.load();
    return true;
  }

  // ---------------------------------------------------------------- the editor

  openEditor(f) {
    this.editing = f;
    const editor = $("#facility-editor");
    editor.hidden = false;
    $("#editor-title").textContent = `${f.name}: calling hours, type, recordings`;
    $("#editor-zone").textContent = `Times are in the facility's time zone, ${f.timezone}. ` +
      "An end at or before the start runs past midnight.";
    editor.elements.type.replaceChildren(...Object.entries(TYPES).map(([value, label]) =>
      el("option", { value, selected: value === f.type }, label)));
    editor.elements.retention.value = String(f.retention_days);
    $("#editor-hours").replaceChildren();
    for (const w of f.calling_hours) this.addWindow(w);
    say($("#editor-error"), "");
    say($("#editor-saved"), "");
    editor.scrollIntoView({ block: "nearest" });
  }

  addWindow(w) {
    const input = (name, value, attrs) => el("input", { name, value, class: `hours-${name}`, spellcheck: "false", ...attrs });
    const item = el("li", { class: "row window" },
      el("label", {}, "Days ", input("days", w.days, { placeholder: "mon-fri", maxlength: "40",
        "aria-label": "Days (mon-sun, mon-fri, sat,sun)" })),
      el("label", {}, "from ", input("start", w.start, { placeholder: "HH:MM", maxlength: "5", inputmode: "numeric",
        "aria-label": "Start (HH:MM)", class: "narrow hours-start" })),
      el("label", {}, "to ", input("end", w.end, { placeholder: "HH:MM", maxlength: "5", inputmode: "numeric",
        "aria-label": "End (HH:MM)", class: "narrow hours-end" })),
      el("button", { class: "link remove", type: "button", onclick: () => item.remove(), title: "Remove these hours" }, "Remove"),
    );
    $("#editor-hours").append(item);
  }

  /** The editor's hours, or a message naming what is wrong. */
  readWindows() {
    const windows = [];
    for (const [i, item] of [...$("#editor-hours").children].entries()) {
      const get = (name) => item.querySelector(`input[name=${name}]`).value.trim().toLowerCase().replace(/\s+/g, "");
      const w = { days: get("days"), start: get("start"), end: get("end") };
      const n = i + 1;
      if (!DAYS.test(w.days)) return `Hours ${n}: days must be like mon-sun, mon-fri or sat,sun.`;
      if (!HHMM.test(w.start)) return `Hours ${n}: the start must be a time like 08:00.`;
      if (!HHMM.test(w.end)) return `Hours ${n}: the end must be a time like 20:00 (24:00 for midnight).`;
      windows.push(w);
    }
    return windows.length ? windows : "Add at least one calling-hours window.";
  }

  async saveEditor() {
    const f = this.editing;
    const editor = $("#facility-editor");
    const error = $("#editor-error");
    say(error, "");
    say($("#editor-saved"), "");
    if (!f) return;
    const windows = this.readWindows();
    if (typeof windows === "string") return say(error, windows);
    const retention = Number(editor.elements.retention.value);
    if (!Number.isInteger(retention) || retention < 1 || retention > 36500) {
      return say(error, "Recordings must be kept a whole number of days, 1 to 36,500.");
    }
    const change = { calling_hours: windows, type: editor.elements.type.value, retention_days: retention };
    try {
      await this.request("PUT", `/api/v1/admin/facilities/${encodeURIComponent(f.id)}`, change);
    } catch (exc) {
      return say(error, `Not saved: ${exc.message}`);
    }
    const facilities = await this.load();
    this.editing = facilities.find((x) => x.id === f.id) || null;
    say($("#editor-saved"), `Saved ${f.name}.`);
    return undefined;
  }

  closeEditor() {
    this.editing = null;
    $("#facility-editor").hidden = true;
  }
}
