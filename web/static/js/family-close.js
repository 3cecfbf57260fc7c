// Closing the account (SPEC rule 7): the refund is shown first (GET
// /api/v1/account/close/preview: how much, to which payment method), and only a second,
// explicit tap closes it (POST /api/v1/account/close). What happened is said right there.

import { $, api, money, say } from "./common.js";
import { onAccount, refreshAccount } from "./family-account.js";
import { state } from "./family-app.js";

const start = $("#close-start");
const confirmBox = $("#close-confirm");
const yes = $("#close-yes");

function reset() {
  confirmBox.hidden = true;
  start.hidden = state.account?.status === "closed";
  say($("#close-error"), "");
}

onAccount((account) => {
  const closed = account.status === "closed";
  start.hidden = closed;
  if (closed) confirmBox.hidden = true;
  $("#close-card").dataset.state = closed ? "closed" : "open";
});

start.addEventListener("click", async () => {
  reset();
  say($("#close-done"), "");
  start.disabled = true;
  try {
    const preview = await api(state.token, "GET", "/api/v1/account/close/preview");
    if (!preview.can_close) {
      say($("#close-error"), `The account cannot be closed now: ${preview.reason}.`);
      return;
    }
    $("#close-refund").textContent = preview.refund_cents
      ? `Closing refunds ${money(preview.refund_cents)} to ${preview.refund_to}. `
        + "Calls to you will no longer ring, and AutoPay stops."
      : "Your balance is $0.00, so there is nothing to refund. Calls to you will no longer ring.";
    yes.textContent = preview.refund_cents
      ? `Close and refund ${money(preview.refund_cents)}`
      : "Close my account";
    confirmBox.hidden = false;
    start.hidden = true; // one question at a time: refund, then yes or no
    $("#close-no").focus();
  } catch (exc) {
    say($("#close-error"), exc.message);
  } finally {
    start.disabled = false;
  }
});

$("#close-no").addEventListener("click", reset);

yes.addEventListener("click", async () => {
  yes.disabled = true;
  say($("#close-error"), "");
  try {
    const closed = await api(state.token, "POST", "/api/v1/account/close");
    confirmBox.hidden = true;
    say($("#close-done"), closed.refunded_cents
      ? `Your account is closed. ${money(closed.refunded_cents)} is refunded to ${closed.refund_to}.`
      : "Your account is closed.");
    await refreshAccount();
  } catch (exc) {
    say($("#close-error"), exc.message);
  } finally {
    yes.disabled = false;
  }
});
