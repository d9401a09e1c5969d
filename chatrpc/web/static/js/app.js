// The page: sign-in, conversations, history, the composer. The DOM pieces are in
// render.js and messageview.js (text always as text), one conversation's messages in
// conversation.js, the wire and the resume rules in protocol.js and cursor.js, the
// socket's states in connection.js; stored changes fold in changes.js, typing and read
// markers in typing.js and unread.js (the page's side in signals.js), the message menu
// in menu.js, the composer's modes in composer.js, the search box in searchpanel.js;
// room events, roles and blocks in moderation.js (the member list and the room's
// settings in roompanel.js, invitations in invitations.js).

import { ApiError, call, signInProblem, whoami } from "./api.js";
import { CommandError, helpLines, parseLine } from "./commands.js";
import { Connection } from "./connection.js";
import { isChange, kindOf } from "./changes.js";
import { Composer } from "./composer.js";
import { Conversation } from "./conversation.js";
import { Cursors, Outbox } from "./cursor.js";
import { Invitations } from "./invitations.js";
import { MessageMenu } from "./menu.js";
import { flash } from "./messageview.js";
import { isRoomEvent, leftNotice, refusedJoin } from "./moderation.js";
import {
  display,
  dmKey,
  entryEvent,
  eventKind,
  joinEvent,
  leaveEvent,
  messageKey,
  newClientMsgId,
  parseKey,
  roomKey,
  seqOf,
} from "./protocol.js";
import { conversationItem, noticeItem, pendingItem } from "./render.js";
import { RoomPanel } from "./roompanel.js";
import { windowBody } from "./search.js";
import { SearchPanel } from "./searchpanel.js";
import { Signals } from "./signals.js";

const PAGE = 50;
/** Most History pages read to show a message found (or answered) with what is shown. */
const JUMP_PAGES = 20;
const NOT_DONE = { edit: "Not edited", delete: "Not deleted", react: "Reaction not saved" };
const $ = (id) => document.getElementById(id);

/** The signed-in user's state, saved in localStorage (never the token: the cookie has it). */
class Saved {
  constructor(user) {
    this.storageKey = `chatrpc:${user}`;
    let data = {};
    try {
      data = JSON.parse(localStorage.getItem(this.storageKey) || "{}");
    } catch {
      data = {};
    }
    this.rooms = data.rooms || [];
    this.directs = data.directs || [];
    this.current = data.current || "";
    this.cursors = new Cursors(data.cursors || {});
    this.outbox = new Outbox(data.outbox || []);
  }

  save() {
    const data = {
      rooms: this.rooms,
      directs: this.directs,
      current: this.current,
      cursors: this.cursors.toJSON(),
      outbox: this.outbox.toJSON(),
    };
    localStorage.setItem(this.storageKey, JSON.stringify(data));
  }
}

class App {
  constructor(user) {
    this.me = user;
    this.saved = new Saved(user);
    this.conversations = new Map();
    this.joining = new Set(); // rooms whose join is not acknowledged yet
    this.connection = new Connection({
      check: async () => (await whoami()) === this.me,
      onOpen: () => this.onOpen(),
      onEvent: (event) => this.onEvent(event),
      onState: (state, detail) => this.onState(state, detail),
      onSignedOut: (reason) =>
        this.signedOut(reason ? `Your session ended (${reason}): sign in again.` : "Your session ended: sign in again."),
    });
    this.signals = new Signals(this);
    this.rooms = new RoomPanel(
      {
        list: $("member-list"),
        problem: $("room-problem"),
        settings: $("room-settings"),
        topicForm: $("topic-form"),
        topicInput: $("topic-input"),
        privateInput: $("private-input"),
        keepInput: $("keep-input"),
        inviteForm: $("invite-form"),
        inviteUser: $("invite-user"),
        unbanForm: $("unban-form"),
        unbanUser: $("unban-user"),
        topic: $("topic"),
        lock: $("room-private"),
      },
      {
        me: user,
        members: (room) => this.conversation(roomKey(room)).members,
        openDirect: (other) => {
          this.addDirect(other);
          this.open(dmKey(other));
          $("message").focus();
        },
        blockedChanged: () => {
          for (const conv of this.conversations.values()) conv.refreshAll();
        },
      },
    );
    this.invitations = new Invitations($("invitations"), {
      joined: (room) => this.saved.rooms.includes(room),
      join: (room) => this.joinRoom(room),
    });
    this.menu = new MessageMenu($("message-menu"), {
      reply: (state) => this.composer.reply(this.current, state),
      edit: (state) => this.composer.edit(this.current, state),
      react: (state, emoji) => this.react(state, emoji),
      remove: (state) => this.change(this.current, { kind: "delete", seq: state.seq }),
    });
    this.composer = new Composer(
      { input: $("message"), bar: $("compose-mode"), what: $("compose-what"), cancel: $("compose-cancel") },
      {
        current: () => this.current,
        editLast: () => this.editLast(),
        typing: (key) => this.signals.sendTyping(key),
      },
    );
    this.search = new SearchPanel(
      {
        panel: $("search"),
        form: $("search-form"),
        input: $("search-query"),
        scope: $("search-scope"),
        results: $("search-results"),
        more: $("search-more"),
        status: $("search-status"),
        close: $("search-close"),
        toggle: $("search-toggle"),
      },
      { me: user, current: () => this.current, openAt: (key, seq) => this.openAt(key, seq), shown: (open) => open && this.showConversation() },
    );
  }

  start() {
    $("me").textContent = this.me;
    // Wide screens show who is online beside the conversation; phones on demand.
    const wide = window.matchMedia("(min-width: 701px)").matches;
    $("members").hidden = !wide;
    $("members-toggle").setAttribute("aria-expanded", String(wide));
    for (const room of this.saved.rooms) this.conversation(roomKey(room));
    for (const user of this.saved.directs) this.conversation(dmKey(user));
    if (this.saved.current && this.conversations.has(this.saved.current)) {
      this.open(this.saved.current);
    } else if (this.saved.rooms.length === 0) {
      this.saved.rooms.push("general");
      this.open(roomKey("general"));
    } else {
      this.open(roomKey(this.saved.rooms[0]));
    }
    for (const entry of this.saved.outbox.entries) if (!entry.change) this.showPending(entry);
    this.connection.start();
  }

  // -- connection --------------------------------------------------------------------

  onState(state, detail) {
    const labels = {
      connecting: "Connecting…",
      connected: "",
      reconnecting: "Reconnecting…",
      closed: "Offline",
    };
    const status = $("status");
    status.textContent = labels[state] || "";
    status.title = detail || "";
    document.body.dataset.connection = state;
  }

  onOpen() {
    // Every room and DM resumes from its cursor; the server replays what was missed.
    this.joining.clear();
    for (const room of this.saved.rooms) {
      const key = roomKey(room);
      this.joining.add(room);
      this.connection.send(joinEvent(key, this.saved.cursors.get(key)));
    }
    for (const user of this.saved.directs) {
      const key = dmKey(user);
      const cursor = this.saved.cursors.get(key);
      if (cursor) this.connection.send(joinEvent(key, cursor));
    }
    // Sent after the joins: the server handles a session's events in order.
    for (const entry of this.saved.outbox.entries) this.connection.send(entryEvent(entry));
    this.discoverDirects();
    this.rooms.loadBlocked();
    this.signals.refreshRooms();
    this.signals.markRead();
  }

  /** DMs that started while this page was away (or in another browser). */
  async discoverDirects() {
    let reply;
    try {
      reply = await call("ListDirects");
    } catch {
      return; // the next connection tries again
    }
    this.signals.fromDirects(reply);
    for (const direct of reply.directs || []) {
      const key = dmKey(direct.withUser);
      const lastSeq = seqOf(direct.lastSeq);
      const cursor = this.saved.cursors.get(key);
      if (cursor && cursor.seq >= lastSeq) continue;
      if (!cursor) {
        // Never seen here: replay its last page; older ones load on scrolling up.
        this.addDirect(direct.withUser);
        this.connection.send(
          joinEvent(key, { seq: Math.max(0, lastSeq - PAGE), epoch: reply.epoch }),
        );
      }
    }
  }

  onEvent(event) {
    const [kind, body] = eventKind(event);
    if (kind === "message") this.onMessage(body, true);
    else if (kind === "joined") this.onJoined(body);
    else if (kind === "presence") this.onPresence(body);
    else if (kind === "left") this.onLeft(body);
    else if (kind === "invitation") this.invitations.add(body);
    else if (kind === "error") this.onError(body);
    else if (kind === "ack") this.settle(body.clientMsgId);
    else if (kind === "typing") this.signals.onTyping(body);
    else if (kind === "readMarker") this.signals.onReadMarker(body);
  }

  onJoined(joined) {
    const key = joined.room ? roomKey(joined.room) : dmKey(joined.withUser);
    const conv = this.conversation(key);
    if (joined.room) {
      conv.members = new Set(joined.members || []);
      conv.topic = joined.topic || "";
      conv.private = Boolean(joined.private);
      this.invitations.remove(joined.room);
      this.joining.delete(joined.room);
      if (key === this.current) {
        this.renderMembers();
        this.rooms.refresh();
      }
    }
    const plan = this.saved.cursors.joined(key, joined);
    this.saved.save();
    this.signals.onJoined(key, joined);
    if (plan.action === "reset") {
      conv.reset();
      this.notice(key, "The server's history was reset: showing it from the start.");
    }
    if (plan.action === "fill") this.fill(key, plan.from, plan.to);
    if ((plan.action === "fresh" || plan.action === "reset") && key === this.current) {
      this.loadOlder(key);
    }
  }

  /** Fetches the messages a replay could not hold (after `from`, before `to`). */
  async fill(key, from, to) {
    const { kind, name } = parseKey(key);
    let after = from;
    for (;;) {
      const body = { afterSeq: String(after), beforeSeq: String(to), limit: 500 };
      body[kind === "room" ? "room" : "withUser"] = name;
      let page;
      try {
        page = await call("History", body);
      } catch {
        return;
      }
      const asOf = seqOf(page.lastSeq);
      for (const m of page.messages || []) this.onMessage(m, false, asOf);
      const msgs = page.messages || [];
      if (!page.hasMore || msgs.length === 0) return;
      after = seqOf(msgs[msgs.length - 1].seq);
    }
  }

  onPresence(presence) {
    const key = roomKey(presence.room);
    const conv = this.conversations.get(key);
    if (!conv) return;
    if (presence.kind === "JOINED") conv.members.add(presence.user);
    else conv.members.delete(presence.user);
    if (key === this.current) {
      this.renderMembers();
      if (presence.kind === "JOINED") this.rooms.refresh(); // their role
    }
    if (presence.user !== this.me) {
      const verb = presence.kind === "JOINED" ? "joined" : "left";
      this.notice(key, `${presence.user} ${verb} #${presence.room}`);
    }
  }

  /** The session left a room: the user asked, or was kicked or banned (not rejoined). */
  onLeft(left) {
    if (left.reason && this.saved.rooms.includes(left.room)) this.leaveRoom(left.room, false);
    this.notice(this.current, leftNotice(left), left.reason ? "problem" : "notice");
  }

  /** A room event as it happens: the topic and privacy shown, the roles and keeping in the panel. */
  onRoomEvent(key, message) {
    const conv = this.conversation(key);
    const kind = kindOf(message);
    if (kind === "TOPIC") conv.topic = message.text || "";
    if (kind === "PRIVACY") conv.private = Boolean(message.private);
    if (key === this.current) {
      this.rooms.header(conv);
      if (kind === "ROLE") this.rooms.refresh();
      if (kind === "KEEP") this.rooms.setKept(Boolean(message.kept));
    }
  }

  onError(error) {
    const refused = refusedJoin(error, this.joining);
    if (refused && refused !== "general") {
      // Private and not invited, or banned: the page stops asking for it.
      this.joining.delete(refused);
      this.leaveRoom(refused, false);
      this.notice(this.current, `Cannot join #${refused}: ${error.message}`, "problem");
      return;
    }
    const entry = error.clientMsgId ? this.saved.outbox.settle(error.clientMsgId) : null;
    if (entry) {
      this.saved.save();
      this.removePending(entry.clientMsgId);
      const what = entry.change ? NOT_DONE[entry.change.kind] : `Not sent (“${entry.text}”)`;
      this.notice(entry.key, `${what}: ${error.message}`, "problem");
    } else {
      this.notice(this.current, error.message, "problem");
    }
  }

  /**
   * A stored item from the stream (live) or from History (its state as of `asOf`, the
   * conversation's last seq then): a message is shown once, in seq order; a change
   * (edit, delete, reaction) updates the message it names.
   */
  onMessage(message, live, asOf = 0) {
    const key = messageKey(message, this.me);
    const seq = seqOf(message.seq);
    if (!message.room) this.addDirect(parseKey(key).name);
    const conv = this.conversation(key);
    if (live) this.saved.cursors.advance(key, seq, "");
    if (live && isRoomEvent(message)) this.onRoomEvent(key, message);
    if (message.sender === this.me && message.clientMsgId) this.settle(message.clientMsgId);
    this.saved.save();
    const counted = this.signals.read.onMessage(key, message, this.me);
    const stick = key === this.current && this.atBottom();
    const atEnd = conv.take(message, seq, live ? 0 : asOf);
    if (atEnd && stick) this.scrollToBottom();
    if (live && !isChange(message)) this.signals.stopped(key, message.sender);
    if (kindOf(message) === "DELETE" && this.composer.editing(key, seqOf(message.targetSeq))) {
      this.composer.cancel();
      this.notice(key, "The message you were editing was deleted.", "problem");
    }
    if (counted.unread) {
      if (key !== this.current || document.hidden) this.renderListSoon();
      const forMe = !message.room || counted.mention;
      if (live && document.hidden && forMe) this.notify(message, key);
    }
    if (key === this.current) this.signals.markSoon();
    if (!message.room && (message.sender === this.me || isChange(message))) this.renderSeen(key);
  }

  /** In a DM: "Seen" under the user's newest message the peer has read. */
  renderSeen(key) {
    const conv = this.conversations.get(key);
    if (conv && parseKey(key).kind === "dm") conv.markSeen(this.signals.read.peerReadSeq(key));
  }

  /** A send or change of the user's was stored (its echo, or an ack) or refused. */
  settle(clientMsgId) {
    if (clientMsgId && this.saved.outbox.settle(clientMsgId)) {
      this.saved.save();
      this.removePending(clientMsgId);
    }
  }

  // -- conversations -----------------------------------------------------------------

  conversation(key) {
    let conv = this.conversations.get(key);
    if (!conv) {
      conv = new Conversation(key, this.me);
      conv.blocked = this.rooms.blocked;
      this.conversations.set(key, conv);
      this.renderList();
    }
    return conv;
  }

  addDirect(user) {
    if (user === this.me || this.saved.directs.includes(user)) return;
    this.saved.directs.push(user);
    this.saved.save();
    this.conversation(dmKey(user));
  }

  joinRoom(room) {
    if (!this.saved.rooms.includes(room)) {
      this.saved.rooms.push(room);
      this.saved.save();
      this.joining.add(room);
      this.connection.send(joinEvent(roomKey(room), this.saved.cursors.get(roomKey(room))));
    }
    this.open(roomKey(room));
  }

  /** Takes `room` off the page (and out of the session when `tell`: a kick ended it already). */
  leaveRoom(room, tell = true) {
    const key = roomKey(room);
    this.saved.rooms = this.saved.rooms.filter((r) => r !== room);
    this.saved.cursors.forget(key);
    this.saved.save();
    this.signals.read.forget(key);
    if (tell) this.connection.send(leaveEvent(room));
    const conv = this.conversations.get(key);
    this.conversations.delete(key);
    if (conv && this.current !== key) conv.list.remove(); // the current one: open() replaces it
    this.renderList();
    if (this.current === key) {
      const next = this.saved.rooms[0] ? roomKey(this.saved.rooms[0]) : null;
      const fallback = this.saved.directs[0] ? dmKey(this.saved.directs[0]) : null;
      if (next || fallback) this.open(next || fallback);
      else this.joinRoom("general");
    }
  }

  open(key) {
    const conv = this.conversation(key);
    this.current = key;
    this.saved.current = key;
    this.saved.save();
    this.menu.close(false);
    this.composer.switched(key);
    $("messages").replaceWith(conv.list);
    conv.list.id = "messages";
    const { kind, name } = parseKey(key);
    $("title").textContent = kind === "room" ? `#${name}` : name;
    $("members-toggle").hidden = kind !== "room";
    this.renderList();
    this.renderMembers();
    this.showConversation();
    if (!conv.historyLoaded && (kind === "dm" || this.saved.cursors.get(key))) this.loadOlder(key);
    $("older").hidden = !conv.hasOlder;
    this.scrollToBottom();
    this.signals.renderTyping();
    this.signals.markRead();
  }

  /** On a phone: the conversation pane (with the search box) instead of the list. */
  showConversation() {
    $("chat-view").classList.replace("show-list", "show-conversation");
    this.signals.markSoon();
  }

  /** One older page of history (before the oldest message shown, or the cursor). */
  async loadOlder(key, count = PAGE) {
    const conv = this.conversation(key);
    if (conv.loading) return;
    const cursor = this.saved.cursors.get(key);
    const before = conv.timeline.oldest || (cursor ? cursor.seq + 1 : 0);
    const { kind, name } = parseKey(key);
    const body = { descending: true, limit: count };
    body[kind === "room" ? "room" : "withUser"] = name;
    if (before) body.beforeSeq = String(before);
    conv.loading = true;
    const scroller = $("scroller");
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    try {
      const page = await call("History", body);
      const asOf = seqOf(page.lastSeq);
      for (const m of page.messages || []) this.onMessage(m, false, asOf);
      conv.hasOlder = Boolean(page.hasMore);
      conv.historyLoaded = true;
    } catch (error) {
      if (error instanceof ApiError && error.code === "permission_denied") {
        conv.historyLoaded = false; // not joined yet: the Joined acknowledgement loads it
      }
    } finally {
      conv.loading = false;
    }
    if (key === this.current) {
      $("older").hidden = !conv.hasOlder;
      scroller.scrollTop = scroller.scrollHeight - fromBottom;
    }
  }

  // -- sending -----------------------------------------------------------------------

  send(key, text, replyTo = 0) {
    const entry = { key, text, clientMsgId: newClientMsgId() };
    if (replyTo) entry.replyTo = replyTo;
    this.saved.outbox.add(entry);
    this.saved.save();
    this.showPending(entry);
    // Offline, it waits in the outbox: sent once, with the same id, when back.
    this.connection.send(entryEvent(entry));
  }

  /** An edit, delete or reaction ({kind, seq, ...}): kept like a send until its echo. */
  change(key, change) {
    const entry = { key, clientMsgId: newClientMsgId(), change };
    this.saved.outbox.add(entry);
    this.saved.save();
    this.connection.send(entryEvent(entry));
  }

  /** Adds the user's `emoji` to a message, or takes it back if it is there. */
  react(state, emoji) {
    const mine = (state.reactions || []).some((r) => r.emoji === emoji && (r.users || []).includes(this.me));
    this.change(this.current, { kind: "react", seq: state.seq, emoji, remove: mine });
  }

  /** The Up key: edit the user's newest message here; false when there is none. */
  editLast() {
    const conv = this.conversations.get(this.current);
    const last = conv ? conv.lastEditable() : null;
    if (!last) return false;
    this.composer.edit(this.current, last);
    return true;
  }

  /** Opens `key` at its message `seq` (a search hit), loading what lies between. */
  async openAt(key, seq) {
    const { kind, name } = parseKey(key);
    if (kind === "room" && !this.saved.rooms.includes(name)) this.joinRoom(name);
    else if (kind === "dm") this.addDirect(name);
    if (this.current !== key) this.open(key);
    await this.jumpTo(key, seq);
  }

  /**
   * Scrolls to the message `seq`, first loading History from a little before it up to
   * the oldest message shown (so what is shown has no hole), a page at a time.
   */
  async jumpTo(key, seq) {
    const conv = this.conversation(key);
    const find = () => conv.item(seq);
    if (!find() && seq) {
      const body = windowBody(key, seq, conv.timeline.oldest);
      for (let page = 0; page < JUMP_PAGES; page += 1) {
        let reply;
        try {
          reply = await call("History", body);
        } catch (error) {
          this.notice(key, error.message || "Cannot load that message.", "problem");
          return;
        }
        const msgs = reply.messages || [];
        const asOf = seqOf(reply.lastSeq);
        for (const m of msgs) this.onMessage(m, false, asOf);
        conv.historyLoaded = true;
        if (!reply.hasMore || msgs.length === 0) break;
        body.afterSeq = String(seqOf(msgs[msgs.length - 1].seq));
      }
      if (key === this.current) $("older").hidden = !conv.hasOlder;
    }
    const item = find();
    if (!item) {
      this.notice(key, "That message is not there any more.", "problem");
      return;
    }
    item.scrollIntoView({ block: "center" });
    flash(item);
  }

  showPending(entry) {
    const conv = this.conversation(entry.key);
    conv.list.append(pendingItem(entry, this.me));
    if (entry.key === this.current) this.scrollToBottom();
  }

  removePending(clientMsgId) {
    for (const conv of this.conversations.values()) {
      for (const li of conv.list.querySelectorAll("li.pending")) {
        if (li.dataset.cid === clientMsgId) li.remove();
      }
    }
  }

  async submit(line) {
    let command;
    try {
      command = parseLine(line);
    } catch (error) {
      if (error instanceof CommandError) {
        this.notice(this.current, error.message, "problem");
        return;
      }
      throw error;
    }
    if (!command) return;
    const { kind, name } = parseKey(this.current || "#general");
    const mode = command.name === "say" || command.name === "me" ? this.composer.take(this.current) : null;
    switch (command.name) {
      case "say":
      case "me":
        if (mode && mode.kind === "edit") {
          const state = this.conversation(this.current).folder.state(mode.seq);
          if (!state || state.text !== command.text) {
            this.change(this.current, { kind: "edit", seq: mode.seq, text: command.text });
          }
        } else this.send(this.current, command.text, mode ? mode.seq : 0);
        break;
      case "join":
      case "switch":
        if (command.name === "switch" && !this.saved.rooms.includes(command.target)) {
          this.notice(this.current, `You are not in #${command.target}: /join ${command.target} first`, "problem");
        } else this.joinRoom(command.target);
        break;
      case "leave": {
        const room = command.target || (kind === "room" ? name : "");
        if (!room) this.notice(this.current, "usage: /leave ROOM", "problem");
        else this.leaveRoom(room);
        break;
      }
      case "msg":
        this.addDirect(command.target);
        this.send(dmKey(command.target), command.text);
        this.open(dmKey(command.target));
        break;
      case "who": {
        const room = command.target || (kind === "room" ? name : "");
        if (!room) {
          this.notice(this.current, "usage: /who ROOM", "problem");
          break;
        }
        try {
          const reply = await call("ListMembers", { room });
          const members = reply.members || [];
          this.notice(this.current, `Online in #${reply.room}: ${members.join(", ") || "nobody"}`);
        } catch (error) {
          this.notice(this.current, error.message, "problem");
        }
        break;
      }
      case "rooms":
        try {
          const reply = await call("ListRooms");
          const rooms = (reply.rooms || []).map(
            (r) => `#${r.name}${r.private ? " (private)" : ""}${r.kept ? " (kept)" : ""} (${r.online || 0} online)`,
          );
          this.notice(this.current, `Rooms: ${rooms.join(", ") || "none yet"}`);
        } catch (error) {
          this.notice(this.current, error.message, "problem");
        }
        break;
      case "history":
        await this.loadOlder(this.current, command.count);
        break;
      case "help":
        for (const text of helpLines()) this.notice(this.current, text);
        break;
      case "quit":
        await this.signOut();
        break;
      default:
        break;
    }
  }

  async signOut() {
    this.connection.stop();
    try {
      await call("Logout");
    } catch {
      // Signed out already, or offline: the cookie is cleared either way below.
    }
    localStorage.removeItem(this.saved.storageKey);
    localStorage.removeItem("chatrpc:last-user");
    this.signedOut("");
  }

  signedOut(message) {
    this.connection.stop();
    location.hash = "";
    showSignIn(message);
  }

  // -- rendering ---------------------------------------------------------------------

  notice(key, text, kind = "notice") {
    const conv = key ? this.conversation(key) : null;
    const item = noticeItem(text, kind);
    const list = conv ? conv.list : $("messages");
    list.insertBefore(item, list.querySelector("li.pending"));
    if (!conv || key === this.current) this.scrollToBottom();
  }

  /** One new drawing of the list for a run of arriving messages. */
  renderListSoon() {
    if (this.listTimer) return;
    this.listTimer = setTimeout(() => {
      this.listTimer = null;
      this.renderList();
    }, 0);
  }

  renderList() {
    const make = (key) => {
      const current = key === this.current;
      const counts = this.signals.read.counts(key);
      const state = {
        current,
        unread: current && !document.hidden ? 0 : counts.unread,
        mentions: current && !document.hidden ? 0 : counts.mentions,
      };
      return conversationItem(key, state, () => this.open(key));
    };
    $("rooms").replaceChildren(...this.saved.rooms.map((r) => make(roomKey(r))));
    $("dms").replaceChildren(...this.saved.directs.map((u) => make(dmKey(u))));
  }

  renderMembers() {
    const { kind, name } = parseKey(this.current);
    const room = kind === "room" ? name : "";
    this.rooms.show(room, room ? this.conversations.get(this.current) : null);
  }

  atBottom() {
    const s = $("scroller");
    return s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  }

  scrollToBottom() {
    const s = $("scroller");
    s.scrollTop = s.scrollHeight;
  }

  /** A browser notification of a DM or a mention (only once the user allowed them). */
  notify(message, key) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    const title = message.room ? `${message.sender} in #${message.room}` : message.sender;
    const note = new Notification(title, { body: display(message).text, tag: key });
    note.onclick = () => {
      window.focus();
      this.openAt(key, seqOf(message.seq));
    };
  }
}

// -- wiring ------------------------------------------------------------------------------

let app = null;

function showSignIn(message) {
  app = null;
  $("chat-view").hidden = true;
  $("signin-view").hidden = false;
  $("signin-problem").textContent = message || "";
  $("signin-user").focus();
}

function showChat(user) {
  localStorage.setItem("chatrpc:last-user", user);
  $("signin-view").hidden = true;
  $("chat-view").hidden = false;
  app = new App(user);
  app.start();
  $("message").focus();
}

function wire() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = $("signin-user").value.trim();
    const password = $("signin-password").value;
    if (!user) {
      $("signin-problem").textContent = "Enter a user name.";
      return;
    }
    $("signin-button").disabled = true;
    $("signin-problem").textContent = "";
    try {
      const reply = await call("Login", { user, password });
      $("signin-password").value = "";
      showChat(reply.user);
    } catch (error) {
      $("signin-problem").textContent = signInProblem(error);
    } finally {
      $("signin-button").disabled = false;
    }
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("message");
    const line = input.value;
    input.value = "";
    if (app) app.submit(line);
  });
  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const room = $("join-room").value.trim().replace(/^#/, "").toLowerCase();
    $("join-room").value = "";
    if (app && room) app.joinRoom(room);
  });
  $("dm-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("dm-user").value.trim().replace(/^@/, "").toLowerCase();
    $("dm-user").value = "";
    if (app && user) {
      app.addDirect(user);
      app.open(dmKey(user));
      $("message").focus();
    }
  });
  $("older").addEventListener("click", () => app && app.loadOlder(app.current));
  $("scroller").addEventListener("scroll", () => {
    if (!app) return;
    app.signals.markRead();
    if ($("scroller").scrollTop > 0) return;
    const conv = app.conversations.get(app.current);
    if (conv && conv.hasOlder && conv.historyLoaded) app.loadOlder(app.current);
  });
  wireMessages();
  $("back").addEventListener("click", () => {
    $("chat-view").classList.replace("show-conversation", "show-list");
  });
  $("members-toggle").addEventListener("click", () => {
    const members = $("members");
    members.hidden = !members.hidden;
    $("members-toggle").setAttribute("aria-expanded", String(!members.hidden));
  });
  $("signout").addEventListener("click", () => app && app.signOut());
  if ("Notification" in window && Notification.permission === "default") {
    const button = $("notify");
    button.hidden = false;
    button.addEventListener("click", async () => {
      await Notification.requestPermission();
      button.hidden = true;
    });
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && app) {
      app.renderList();
      app.signals.markRead();
    }
  });
  window.addEventListener("focus", () => app && app.signals.markRead());
}

/**
 * What a click on a message does: its ⋯ button (or a right click, a long press, a tap
 * on a touch screen) opens its menu, a reaction chip toggles the user's reaction, the
 * quote of the message answered scrolls to it.
 */
function wireMessages() {
  const scroller = $("scroller");
  const touch = window.matchMedia("(hover: none)");
  const target = (event) => {
    const item = event.target.closest("li.message[data-seq]:not(.hidden-message)");
    if (!app || !item) return null;
    const conv = app.conversations.get(app.current);
    const state = conv ? conv.folder.state(Number(item.dataset.seq)) : null;
    return state ? { item, state } : null;
  };
  scroller.addEventListener("click", (event) => {
    const hit = target(event);
    if (!hit) return;
    const chip = event.target.closest(".chip");
    const quote = event.target.closest(".quote");
    if (chip) {
      app.react(hit.state, chip.dataset.emoji);
    } else if (quote) {
      event.preventDefault();
      app.jumpTo(app.current, Number(quote.dataset.replyTo));
    } else if (event.target.closest(".menu-button") || (touch.matches && !window.getSelection().toString())) {
      app.menu.open(hit.state, hit.item, app.me);
    }
  });
  scroller.addEventListener("contextmenu", (event) => {
    const hit = target(event);
    if (!hit || event.target.closest("a")) return;
    event.preventDefault();
    app.menu.open(hit.state, hit.item, app.me);
  });
}

async function boot() {
  wire();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js").catch(() => {});
  }
  let user = null;
  try {
    user = await whoami();
  } catch {
    user = localStorage.getItem("chatrpc:last-user");
  }
  if (user) showChat(user);
  else showSignIn("");
}

boot();
