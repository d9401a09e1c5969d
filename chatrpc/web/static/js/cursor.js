// What the page has of each conversation: its messages in seq order, each once, and
// where to resume it. Pure: no DOM, no network.

/** The messages of one conversation, unique by seq, in seq order. */
export class Timeline {
  constructor() {
    this.seqs = []; // sorted
    this.bySeq = new Map();
  }

  get size() {
    return this.seqs.length;
  }

  get oldest() {
    return this.seqs.length ? this.seqs[0] : 0;
  }

  get newest() {
    return this.seqs.length ? this.seqs[this.seqs.length - 1] : 0;
  }

  has(seq) {
    return this.bySeq.has(seq);
  }

  /**
   * Adds a message; returns the seq it goes before (0: at the end), or null when it is
   * there already (a replay overlapping what was shown, a retried send's echo).
   */
  add(seq, message) {
    if (this.bySeq.has(seq)) return null;
    this.bySeq.set(seq, message);
    let lo = 0;
    let hi = this.seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.seqs[mid] < seq) lo = mid + 1;
      else hi = mid;
    }
    this.seqs.splice(lo, 0, seq);
    return lo + 1 < this.seqs.length ? this.seqs[lo + 1] : 0;
  }

  /** The seqs after `seq`, in order (where a new item's neighbours are found). */
  following(seq) {
    let lo = 0;
    let hi = this.seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.seqs[mid] <= seq) lo = mid + 1;
      else hi = mid;
    }
    return this.seqs.slice(lo);
  }

  clear() {
    this.seqs = [];
    this.bySeq.clear();
  }

  messages() {
    return this.seqs.map((s) => this.bySeq.get(s));
  }
}

/**
 * Resume points of every conversation: the newest seq delivered in order from the
 * stream (or gap-filled), and the store epoch it belongs to. Kept across reloads.
 */
export class Cursors {
  constructor(saved = {}) {
    this.points = new Map(Object.entries(saved));
  }

  get(key) {
    return this.points.get(key) || null;
  }

  /** Advances `key` to `seq` (never back): the stream delivers each conversation in order. */
  advance(key, seq, epoch) {
    const point = this.points.get(key);
    if (!point) {
      this.points.set(key, { seq, epoch: epoch || "" });
      return true;
    }
    if (seq > point.seq) {
      point.seq = seq;
      return true;
    }
    return false;
  }

  /**
   * Applies a Joined acknowledgement; returns what the page must do:
   * "reset" (another history: drop what is shown, load it again), "fill" (the replay
   * skipped messages: fetch `from`..`to` from History), or "ok".
   */
  joined(key, joined) {
    const point = this.points.get(key);
    const lastSeq = Number(joined.lastSeq || 0);
    const replayed = Number(joined.replayed || 0);
    const epoch = joined.epoch || "";
    if (!point) {
      this.points.set(key, { seq: lastSeq, epoch });
      return { action: "fresh", lastSeq };
    }
    if (point.epoch && epoch && point.epoch !== epoch) {
      this.points.set(key, { seq: lastSeq, epoch });
      return { action: "reset", lastSeq };
    }
    point.epoch = epoch || point.epoch;
    if (!joined.complete && lastSeq - replayed > point.seq) {
      // The replay holds the newest `replayed` messages: History has the rest.
      return { action: "fill", from: point.seq, to: lastSeq - replayed + 1 };
    }
    return { action: "ok" };
  }

  forget(key) {
    this.points.delete(key);
  }

  toJSON() {
    return Object.fromEntries(this.points);
  }
}

/** Sends typed but not yet acknowledged (echoed), in order; kept across reloads. */
export class Outbox {
  constructor(saved = []) {
    this.entries = saved.slice();
  }

  add(entry) {
    this.entries.push(entry);
  }

  /** Removes the entry `clientMsgId` (echoed, or refused); returns it or null. */
  settle(clientMsgId) {
    const i = this.entries.findIndex((e) => e.clientMsgId === clientMsgId);
    if (i < 0) return null;
    return this.entries.splice(i, 1)[0];
  }

  pending(key) {
    return this.entries.filter((e) => e.key === key);
  }

  toJSON() {
    return this.entries;
  }
}
