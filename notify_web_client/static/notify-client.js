// The reference browser client of docs/contract.md, section 7. No build step, no dependency.
//
// One socket at a time (7.7); the attempt count resets only on `connected` (7.1); no reconnect
// after 4401/4403/4404 (7.2); 4429 and every other close back off by the policy with full jitter
// (7.3, 7.4, 7.8); `last_id` on reconnect and the archive after `resync`, each id shown once
// (7.5); a stream silent for 2.5 heartbeat intervals is replaced (7.6); a new token swaps the
// socket, never two at once (7.9).

import {
  AFTER_PARAM,
  ARCHIVE_PATH,
  FINAL_CODES,
  LAST_ID_PARAM,
  POLICY,
  TOKEN_PARAM,
  WATCHDOG_BEATS,
  WS_NOTIFICATIONS_PATH,
} from "./contract.js";

const WATCHDOG_CLOSE = 4000; // a code of the private range: the client's own "no heartbeat"

export const State = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open",
  BACKOFF: "backoff",
  STOPPED: "stopped", // a final close code: reconnecting cannot help
  GAVE_UP: "gave-up", // the policy's attempts are used up
  SIGNED_OUT: "signed-out",
});

// The delay before attempt n: uniform in [0, min(base * 2^n, cap)] ms.
export function backoffDelay(attempt, random = Math.random, policy = POLICY) {
  return random() * Math.min(policy.baseMs * 2 ** attempt, policy.capMs);
}

export class NotificationClient extends EventTarget {
  constructor({ base, token, heartbeatIntervalMs = 30000, random = Math.random }) {
    super();
    this.base = base.replace(/\/$/, "");
    this.token = token;
    this.heartbeatIntervalMs = heartbeatIntervalMs;
    this.random = random;
    this.ws = null;
    this.attempts = 0;
    this.lastId = null;
    this.seen = new Set();
    this.state = State.SIGNED_OUT;
    this.closeCode = null;
    this.retryTimer = null;
    this.watchdogTimer = null;
  }

  start() {
    if (this.ws || this.retryTimer) return;
    this.attempts = 0;
    this.connect();
  }

  signOut() {
    this.setState(State.SIGNED_OUT);
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.drop(1000, "signed out");
  }

  // A new token (a refresh) while connected: the old socket is let go here, its late events
  // ignored, and one new socket opens at once with the new token and last_id. No reconnect
  // attempt: no backoff, the count untouched (7.9).
  setToken(token) {
    this.token = token;
    if (this.state === State.SIGNED_OUT) return;
    clearTimeout(this.retryTimer);
    this.drop(1000, "token refreshed");
    this.connect();
  }

  connect() {
    this.retryTimer = null;
    const url = new URL(this.base.replace(/^http/, "ws") + WS_NOTIFICATIONS_PATH);
    url.searchParams.set(TOKEN_PARAM, this.token);
    if (this.lastId !== null) url.searchParams.set(LAST_ID_PARAM, this.lastId);
    const ws = new WebSocket(url);
    this.ws = ws;
    this.setState(State.CONNECTING);
    this.armWatchdog();
    // Events of a socket that is no longer ours are ignored (7.7).
    ws.onmessage = (event) => {
      if (ws === this.ws) this.received(event.data);
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.closed(event.code);
    };
  }

  // Let go of the current socket: its late events can no longer touch the client.
  drop(code, reason) {
    const ws = this.ws;
    this.ws = null;
    clearTimeout(this.watchdogTimer);
    if (ws) {
      ws.onmessage = ws.onclose = null;
      ws.close(code, reason);
    }
  }

  armWatchdog() {
    clearTimeout(this.watchdogTimer);
    this.watchdogTimer = setTimeout(() => {
      this.drop(WATCHDOG_CLOSE, "no heartbeat");
      this.closed(null);
    }, WATCHDOG_BEATS * this.heartbeatIntervalMs);
  }

  received(text) {
    this.armWatchdog();
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    const data = frame.data || {};
    if (frame.type === "connected") {
      this.attempts = 0; // only here (7.1)
      this.setState(State.OPEN);
    } else if (frame.type === "notification") {
      this.show(data);
    } else if (frame.type === "resync") {
      this.fetchArchive();
    }
  }

  show(item) {
    if (!item || typeof item.id !== "string" || this.seen.has(item.id)) return;
    this.seen.add(item.id);
    this.lastId = item.id;
    this.dispatchEvent(new CustomEvent("notification", { detail: item }));
  }

  async fetchArchive() {
    const url = new URL(this.base + ARCHIVE_PATH);
    if (this.lastId !== null) url.searchParams.set(AFTER_PARAM, this.lastId);
    try {
      const answer = await fetch(url, { headers: { Authorization: `Bearer ${this.token}` } });
      if (!answer.ok) return;
      const body = await answer.json();
      for (const item of body.items || []) this.show(item);
    } catch (error) {
      this.dispatchEvent(new CustomEvent("error", { detail: String(error) }));
    }
  }

  closed(code) {
    this.ws = null;
    this.closeCode = code;
    clearTimeout(this.watchdogTimer);
    if (this.state === State.SIGNED_OUT) return;
    if (FINAL_CODES.includes(code)) {
      this.setState(State.STOPPED);
      return;
    }
    if (this.attempts >= POLICY.maxAttempts) {
      this.setState(State.GAVE_UP);
      return;
    }
    const delay = backoffDelay(this.attempts, this.random);
    this.attempts += 1;
    this.setState(State.BACKOFF);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, code: this.closeCode } }));
  }
}
