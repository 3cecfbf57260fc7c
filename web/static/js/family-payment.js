// The payment-method step, driven by the server's payment-processor adapter
// (GET /api/v1/account/payment-method): the adapter describes its form and the page mounts it.
//   kind "card_number": fields the page draws (the fake processor's test cards);
//   kind "hosted": the adapter's own ES module (`script_url`) mounts its hosted fields in the
//     container: `mount(container, config)` returns `{ collect() }`, which resolves to what to
//     submit (e.g. a processor token), so card numbers never pass through this page's code.
// `collect()` gives the fields to send as `payment_method`, or null to use the method on file.

import { api, el } from "./common.js";
import { state } from "./family-app.js";

export class PaymentStep {
  /** `container`: where the step is drawn; `name`: unique prefix for its inputs' ids. */
  constructor(container, name) {
    this.container = container;
    this.name = name;
    this.info = null; // {available, form, method}
    this.useOnFile = false;
    this.hosted = null;
  }

  /** (Re)load the adapter's form and the method on file, and draw the step. */
  async mount() {
    this.info = await api(state.token, "GET", "/api/v1/account/payment-method");
    this.useOnFile = Boolean(this.info.method);
    await this.draw();
  }

  get methodLabel() {
    return this.info?.method?.label || null;
  }

  async draw() {
    const { form, method, available } = this.info;
    this.hosted = null;
    if (!available) {
      this.container.replaceChildren(
        el("p", { class: "muted" }, "Payments are unavailable on this server."));
      return;
    }
    if (!form) { // the processor charges the method it has on file: nothing to ask
      this.container.replaceChildren(
        el("p", { class: "muted", "data-method": "on-file" },
          `Paid with ${method?.label || "your payment method on file with the processor"}.`));
      return;
    }
    if (this.useOnFile && method) {
      this.container.replaceChildren(
        el("p", { class: "method-on-file", "data-method": "on-file" },
          el("span", { class: "grow" }, "Pay with ", el("strong", {}, method.label)),
          el("button", { type: "button", class: "link", "data-action": "other-card",
            onclick: () => { this.useOnFile = false; this.draw(); } }, "Use another card")),
      );
      return;
    }
    const parts = [el("legend", {}, form.title || "Payment method")];
    if (form.kind === "hosted" && form.script_url) {
      const slot = el("div", { class: "hosted-fields" });
      parts.push(slot);
      this.container.replaceChildren(el("fieldset", { class: "payment stack" }, ...parts));
      const adapter = await import(form.script_url);
      this.hosted = await adapter.mount(slot, form.config || {});
    } else {
      for (const field of form.fields || []) {
        const id = `${this.name}-${field.name}`;
        parts.push(
          el("label", { for: id }, field.label),
          el("input", {
            id, name: field.name, "data-pm": field.name, placeholder: field.placeholder || null,
            autocomplete: field.autocomplete || "off", inputmode: field.inputmode || null,
            maxlength: "40", spellcheck: "false",
          }),
        );
      }
      if (form.test_cards?.length) {
        parts.push(el("p", { class: "muted small" }, "Test cards: ",
          ...form.test_cards.flatMap((card, i) => [
            i ? " · " : "", el("code", {}, card.number), ` ${card.outcome}`,
          ])));
      }
    }
    if (form.note) parts.push(el("p", { class: "muted small" }, form.note));
    if (method) {
      parts.push(el("button", { type: "button", class: "link",
        onclick: () => { this.useOnFile = true; this.draw(); } }, `Use ${method.label} instead`));
    }
    this.container.replaceChildren(el("fieldset", { class: "payment stack" }, ...parts));
  }

  /** What to submit as `payment_method` (null: the method on file); throws with a message. */
  async collect() {
    const { form, method } = this.info || {};
    if (!form || (this.useOnFile && method)) return null;
    if (this.hosted) return await this.hosted.collect();
    const fields = {};
    for (const input of this.container.querySelectorAll("[data-pm]")) {
      fields[input.dataset.pm] = input.value.trim();
      if (!fields[input.dataset.pm]) {
        input.focus();
        throw new Error(`Enter the ${input.labels?.[0]?.textContent.toLowerCase() || "payment details"}.`);
      }
    }
    return fields;
  }

  /** After a payment went through, the card used is the one on file: show it so. */
  async settled() {
    await this.mount();
  }
}
