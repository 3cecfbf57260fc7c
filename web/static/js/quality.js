// Connection-quality badges from `call.quality` (README "Connection quality"): shown while a
// connection is weak ("fair") or poor, hidden while it is good or not measured yet.

import { el } from "./common.js";

const WORDS = { fair: "weak connection", poor: "poor connection" };
const RANK = { unknown: 0, good: 0, fair: 1, poor: 2 };

/** A hidden badge to pass to `showQuality`. */
export function qualityBadge() {
  return el("span", { class: "badge quality", role: "status", hidden: true });
}

/** The worse of some parties' qualities ({level, rtt_ms, jitter_ms, loss_pct}), or null. */
export function worst(...qualities) {
  const known = qualities.filter((q) => q && RANK[q.level] !== undefined);
  if (!known.length) return null;
  return known.reduce((a, b) => (RANK[b.level] > RANK[a.level] ? b : a));
}

/** "round trip 420 ms · jitter 12 ms · 3.5 % lost" (what is known). */
export function details(quality) {
  const parts = [];
  if (quality.rtt_ms != null) parts.push(`round trip ${Math.round(quality.rtt_ms)} ms`);
  if (quality.jitter_ms != null) parts.push(`jitter ${Math.round(quality.jitter_ms)} ms`);
  if (quality.loss_pct != null) parts.push(`${quality.loss_pct.toFixed(1)} % lost`);
  return parts.join(" · ");
}

/** Show `quality` on `badge` ("poor connection"), with `suffix` after the words; hide it when
 * the connection is good or unknown. */
export function showQuality(badge, quality, suffix = "") {
  const level = quality?.level;
  const words = WORDS[level];
  badge.hidden = !words;
  badge.className = words ? `badge quality ${level}` : "badge quality";
  badge.textContent = words ? `${words}${suffix}` : "";
  badge.title = words ? details(quality) : "";
  badge.dataset.level = level || "unknown";
}
