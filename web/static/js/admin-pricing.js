// Who pays for a facility's calls (PROTOCOL v1.2 pricing plans): a summary per facility and an
// editor — families pay per minute with optional free minutes per resident a day or week, or
// the agency pays every minute with an optional daily cap per resident. The server's refusal
// is shown beside the form.

import { el, rate, say } from "./common.js";

/** "First 10 min free each week, then 25¢/min" / "Free, up to 90 min a day". */
export function pricingSummary(f) {
  const p = f.pricing || { payer: "family", free_minutes: 0, free_period: "day", max_minutes_per_day: null };
  if (p.payer === "agency") {
    return p.max_minutes_per_day ? `Free, up to ${p.max_minutes_per_day} min a day` : "Free (the agency pays)";
  }
  const period = p.free_period === "week" ? "each week" : "each day";
  return p.free_minutes
    ? `First ${p.free_minutes} min free ${period}, then ${rate(f.rate_cents_per_minute)}`
    : `Families pay ${rate(f.rate_cents_per_minute)}`;
}

/** The "Who pays" cell of facility `f`; `save(change, error)` sends a change (true if saved). */
export function pricingCell(f, save) {
  const p = f.pricing || {};
  const error = el("p", { class: "error pricing-error", role: "alert", hidden: true });
  const radio = (value, label) => el("label", { class: "row" },
    el("input", { type: "radio", name: "payer", value, checked: (p.payer || "family") === value }), label);
  const number = (name, value, label, attrs = {}) => el("label", { class: "row" }, label,
    el("input", { name, type: "number", step: "1", min: "0", class: "narrow", value: value == null ? "" : String(value),
      "aria-label": label, ...attrs }));
  const period = el("select", { name: "free_period", "aria-label": "Free minutes period" },
    el("option", { value: "day", selected: p.free_period !== "week" }, "a day"),
    el("option", { value: "week", selected: p.free_period === "week" }, "a week"));
  const family = el("div", { class: "row wrap family-part" },
    number("free_minutes", p.free_minutes ?? 0, "Free minutes per resident"), period);
  const agency = el("div", { class: "row wrap agency-part" },
    number("max_minutes_per_day", p.max_minutes_per_day, "Daily cap per resident (minutes, empty: none)", { min: "1" }),
    el("small", { class: "muted" }, "The rate is not charged while the agency pays."));
  const form = el("form", { class: "stack pricing-form", novalidate: true, hidden: true, "aria-label": `Who pays at ${f.name}` },
    radio("family", "Families pay per minute"), family,
    radio("agency", "The agency pays every minute"), agency,
    el("div", { class: "row" }, el("button", { class: "secondary", type: "submit" }, "Save who pays")),
    error);
  const sync = () => {
    const agencyPays = form.elements.payer.value === "agency";
    family.hidden = agencyPays;
    agency.hidden = !agencyPays;
  };
  form.addEventListener("change", sync);
  sync();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(error, "");
    const payer = form.elements.payer.value;
    const pricing = { payer };
    if (payer === "family") {
      const free = Number(form.elements.free_minutes.value || 0);
      if (!Number.isInteger(free) || free < 0 || free > 10080) return say(error, "Free minutes: a whole number from 0 to 10,080.");
      Object.assign(pricing, { free_minutes: free, free_period: form.elements.free_period.value });
    } else {
      const raw = form.elements.max_minutes_per_day.value.trim();
      const cap = raw === "" ? null : Number(raw);
      if (cap !== null && (!Number.isInteger(cap) || cap < 1 || cap > 1440)) return say(error, "Daily cap: a whole number of minutes from 1 to 1,440, or empty.");
      pricing.max_minutes_per_day = cap;
    }
    await save({ pricing }, error);
    return undefined;
  });
  const toggle = el("button", { class: "link edit-pricing", type: "button", onclick: () => { form.hidden = !form.hidden; } },
    "Change who pays…");
  return el("td", { class: "pricing" }, el("span", { class: "pricing-summary" }, pricingSummary(f)), " ", toggle, form);
}
