// The WebSocket session: an explicit state (connecting, connected, reconnecting,
// closed), capped backoff with jitter, and an immediate retry when the browser says
// it is online again.

import { Backoff } from "./backoff.js";
import { afterClose, decodeFrame } from "./protocol.js";

export class Connection {
  /**
   * @param {object} hooks
   *   check(): resolves true if still signed in (called before each attempt);
   *   onOpen(): the socket is up (send joins, then the outbox);
   *   onEvent(event): one ServerEvent;
   *   onState(state, detail): "connecting" | "connected" | "reconnecting" | "closed";
   *   onSignedOut(): the server says sign in again.
   */
  constructor(hooks, { url = wsUrl(), backoff = new Backoff() } = {}) {
    this.hooks = hooks;
    this.url = url;
    this.backoff = backoff;
    this.state = "closed";
    this.socket = null;
    this.timer = null;
    this.wanted = false;
    this.onOnline = () => {
      if (this.wanted && this.state === "reconnecting") this.retryNow();
    };
  }

  start() {
    this.wanted = true;
    window.addEventListener("online", this.onOnline);
    this.attempt();
  }

  stop() {
    this.wanted = false;
    window.removeEventListener("online", this.onOnline);
    clearTimeout(this.timer);
    if (this.socket) this.socket.close(1000);
    this.socket = null;
    this.setState("closed");
  }

  /** Sends a ClientEvent if the socket is open; returns whether it went out. */
  send(event) {
    if (this.state !== "connected") return false;
    this.socket.send(JSON.stringify(event));
    return true;
  }

  retryNow() {
    clearTimeout(this.timer);
    this.attempt();
  }

  setState(state, detail = "") {
    this.state = state;
    this.hooks.onState(state, detail);
  }

  async attempt() {
    if (!this.wanted) return;
    this.setState(this.backoff.attempt ? "reconnecting" : "connecting");
    let signedIn;
    try {
      signedIn = await this.hooks.check();
    } catch {
      this.scheduleRetry("the server cannot be reached");
      return;
    }
    if (!this.wanted) return;
    if (!signedIn) {
      this.wanted = false;
      this.hooks.onSignedOut();
      return;
    }
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      this.backoff.reset();
      this.setState("connected");
      this.hooks.onOpen();
    };
    socket.onmessage = (msg) => {
      if (socket !== this.socket) return;
      for (const event of decodeFrame(msg.data)) this.hooks.onEvent(event);
    };
    socket.onclose = (close) => {
      if (socket !== this.socket) return;
      this.socket = null;
      if (!this.wanted) return;
      if (afterClose(close.code) === "signin") {
        this.wanted = false;
        this.setState("closed");
        this.hooks.onSignedOut(close.reason);
        return;
      }
      this.scheduleRetry(close.reason || "connection lost");
    };
  }

  scheduleRetry(why) {
    if (!this.wanted) return;
    const wait = this.backoff.next();
    // The first attempt counts as one: the state says "reconnecting" from now on.
    this.setState("reconnecting", why);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.attempt(), wait);
  }
}

function wsUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}
