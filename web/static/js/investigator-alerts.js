// Watch-word alerts of the investigator's facilities: unread first, then newest; opening one
// opens its recording at the moment the word was said and marks it read.

import { $, clock, dateTime, el, say } from "./common.js";
import { request } from "./investigator-state.js";

const ALERTS_REFRESH_MS = 15_000;

export async function loadAlerts(openAt) {
  try {
    const { alerts } = await request("GET", "/api/v1/alerts");
    alerts.sort((a, b) => Number(a.read) - Number(b.read) || b.at - a.at);
    $("#alerts").replaceChildren(...alerts.map((alert) => el("li", {
      "data-alert": alert.alert_id, "data-read": String(alert.read),
    },
    el("span", { class: `badge ${alert.read ? "" : "ended"}` }, alert.read ? "read" : "new"),
    el("span", { class: "grow" },
      el("b", {}, `“${alert.word}”`), ` said by the ${alert.party === "family" ? "family" : "resident"} at ${clock(alert.offset_s)}`,
      el("br"), el("small", { class: "muted" }, `${alert.resident_id} ↔ ${alert.family_id} · ${dateTime(alert.at)}`)),
    el("button", {
      type: "button", class: "secondary",
      onclick: async () => {
        await request("POST", `/api/v1/alerts/${encodeURIComponent(alert.alert_id)}/read`).catch(() => {});
        await openAt(alert.call_id, alert.offset_s);
        await loadAlerts(openAt);
      },
    }, "Open"))));
    $("#no-alerts").hidden = alerts.length > 0;
    const unread = alerts.filter((a) => !a.read).length;
    $("#alerts-count").textContent = unread ? `${unread} new` : "";
  } catch (exc) {
    say($("#alerts-error"), `Could not read the alerts: ${exc.message}`);
  }
}

export function followAlerts(openAt) {
  setInterval(() => {
    if (document.visibilityState === "visible") loadAlerts(openAt);
  }, ALERTS_REFRESH_MS);
  return loadAlerts(openAt);
}
