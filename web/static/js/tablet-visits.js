// "Your visits" on the resident tablet (PROTOCOL v1.2 scheduled visits): the resident's
// upcoming visits from `visits.list`, the next one highlighted, and a Join button from five
// minutes before its start to its end (the tablet places it with call.place + visit_id).

import { $, el } from "./common.js";

const DUE_BEFORE_S = 300;
const STATUS = {
  pending: "Waiting for approval", booked: "Booked", denied: "Denied", canceled: "Canceled",
  completed: "Done", missed: "Missed",
};

const dayTime = (unixSeconds) => new Date(unixSeconds * 1000).toLocaleString([], {
  weekday: "long", month: "short", day: "numeric", hour: "numeric", minute: "2-digit",
});

export const isDue = (visit, now = Date.now() / 1000) =>
  visit.status === "booked" && visit.start - DUE_BEFORE_S <= now && now < visit.end;

export class TabletVisits {
  /** `join(visit)`: place the visit's call. */
  constructor(join) {
    this.join = join;
    this.visits = [];
    this.timer = setInterval(() => this.render(), 15_000); // a Join button appears on time
  }

  async load(client) {
    try {
      ({ visits: this.visits } = await client.request("visits.list"));
    } catch {
      this.visits = []; // a server without visits: the card stays hidden
    }
    this.render();
  }

  clear() {
    this.visits = [];
    this.render();
  }

  render() {
    const now = Date.now() / 1000;
    const upcoming = this.visits
      .filter((v) => v.end > now && (v.status === "booked" || v.status === "pending"))
      .sort((a, b) => a.start - b.start);
    const recent = this.visits.filter((v) => !upcoming.includes(v) && v.end > now - 86400 &&
      ["canceled", "denied", "missed"].includes(v.status));
    const items = [...upcoming, ...recent].map((v, i) => {
      const due = isDue(v, now);
      const next = i === 0 && upcoming.length > 0;
      return el("li", { class: `visit${next ? " next" : ""}`, "data-visit": v.visit_id, "data-status": v.status },
        el("span", { class: "who" },
          el("strong", {}, v.family.name || v.family.id),
          el("small", { class: next ? "" : "muted" }, `${dayTime(v.start)} · ${Math.round((v.end - v.start) / 60)} min`),
          v.reason ? el("small", { class: "muted" }, v.reason) : null),
        el("span", { class: "badge" }, next && !due ? "Next" : STATUS[v.status] || v.status),
        due ? el("button", { class: "big ok join", onclick: () => this.join(v) }, "Join") : null);
    });
    const highlighted = items.find((item) => item.classList.contains("next"));
    if (highlighted) { // CSSOM (the CSP allows it): the next visit stands out
      highlighted.style.background = "rgba(31, 95, 191, 0.08)";
      highlighted.style.borderLeft = "4px solid #1f5fbf";
      highlighted.style.paddingLeft = "0.6rem";
    }
    $("#visits-card").hidden = items.length === 0;
    $("#visits").replaceChildren(...items);
  }
}
