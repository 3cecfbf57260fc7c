// The audit trail of the recording open: who listed, viewed, downloaded or verified it, and
// when (refreshed by itself; reading it is not itself audited).

import { $, dateTime, el, say } from "./common.js";
import { request, state } from "./investigator-state.js";

export async function loadAudit() {
  const callId = state.callId;
  say($("#audit-error"), "");
  try {
    const query = new URLSearchParams({ call_id: callId, limit: "1000" });
    const { entries } = await request("GET", `/api/v1/audit?${query}`);
    if (callId !== state.callId) return;
    $("#audit").replaceChildren(...entries.reverse().map(auditRow)); // newest first
  } catch (exc) {
    say($("#audit-error"), `Could not read the audit trail: ${exc.message}`);
  }
}

$("#audit-refresh").addEventListener("click", loadAudit);
const AUDIT_REFRESH_MS = 5_000;
setInterval(() => {
  if (state.callId && document.visibilityState === "visible") loadAudit();
}, AUDIT_REFRESH_MS);

function auditRow(entry) {
  return el(
    // A download taken through a playback (its bytes passed the file's size) says so.
    "tr", { "data-action": entry.action, "data-via": entry.detail?.copy ? "playback" : "request" },
    el("td", {}, dateTime(entry.at)),
    el("td", {}, `${entry.staff_id} `, el("small", { class: "muted" }, entry.role)),
    el("td", {}, entry.action),
    el("td", {}, el("span", { class: `badge ${entry.outcome === "ok" ? "" : "ended"}` }, entry.outcome)),
    el("td", {}, auditDetail(entry)),
    el("td", { class: "muted" }, entry.remote),
  );
}

function auditDetail({ action, detail = {} }) {
  switch (action) {
    case "list": {
      const query = Object.entries(detail.query || {}).map(([k, v]) => `${k}=${v}`).join(" ");
      return `search ${query || "(no filters)"} → ${(detail.call_ids || []).length} found`;
    }
    case "download":
      return [
        detail.party ? `${detail.party} view` : "call file",
        detail.copy
          ? `played past the file's size (copy ${detail.copy}, ${detail.bytes_served} bytes sent)`
          : detail.range ? `range ${detail.range}` : "whole",
        detail.status && `HTTP ${detail.status}`,
      ].filter(Boolean).join(", ");
    case "verify":
      if (!("ok" in detail)) return `refused: ${detail.state}`;
      return detail.ok ? "as signed" : `tampered: ${(detail.problems || []).join("; ")}`;
    case "view":
      if (detail.status >= 400) return `refused: HTTP ${detail.status}`;
      if (detail.transcript) return "transcript";
      return detail.playback ? "opened and played" : "manifest";
    case "legal_hold":
      return detail.hold ? "hold placed" : "hold released";
    default:
      return Object.keys(detail).length ? JSON.stringify(detail) : "";
  }
}
