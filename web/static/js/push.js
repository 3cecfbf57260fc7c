// Call alerts on this device, and the family's devices (issue 25), in the family page's
// <div class="card stack" id="devices-card">.
//
//   const push = await startPush({ token, card, onNotificationCall });   // after sign-in
//   push.stop();                                                          // at sign-out
//
// It registers the family service worker (/family-sw.js, scope /family) and explains why alerts
// matter, but asks for notification permission only when "Turn on call alerts" is pressed; then
// it subscribes (pushManager.subscribe with the server's VAPID key) and posts the subscription.
// On iPhone and iPad, Web Push works only in the app added to the Home Screen (iOS 16.4+): in
// Safari it says so instead. The family's devices are listed with a Remove button each. When a
// call notification is tapped while this page is open, the service worker tells it and
// `onNotificationCall(callId, action)` runs, action "accept", "decline" or "open".

import { api, el } from "./common.js";

const SW_URL = "/family-sw.js";
const SCOPE = "/family";
const SUBSCRIPTIONS = "/api/v1/account/push-subscriptions";
const WHY =
  "Get a notification when your loved one calls, even when this app is closed or your phone " +
  "is locked, so you can answer before it stops ringing.";

const isIos = () =>
  /iPad|iPhone|iPod/.test(navigator.userAgent) ||
  (navigator.platform === "MacIntel" && navigator.maxTouchPoints > 1);
const isStandalone = () =>
  window.matchMedia?.("(display-mode: standalone)").matches || navigator.standalone === true;
const supported = () =>
  "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

export async function startPush({ token, card, onNotificationCall = () => {} }) {
  const push = new PushCard(token, card, onNotificationCall);
  await push.start();
  return push;
}

class PushCard {
  constructor(token, card, onNotificationCall) {
    this.token = token;
    this.card = card;
    this.onNotificationCall = onNotificationCall;
    this.registration = null;
    this.devices = [];
    this.busy = false;
    this.error = "";
    this.onMessage = (event) => this.message(event.data || {});
  }

  async start() {
    if (supported()) {
      navigator.serviceWorker.addEventListener("message", this.onMessage);
      try {
        this.registration = await navigator.serviceWorker.register(SW_URL, { scope: SCOPE });
      } catch (exc) {
        this.error = `Call alerts are unavailable here (${exc.message || exc}).`;
      }
    }
    await this.refresh();
  }

  stop() {
    if (supported()) navigator.serviceWorker.removeEventListener("message", this.onMessage);
    this.card.replaceChildren();
  }

  message(data) {
    if (data.type === "notification-click" && data.call_id) {
      this.onNotificationCall(String(data.call_id), data.action || "open");
    } else if (data.type === "subscription-changed") {
      this.resubscribe();
    }
  }

  async local() {
    if (!this.registration) return null;
    try {
      return await this.registration.pushManager.getSubscription();
    } catch {
      return null;
    }
  }

  async refresh() {
    try {
      ({ subscriptions: this.devices } = await api(this.token, "GET", SUBSCRIPTIONS));
    } catch (exc) {
      this.error = exc.message || String(exc);
    }
    this.render(await this.local());
  }

  async turnOn() {
    this.busy = true;
    this.error = "";
    this.render(null);
    try {
      const permission = await Notification.requestPermission();
      if (permission === "granted") await this.subscribe();
    } catch (exc) {
      this.error = `Could not turn on call alerts: ${exc.message || exc}`;
    } finally {
      this.busy = false;
      await this.refresh();
    }
  }

  async subscribe() {
    const registration = this.registration || (await navigator.serviceWorker.ready);
    const { vapid_public_key: key } = await api(this.token, "GET", "/api/v1/push/key");
    const options = { userVisibleOnly: true, applicationServerKey: keyBytes(key) };
    let subscription;
    try {
      subscription = await registration.pushManager.subscribe(options);
    } catch (exc) {
      // Subscribed before with another server key (it was replaced): start again.
      const old = await registration.pushManager.getSubscription();
      if (!old) throw exc;
      await old.unsubscribe();
      subscription = await registration.pushManager.subscribe(options);
    }
    await api(this.token, "POST", SUBSCRIPTIONS, subscription.toJSON());
  }

  async resubscribe() {
    if (Notification.permission !== "granted") return;
    try {
      await this.subscribe();
    } catch (exc) {
      this.error = `Call alerts need to be turned on again: ${exc.message || exc}`;
    }
    await this.refresh();
  }

  async remove(device, isThis) {
    this.error = "";
    try {
      await api(this.token, "DELETE", `${SUBSCRIPTIONS}/${encodeURIComponent(device.id)}`);
      if (isThis) await (await this.local())?.unsubscribe();
    } catch (exc) {
      this.error = `Could not remove the device: ${exc.message || exc}`;
    }
    await this.refresh();
  }

  render(current) {
    const here = current?.endpoint;
    const on = !!here && this.devices.some((d) => d.endpoint === here);
    const parts = [el("h2", {}, "Call alerts")];
    if (!supported()) {
      parts.push(el("p", { class: "muted", id: "push-why" }, WHY));
      parts.push(el("p", { class: "muted", id: "push-note" }, this.unsupportedNote()));
    } else if (on) {
      parts.push(el("p", { class: "notice", id: "push-state" }, "Call alerts are on for this device."));
    } else if (Notification.permission === "denied") {
      parts.push(el("p", { class: "muted", id: "push-why" }, WHY));
      parts.push(
        el("p", { class: "error", id: "push-state" },
          "Notifications are blocked for this site. Allow them in your browser's site settings " +
          "to get call alerts."),
      );
    } else {
      parts.push(el("p", { class: "muted", id: "push-why" }, WHY));
      parts.push(
        el("button", { type: "button", id: "push-enable", disabled: this.busy || !this.registration,
          onclick: () => this.turnOn() }, this.busy ? "Turning on…" : "Turn on call alerts"),
      );
      if (isIos() && !isStandalone()) parts.push(el("p", { class: "muted", id: "push-note" }, this.iosNote()));
    }
    if (this.error) parts.push(el("p", { class: "error", id: "push-error", role: "alert" }, this.error));
    parts.push(el("h3", {}, "This family's devices"));
    if (!this.devices.length) {
      parts.push(el("p", { class: "muted", id: "push-devices-empty" }, "No device gets call alerts yet."));
    } else {
      parts.push(
        el("ul", { class: "list", id: "push-devices" }, ...this.devices.map((d) => this.deviceRow(d, d.endpoint === here))),
      );
    }
    this.card.replaceChildren(...parts);
  }

  deviceRow(device, isThis) {
    const added = new Date(device.created_at * 1000).toLocaleDateString([], { month: "short", day: "numeric", year: "numeric" });
    return el(
      "li",
      { "data-id": device.id },
      el("span", { class: "grow" },
        el("strong", {}, device.device || "A browser"),
        isThis ? el("span", { class: "muted" }, " · this device") : null,
        el("br"),
        el("span", { class: "muted" }, `added ${added}`)),
      el("button", { type: "button", class: "secondary", onclick: () => this.remove(device, isThis) }, "Remove"),
    );
  }

  iosNote() {
    return "On iPhone and iPad, call alerts work after you add this app to your Home Screen: " +
      "tap Share, then “Add to Home Screen”, and open Visits from there.";
  }

  unsupportedNote() {
    if (isIos() && !isStandalone()) return this.iosNote();
    return "This browser cannot show call alerts. Keep this page open to get calls, or use a " +
      "browser that supports notifications (Chrome, Edge, Firefox, Safari 16.4+).";
  }
}
