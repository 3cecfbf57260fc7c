// The investigator page's service worker (served as /media-sw.js, scope /investigator).
//
// A <video> cannot send an Authorization header, and the recordings API takes only bearer
// tokens. This worker sees the page's <video> requests for a recording's media, asks the page
// for its token, and forwards them with it, keeping the browser's Range header: the browser
// streams and seeks the file itself instead of downloading it whole. Nothing else is touched,
// and the worker never stores the token.

const MEDIA = /^\/api\/v1\/recordings\/[^/]+\/media$/;
const ASK_TIMEOUT_MS = 5000;

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
self.addEventListener("message", (event) => {
  if (event.data === "claim") event.waitUntil(self.clients.claim()); // e.g. after a hard reload
});

self.addEventListener("fetch", (event) => {
  const { request } = event;
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== location.origin || !MEDIA.test(url.pathname)) return;
  if (request.headers.has("Authorization")) return; // the page's own authenticated fetches
  event.respondWith(withToken(request, event.clientId));
});

async function withToken(request, clientId) {
  const token = await askToken(clientId);
  const headers = new Headers();
  const range = request.headers.get("Range");
  if (range) headers.set("Range", range);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  // A media request is "no-cors", which would drop the Authorization header: send a new one.
  return fetch(request.url, {
    headers,
    mode: "same-origin",
    credentials: "omit",
    cache: "no-store",
    signal: request.signal,
  });
}

/** The token of the page that made the request (it answers on a MessageChannel), or null. */
async function askToken(clientId) {
  const client = clientId && (await self.clients.get(clientId));
  if (!client) return null;
  const channel = new MessageChannel();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ASK_TIMEOUT_MS);
    channel.port1.onmessage = (event) => {
      clearTimeout(timer);
      resolve(typeof event.data === "string" ? event.data : null);
    };
    client.postMessage("token?", [channel.port2]);
  });
}
