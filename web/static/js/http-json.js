// Small HTTP helpers for the sign-in screens (no token needed, headers readable).

/** POST a JSON body (optionally with a bearer token): `{status, data, headers}`. */
export async function postJson(path, body, token = null) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method: "POST", headers, body: body === undefined ? "{}" : JSON.stringify(body), keepalive: true,
  });
  const data = await response.json().catch(() => ({}));
  return { status: response.status, data, headers: response.headers };
}

/** "Try again in 15 minutes." from a 429's Retry-After (seconds); the default is the lockout. */
export function retryAfterText(headers) {
  const seconds = Number(headers?.get?.("Retry-After"));
  if (!Number.isFinite(seconds) || seconds <= 0) return "Try again in 15 minutes.";
  if (seconds < 60) return `Try again in ${Math.ceil(seconds)} seconds.`;
  const minutes = Math.ceil(seconds / 60);
  return `Try again in ${minutes} minute${minutes === 1 ? "" : "s"}.`;
}

/** The role in a token's payload (a JWT), or "" — only to pick a screen; the server decides. */
export function tokenRole(token) {
  try {
    const payload = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return String(JSON.parse(atob(payload)).role || "");
  } catch {
    return "";
  }
}

/** A token's expiry (Unix seconds) from its payload, or 0. */
export function tokenExpiry(token) {
  try {
    const payload = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return Number(JSON.parse(atob(payload)).exp) || 0;
  } catch {
    return 0;
  }
}
