// Stored changes (edits, deletes, reactions) folded into the messages they apply to.
// Pure: no DOM, no network, tested with node --test.
//
// A change is an item of its conversation with its own seq, naming its message in
// targetSeq. It can arrive live, in a replay, or from History, before or after the
// message it changes, and more than once. The state of a message is its base (the
// item as the server sent it: as committed when live or replayed, its current state
// from History) with every change newer than that base applied in seq order. Each
// change sets one thing (the text, deleted, one user's reaction with one emoji), so
// applying again a change the base already holds leaves the same state.

/** proto3 JSON names of Message.Kind (the enum's numbers are accepted too). */
export const KINDS = [
  "MESSAGE",
  "EDIT",
  "DELETE",
  "REACTION",
  // Room events (moderation.js shows them as notices).
  "TOPIC",
  "PRIVACY",
  "INVITE",
  "KICK",
  "BAN",
  "UNBAN",
  "MUTE",
  "UNMUTE",
  "ROLE",
  "KEEP",
];

/** The kind of a stored item: "MESSAGE" when absent (proto3 JSON leaves defaults out). */
export function kindOf(message) {
  const kind = message.kind;
  if (kind === undefined || kind === null || kind === "") return "MESSAGE";
  if (typeof kind === "number") return KINDS[kind] || `KIND_${kind}`;
  return kind;
}

/** Whether an item changes another (edit, delete, reaction) rather than being shown. */
export function isChange(message) {
  const kind = kindOf(message);
  return kind === "EDIT" || kind === "DELETE" || kind === "REACTION";
}

function num(value) {
  const n = Number(value || 0);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

/** Orders strings by code point, as the server sorts emoji (UTF-16 order differs). */
export function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

/**
 * A copy of a reactions list, [{emoji, users}], with `user` added to (or taken from)
 * `emoji`; sorted by emoji and users by name, as History returns them.
 */
export function toggleReaction(reactions, emoji, user, remove) {
  const out = [];
  let found = false;
  for (const r of reactions || []) {
    if (r.emoji !== emoji) {
      out.push({ emoji: r.emoji, users: [...(r.users || [])] });
      continue;
    }
    found = true;
    const users = new Set(r.users || []);
    if (remove) users.delete(user);
    else users.add(user);
    if (users.size) out.push({ emoji, users: [...users].sort() });
  }
  if (!found && !remove) out.push({ emoji, users: [user] });
  return out.sort((a, b) => byCodePoint(a.emoji, b.emoji));
}

/** `state` with one change applied (a new object; `state` is left as it was). */
export function applyChange(state, change) {
  const kind = kindOf(change);
  if (kind === "EDIT") {
    if (state.deleted) return state; // the server refuses it; a replayed one holds no text
    return { ...state, text: change.text || "", edited: true };
  }
  if (kind === "DELETE") return { ...state, text: "", deleted: true, reactions: [] };
  if (kind === "REACTION") {
    if (state.deleted) return state;
    const reactions = toggleReaction(state.reactions, change.emoji || "", change.sender, Boolean(change.remove));
    return { ...state, reactions };
  }
  return state;
}

/** The messages of one conversation in their current state, from bases and changes. */
export class Folder {
  constructor() {
    this.bases = new Map(); // seq -> {message, asOf}
    this.changes = new Map(); // target seq -> Map(seq -> change)
    this.states = new Map(); // seq -> folded state (a cache)
  }

  /**
   * Records a MESSAGE item; `asOf` is the newest seq its state holds: its own seq when
   * live or replayed, the conversation's last seq when it came from History. A base
   * holding more replaces one holding less. Returns the seq to show again.
   */
  addMessage(message, asOf) {
    const seq = num(message.seq);
    const old = this.bases.get(seq);
    if (!old || asOf > old.asOf) this.bases.set(seq, { message, asOf });
    this.states.delete(seq);
    return seq;
  }

  /** Records a change item; returns the seq of the message it changes (to show again). */
  addChange(change) {
    const target = num(change.targetSeq);
    let changes = this.changes.get(target);
    if (!changes) {
      changes = new Map();
      this.changes.set(target, changes);
    }
    changes.set(num(change.seq), change);
    this.states.delete(target);
    return target;
  }

  has(seq) {
    return this.bases.has(seq);
  }

  /** The message `seq` in its current state, or null when it is not here. */
  state(seq) {
    const cached = this.states.get(seq);
    if (cached) return cached;
    const base = this.bases.get(seq);
    if (!base) return null;
    const m = base.message;
    let state = {
      ...m,
      seq,
      text: m.deleted ? "" : m.text || "",
      edited: Boolean(m.edited),
      deleted: Boolean(m.deleted),
      reactions: (m.reactions || []).map((r) => ({ emoji: r.emoji, users: [...(r.users || [])] })),
      replyTo: num(m.replyTo),
    };
    const changes = this.changes.get(seq);
    if (changes) {
      const newer = [...changes.keys()].filter((s) => s > base.asOf).sort((a, b) => a - b);
      for (const s of newer) state = applyChange(state, changes.get(s));
    }
    this.states.set(seq, state);
    return state;
  }

  clear() {
    this.bases.clear();
    this.changes.clear();
    this.states.clear();
  }
}

/** What the menu of a message offers `me`: everyone replies and reacts; the author edits and deletes. */
export function menuActions(state, me) {
  if (!state || state.deleted) return [];
  const actions = ["reply", "react"];
  if (state.sender === me) actions.push("edit", "delete");
  return actions;
}

/** The newest of `me`'s messages that can still be edited (for the Up key), or null. */
export function lastEditable(states, me) {
  for (let i = states.length - 1; i >= 0; i -= 1) {
    const s = states[i];
    if (s && s.sender === me && !s.deleted) return s;
  }
  return null;
}

/** A one-line quote of a message answered: "alice: the first words…". */
export function quoteLine(state, max = 80) {
  if (!state) return "a message not loaded here";
  if (state.deleted) return `${state.sender}: message deleted`;
  const flat = (state.text || "").replace(/\s+/g, " ").trim();
  const cut = flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
  return `${state.sender}: ${cut}`;
}

/** Common emoji offered by the picker. */
export const PICKER = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];
