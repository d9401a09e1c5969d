// One conversation on the page: every stored item it has (changes included, each seq
// once), its messages in their current state, and its list of messages on screen,
// kept in seq order and up to date as changes arrive.

import { Folder, isChange, kindOf, lastEditable, quoteLine } from "./changes.js";
import { Timeline } from "./cursor.js";
import { fillMessage } from "./messageview.js";
import { describe, isRoomEvent } from "./moderation.js";
import { mentionsMe, seenSeq } from "./unread.js";

export class Conversation {
  constructor(key, me) {
    this.key = key;
    this.me = me;
    this.timeline = new Timeline(); // every stored item, changes included
    this.folder = new Folder(); // the messages in their current state
    this.replies = new Map(); // seq -> seqs of the messages answering it
    this.seenSeq = 0; // in a DM: the user's message marked "Seen"
    this.members = new Set();
    this.topic = "";
    this.private = false;
    this.blocked = new Set(); // the users the reader blocked (shared by the page)
    this.hasOlder = true;
    this.historyLoaded = false;
    this.list = document.createElement("ol");
    this.list.className = "messages";
    this.list.setAttribute("role", "log");
    this.list.setAttribute("aria-live", "polite");
    this.list.setAttribute("aria-relevant", "additions");
  }

  /**
   * Takes a stored item, live or replayed (`asOf` 0) or from History (its state as of
   * `asOf`, the conversation's last seq then): a message shows once, in seq order; a
   * change updates the message it names. Returns whether a message went at the end.
   */
  take(message, seq, asOf) {
    const added = this.timeline.add(seq, message) !== null;
    if (isChange(message)) {
      this.refresh(this.folder.addChange(message));
    } else if (kindOf(message) === "MESSAGE") {
      this.folder.addMessage(message, asOf || seq);
      if (added) return this.insert(seq);
      this.refresh(seq); // History's copy: its current state
    } else if (added && isRoomEvent(message)) {
      return this.place(this.eventItem(message, seq), seq);
    }
    return false;
  }

  /** A room event (a kick, a new topic...) as a notice line in its place. */
  eventItem(message, seq) {
    const item = document.createElement("li");
    item.className = "notice room-event";
    item.dataset.seq = String(seq);
    item.textContent = describe(message);
    return item;
  }

  /** Puts `item` (of `seq`) before the next item shown; returns whether it went at the end. */
  place(item, seq) {
    let next = null;
    for (const s of this.timeline.following(seq)) {
      next = this.item(s);
      if (next) break;
    }
    this.list.insertBefore(item, next || this.list.querySelector("li.pending"));
    return next === null;
  }

  item(seq) {
    return this.list.querySelector(`li[data-seq="${seq}"]`);
  }

  /** Shows the new message `seq` in its place; returns whether it went at the end. */
  insert(seq) {
    const state = this.folder.state(seq);
    if (state.replyTo) {
      if (!this.replies.has(state.replyTo)) this.replies.set(state.replyTo, new Set());
      this.replies.get(state.replyTo).add(seq);
    }
    const item = fillMessage(document.createElement("li"), state, this.view(state));
    const atEnd = this.place(item, seq);
    // Replies shown before the message they answer (an older page) quote it now.
    for (const reply of this.replies.get(seq) || []) this.refresh(reply);
    return atEnd;
  }

  /** Shows the message `seq` (and the quotes of its replies) as it is now. */
  refresh(seq) {
    for (const s of [seq, ...(this.replies.get(seq) || [])]) {
      const item = this.item(s);
      const state = this.folder.state(s);
      if (item && state) fillMessage(item, state, this.view(state));
    }
  }

  /**
   * How a message shows: whether it mentions the user, the line it answers, "Seen",
   * hidden (its sender is blocked: History says so, or the user blocked them since).
   */
  view(state) {
    const me = this.me;
    const hidden = Boolean(state.hidden) || this.blocked.has(state.sender);
    const mention = !hidden && Boolean(state.room) && state.sender !== me && mentionsMe(state.text, me);
    const quote = state.replyTo ? quoteLine(this.folder.state(state.replyTo)) : null;
    return { me, mention, quote, seen: this.seenSeq === state.seq, hidden };
  }

  /** Shows every message again (after the user blocked or unblocked someone). */
  refreshAll() {
    for (const s of this.timeline.seqs) if (this.folder.has(s)) this.refresh(s);
  }

  /** In a DM: "Seen" under the user's newest message the peer has read (up to `peerReadSeq`). */
  markSeen(peerReadSeq) {
    const mine = this.timeline.seqs.filter((s) => {
      const state = this.folder.state(s);
      return state && state.sender === this.me && !state.deleted;
    });
    const seen = seenSeq(mine, peerReadSeq);
    if (seen === this.seenSeq) return;
    const old = this.seenSeq;
    this.seenSeq = seen;
    for (const s of [old, seen]) if (s) this.refresh(s);
  }

  /** The user's newest message here that can be edited (the Up key), or null. */
  lastEditable() {
    return lastEditable(this.timeline.seqs.slice(-200).map((s) => this.folder.state(s)), this.me);
  }

  /** Another history (a new epoch): forget what is shown. */
  reset() {
    this.timeline.clear();
    this.folder.clear();
    this.replies.clear();
    this.seenSeq = 0;
    this.list.replaceChildren();
    this.historyLoaded = false;
    this.hasOlder = true;
  }
}
