// The page's side of typing notices and read markers: who is typing under the
// messages, what the user has read (marked while the conversation is in view), the
// unread and mention counts of the list, how far the peer of a DM has read.

import { call } from "./api.js";
import { dmKey, eventKey, markReadEvent, roomKey, seqOf, typingEvent } from "./protocol.js";
import { Throttle, TypingBoard, typingLabel } from "./typing.js";
import { ReadState, readTarget } from "./unread.js";

/** How often at most the page moves a conversation's read marker (ms). */
export const MARK_EVERY_MS = 1000;
/** Pages of ListRooms read to find the counts of the user's rooms. */
const ROOM_PAGES = 4;

const $ = (id) => document.getElementById(id);

export class Signals {
  /**
   * @param {object} app me, current, conversations, connection, saved, atBottom(),
   *   renderList(), renderSeen(key)
   */
  constructor(app) {
    this.app = app;
    this.read = new ReadState();
    this.board = new TypingBoard();
    this.marks = new Throttle(MARK_EVERY_MS);
    this.markTimer = null;
    this.typingTimer = null;
    this.soon = null;
  }

  // -- typing ----------------------------------------------------------------------------

  sendTyping(key) {
    this.app.connection.send(typingEvent(key));
  }

  onTyping(body) {
    if (!body.user || body.user === this.app.me) return;
    const key = eventKey(body);
    this.board.notice(key, body.user, Date.now());
    if (key === this.app.current) this.renderTyping();
  }

  /** `user`'s message arrived in `key`: they are not typing it any more. */
  stopped(key, user) {
    if (this.board.clear(key, user) && key === this.app.current) this.renderTyping();
  }

  renderTyping() {
    const key = this.app.current;
    const now = Date.now();
    $("typing").textContent = typingLabel(this.board.typing(key, now));
    clearTimeout(this.typingTimer);
    const next = this.board.nextExpiry(key);
    if (next !== null) this.typingTimer = setTimeout(() => this.renderTyping(), next - now + 20);
  }

  // -- read markers ----------------------------------------------------------------------

  onReadMarker(body) {
    const key = eventKey(body);
    const seq = seqOf(body.seq);
    if (body.user === this.app.me) {
      if (this.read.onRead(key, seq)) this.app.renderList();
    } else if (!body.room && this.read.onPeerRead(key, seq)) {
      this.app.renderSeen(key);
    }
  }

  onJoined(key, joined) {
    const mine = this.read.onRead(key, seqOf(joined.readSeq));
    const peer = joined.withUser ? this.read.onPeerRead(key, seqOf(joined.peerReadSeq)) : false;
    if (mine) this.app.renderList();
    if (peer) this.app.renderSeen(key);
  }

  /** Marks read once what a run of arriving messages (a History page) brought. */
  markSoon() {
    if (this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      this.markRead();
    }, 0);
  }

  /** Marks what the user sees of the current conversation read (throttled). */
  markRead() {
    const app = this.app;
    const key = app.current;
    const conv = app.conversations.get(key);
    if (!conv || !conv.timeline.size || document.hidden) return;
    if (!$("conversation").offsetParent) return; // a phone showing the list
    const seq = readTarget({
      newestItem: conv.timeline.newest,
      newestVisible: newestVisible(conv.list),
      atBottom: app.atBottom(),
      readSeq: this.read.readSeq(key),
    });
    if (!seq) return;
    const wait = this.marks.wait(key, Date.now());
    if (wait > 0) {
      if (this.markTimer === null) {
        this.markTimer = setTimeout(() => {
          this.markTimer = null;
          this.markRead();
        }, wait);
      }
      return;
    }
    if (!app.connection.send(markReadEvent(key, seq))) return; // marked when back online
    this.marks.take(key, Date.now());
    if (this.read.onRead(key, seq)) app.renderList();
  }

  // -- counts ----------------------------------------------------------------------------

  /** The unread and mention counts of the user's rooms, from ListRooms. */
  async refreshRooms() {
    const wanted = new Set(this.app.saved.rooms);
    let token = "";
    for (let page = 0; page < ROOM_PAGES && wanted.size; page += 1) {
      let reply;
      try {
        reply = await call("ListRooms", { pageSize: 500, pageToken: token });
      } catch {
        return; // the next connection tries again
      }
      for (const room of reply.rooms || []) {
        if (!wanted.delete(room.name)) continue;
        this.read.fromListing(roomKey(room.name), { ...room, lastSeq: room.lastSeq });
      }
      token = reply.nextPageToken || "";
      if (!token) break;
    }
    this.app.renderList();
  }

  /** The counts of the DMs of a ListDirects reply. */
  fromDirects(reply) {
    for (const direct of reply.directs || []) {
      this.read.fromListing(dmKey(direct.withUser), direct);
      this.app.renderSeen(dmKey(direct.withUser));
    }
    this.app.renderList();
  }
}

/** The seq of the newest message at least partly in view in `list` (0: none). */
function newestVisible(list) {
  const bottom = $("scroller").getBoundingClientRect().bottom;
  const items = list.querySelectorAll("li.message[data-seq]");
  for (let i = items.length - 1; i >= 0; i -= 1) {
    if (items[i].getBoundingClientRect().top < bottom) return Number(items[i].dataset.seq);
  }
  return 0;
}
