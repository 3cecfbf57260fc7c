// The family app's way in (PROTOCOL.md v1.2 "Accounts and sign-in"): sign in with e-mail and
// password, create an account, forgot password; the e-mailed links (/family?confirm=<code>,
// /family?reset=<code>); and, for operators and the demo, a token (?token= or pasted).
//
// Where the token is kept:
// - after an e-mail + password sign-in, in localStorage (with its expiry): a family stays
//   signed in on its own phone, and a tap on a call notification, which opens a new window
//   (or the installed app), finds the session there; sessionStorage is one tab's only, and
//   that window would ask for the password while the call rings out. "Sign out" revokes the
//   token on the server and forgets it; an expired one is dropped unused.
// - a `?token=` link or a pasted token, in sessionStorage (this tab only, as on the other
//   pages): an operator's or a test's token should not outlive its tab.

import { $, pageToken, plainSignInError, publicApi, say, show } from "./common.js";

const KEY = "visitation.family.token"; // sessionStorage: a link's token; localStorage: a session
const MESSAGE_KEY = "visitation.family.signin-message"; // one-shot, across a reload
const SCREENS = ["signin", "signup", "signup-sent", "confirm", "forgot", "reset", "token-signin"];
const ENDED = "Your session has ended. Please sign in again.";
const LINK_USED = "This link has expired or was used.";

let onToken = async () => {};
let resetCode = null;

/**
 * Show the sign-in screens and sign in: with the `?token=` link, the token kept from an
 * earlier sign-in, or what the person types. `signIn(token)` loads the account (it throws
 * when the token is refused; the error is shown on the sign-in screen).
 */
export function startAuth(signIn) {
  onToken = signIn;
  wireScreens();
  const message = sessionStorage.getItem(MESSAGE_KEY);
  sessionStorage.removeItem(MESSAGE_KEY);
  const url = new URL(location.href);
  const confirm = url.searchParams.get("confirm");
  const reset = url.searchParams.get("reset");
  if (confirm || reset) {
    // One-time codes: never left in the address bar or the history for a reload to reuse.
    url.searchParams.delete("confirm");
    url.searchParams.delete("reset");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  if (confirm) return confirmEmail(confirm);
  if (reset) {
    resetCode = reset;
    return screen("reset");
  }
  const linked = pageToken(KEY); // ?token= (dropped from the address bar), or this tab's
  if (linked) return attempt(linked, { link: true });
  const kept = keptSession();
  if (kept.token) return attempt(kept.token, { link: false });
  screen("signin");
  const text = message || (kept.expired ? ENDED : "");
  if (text) say($("#signin .error"), text);
}

/** Sign out: revoke the token on the server (best effort), forget it, back to sign-in. */
export async function signOut(token) {
  try {
    await fetch("/api/v1/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  } catch {
    // offline: the token is forgotten here all the same, and it expires by itself
  }
  forget();
  leave("");
}

/** The session was revoked or expired (`session.expired`): back to sign-in, saying so. */
export function sessionEnded() {
  forget();
  leave(ENDED);
}

// ---------------------------------------------------------------- tokens

/** `{token}` of the session kept on this device, or `{expired}` (then forgotten). */
function keptSession() {
  try {
    const { token, expires_at: expiresAt } = JSON.parse(localStorage.getItem(KEY) || "null") || {};
    if (token && (!expiresAt || expiresAt * 1000 > Date.now() + 5000)) return { token };
  } catch {
    // unreadable: forget it below
  }
  const expired = Boolean(localStorage.getItem(KEY));
  localStorage.removeItem(KEY);
  return { expired };
}

function forget() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

/** Reload the page on the sign-in screen (nothing of the account stays in memory). */
function leave(message) {
  if (message) sessionStorage.setItem(MESSAGE_KEY, message);
  location.replace("/family");
}

/** The server refused the token itself (not a network error, nor a page being left). */
const refusedToken = (exc) =>
  exc.status === 401 || exc.status === 403 || /token|expired|revoked|unknown/i.test(exc.message);

async function attempt(token, { link }) {
  say($("#signin .error"), "");
  try {
    await onToken(token);
  } catch (exc) {
    if (refusedToken(exc)) forget(); // else kept: a reload (or the next try) may work
    screen("signin");
    const why = link ? plainSignInError(exc.message) : ENDED;
    say($("#signin .error"), link ? `Could not sign in: ${why}` : why);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- screens

/** Show screen `id` with its errors cleared; `focus`: its first field (after a tap only, so
 * that a phone does not open its keyboard over a page just opened). */
function screen(id, { focus = false } = {}) {
  show(id);
  for (const error of document.querySelectorAll(`#${id} .error`)) say(error, "");
  if (focus) $(`#${id} input:not([type=hidden]), #${id} textarea`)?.focus({ preventScroll: true });
}

/** Busy while `work` runs: the form's submit button is disabled (no double submits). */
async function busy(form, work) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}

function wireScreens() {
  document.addEventListener("click", (event) => {
    const link = event.target.closest("[data-auth]");
    if (!link || !SCREENS.includes(link.dataset.auth)) return;
    // A typed e-mail goes along to the next form.
    const email = document.querySelector(`#${document.body.dataset.screen} input[type=email]`);
    screen(link.dataset.auth, { focus: true });
    for (const field of document.querySelectorAll(`#${link.dataset.auth} input[type=email]`)) {
      if (!field.value && email?.value) field.value = email.value;
    }
    say($("#signin-notice"), "");
  });
  $("#signin-form").addEventListener("submit", onSignIn);
  $("#signup-form").addEventListener("submit", onSignUp);
  $("#forgot-form").addEventListener("submit", onForgot);
  $("#reset-form").addEventListener("submit", onReset);
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = event.target.elements.token.value.trim();
    if (!token) return say($("#token-error"), "Paste the token you were given.");
    sessionStorage.setItem(KEY, token);
    busy(event.target, () => attempt(token, { link: true }));
  });
}

async function onSignIn(event) {
  event.preventDefault();
  const form = event.target;
  const error = $(".error", form);
  const email = form.elements.email.value.trim();
  const password = form.elements.password.value;
  say(error, "");
  say($("#signin-notice"), "");
  if (!email || !password) return say(error, "Enter your e-mail and your password.");
  let session;
  try {
    session = await busy(form, () => publicApi("POST", "/api/v1/login", { email, password }));
  } catch (exc) {
    return say(error, signInRefusal(exc));
  }
  if (session.role !== "family") {
    return say(error, "This is not a family account. Staff sign in on their own page.");
  }
  sessionStorage.removeItem(KEY); // a link's token would win over this session at a reload
  localStorage.setItem(KEY, JSON.stringify({ token: session.token, expires_at: session.expires_at }));
  form.elements.password.value = "";
  await attempt(session.token, { link: false });
}

function signInRefusal(exc) {
  if (exc.code === "invalid_credentials") return "Wrong e-mail or password.";
  if (exc.status === 429) return `Too many tries. ${retryLater(exc)}`;
  return `Could not sign in: ${exc.message}`;
}

function retryLater(exc) {
  const minutes = exc.retryAfter ? Math.ceil(exc.retryAfter / 60) : 0;
  if (!minutes) return "Try again later.";
  return `Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
}

/** What is wrong with a new password before the server is asked (it checks the rest). */
function passwordProblem(password, email) {
  if (password.length < 10) return "The password needs at least 10 characters.";
  if (email && password.trim().toLowerCase() === email.trim().toLowerCase()) {
    return "The password cannot be your e-mail address.";
  }
  return null;
}

async function onSignUp(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("#signup-error");
  const fields = form.elements;
  const body = {
    name: fields.name.value.trim(),
    email: fields.email.value.trim(),
    password: fields.password.value,
  };
  const phone = fields.phone.value.trim();
  if (phone) body.phone = phone;
  say(error, "");
  if (!body.name) return say(error, "Enter your name.");
  if (!body.email || !fields.email.checkValidity()) return say(error, "Enter a valid e-mail address.");
  const problem = passwordProblem(body.password, body.email);
  if (problem) return say(error, problem);
  try {
    await busy(form, () => publicApi("POST", "/api/v1/signup", body));
  } catch (exc) {
    // 422: the server names the rule (e.g. a common password); show its words.
    return say(error, exc.status === 429 ? `Too many tries. ${retryLater(exc)}` : exc.message);
  }
  form.reset();
  $("#signup-sent-to").textContent = body.email;
  screen("signup-sent");
}

async function confirmEmail(code) {
  screen("confirm");
  const status = $("#confirm-status");
  status.textContent = "Confirming your e-mail…";
  try {
    await publicApi("POST", "/api/v1/signup/confirm", { code });
  } catch (exc) {
    status.textContent = exc.status === 410 || exc.code === "code_expired"
      ? `${LINK_USED} If you already confirmed your e-mail, sign in.`
      : `Could not confirm your e-mail: ${exc.message}`;
    return;
  }
  screen("signin");
  say($("#signin-notice"), "E-mail confirmed — sign in.");
}

async function onForgot(event) {
  event.preventDefault();
  const form = event.target;
  const email = form.elements.email.value.trim();
  say($("#forgot-error"), "");
  say($("#forgot-notice"), "");
  if (!email || !form.elements.email.checkValidity()) {
    return say($("#forgot-error"), "Enter the e-mail address of your account.");
  }
  try {
    await busy(form, () => publicApi("POST", "/api/v1/password-reset", { email }));
  } catch (exc) {
    const text = exc.status === 429 ? `Too many tries. ${retryLater(exc)}` : exc.message;
    return say($("#forgot-error"), `Could not send the link: ${text}`);
  }
  say($("#forgot-notice"),
    `If an account exists for ${email}, we sent a link to choose a new password. It works for one hour.`);
}

async function onReset(event) {
  event.preventDefault();
  const form = event.target;
  const error = $("#reset-error");
  const password = form.elements.password.value;
  say(error, "");
  if (!resetCode) return say(error, `${LINK_USED} Ask for a new one.`);
  const problem = passwordProblem(password, "");
  if (problem) return say(error, problem);
  try {
    await busy(form, () => publicApi("POST", "/api/v1/password-reset/confirm", { code: resetCode, password }));
  } catch (exc) {
    if (exc.status === 410 || exc.code === "code_expired") {
      resetCode = null;
      return say(error, `${LINK_USED} Ask for a new one.`);
    }
    return say(error, exc.message); // 422: the rule the password breaks
  }
  resetCode = null;
  form.reset();
  screen("signin");
  say($("#signin-notice"), "Password changed — sign in with your new password.");
}
