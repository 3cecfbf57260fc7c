// An example of a payment processor adapter's hosted-fields module (PaymentForm kind
// "hosted"): the family page imports it and calls `mount(container, config)`; `collect()`
// resolves to what the page submits as `payment_method` — a token, never the card number.
// A real processor's module would mount its own iframe here (and tokenize with its servers);
// this one stands in for it in tests and demos: it "tokenizes" locally as `tok_<last 4>`.

export async function mount(container, config = {}) {
  const input = document.createElement("input");
  input.id = "hosted-card";
  input.setAttribute("aria-label", config.label || "Card number (hosted field)");
  input.placeholder = config.placeholder || "4242 4242 4242 4242";
  input.autocomplete = "cc-number";
  input.inputMode = "numeric";
  const frame = document.createElement("div");
  frame.className = "hosted-frame";
  frame.dataset.hosted = config.processor || "demo";
  frame.append(input);
  container.replaceChildren(frame);
  return {
    async collect() {
      const digits = input.value.replace(/[\s-]/g, "");
      if (!/^\d{12,19}$/.test(digits)) throw new Error("Enter the card number.");
      return { token: `tok_${digits.slice(-4)}` };
    },
  };
}
