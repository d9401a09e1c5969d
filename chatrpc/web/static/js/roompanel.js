// The current room's side panel: who is online with their role and, for owners and
// moderators, what they may do to each (kick, ban, mute, roles); block and unblock for
// everyone; the room's settings (topic, private, keep, invite). The rules are moderation.js's,
// the server has the last word: a refusal is shown as the server worded it.

import { ApiError, call } from "./api.js";
import { actionLabel, memberActions, moderateRequest, roleOf, settingsFor } from "./moderation.js";

/** How long a ban from the panel lasts, in seconds (0: until unbanned). */
const BAN_LENGTHS = [
  ["1 hour", 3600],
  ["1 day", 86400],
  ["1 week", 604800],
  ["Until unbanned", 0],
];

function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function button(text, onClick, label = "") {
  const b = el("button", "", text);
  b.type = "button";
  if (label) b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

export class RoomPanel {
  /**
   * @param {object} els {list, problem, settings, topicForm, topicInput, privateInput,
   *   keepInput, inviteForm, inviteUser, unbanForm, unbanUser, topic, lock}
   * @param {object} hooks {me, members(room) -> Set of users online, openDirect(user),
   *   blockedChanged()}
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    this.room = "";
    this.roles = new Map(); // user -> role, in this.room
    this.blocked = new Set(); // shared with the conversations
    this.open = ""; // the member whose moderation tools are shown
    this.asked = 0; // the newest ListMembers asked for (older answers are dropped)
    this.kept = false; // whether this.room is kept from pruning (ListRooms, then KEEP events)
    els.topicForm.addEventListener("submit", (event) => {
      event.preventDefault();
      this.act("topic", "", { topic: els.topicInput.value.trim() });
    });
    els.privateInput.addEventListener("change", () => {
      this.act("private", "", { private: els.privateInput.checked });
    });
    els.keepInput.addEventListener("change", () => {
      this.act("keep", "", { kept: els.keepInput.checked });
    });
    // Invite and unban name a user who may not be online here (not in the list).
    for (const [form, input, action] of [
      [els.inviteForm, els.inviteUser, "invite"],
      [els.unbanForm, els.unbanUser, "unban"],
    ]) {
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const user = input.value.trim().replace(/^@/, "").toLowerCase();
        if (!user) return;
        this.act(action, user).then((done) => {
          if (done) input.value = "";
        });
      });
    }
  }

  get myRole() {
    return this.roles.get(this.hooks.me) || "member";
  }

  /** Shows the room `room` with its `conv` (topic, private, members), or no room (a DM). */
  show(room, conv) {
    if (room !== this.room) {
      this.room = room;
      this.roles = new Map();
      this.kept = false;
      this.open = "";
      this.problem("");
    }
    this.header(conv);
    this.render();
    if (room) this.refresh();
  }

  /** The topic line and the private label of the conversation shown. */
  header(conv) {
    const topic = this.room && conv ? conv.topic : "";
    this.els.topic.textContent = topic ? `Topic: ${topic}` : "";
    this.els.topic.hidden = !topic;
    this.els.lock.hidden = !(this.room && conv && conv.private);
    if (document.activeElement !== this.els.topicInput) this.els.topicInput.value = topic;
    this.els.privateInput.checked = Boolean(this.room && conv && conv.private);
  }

  /** Reads the roles of the users online in the room again (after a role or a presence changed). */
  async refresh() {
    const room = this.room;
    const asked = ++this.asked;
    let reply;
    try {
      reply = await call("ListMembers", { room });
      // Whether the room is kept: only ListRooms says (a live KEEP event then does).
      const listed = await call("ListRooms", { prefix: room, pageSize: 1 });
      const found = (listed.rooms || []).find((r) => r.name === room);
      if (asked === this.asked && room === this.room) this.kept = Boolean(found && found.kept);
    } catch {
      return; // offline, or no longer in it: the next change asks again
    }
    if (asked !== this.asked || room !== this.room) return;
    this.roles = new Map((reply.roles || []).map((m) => [m.user, roleOf(m.role)]));
    this.render();
  }

  /** The room shown was kept or let go of (a live KEEP event). */
  setKept(kept) {
    this.kept = kept;
    this.render();
  }

  /** Reads whom the user blocked (at each connection). */
  async loadBlocked() {
    let reply;
    try {
      reply = await call("ListBlocked");
    } catch {
      return;
    }
    this.setBlocked(reply.users || []);
  }

  setBlocked(users) {
    this.blocked.clear();
    for (const u of users) this.blocked.add(u);
    this.hooks.blockedChanged();
    this.render();
  }

  render() {
    const { list, settings, topicForm, inviteForm, unbanForm, privateInput, keepInput } = this.els;
    const can = settingsFor(this.room ? this.myRole : "member");
    settings.hidden = !(can.topic || can.private || can.keep || can.invite);
    topicForm.hidden = !can.topic;
    inviteForm.hidden = !can.invite;
    unbanForm.hidden = !can.invite; // the same staff
    privateInput.closest("label").hidden = !can.private;
    keepInput.closest("label").hidden = !can.keep;
    keepInput.checked = Boolean(this.room) && this.kept;
    if (!this.room) {
      list.replaceChildren();
      return;
    }
    const users = [...this.hooks.members(this.room)].sort();
    list.replaceChildren(...users.map((user) => this.memberItem(user)));
  }

  /** One member: their name (a DM), role, Block, and the moderation tools `me` may use. */
  memberItem(user) {
    const me = this.hooks.me;
    const role = this.roles.get(user) || "member";
    const li = el("li", "member");
    li.setAttribute("role", "group");
    li.setAttribute("aria-label", user);
    const line = el("div", "member-line");
    const name = button(user, () => this.hooks.openDirect(user));
    name.className = "member-name";
    name.title = user === me ? "you" : `Message ${user}`;
    name.disabled = user === me;
    line.append(name);
    if (role !== "member") line.append(el("span", `role ${role}`, role));
    li.append(line);
    if (user === me) return li;
    const buttons = el("div", "member-buttons");
    const blocked = this.blocked.has(user);
    buttons.append(button(blocked ? "Unblock" : "Block", () => this.block(user, !blocked)));
    const actions = memberActions(me, this.myRole, user, role);
    li.append(buttons);
    if (actions.length) {
      const toggle = button("Moderate", () => {
        this.open = this.open === user ? "" : user;
        this.render();
      });
      toggle.setAttribute("aria-expanded", String(this.open === user));
      buttons.append(toggle);
      if (this.open === user) li.append(this.tools(user, actions));
    }
    return li;
  }

  /** The moderation tools for `user`: a reason, a ban's length, one button per action. */
  tools(user, actions) {
    const box = el("div", "member-tools");
    const reason = el("input");
    reason.placeholder = "Reason (optional)";
    reason.maxLength = 500;
    reason.setAttribute("aria-label", `Reason for ${user}`);
    const length = el("select");
    length.setAttribute("aria-label", "Ban for");
    for (const [text, seconds] of BAN_LENGTHS) {
      const option = el("option", "", text);
      option.value = String(seconds);
      length.append(option);
    }
    const buttons = el("div", "member-actions");
    for (const action of actions) {
      buttons.append(
        button(actionLabel(action), () =>
          this.act(action, user, { reason: reason.value, durationS: Number(length.value) }),
        ),
      );
    }
    box.append(reason, length, buttons);
    return box;
  }

  /** One ModerateRoom call; a refusal shows in the panel. Resolves to whether it was done. */
  async act(action, user, options = {}) {
    this.problem("");
    try {
      await call("ModerateRoom", moderateRequest(this.room, action, user, options));
    } catch (error) {
      this.problem(error instanceof ApiError ? `Refused: ${error.message}` : "Cannot reach the server: try again.");
      if (action === "private") this.els.privateInput.checked = !options.private;
      if (action === "keep") this.els.keepInput.checked = !options.kept;
      return false;
    }
    if (user && this.open === user) this.open = "";
    if (action === "keep") this.kept = Boolean(options.kept);
    this.render();
    return true;
  }

  async block(user, on) {
    this.problem("");
    try {
      await call(on ? "Block" : "Unblock", { user });
    } catch (error) {
      this.problem(error instanceof ApiError ? `Refused: ${error.message}` : "Cannot reach the server: try again.");
      return;
    }
    const users = new Set(this.blocked);
    if (on) users.add(user);
    else users.delete(user);
    this.setBlocked([...users]);
  }

  problem(text) {
    this.els.problem.textContent = text;
  }
}
