// A shared facility tablet (PROTOCOL v1.2): enrolled with a `device` token (`visitation device
// FACILITY`, opened once as `/tablet?token=…` and kept in this browser's localStorage), it
// signs residents in with their id and PIN (`POST /api/v1/tablet/login` → a 30-minute
// `tablet` token), keeps the token fresh while in use (`POST /api/v1/tablet/renew`), and ends
// the resident's session after 30 minutes without a touch or a key, or on "Sign out". The
// page then forgets the resident (tablet.js `forget`); the device token stays.
//
// For tests (and nothing else), `?idle=SECONDS` and `?renew=SECONDS` may only make the idle
// sign-out and the renewal come sooner, never later.

import { $, el, show } from "./common.js";
import { postJson, retryAfterText, tokenRole } from "./http-json.js";
import { PinPad } from "./pin-pad.js";

export const DEVICE_KEY = "visitation.tablet.device";
const IDLE_S = 30 * 60;
const HALF_TYPED_S = 60; // a half-typed id or PIN is cleared after this long untouched
const ACTIVITY = ["pointerdown", "keydown", "touchstart", "wheel"];
const FRESH_FOR_CALL_MS = 2 * 60 * 1000;
const WARN_MS = 60 * 1000; // "Still there?" this long before the idle sign-out

/** `?name=` as a positive number of seconds, at most `max` (else `max`). */
function sooner(name, max) {
  const value = Number(new URL(location.href).searchParams.get(name));
  return Number.isFinite(value) && value > 0 ? Math.min(value, max) : max;
}

function payload(token) {
  try {
    return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return {};
  }
}

/**
 * The device token: one in `?token=` (taken out of the address, kept as this tablet's
 * enrolment) or the one kept before; null when this is not a shared tablet. A `?token=` of
 * another role is left for the page's own sign-in (an operator's or the demo's tablet token).
 */
export function deviceToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl && tokenRole(fromUrl) === "device") {
    enrol(fromUrl);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    return fromUrl;
  }
  if (fromUrl) return null;
  return localStorage.getItem(DEVICE_KEY);
}

export const isDeviceToken = (token) => tokenRole(token) === "device";

export function enrol(token) {
  localStorage.setItem(DEVICE_KEY, token);
}

export class SharedTablet {
  /**
   * hooks: `open(token)` shows the resident's tablet (throws if it cannot);
   * `forget()` clears everything the resident saw; `swap(token)` moves the page to a renewed
   * token; `busy()` is true during a call (never idle then).
   */
  constructor(device, hooks) {
    this.device = device;
    this.hooks = hooks;
    this.token = null; // the signed-in resident's tablet token
    this.idleMs = sooner("idle", IDLE_S) * 1000;
    this.renewCapMs = sooner("renew", IDLE_S) * 1000;
    this.lastInput = Date.now();
    this.renewAt = Infinity;
    this.renewing = false;
    this.timer = null;
    this.pad = new PinPad($("#pinpad"), (ask) => this.login(ask));
    for (const type of ACTIVITY) {
      document.addEventListener(type, () => {
        this.lastInput = Date.now();
      }, { capture: true, passive: true });
    }
    this.warning = el("div", { class: "idle-warning", id: "idle-warning", role: "alert", hidden: true },
      "Still there? Touch the screen to stay signed in.");
    document.body.append(this.warning);
    this.signOutButton = el("button", { class: "link", id: "resident-signout", hidden: true,
      onclick: () => this.signOut("") }, "Sign out");
    $("#signout").after(this.signOutButton);
    $("#signout").hidden = true;
  }

  /** Show the keypad (the tablet's screen between residents). */
  start(message = "") {
    this.pad.reset(message);
    $("#who").textContent = "Shared tablet";
    show("keypad");
    this.pad.id.focus({ preventScroll: true });
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), 1000);
  }

  async login(ask) {
    let answer;
    try {
      answer = await postJson("/api/v1/tablet/login", ask, this.device);
    } catch {
      return this.pad.error("The tablet cannot reach the server. Try again in a moment.");
    }
    const { status, data, headers } = answer;
    if (status === 429) {
      this.pad.clearPin();
      return this.pad.error(`Too many tries. ${retryAfterText(headers)}`);
    }
    if (status === 401 && data?.error?.code === "invalid_credentials") {
      this.pad.clearPin();
      return this.pad.error("That resident id and PIN do not match. Try again.");
    }
    if (status !== 200 || !data.token) {
      this.pad.clearPin();
      const why = status === 401 || status === 403
        ? "This tablet is not enrolled any more. Ask staff to set it up again."
        : data?.error?.message || `The server refused the sign-in (HTTP ${status}).`;
      return this.pad.error(why);
    }
    try {
      await this.hooks.open(data.token);
    } catch (exc) {
      this.pad.clearPin();
      return this.pad.error(`Could not open your tablet: ${exc.message}`);
    }
    this.signedIn(data.token);
    this.pad.reset();
    return undefined;
  }

  /**
   * Before a call: move to a fresh token unless the current one is new, so the call's
   * connection lasts the token's whole life (a socket keeps the token it connected with).
   */
  async freshForCall() {
    const fresh = Math.min(FRESH_FOR_CALL_MS, this.renewCapMs);
    if (this.token && Date.now() - this.signedInAt > fresh && !this.renewing) {
      await this.renew();
    }
  }

  signedIn(token) {
    this.token = token;
    this.signedInAt = Date.now();
    this.lastInput = Date.now();
    this.signOutButton.hidden = false;
    // Renew halfway through the token's life (server times: iat and exp of the same clock).
    const { iat, exp } = payload(token);
    const lifeMs = iat && exp ? (exp - iat) * 1000 : 30 * 60 * 1000;
    this.renewAt = Date.now() + Math.min(lifeMs / 2, this.renewCapMs);
  }

  tick() {
    const now = Date.now();
    if (!this.token) {
      if (this.pad.dirty && now - this.lastInput > HALF_TYPED_S * 1000) this.pad.reset();
      return;
    }
    if (this.hooks.busy()) this.lastInput = now; // a call is use, touch or not
    const idle = now - this.lastInput;
    this.warning.hidden = idle < this.idleMs - Math.min(WARN_MS, this.idleMs / 2);
    if (idle >= this.idleMs) {
      this.signOut("You were signed out because the tablet was not used for a while.");
    } else if (now >= this.renewAt && !this.renewing) {
      this.renew();
    }
  }

  async renew() {
    const token = this.token;
    this.renewing = true;
    try {
      const { status, data } = await postJson("/api/v1/tablet/renew", {}, token);
      if (this.token !== token) return; // signed out meanwhile
      if (status === 200 && data.token) {
        this.signedIn(data.token);
        await this.hooks.swap(data.token);
      } else if (status === 401 || status === 403 || status === 404) {
        this.signOut("Your session has ended. Sign in again.");
      } else {
        this.renewAt = Date.now() + 30_000; // try again soon
      }
    } catch {
      this.renewAt = Date.now() + 30_000; // offline: try again soon
    } finally {
      this.renewing = false;
    }
  }

  /** End the resident's session: forget what they saw, revoke the token, back to the keypad. */
  signOut(message) {
    const token = this.token;
    this.token = null;
    this.renewAt = Infinity;
    this.signOutButton.hidden = true;
    this.warning.hidden = true;
    this.hooks.forget();
    if (token) postJson("/api/v1/logout", {}, token).catch(() => {});
    this.start(message);
  }

  get signedInNow() {
    return this.token !== null;
  }
}
