// AutoPay on the home screen (SPEC rule 7): when the balance drops to $5.00 or less, add a
// preset whole-dollar amount ($5 to $100) through the payment processor. Saved with
// PUT /api/v1/account/settings {"autopay": {"enabled", "amount_cents", "payment_method"?}}; the
// server's refusal (e.g. a $3 amount) is shown next to the Save button, word for word.

import { $, api, money, say } from "./common.js";
import { onAccount } from "./family-account.js";
import { state } from "./family-app.js";
import { PaymentStep } from "./family-payment.js";

const THRESHOLD_CENTS = 500;
const step = new PaymentStep($("#autopay-method"), "autopay");
let mountedFor = undefined; // the method label the step was drawn for

/** "20", "$20" -> 2000 cents (the server decides whether it is allowed); or an error. */
export function parseAutoPay(text) {
  const value = text.trim().replace(/^\$/, "");
  if (!/^\d{1,6}(\.\d{1,2})?$/.test(value)) return { error: "Enter a whole-dollar amount, like 20." };
  return { cents: Math.round(Number(value) * 100) };
}

/** "When your balance drops to $5.00 or less, $25.00 is added from card ending 4242." */
function rule(autopay, method) {
  const from = method ? ` from ${method.label}` : "";
  return `When your balance drops to ${money(THRESHOLD_CENTS)} or less, `
    + `${money(autopay.amount_cents)} is added${from}.`;
}

function describe(autopay, method) {
  return autopay.enabled ? `On. ${rule(autopay, method)}` : "Off. Turn it on to top up automatically.";
}

onAccount(async (account) => {
  const autopay = account.autopay || { enabled: false, amount_cents: null };
  const form = $("#autopay-form");
  if (!form.contains(document.activeElement)) { // never under the family's fingers
    $("#autopay-enabled").checked = autopay.enabled;
    if (autopay.amount_cents) $("#autopay-amount").value = String(autopay.amount_cents / 100);
  }
  $("#autopay-hint").textContent = describe(autopay, account.payment_method);
  form.dataset.state = autopay.enabled ? "on" : "off";
  const closed = account.status === "closed";
  for (const control of form.querySelectorAll("input, button")) control.disabled = closed;
  if (closed) $("#autopay-hint").textContent = "Off: the account is closed.";
  const label = account.payment_method?.label || null;
  if (mountedFor !== label) {
    mountedFor = label;
    try {
      await step.mount();
    } catch (exc) {
      say($("#autopay-error"), `Could not load the payment form: ${exc.message}`);
    }
  }
  $("#autopay-method").hidden = !$("#autopay-enabled").checked;
});

$("#autopay-enabled").addEventListener("change", (event) => {
  $("#autopay-method").hidden = !event.target.checked;
  say($("#autopay-error"), "");
  say($("#autopay-done"), "");
});

$("#autopay-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("#autopay-error");
  const done = $("#autopay-done");
  say(error, "");
  say(done, "");
  const enabled = $("#autopay-enabled").checked;
  const autopay = { enabled };
  const raw = $("#autopay-amount").value;
  if (raw.trim() || enabled) {
    const { cents, error: invalid } = parseAutoPay(raw);
    if (invalid) return say(error, invalid);
    autopay.amount_cents = cents;
  }
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    if (enabled) {
      const method = await step.collect();
      if (method) autopay.payment_method = method;
    }
    state.account = await api(state.token, "PUT", "/api/v1/account/settings", { autopay });
    const saved = state.account.autopay;
    say(done, saved.enabled
      ? `AutoPay is on. ${rule(saved, state.account.payment_method)}`
      : "AutoPay is off.");
    $("#autopay-hint").textContent = describe(saved, state.account.payment_method);
    $("#autopay-form").dataset.state = saved.enabled ? "on" : "off";
    if (mountedFor !== (state.account.payment_method?.label || null)) {
      mountedFor = state.account.payment_method?.label || null;
      await step.mount();
    }
  } catch (exc) {
    say(error, exc.message);
  } finally {
    button.disabled = false;
  }
});
