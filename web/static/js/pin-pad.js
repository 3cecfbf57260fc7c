// The shared tablet's sign-in form: resident id and PIN, with a large on-screen keypad (digits,
// clear, back, sign in) that types into the chosen field. The PIN is masked and the keypad is
// its input method (no system keyboard pops up for it).

import { el, say } from "./common.js";

const KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "back"];
const LABELS = { clear: "Clear", back: "⌫" };
const NAMES = { clear: "Clear", back: "Back" };
const PIN_MAX = 8;

export class PinPad {
  /** `onSubmit({resident_id, pin})` signs in (it may call `error()`, `reset()`, …). */
  constructor(root, onSubmit) {
    this.onSubmit = onSubmit;
    this.id = el("input", {
      id: "resident-id", name: "resident_id", class: "pad-field", maxlength: "64", autocomplete: "off",
      autocapitalize: "characters", spellcheck: "false", "aria-describedby": "pad-hint",
    });
    this.pin = el("input", {
      id: "resident-pin", name: "pin", class: "pad-field", type: "password", inputmode: "none",
      maxlength: String(PIN_MAX), autocomplete: "off", pattern: "[0-9]*",
    });
    this.errorLine = el("p", { class: "error", id: "pad-error", role: "alert", hidden: true });
    this.noticeLine = el("p", { class: "notice", id: "pad-notice", role: "status", hidden: true });
    this.submitButton = el("button", { class: "big pad-signin", type: "submit", id: "pad-signin" }, "Sign in");
    const keypad = el("div", { class: "keypad", role: "group", "aria-label": "Keypad" },
      ...KEYS.map((key) => el("button", {
        type: "button", class: `key${/\d/.test(key) ? "" : ` key-${key} secondary`}`, "data-key": key,
        "aria-label": NAMES[key] || key,
      }, LABELS[key] || key)));
    this.form = el("form", { class: "pinpad", id: "resident-login", novalidate: true, autocomplete: "off" },
      el("div", { class: "pad-fields stack" },
        el("h2", {}, "Sign in to make a call"),
        el("label", { for: "resident-id" }, "Your resident id"),
        this.id,
        el("label", { for: "resident-pin" }, "Your PIN"),
        this.pin,
        el("p", { class: "muted", id: "pad-hint" }, "Tap a box, then use the keypad."),
        this.submitButton,
        this.errorLine,
        this.noticeLine,
      ),
      keypad,
    );
    root.replaceChildren(this.form);
    this.active = this.id;
    for (const input of [this.id, this.pin]) {
      input.addEventListener("focus", () => this.choose(input));
    }
    this.pin.addEventListener("input", () => {
      this.pin.value = this.pin.value.replace(/\D/g, "").slice(0, PIN_MAX);
    });
    // Keep the focus in the field: a key press must not blur it (nor raise a keyboard).
    keypad.addEventListener("pointerdown", (event) => {
      if (event.target.closest("button")) event.preventDefault();
    });
    keypad.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-key]");
      if (button) this.press(button.dataset.key);
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.choose(this.id);
  }

  choose(input) {
    this.active = input;
    for (const field of [this.id, this.pin]) field.classList.toggle("active", field === input);
  }

  press(key) {
    const field = this.active;
    if (key === "clear") field.value = "";
    else if (key === "back") field.value = field.value.slice(0, -1);
    else if (field !== this.pin || field.value.length < PIN_MAX) field.value += key;
    field.dispatchEvent(new Event("input", { bubbles: true }));
    if (document.activeElement !== field) field.focus({ preventScroll: true });
  }

  async submit() {
    const residentId = this.id.value.trim();
    const pin = this.pin.value;
    this.error("");
    this.notice("");
    if (!residentId) {
      this.id.focus();
      return this.error("Enter your resident id first.");
    }
    if (!pin) {
      this.pin.focus();
      return this.notice("Now enter your PIN.");
    }
    if (!/^[0-9]{4,8}$/.test(pin)) {
      this.pin.value = "";
      this.pin.focus();
      return this.error("A PIN is 4 to 8 digits.");
    }
    this.submitButton.disabled = true;
    try {
      await this.onSubmit({ resident_id: residentId, pin });
    } finally {
      this.submitButton.disabled = false;
    }
    return undefined;
  }

  error(text) {
    say(this.errorLine, text);
  }

  notice(text) {
    say(this.noticeLine, text);
  }

  /** After a refused PIN: the PIN goes, the id stays. */
  clearPin() {
    this.pin.value = "";
    this.pin.focus({ preventScroll: true });
  }

  /** Back to an empty form (`message` stays on it, e.g. why the last resident was signed out). */
  reset(message = "") {
    this.id.value = "";
    this.pin.value = "";
    this.error("");
    this.notice(message);
    this.choose(this.id);
  }

  /** Whether anything is typed (to clear a half-typed form after a while). */
  get dirty() {
    return Boolean(this.id.value || this.pin.value);
  }
}
