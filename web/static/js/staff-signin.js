// Staff sign-in for /monitor, /investigator and /admin (PROTOCOL v1.2 "Accounts and sign-in"):
// staff id + password, then a 6-digit code when the server answers `otp_required`; a pasted
// token or a one-click `?token=` link still works (operators, `make run`). "Sign out" revokes
// the token on the server (`POST /api/v1/logout`). The page's own screens stay the page's.

import { $, el, pageToken, plainSignInError, say, show } from "./common.js";
import { postJson, retryAfterText } from "./http-json.js";
import { twoStepSettings } from "./two-step.js";

const NOTICE_KEY = "visitation.signin.notice"; // a message for the sign-in screen after a reload
const state = { token: null };

/** The signed-in token (for modules that need it, such as the two-step settings). */
export const currentToken = () => state.token;

function field(label, attrs) {
  return [el("label", { for: attrs.id }, label), el("input", attrs)];
}

/** The top bar and the sign-in screen, at the start of `<main>` (from its data attributes). */
function staffShell(main) {
  const { title, tokenLabel, tokenHint } = main.dataset;
  main.prepend(
    el("header", { class: "topbar" },
      el("h1", {}, title || "Video visits"),
      el("span", { class: "who", id: "who" }),
      el("button", { class: "link", id: "twostep-open", hidden: true }, "Two-step sign-in"),
      el("button", { class: "link", id: "signout", hidden: true }, "Sign out"),
    ),
    el("section", { class: "screen staff-signin", id: "signin", hidden: true },
      el("form", { class: "card stack narrow", id: "staff-login", novalidate: true },
        el("h2", {}, "Staff sign-in"),
        ...field("Staff id", { id: "staff-id", name: "staff_id", autocomplete: "username",
          autocapitalize: "characters", spellcheck: "false", maxlength: "64", required: true }),
        ...field("Password", { id: "password", name: "password", type: "password",
          autocomplete: "current-password", maxlength: "1024", required: true }),
        el("div", { class: "stack", id: "otp-row", hidden: true },
          ...field("6-digit code from your authenticator app", { id: "otp", name: "otp",
            autocomplete: "one-time-code", inputmode: "numeric", pattern: "[0-9]{6}",
            maxlength: "6", spellcheck: "false" })),
        el("button", { class: "big", type: "submit" }, "Sign in"),
        el("p", { class: "notice", id: "signin-notice", role: "status", hidden: true }),
      ),
      el("p", { class: "error narrow", role: "alert", hidden: true }),
      el("details", { class: "card narrow", id: "token-signin" },
        el("summary", {}, "Sign in with a token instead"),
        el("form", { class: "stack" },
          el("label", { for: "token" }, tokenLabel || "Token"),
          el("textarea", { id: "token", name: "token", autocomplete: "off", spellcheck: "false",
            placeholder: tokenHint || "Paste your token" }),
          el("button", { class: "secondary", type: "submit" }, "Sign in with this token"),
        ),
      ),
    ),
  );
}

function loginError(status, data, headers, withCode) {
  const code = data?.error?.code;
  if (status === 429) return `Too many tries. ${retryAfterText(headers)}`;
  if (code === "invalid_credentials") {
    return withCode
      ? "That code, staff id or password is not right. Check them and try again."
      : "That staff id and password do not match. Check them and try again.";
  }
  return data?.error?.message || `The server refused the sign-in (HTTP ${status}).`;
}

/** Send the page back to its sign-in screen (a session that ended), saying why. */
export function signedOut(message = "Your session has ended. Sign in again.") {
  for (const key of Object.keys(sessionStorage)) {
    if (key.startsWith("visitation.") && key.endsWith(".token")) sessionStorage.removeItem(key);
  }
  sessionStorage.setItem(NOTICE_KEY, message);
  location.reload();
}

/** True for `onLine(false, message, info)` telling that the session was revoked or expired. */
export function sessionEnded(message, info) {
  return Boolean(info?.expired) || /session has ended|expired|revoked/i.test(String(message || ""));
}

const ROLE_PAGES = {
  monitor: ["a monitor", "the monitoring console", "/monitor"],
  investigator: ["an investigator", "the recordings page", "/investigator"],
  admin: ["an administrator", "facility administration", "/admin"],
};

/** A signed-in account of another role: say where it signs in (and end this sign-in). */
function wrongPage(role, error) {
  const [who, page, path] = ROLE_PAGES[role] || [];
  if (!path) return say(error, "This account cannot use this page.");
  error.replaceChildren(`This account is ${who}'s: sign in on `, el("a", { href: path }, page), ".");
  error.hidden = false;
  return undefined;
}

/**
 * Build and wire the staff sign-in. `onToken(token)` opens the page (it throws to refuse a
 * token, e.g. another role's); `key` is this page's token in sessionStorage; `role` the role
 * this page is for (a password sign-in of another role is ended at once).
 */
export function staffSignIn(key, onToken, role = null) {
  if (!$("#signin")) staffShell($("main"));
  twoStepSettings(currentToken);
  const form = $("#staff-login");
  const error = $("#signin > .error");
  const notice = $("#signin-notice");
  const otpRow = $("#otp-row");
  const tokenForm = $("#token-signin form");

  const attempt = async (token) => {
    say(error, "");
    try {
      await onToken(token);
      state.token = token;
      $("#signout").hidden = false;
      $("#twostep-open").hidden = false;
    } catch (exc) {
      sessionStorage.removeItem(key);
      show("signin");
      say(error, `Could not sign in: ${plainSignInError(exc.message)}`);
    }
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say(error, "");
    say(notice, "");
    const staffId = form.elements.staff_id.value.trim();
    const password = form.elements.password.value;
    const otp = form.elements.otp.value.replace(/\s+/g, "");
    if (!staffId || !password) return say(error, "Enter your staff id and your password.");
    const withCode = !otpRow.hidden;
    if (withCode && !/^[0-9]{6}$/.test(otp)) return say(error, "Enter the 6 digits of the code.");
    const body = { staff_id: staffId, password };
    if (withCode) body.otp = otp;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    let answer;
    try {
      answer = await postJson("/api/v1/login", body);
    } catch {
      button.disabled = false;
      return say(error, "Cannot reach the server. Check your connection and try again.");
    }
    button.disabled = false;
    const { status, data, headers } = answer;
    if (status === 401 && data?.error?.code === "otp_required") {
      otpRow.hidden = false;
      say(notice, "Enter the 6-digit code from your authenticator app.");
      form.elements.otp.focus();
      return undefined;
    }
    if (status !== 200 || !data.token) {
      form.elements.otp.value = "";
      return say(error, loginError(status, data, headers, withCode));
    }
    form.elements.password.value = "";
    form.elements.otp.value = "";
    otpRow.hidden = true;
    if (role && data.role && data.role !== role) {
      postJson("/api/v1/logout", {}, data.token).catch(() => {});
      return wrongPage(data.role, error);
    }
    sessionStorage.setItem(key, data.token);
    return attempt(data.token);
  });

  tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = tokenForm.elements.token.value.trim();
    if (!token) return say(error, "Paste the token you were given.");
    sessionStorage.setItem(key, token);
    return attempt(token);
  });

  $("#signout").addEventListener("click", async () => {
    const token = sessionStorage.getItem(key);
    sessionStorage.removeItem(key);
    if (token) await postJson("/api/v1/logout", {}, token).catch(() => {});
    location.reload();
  });

  const kept = sessionStorage.getItem(NOTICE_KEY);
  sessionStorage.removeItem(NOTICE_KEY);
  const token = pageToken(key);
  if (token) attempt(token);
  else {
    show("signin");
    if (kept) say(error, kept);
    form.elements.staff_id.focus();
  }
}
