// The Socket.IO connection every page uses: connect with a token, acks as promises.

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
 * Connect with `auth = {token}` (websocket only, so any node of a cluster can take it).
 * Resolves once connected; rejects with the server's reason if the token is refused.
 * `onLine(online)` hears later disconnects and reconnects.
 */
export function connect(token, onLine = () => {}) {
  const socket = globalThis.io({ auth: { token }, transports: ["websocket"] });
  return new Promise((resolve, reject) => {
    let connected = false;
    socket.on("connect", () => {
      if (!connected) resolve(new Client(socket));
      else onLine(true);
      connected = true;
    });
    socket.on("disconnect", () => onLine(false));
    // The token expired or was revoked: the server closes this connection; do not retry.
    socket.on("session.expired", () => {
      socket.close();
      onLine(false, "Your session has ended: sign in again with a new link.");
    });
    socket.on("connect_error", (error) => {
      if (connected && socket.active) return; // a transient drop: the client retries by itself
      socket.close();
      if (!connected) reject(new Error(error.message || "cannot reach the server"));
      else onLine(false, error.message);
    });
  });
}

