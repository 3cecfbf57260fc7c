// Shared by the pages: sign-in token, the Socket.IO connection with acks, screens, formatting.

export const $ = (selector, root = document) => root.querySelector(selector);

/** Show one `<section class="screen">` and hide the others. */
export function show(id) {
  for (const screen of document.querySelectorAll(".screen")) screen.hidden = screen.id !== id;
  document.body.dataset.screen = id;
}

/** Set an element's text; an empty text hides it. */
export function say(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

/** `el("li", {class: "row"}, "text", child)` — a small DOM builder (text is never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== false && value != null) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c != null));
  return node;
}

// ---------------------------------------------------------------- token

/**
 * The sign-in token: `?token=` (then dropped from the address bar and history), else the one
 * kept for this tab. `key` separates the pages' tokens.
 */
export function pageToken(key) {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl) {
    sessionStorage.setItem(key, fromUrl);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    return fromUrl;
  }
  return sessionStorage.getItem(key);
}

/**
 * Best-effort subject of a token, only to label the page and key local data; the server never
 * trusts this. Tokens are opaque in PROTOCOL.md, so an unreadable one gives "".
 */
export function tokenSubject(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return String(JSON.parse(atob(payload)).sub || "");
  } catch {
    return "";
  }
}

/**
 * The top bar and the sign-in screen every page shares, put at the start of `<main>` from its
 * data attributes: `data-title` (the bar's heading), `data-token-label` and `data-token-hint`
 * (the form's label and placeholder), `data-narrow` (a narrow form, on wide pages).
 */
function pageShell(main) {
  const { title, tokenLabel, tokenHint } = main.dataset;
  main.prepend(
    el("header", { class: "topbar" },
      el("h1", {}, title || "Video visits"),
      el("span", { class: "who", id: "who" }),
      el("button", { class: "link", id: "signout", hidden: true }, "Sign out"),
    ),
    el("section", { class: "screen", id: "signin", hidden: true },
      el("form", { class: "narrow" in main.dataset ? "card stack narrow" : "card stack" },
        el("h2", {}, "Sign in"),
        el("label", { for: "token" }, tokenLabel || "Token"),
        el("textarea", {
          id: "token", name: "token", autocomplete: "off", spellcheck: "false",
          placeholder: tokenHint || "Paste your token",
        }),
        el("button", { class: "big", type: "submit" }, "Sign in"),
        el("p", { class: "error", hidden: true }),
      ),
    ),
  );
}

/**
 * Build the page's top bar and sign-in screen (`pageShell`) and wire them: `onToken(token)`
 * signs in (its errors are shown on the form); "Sign out" forgets this page's token (`key`).
 */
/** What a person reads when a token is refused (the server's words are for developers). */
export function plainSignInError(message) {
  const text = String(message || "");
  if (/expired/i.test(text)) return "This sign-in link has expired. Ask for a new one.";
  if (/revoked/i.test(text)) return "This sign-in link was cancelled. Ask for a new one.";
  if (/^(invalid|malformed|missing) token|unauthorized|unknown (subject|role)/i.test(text)) {
    return "This sign-in link is not valid. Check that you copied all of it, or ask for a new one.";
  }
  return text;
}

export function signInForm(key, onToken) {
  if (!$("#signin")) pageShell($("main"));
  const form = $("#signin form");
  const error = $("#signin .error");
  const attempt = async (token) => {
    say(error, "");
    try {
      await onToken(token);
    } catch (exc) {
      sessionStorage.removeItem(key);
      show("signin");
      say(error, `Could not sign in: ${plainSignInError(exc.message)}`);
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = form.elements.token.value.trim();
    if (!token) return say(error, "Paste the token you were given.");
    sessionStorage.setItem(key, token);
    attempt(token);
  });
  $("#signout").addEventListener("click", () => {
    sessionStorage.removeItem(key);
    location.reload();
  });
  const token = pageToken(key);
  if (token) attempt(token);
  else show("signin");
}

// ---------------------------------------------------------------- Socket.IO

// The connection (reconnects, acks) lives in connection.js; re-exported for the pages.
export { AckError, Client, connect } from "./connection.js";

/** A JSON request to the HTTP API; throws an Error carrying the API's message and code. */
export async function api(token, method, path, body, headers = {}) {
  return send(path, {
    method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** A JSON request that needs no token (sign-up, login, password reset); errors as `api`. */
export function publicApi(method, path, body) {
  return send(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** POST a multipart form (`FormData`, e.g. files) with the token; errors as `api`. */
export function upload(token, path, form) {
  // No Content-Type: the browser sets multipart/form-data with its boundary.
  return send(path, { method: "POST", headers: { Authorization: `Bearer ${token}` }, body: form });
}

async function send(path, init) {
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((data.error && data.error.message) || `HTTP ${response.status}`);
    error.code = data.error && data.error.code;
    error.status = response.status;
    error.retryAfter = Number(response.headers.get("Retry-After")) || null;
    throw error;
  }
  return data;
}

/** A random id (works outside secure contexts too, unlike crypto.randomUUID). */
export function randomId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
}

// ---------------------------------------------------------------- formatting

export const money = (cents) =>
  `${cents < 0 ? "−" : ""}$${(Math.abs(cents) / 100).toFixed(2)}`;

export const rate = (cents) => `${cents}¢/min`;

/** 75 -> "1:15"; 3725 -> "1:02:05". */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const [h, m, r] = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return `${h ? `${h}:` : ""}${mm}:${String(r).padStart(2, "0")}`;
}

/** 1800 -> "30 min"; 90 -> "1 min 30 s". */
export function duration(seconds) {
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds % 60);
  if (!m) return `${s} s`;
  return s ? `${m} min ${s} s` : `${m} min`;
}

export const dateTime = (unixSeconds) =>
  unixSeconds ? new Date(unixSeconds * 1000).toLocaleString() : "—";

/** Why a call ended, for the parties (`who` is "tablet" or "family", the reader's side). */
export function endReason(ended, who) {
  switch (ended.reason) {
    case "hangup":
      return ended.by === who ? "You hung up." : "The other side hung up.";
    case "time_limit":
      return "The time limit was reached.";
    case "terminated":
      return "The call was ended by the facility.";
    case "connection_lost":
      return "The connection was lost.";
    case "server_shutdown":
      return "The video visit service was stopped, which ended the call.";
    default:
      return "The call ended.";
  }
}
