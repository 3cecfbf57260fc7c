// Deposit receipts: the one shown under "Deposit" after paying, the list on the History
// screen, and any of them opened again (GET /api/v1/account/receipts/{reference}).

import { $, api, dateTime, el, money, say } from "./common.js";
import { state } from "./family-app.js";

/** A receipt as a definition list: reference, amount, method, time, new balance. */
export function receiptView(receipt) {
  const row = (label, value, key) => el("div", { "data-field": key },
    el("dt", {}, label), el("dd", {}, value));
  return el("dl", { class: "receipt facts", "data-receipt": receipt.reference },
    row("Reference", receipt.reference, "reference"),
    row(receipt.kind === "autopay" ? "AutoPay amount" : "Amount", money(receipt.amount_cents), "amount"),
    row("Paid with", receipt.method, "method"),
    row("Time", dateTime(receipt.at), "time"),
    row("New balance", money(receipt.balance_cents), "balance"),
    receipt.payment_reference ? row("Processor reference", receipt.payment_reference, "payment") : null,
  );
}

/** Open receipt `reference` again, in the receipt dialog. */
export async function openReceipt(reference) {
  const dialog = $("#receipt-dialog");
  const body = $("#receipt-body");
  say($("#receipt-error"), "");
  body.replaceChildren();
  if (!dialog.open) dialog.showModal();
  try {
    const receipt = await api(state.token, "GET", `/api/v1/account/receipts/${encodeURIComponent(reference)}`);
    $("#receipt-title").textContent = `${receipt.description} receipt`;
    body.replaceChildren(receiptView(receipt));
  } catch (exc) {
    say($("#receipt-error"), exc.message);
  }
}

$("#receipt-close").addEventListener("click", () => $("#receipt-dialog").close());
$("#receipt-print").addEventListener("click", () => window.print());

/** The History screen's list of receipts, newest first, each opened with one tap. */
export async function loadReceipts() {
  const list = $("#receipts");
  try {
    const { receipts } = await api(state.token, "GET", "/api/v1/account/receipts");
    const items = receipts.map((r) => el(
      "li", { "data-receipt": r.reference },
      el("span", { class: "grow" },
        el("strong", {}, `${r.description} ${money(r.amount_cents)}`), el("br"),
        el("small", { class: "muted" }, `${dateTime(r.at)} · ${r.method} · ${r.reference}`)),
      el("button", { type: "button", class: "secondary", onclick: () => openReceipt(r.reference) },
        "Receipt"),
    ));
    list.replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "No deposits yet.")]));
  } catch (exc) {
    list.replaceChildren(el("li", { class: "error" }, exc.message));
  }
}
