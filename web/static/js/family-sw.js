// The family app's service worker (served as /family-sw.js, scope /family): Web Push (issue 25).
//
// Every push is a JSON message (PROTOCOL v1.2 "Reaching families: Web Push"). A ringing call
// (`call.incoming`) is a notification that stays until acted on, with Accept and Decline and a
// vibration; its tag is the call id, so what comes next for that call replaces it: a missed call
// ("Missed call from …") when the ring ends unanswered or the resident hangs up, and nothing
// (or a quiet "answered" line) when the family answered or declined on some device. A private
// preview (`"private": true`, the family's setting) names nobody. Tapping a call's notification
// focuses an open /family page and tells it (`{type: "notification-click", call_id, action}`;
// push.js passes it to the page), or opens /family?call=<id> (&answer=1 for Accept).

const ICON = "/static/icons/family-192.png";
const BADGE = "/static/icons/family-badge-96.png";
const RING_VIBRATION = [400, 200, 400, 200, 400, 200, 800];
const PAGE = "/family";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("push", (event) => {
  event.waitUntil(onPush(read(event)));
});

self.addEventListener("notificationclick", (event) => {
  const notification = event.notification;
  const action = { accept: "accept", decline: "decline" }[event.action] || "open";
  notification.close();
  event.waitUntil(onClick(notification.data || {}, action));
});

self.addEventListener("pushsubscriptionchange", (event) => {
  // The browser replaced the subscription: an open page posts the new one (it has the token).
  event.waitUntil(tellPages({ type: "subscription-changed" }));
});

function read(event) {
  try {
    const message = event.data ? event.data.json() : null;
    return message && typeof message === "object" ? message : { type: "unknown" };
  } catch {
    return { type: "unknown" };
  }
}

async function onPush(message) {
  await tellPages({ type: "push", message });
  switch (message.type) {
    case "call.incoming":
      return ringing(message);
    case "call.canceled":
      return ringStopped(message);
    case "call.missed":
      return missed(message);
    default:
      return plain(message);
  }
}

// ---------------------------------------------------------------- calls

const caller = (m) => (m.private ? null : m.resident?.name || null);
const facility = (m) => (m.private ? null : m.facility?.name || null);

function ringing(message) {
  if (message.expires_at && Date.now() / 1000 > message.expires_at) return missed(message);
  const name = caller(message);
  const where = facility(message);
  return self.registration.showNotification(name ? `${name} is calling` : "Incoming video call", {
    tag: message.call_id,
    renotify: true,
    requireInteraction: true,
    vibrate: RING_VIBRATION,
    body: where ? `Video call from ${where}. Answer before it stops ringing.` : "Tap to answer.",
    icon: ICON,
    badge: BADGE,
    timestamp: (message.at || Date.now() / 1000) * 1000,
    actions: [
      { action: "accept", title: "Accept" },
      { action: "decline", title: "Decline" },
    ],
    data: { type: message.type, call_id: message.call_id, expires_at: message.expires_at },
  });
}

async function ringStopped(message) {
  if (message.reason === "answered" || message.reason === "declined") {
    for (const shown of await self.registration.getNotifications({ tag: message.call_id })) {
      shown.close();
    }
    if (await pageVisible()) return undefined; // the page shows the call itself
    const title = message.reason === "answered" ? "Call answered" : "Call declined";
    return self.registration.showNotification(title, {
      tag: message.call_id,
      silent: true,
      body: caller(message) ? `The call from ${caller(message)}.` : "",
      icon: ICON,
      badge: BADGE,
      data: { type: message.type, call_id: message.call_id },
    });
  }
  return missed(message); // the resident hung up, or nobody answered in time
}

function missed(message) {
  const name = caller(message);
  const where = facility(message);
  return self.registration.showNotification(name ? `Missed call from ${name}` : "Missed video call", {
    tag: message.call_id,
    renotify: false,
    body: where ? `${where} · ${timeOf(message.at)}` : timeOf(message.at),
    icon: ICON,
    badge: BADGE,
    timestamp: (message.at || Date.now() / 1000) * 1000,
    data: { type: "call.missed", call_id: message.call_id },
  });
}

// ---------------------------------------------------------------- the other types

function plain(message) {
  const [title, body] = describe(message);
  return self.registration.showNotification(title, {
    tag: `${message.type}:${message.call_id || message.visit_id || ""}`,
    body,
    icon: ICON,
    badge: BADGE,
    timestamp: (message.at || Date.now() / 1000) * 1000,
    data: { type: message.type, call_id: message.call_id, visit_id: message.visit_id },
  });
}

function describe(m) {
  const who = caller(m);
  const where = facility(m);
  switch (m.type) {
    case "call.ended":
      return [
        "Call ended",
        m.private ? "" : `${minutes(m.duration_s)} · charged ${dollars(m.charged_cents)}`,
      ];
    case "account.low_balance":
      return [
        "Low balance",
        m.private
          ? "Add money to keep taking calls."
          : `Your balance is ${dollars(m.balance_cents)}. Add money to keep taking calls.`,
      ];
    case "contact.updated":
      if (m.private) return ["Contact request decided", "Open the app to see it."];
      return [
        m.status === "approved" ? "Contact approved" : "Contact request declined",
        [who, where].filter(Boolean).join(" · "),
      ];
    case "visit.reminder":
      return [
        "Visit reminder",
        m.private ? `A visit at ${timeOf(m.start)}` : `${who || "Your visit"} at ${m.start_local || timeOf(m.start)}`,
      ];
    default:
      return ["Video visits", ""];
  }
}

const dollars = (cents) => `$${(Math.max(0, Number(cents) || 0) / 100).toFixed(2)}`;
const minutes = (seconds) => {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
};
const timeOf = (unix) =>
  unix ? new Date(unix * 1000).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" }) : "";

// ---------------------------------------------------------------- clicks and pages

async function familyPages() {
  const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  return windows.filter((client) => new URL(client.url).pathname === PAGE);
}

async function pageVisible() {
  return (await familyPages()).some((client) => client.visibilityState === "visible");
}

async function tellPages(data) {
  for (const client of await familyPages()) client.postMessage(data);
}

async function onClick(data, action) {
  const callId = data.type === "call.incoming" ? data.call_id : null;
  const [page] = await familyPages();
  if (!callId) {
    if (page) return page.focus();
    return self.clients.openWindow(PAGE);
  }
  if (page) {
    page.postMessage({ type: "notification-click", call_id: callId, action });
    try {
      await page.focus();
    } catch {
      // not allowed to focus (no user activation): the page still got the message
    }
    return undefined;
  }
  if (action === "decline") return undefined; // no page, no socket: just stop ringing here
  const query = `call=${encodeURIComponent(callId)}${action === "accept" ? "&answer=1" : ""}`;
  return self.clients.openWindow(`${PAGE}?${query}`);
}
