// The family's money: deposits (within the limits, one idempotency key per intended deposit,
// paid through the processor adapter's payment-method step, with a receipt shown right under
// the Deposit button), the call history, receipts and the statement (a call's line says
// minutes × rate = amount). AutoPay: family-autopay.js; closing the account: family-close.js.

import { $, api, dateTime, duration, el, money, randomId, say } from "./common.js";
import { facilityName, refreshAccount } from "./family-account.js";
import { onScreen, state } from "./family-app.js";
import "./family-autopay.js";
import "./family-close.js";
import { PaymentStep } from "./family-payment.js";
import { loadReceipts, openReceipt, receiptView } from "./family-receipts.js";

const ENTRY_LABELS = {
  deposit: "Deposit", autopay: "AutoPay deposit", credit: "Credit", hold: "Reserved for a call",
  release: "Reservation released", charge: "Call charge", refund: "Refund", close: "Account closed",
};
const PLUS = new Set(["deposit", "autopay", "credit"]);
const HELD = new Set(["hold", "release"]);

const payment = new PaymentStep($("#deposit-method"), "deposit");

onScreen("history", () => loadHistory());
onScreen("deposit", async () => {
  say($("#deposit-error"), "");
  $("#deposit-receipt").hidden = true;
  const closed = state.account?.status === "closed";
  $("#deposit-form button[type=submit]").disabled = closed;
  if (closed) {
    say($("#deposit-error"), "This account is closed: it takes no more deposits.");
    $("#deposit-method").replaceChildren();
    return;
  }
  try {
    await payment.mount();
  } catch (exc) {
    say($("#deposit-error"), `Could not load the payment form: ${exc.message}`);
  }
});

// ---------------------------------------------------------------- deposits

/** "20", "$12.50" -> cents; or the reason it is not a valid deposit ($2.00 to $100.00). */
export function parseDeposit(text) {
  const value = text.trim().replace(/^\$/, "");
  if (!/^\d{1,6}(\.\d{1,2})?$/.test(value)) {
    return { error: "Enter an amount in dollars, like 20 or 12.50." };
  }
  const cents = Math.round(Number(value) * 100);
  if (cents < 200) return { error: "The minimum deposit is $2.00." };
  if (cents > 10000) return { error: "The maximum deposit is $100.00." };
  return { cents };
}

// One key per intended deposit: a retry after a network error cannot deposit twice.
let depositKey = randomId();
$("#amount").addEventListener("input", () => {
  depositKey = randomId();
  $("#deposit-receipt").hidden = true;
});
$("#deposit-method").addEventListener("input", () => {
  depositKey = randomId(); // another card: another deposit
  say($("#deposit-error"), "");
});

for (const chip of document.querySelectorAll("[data-amount]")) {
  chip.addEventListener("click", () => {
    $("#amount").value = chip.dataset.amount;
    depositKey = randomId();
    say($("#deposit-error"), "");
  });
}

$("#deposit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("#deposit-error");
  const { cents, error: invalid } = parseDeposit($("#amount").value);
  if (invalid) return say(error, invalid);
  say(error, "");
  $("#deposit-receipt").hidden = true;
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const body = { amount_cents: cents };
    const method = await payment.collect(); // throws "Enter the card number." before sending
    if (method) body.payment_method = method;
    const result = await api(
      state.token, "POST", "/api/v1/account/deposits", body, { "Idempotency-Key": depositKey },
    );
    depositKey = randomId();
    $("#amount").value = "";
    showReceipt(result);
    await payment.settled(); // the card used is now the one on file
    refreshAccount();
  } catch (exc) {
    say(error, exc.message);
  } finally {
    button.disabled = false;
  }
});

/** The deposit's receipt, next to the Deposit button, until the next deposit is started. */
function showReceipt(result) {
  const receipt = result.receipt;
  const box = $("#deposit-receipt");
  $("#deposit-done").textContent =
    `Added ${money(receipt.amount_cents)}. New balance ${money(result.balance_cents)}.`;
  $("#deposit-receipt-body").replaceChildren(receiptView(receipt));
  box.dataset.receipt = receipt.reference;
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

// ---------------------------------------------------------------- history

async function loadHistory() {
  try {
    const [{ calls }, { entries }] = await Promise.all([
      api(state.token, "GET", "/api/v1/account/calls"),
      api(state.token, "GET", "/api/v1/account/statement"),
    ]);
    renderCalls(calls);
    renderStatement(entries, calls);
  } catch (exc) {
    $("#calls").replaceChildren(el("li", { class: "error" }, exc.message));
  }
  loadReceipts();
  loadMonths();
}

// ---------------------------------------------------------------- monthly statements

const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

/** "2026-12" -> "December 2026". */
function monthName(month) {
  const [year, mon] = month.split("-").map(Number);
  return new Date(Date.UTC(year, mon - 1, 1)).toLocaleDateString(undefined, {
    month: "long", year: "numeric", timeZone: "UTC",
  });
}

async function loadMonths() {
  const list = $("#months");
  try {
    const { months } = await api(
      state.token, "GET", `/api/v1/account/statement/months?tz=${encodeURIComponent(ZONE)}`,
    );
    const items = months.map((month) => el(
      "li", { "data-month": month },
      el("span", { class: "grow" }, el("strong", {}, monthName(month))),
      el("button", { type: "button", class: "secondary", "data-format": "pdf",
        onclick: () => download(month, "pdf") }, "PDF"),
      " ",
      el("button", { type: "button", class: "secondary", "data-format": "csv",
        onclick: () => download(month, "csv") }, "CSV"),
    ));
    list.replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No statements yet.")]));
  } catch (exc) {
    list.replaceChildren(el("li", { class: "error" }, exc.message));
  }
}

/** The month's statement as a file (the API needs the bearer token: fetched, then saved). */
async function download(month, format) {
  say($("#months-error"), "");
  const path = `/api/v1/account/statement?month=${month}&format=${format}&tz=${encodeURIComponent(ZONE)}`;
  try {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
    if (!response.ok) throw new Error(`The statement could not be loaded (${response.status}).`);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `statement-${month}.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (exc) {
    say($("#months-error"), exc.message);
  }
}

function renderCalls(calls) {
  const items = calls.map((call) => {
    const who = call.resident?.name ? `Call with ${call.resident.name}` : "Call";
    const where = call.facility?.name || facilityName(call.facility_id);
    const connected = Boolean(call.connected_at);
    return el(
      "li", { "data-call": call.call_id },
      el("span", { class: "grow" },
        el("strong", {}, connected ? `${who} — ${duration(call.duration_s)}` : `${who} — not connected`), el("br"),
        el("small", { class: "muted" }, `${dateTime(call.connected_at || call.started_at)} · ${where}`
          + (call.agency_seconds ? ` · ${duration(call.agency_seconds)} paid by the agency` : ""))),
      el("span", { class: `amount ${call.charged_cents ? "minus" : "held"}` },
        call.charged_cents ? money(call.charged_cents) : "no charge"),
    );
  });
  $("#calls").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No calls yet.")]));
}

/** A call's charge as its arithmetic: "3 min × 25¢ = $0.75" (and what was free). */
function arithmetic(e) {
  const talked = e.connected_seconds ? `talked ${duration(e.connected_seconds)}` : "";
  const free = e.agency_seconds ? `${duration(e.agency_seconds)} paid by the agency` : "";
  const notes = [talked, free].filter(Boolean).join(", ");
  if (e.billed_minutes == null || !e.rate_cents_per_minute) {
    return `${money(e.amount_cents)}${notes ? ` (${notes})` : ""}`;
  }
  const sum = `${e.billed_minutes} min × ${e.rate_cents_per_minute}¢ = ${money(e.amount_cents)}`;
  return notes ? `${sum} (${notes})` : sum;
}

function renderStatement(entries, calls = []) {
  // A call's hold only reserves money while it lasts; once the call is settled (charged, and
  // what was left released) the charge line says what it cost, so hold and release are not
  // shown. A hold whose call is not settled yet is one pending line.
  const settled = new Set(
    entries.filter((e) => e.kind === "charge" || e.kind === "release").map((e) => e.call_id),
  );
  const withWhom = new Map(calls.map((c) => [c.call_id, c.resident?.name]));
  const shown = entries.filter((e) => !(HELD.has(e.kind) && e.call_id && settled.has(e.call_id)));
  const items = shown.slice().reverse().map((e) => {
    const kind = HELD.has(e.kind) ? "held" : PLUS.has(e.kind) ? "plus" : "minus";
    const sign = { held: "", plus: "+", minus: "−" }[kind];
    const who = withWhom.get(e.call_id);
    let label = ENTRY_LABELS[e.kind] || e.kind;
    if (e.kind === "charge" && who) label = `Call with ${who}`;
    if (e.kind === "hold") label = "Pending — reserved for a call in progress";
    const isReceipt = PLUS.has(e.kind) && e.kind !== "credit" && e.reference;
    return el(
      "li", { "data-kind": e.kind, "data-reference": e.reference || null },
      el("span", { class: "grow" },
        label, el("br"),
        e.kind === "charge" ? el("small", { class: "arithmetic" }, arithmetic(e), el("br")) : null,
        el("small", { class: "muted" },
          `${dateTime(e.at)} · available ${money(e.available_cents)}`
          + (e.reference ? ` · ref ${e.reference}` : ""))),
      el("span", { class: "stack end" },
        el("span", { class: `amount ${kind}` }, `${sign}${money(e.amount_cents)}`),
        isReceipt
          ? el("button", { type: "button", class: "link", "data-open-receipt": e.reference,
            onclick: () => openReceipt(e.reference) }, "Receipt")
          : null),
    );
  });
  $("#statement").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No entries.")]));
}

