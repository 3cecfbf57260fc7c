// The Socket.IO connection every page uses: connect with a token, acks as promises, and
// reconnect by itself after any disconnect the user did not ask for (a server restart, a lost
// network, a node gone behind the load balancer), with backoff and jitter so that thousands of
// pages do not come back in the same second. A session that is over (`session.expired`, or a
// reconnect refused for its token) is the one exception: the page is told, and stays offline.

/** A refusal in an ack: `code` is the PROTOCOL.md error code. */
export class AckError extends Error {
  constructor(event, code, message) {
    super(message || code);
    this.event = event;
    this.code = code;
  }
}

/** A connected Socket.IO client (`globalThis.io` from vendor/socket.io.min.js). */
export class Client {
  constructor(socket) {
    this.socket = socket;
  }

  on(event, handler) {
    this.socket.on(event, handler);
  }

  /** Send `event` and return the ack's fields, or throw an AckError. */
  async request(event, payload = {}, timeoutMs = 15000) {
    let ack;
    try {
      ack = await this.socket.timeout(timeoutMs).emitWithAck(event, payload);
    } catch {
      throw new AckError(event, "timeout", "The server did not answer. Check your connection.");
    }
    if (!ack || !ack.ok) {
      const error = (ack && ack.error) || {};
      throw new AckError(event, error.code || "error", error.message || "Request refused");
    }
    const { ok: _ok, ...fields } = ack;
    return fields;
  }

  /** `session.info`'s STUN/TURN servers (TURN credentials last 24 h: ask for each call). */
  async iceServers() {
    const { ice_servers: servers } = await this.request("session.info");
    return Array.isArray(servers) ? servers : [];
  }

  close() {
    this.socket.close();
  }
}

/**
 * socket.io-client's own reconnection: the n-th delay is 1 s × 2^n, at most 15 s, each ± 50 %
 * at random. It retries forever.
 */
export const RECONNECT = Object.freeze({
  reconnectionDelay: 1000,
  reconnectionDelayMax: 15000,
  randomizationFactor: 0.5,
});

/** The server's refusal of a token that no retry can change. */
const SESSION_OVER = /expired|revoked|invalid token|malformed token|missing token|^unknown /i;
export const SESSION_ENDED = "Your session has ended: sign in again with a new link.";

/** `RECONNECT`'s delay for attempt `n` (0 first), in ms: for the retries made here. */
function backoffMs(n) {
  const { reconnectionDelay: base, reconnectionDelayMax: max, randomizationFactor: f } =
    RECONNECT;
  const nominal = Math.min(max, base * 2 ** Math.min(n, 16));
  return nominal * (1 - f + 2 * f * Math.random());
}

/**
 * Connect with `auth = {token}` (websocket only, so any node of a cluster can take it).
 * Resolves once connected; rejects with the server's reason if the token is refused.
 *
 * `onLine(online, message, details)` hears every change later: `onLine(false)` on a disconnect
 * (the page says "offline — reconnecting…"), `onLine(true)` on each reconnect (the page re-syncs:
 * session info, balance, a call still ringing is sent again by the server), and
 * `onLine(false, message, {expired: true})` once the session is over (expired or revoked): go
 * to sign-in; there is no reconnect after that.
 */
export function connect(token, onLine = () => {}) {
  const socket = globalThis.io({
    auth: { token },
    transports: ["websocket"],
    reconnection: true,
    reconnectionAttempts: Infinity,
    ...RECONNECT,
  });
  return new Promise((resolve, reject) => {
    let connected = false; // the first connection was made (the promise resolved)
    let over = false; // the session ended: never again
    let retry = null; // a reconnect scheduled here (socket.io-client does not retry those)
    let attempts = 0;
    let told = null; // what onLine(false) last said (null: online, or nothing said yet)

    // Offline, once per change (before the first connection too: "offline — reconnecting…").
    const offline = (message) => {
      if (told === (message || "")) return;
      told = message || "";
      onLine(false, message);
    };

    const end = (message) => {
      if (over) return;
      over = true;
      clearTimeout(retry);
      socket.close();
      if (connected) onLine(false, message, { expired: true });
      else reject(new Error(message));
    };
    // Reconnect after `ms`: for a disconnect the server made, or a refusal that may pass.
    const later = (ms) => {
      clearTimeout(retry);
      retry = setTimeout(() => {
        retry = null;
        if (!over && !socket.connected) socket.connect();
      }, ms);
    };
    // Try now (the network came back): the backoff could otherwise still wait up to 15 s.
    const now = () => {
      if (over || socket.connected) return;
      clearTimeout(retry);
      socket.disconnect(); // ends socket.io-client's pending backoff ...
      retry = setTimeout(() => { // ... and a little jitter keeps the pages apart
        retry = null;
        if (!over && !socket.connected) socket.connect();
      }, Math.random() * 1000);
    };

    socket.on("connect", () => {
      clearTimeout(retry);
      attempts = 0;
      told = null;
      if (!connected) {
        connected = true;
        resolve(new Client(socket));
      } else {
        onLine(true);
      }
    });
    socket.on("disconnect", (reason) => {
      if (over) return;
      offline();
      // A disconnect the server made (a node shutting down, a load balancer draining it):
      // socket.io-client leaves that one to the page. The page's own close() is the only
      // disconnect that stays ("io client disconnect").
      if (reason === "io server disconnect") later(backoffMs(attempts++));
    });
    // The token expired or was revoked: the server closes this connection; do not retry.
    socket.on("session.expired", () => end(SESSION_ENDED));
    socket.on("connect_error", (error) => {
      if (over) return;
      const message = (error && error.message) || "cannot reach the server";
      if (socket.active) {
        // Unreachable (the server is restarting, the network is down): socket.io-client
        // retries by itself with RECONNECT's backoff.
        offline();
        return;
      }
      // Refused by the server: for good if the token is over; else (too many connections,
      // a node not ready) after a backoff.
      if (SESSION_OVER.test(message)) {
        end(connected ? SESSION_ENDED : message);
      } else {
        offline(message);
        later(backoffMs(attempts++));
      }
    });
    globalThis.addEventListener?.("online", now);
  });
}
