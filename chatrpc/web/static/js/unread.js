// What each conversation holds that the user has not read, and how far the peer of a
// DM has read. Pure: no DOM, no network, tested with node --test.
//
// The counts start from the server's (ListRooms, ListDirects: unread and mentions up
// to the conversation's last seq then) and grow with the messages of others that
// arrive after it; read markers (this page's, or another session's of the same user)
// bring them down.

import { kindOf } from "./changes.js";

/**
 * Whether `text` mentions `me` as @me, by the server's rule (chatrpc/mentions.py): a
 * word of its own, case-insensitive; not inside a longer name (@bobby is not @bob),
 * not glued to what comes before (bob@bob is an address); a full stop after it is
 * no part of it (thanks @bob. mentions bob).
 */
export function mentionsMe(text, me) {
  if (!text || !me || !text.includes("@")) return false;
  const escaped = me.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![A-Za-z0-9_@.-])@${escaped}(?![a-z0-9_]|[.-][a-z0-9_])`, "i").test(text);
}

function num(value) {
  const n = Number(value || 0);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

function fresh() {
  return { unread: 0, mentions: 0, countedTo: 0, readSeq: 0, peerReadSeq: 0, seen: new Map() };
}

export class ReadState {
  constructor() {
    this.convs = new Map();
  }

  entry(key) {
    let e = this.convs.get(key);
    if (!e) {
      e = fresh();
      this.convs.set(key, e);
    }
    return e;
  }

  /** The server's counts of `key` ({unread, mentions, readSeq, peerReadSeq, lastSeq}). */
  fromListing(key, listing) {
    const e = this.entry(key);
    e.unread = num(listing.unread);
    e.mentions = num(listing.mentions);
    e.countedTo = num(listing.lastSeq);
    e.readSeq = Math.max(e.readSeq, num(listing.readSeq));
    e.peerReadSeq = Math.max(e.peerReadSeq, num(listing.peerReadSeq));
    for (const seq of [...e.seen.keys()]) if (seq <= e.countedTo) e.seen.delete(seq);
    if (e.readSeq >= e.countedTo) {
      e.unread = 0;
      e.mentions = 0;
    }
  }

  /**
   * A stored item of `key` arrived (live, replayed or from History). Returns
   * {unread, mention}: whether it is a message of someone else not read yet (counted
   * once), and whether it mentions `me`.
   */
  onMessage(key, message, me) {
    const seq = num(message.seq);
    const e = this.entry(key);
    const mention = message.room ? mentionsMe(message.text, me) : false;
    const counts =
      kindOf(message) === "MESSAGE" &&
      message.sender !== me &&
      seq > e.readSeq &&
      seq > e.countedTo &&
      !e.seen.has(seq);
    if (counts) e.seen.set(seq, mention);
    return { unread: counts, mention };
  }

  /** `me` has read `key` up to `seq` (this page, or another of the user's sessions). */
  onRead(key, seq) {
    const e = this.entry(key);
    const s = num(seq);
    if (s <= e.readSeq) return false;
    e.readSeq = s;
    for (const k of [...e.seen.keys()]) if (k <= s) e.seen.delete(k);
    if (s >= e.countedTo) {
      e.unread = 0;
      e.mentions = 0;
    }
    return true;
  }

  /** In a DM: the peer has read up to `seq`. */
  onPeerRead(key, seq) {
    const e = this.entry(key);
    const s = num(seq);
    if (s <= e.peerReadSeq) return false;
    e.peerReadSeq = s;
    return true;
  }

  readSeq(key) {
    return this.entry(key).readSeq;
  }

  peerReadSeq(key) {
    return this.entry(key).peerReadSeq;
  }

  /** {unread, mentions} of `key` now. */
  counts(key) {
    const e = this.entry(key);
    let mentions = e.mentions;
    for (const m of e.seen.values()) if (m) mentions += 1;
    return { unread: e.unread + e.seen.size, mentions };
  }

  forget(key) {
    this.convs.delete(key);
  }
}

/**
 * The seq to mark read: everything up to the newest item when the newest message is
 * in view, else up to the newest message in view. Never lower than what is marked.
 */
export function readTarget({ newestItem, newestVisible, atBottom, readSeq }) {
  const seq = atBottom ? newestItem : newestVisible;
  return seq > readSeq ? seq : 0;
}

/** In a DM: the newest of `mine` (seqs of my messages, ascending) the peer has read (0: none). */
export function seenSeq(mine, peerReadSeq) {
  let seen = 0;
  for (const seq of mine) {
    if (seq > peerReadSeq) break;
    seen = seq;
  }
  return seen;
}
