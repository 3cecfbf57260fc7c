// "Two-step sign-in" on the staff pages: enrol a TOTP authenticator (PROTOCOL v1.2:
// `POST /api/v1/account/staff/otp` gives the otpauth URI and a QR code as an SVG data URI;
// `POST /api/v1/account/staff/otp/confirm {"otp"}` turns it on).

import { $, el, say } from "./common.js";
import { postJson } from "./http-json.js";

/** The base32 secret of an otpauth URI, grouped by 4 for reading aloud or typing. */
export function otpSecret(uri) {
  try {
    const secret = new URL(uri).searchParams.get("secret") || "";
    return secret.replace(/(.{4})/g, "$1 ").trim();
  } catch {
    return "";
  }
}

function build() {
  const dialog = el("dialog", { id: "twostep", class: "card stack twostep", "aria-labelledby": "twostep-title" },
    el("h2", { id: "twostep-title" }, "Two-step sign-in"),
    el("p", { class: "muted" },
      "Signing in will also ask for a 6-digit code from an authenticator app on your phone ",
      "(for example Google Authenticator, Microsoft Authenticator or 1Password)."),
    el("button", { id: "twostep-start", type: "button" }, "Set up two-step sign-in"),
    el("div", { class: "stack", id: "twostep-enrol", hidden: true },
      el("p", {}, "1. In the app, add an account and scan this code:"),
      el("img", { id: "twostep-qr", class: "qr", alt: "QR code for your authenticator app", width: "220", height: "220" }),
      el("p", {}, "Or type this key: ", el("code", { id: "twostep-secret" })),
      el("form", { class: "stack", id: "twostep-confirm" },
        el("label", { for: "twostep-code" }, "2. Enter the 6-digit code the app shows"),
        el("input", { id: "twostep-code", name: "otp", autocomplete: "one-time-code",
          inputmode: "numeric", pattern: "[0-9]{6}", maxlength: "6", required: true }),
        el("button", { class: "ok", type: "submit" }, "Turn on two-step sign-in"),
      ),
    ),
    el("p", { class: "notice", id: "twostep-done", role: "status", hidden: true }),
    el("p", { class: "error", id: "twostep-error", role: "alert", hidden: true }),
    el("div", { class: "row" },
      el("span", { class: "grow" }),
      el("button", { class: "secondary", id: "twostep-close", type: "button" }, "Close")),
  );
  document.body.append(dialog);
  return dialog;
}

const plain = (result, fallback) => result.data?.error?.message || `${fallback} (HTTP ${result.status}).`;

/** Wire the top bar's "Two-step sign-in" button; `token()` is the signed-in token. */
export function twoStepSettings(token) {
  const dialog = $("#twostep") || build();
  const error = $("#twostep-error");
  const done = $("#twostep-done");
  $("#twostep-open").addEventListener("click", () => {
    say(error, "");
    dialog.showModal();
  });
  $("#twostep-close").addEventListener("click", () => dialog.close());

  $("#twostep-start").addEventListener("click", async () => {
    say(error, "");
    say(done, "");
    let result;
    try {
      result = await postJson("/api/v1/account/staff/otp", {}, token());
    } catch {
      return say(error, "Cannot reach the server. Try again.");
    }
    if (result.status !== 200 && result.status !== 201) {
      return say(error, plain(result, "Could not start the set-up"));
    }
    const { otpauth_uri: uri, qr_svg: qr } = result.data;
    const image = $("#twostep-qr");
    image.hidden = !qr;
    if (qr) image.src = qr;
    $("#twostep-secret").textContent = otpSecret(uri);
    $("#twostep-secret").dataset.uri = uri || "";
    $("#twostep-enrol").hidden = false;
    $("#twostep-start").textContent = "Start again with a new key";
    $("#twostep-code").focus();
    return undefined;
  });

  $("#twostep-confirm").addEventListener("submit", async (event) => {
    event.preventDefault();
    say(error, "");
    const code = $("#twostep-code").value.replace(/\s+/g, "");
    if (!/^[0-9]{6}$/.test(code)) return say(error, "Enter the 6 digits the app shows.");
    let result;
    try {
      result = await postJson("/api/v1/account/staff/otp/confirm", { otp: code }, token());
    } catch {
      return say(error, "Cannot reach the server. Try again.");
    }
    if (result.status !== 200) {
      const wrong = [401, 422].includes(result.status); // a code that is not the app's current one
      return say(error, wrong ? "That code is not right. Check the app and try again." : plain(result, "Could not turn it on"));
    }
    $("#twostep-code").value = "";
    $("#twostep-enrol").hidden = true;
    $("#twostep-start").textContent = "Set up again (a new phone)";
    say(done, "Two-step sign-in is on. Next time you sign in, enter the code from the app too.");
    return undefined;
  });
}
