// The monitor's "Terminate": a reason, then a confirmation (never one click or Enter), and
// why a call (or only this console's watch of it) ended in plain words.

import { el } from "./common.js";

const ENDED = {
  hangup: "the call was hung up",
  time_limit: "time limit reached",
  terminated: "terminated by staff",
  connection_lost: "connection lost",
  server_shutdown: "service stopped",
  disconnected: "this console lost its connection",
};

/** A call's end `reason` (PROTOCOL.md codes) for a person: "time limit reached". */
export function endedWords(reason) {
  return ENDED[reason] || (reason ? String(reason).replace(/_/g, " ") : "ended");
}

const WATCH_ENDED = {
  privileged: ["the call became privileged", "it is an attorney-client call now: it is no longer monitored or recorded"],
};

/**
 * Why the server ended a watch while the call goes on (`monitor.watch_ended`'s `reason`):
 * `[short, long]` plain words, for the tile's badge and its log.
 */
export function watchEndedWords(reason) {
  const words = reason ? String(reason).replace(/_/g, " ") : "the server ended it";
  return WATCH_ENDED[reason] || [words, words];
}

/**
 * The tile's terminate form: a required reason; submitting it (button or Enter) only asks
 * "End this call now?"; `submit(reason)` runs on "Yes, end the call" and resolves true when
 * the server ended it.
 */
export function terminateForm(call, submit) {
  const input = el("input", {
    placeholder: "Reason to terminate", maxlength: 2048, required: true, "aria-label": "Reason to terminate",
  });
  const question = el("span", { class: "grow question" });
  const yes = el("button", { class: "danger confirm", type: "button" }, "Yes, end the call");
  const keep = el("button", { class: "secondary keep", type: "button" }, "Keep the call");
  const confirmRow = el("div", { class: "confirm-row", role: "alertdialog", hidden: true }, question, yes, keep);
  const cancel = () => {
    confirmRow.hidden = true;
    input.focus();
  };
  const form = el("form", {
    class: "terminate",
    onsubmit: (event) => {
      event.preventDefault();
      const reason = input.value.trim();
      if (!reason) return;
      const family = call.family?.name || "the family";
      question.textContent = `End ${call.resident?.name || "the resident"}'s call with ${family} now? Reason: “${reason}”`;
      confirmRow.hidden = false;
      keep.focus(); // the safe choice has the focus: another Enter does not end the call
    },
  },
  input,
  el("button", { class: "danger", type: "submit" }, "Terminate…"),
  confirmRow);
  keep.addEventListener("click", cancel);
  confirmRow.addEventListener("keydown", (event) => {
    if (event.key === "Escape") cancel();
  });
  yes.addEventListener("click", async () => {
    const reason = input.value.trim();
    if (!reason) return cancel();
    yes.disabled = true;
    const ended = await submit(reason);
    yes.disabled = input.disabled; // the tile may have ended (and disabled its controls) meanwhile
    confirmRow.hidden = true;
    if (ended) input.value = "";
    return undefined;
  });
  return form;
}
