// Who is typing, and how often to say that we are. Pure: no DOM, no timers of its
// own (the page passes the time), tested with node --test.

/** How often at most the page says "I am typing" in a conversation (ms). */
export const TYPING_EVERY_MS = 3000;
/** How long a notice shows without a new one (ms). */
export const TYPING_SHOWN_MS = 6000;

/** At most one go every `interval` ms, per key. */
export class Throttle {
  constructor(interval) {
    this.interval = interval;
    this.last = new Map();
  }

  /** How long to wait before `key` may go (0: now). */
  wait(key, now) {
    const last = this.last.get(key);
    if (last === undefined) return 0;
    return Math.max(0, last + this.interval - now);
  }

  /** Whether `key` may go now; if so, counts it as gone. */
  take(key, now) {
    if (this.wait(key, now) > 0) return false;
    this.last.set(key, now);
    return true;
  }
}

/** Whether a line being typed is a message (a command like /join is not typing). */
export function isTypingText(text) {
  if (!text.trim()) return false;
  return !text.startsWith("/") || text.startsWith("//") || text.startsWith("/me ");
}

/** The users typing in each conversation and when each notice runs out. */
export class TypingBoard {
  constructor(shownMs = TYPING_SHOWN_MS) {
    this.shownMs = shownMs;
    this.until = new Map(); // key -> Map(user -> expiry time)
  }

  /** `user` is typing in `key` (a `typing` event at `now`). */
  notice(key, user, now) {
    let users = this.until.get(key);
    if (!users) {
      users = new Map();
      this.until.set(key, users);
    }
    users.set(user, now + this.shownMs);
  }

  /** `user` stopped (their message arrived); returns whether they were shown. */
  clear(key, user) {
    const users = this.until.get(key);
    return Boolean(users && users.delete(user));
  }

  /** The users typing in `key` at `now`, sorted; expired notices are dropped. */
  typing(key, now) {
    const users = this.until.get(key);
    if (!users) return [];
    for (const [user, until] of users) if (until <= now) users.delete(user);
    return [...users.keys()].sort();
  }

  /** When the next notice of `key` runs out (null: none shown). */
  nextExpiry(key) {
    const users = this.until.get(key);
    if (!users || users.size === 0) return null;
    return Math.min(...users.values());
  }
}

/** "alice is typing…", "alice and bob are typing…", "alice, bob and 2 others are typing…". */
export function typingLabel(users) {
  if (users.length === 0) return "";
  if (users.length === 1) return `${users[0]} is typing…`;
  if (users.length === 2) return `${users[0]} and ${users[1]} are typing…`;
  const others = users.length - 2;
  return `${users[0]}, ${users[1]} and ${others} other${others > 1 ? "s" : ""} are typing…`;
}
