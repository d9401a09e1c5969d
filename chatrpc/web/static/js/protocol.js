// The wire: proto3 JSON ClientEvents up, ServerEvents down (see README, "The web API").
// Pure functions: no DOM, no network, tested with node --test.

/** The key of a conversation: "#room" or "@user" (the other user of a DM). */
export function roomKey(room) {
  return `#${room}`;
}

export function dmKey(user) {
  return `@${user}`;
}

/** {kind: "room"|"dm", name} of a conversation key. */
export function parseKey(key) {
  return { kind: key.startsWith("#") ? "room" : "dm", name: key.slice(1) };
}

/** A uint64 from proto3 JSON (a string, absent when 0) as a number. */
export function seqOf(value) {
  if (value === undefined || value === null || value === "") return 0;
  const n = Number(value);
  return Number.isSafeInteger(n) && n >= 0 ? n : 0;
}

/** The conversation a message belongs to, seen by `me`. */
export function messageKey(message, me) {
  if (message.room) return roomKey(message.room);
  return dmKey(message.sender === me ? message.toUser : message.sender);
}

/** The conversation of an event naming `room` or `withUser` (typing, readMarker, joined). */
export function eventKey(body) {
  return body.room ? roomKey(body.room) : dmKey(body.withUser || "");
}

/** The events of one frame, in order (a `batch` frame holds several). */
export function decodeFrame(text) {
  const event = JSON.parse(text);
  if (event && event.batch) return event.batch.events || [];
  return [event];
}

/** The kind of a ServerEvent ("message", "joined", ...) and its body. */
export function eventKind(event) {
  for (const kind of ["message", "presence", "joined", "left", "error", "ack", "typing", "readMarker", "invitation"]) {
    if (event[kind] !== undefined) return [kind, event[kind]];
  }
  return ["unknown", event];
}

/** A join of a conversation, resuming after `cursor` ({seq, epoch}) when there is one. */
export function joinEvent(key, cursor) {
  const { kind, name } = parseKey(key);
  const join = kind === "room" ? { room: name } : { withUser: name };
  if (cursor) {
    join.afterSeq = String(cursor.seq);
    if (cursor.epoch) join.epoch = cursor.epoch;
  }
  return { join };
}

export function leaveEvent(room) {
  return { leave: { room } };
}

/** The target fields of an event sent to a conversation: {room} or {toUser}. */
function target(key) {
  const { kind, name } = parseKey(key);
  return kind === "room" ? { room: name } : { toUser: name };
}

/** A send to a conversation key with its client_msg_id (answering `replyTo` when set). */
export function sendEvent(key, text, clientMsgId, replyTo = 0) {
  const send = { ...target(key), text, clientMsgId };
  if (replyTo) send.replyTo = String(replyTo);
  return { send };
}

/** A new text for the message `seq`. */
export function editEvent(key, seq, text, clientMsgId) {
  return { edit: { ...target(key), seq: String(seq), text, clientMsgId } };
}

export function deleteEvent(key, seq, clientMsgId) {
  return { delete: { ...target(key), seq: String(seq), clientMsgId } };
}

/** Adds (or with `remove`, takes back) the caller's `emoji` on the message `seq`. */
export function reactEvent(key, seq, emoji, remove, clientMsgId) {
  const react = { ...target(key), seq: String(seq), emoji, clientMsgId };
  if (remove) react.remove = true;
  return { react };
}

export function typingEvent(key) {
  return { typing: target(key) };
}

export function markReadEvent(key, seq) {
  return { markRead: { ...target(key), seq: String(seq) } };
}

/**
 * The ClientEvent of an outbox entry: a send ({key, text, clientMsgId, replyTo}) or a
 * change ({key, clientMsgId, change: {kind: "edit"|"delete"|"react", seq, text, emoji, remove}}).
 */
export function entryEvent(entry) {
  const change = entry.change;
  if (!change) return sendEvent(entry.key, entry.text, entry.clientMsgId, entry.replyTo || 0);
  if (change.kind === "edit") return editEvent(entry.key, change.seq, change.text, entry.clientMsgId);
  if (change.kind === "delete") return deleteEvent(entry.key, change.seq, entry.clientMsgId);
  return reactEvent(entry.key, change.seq, change.emoji, change.remove, entry.clientMsgId);
}

/** WebSocket close codes: 4000 + the gRPC status number (see README). */
export const CLOSE = {
  NORMAL: 1000,
  INVALID_ARGUMENT: 4003,
  PERMISSION_DENIED: 4007,
  RESOURCE_EXHAUSTED: 4008,
  INTERNAL: 4013,
  UNAVAILABLE: 4014,
  UNAUTHENTICATED: 4016,
};

/** What to do after the socket closed with `code`: "signin" or "retry". A revoked
 * token and a disabled account (PERMISSION_DENIED) both end at the sign-in form:
 * retrying with the same credentials could never succeed. */
export function afterClose(code) {
  return code === CLOSE.UNAUTHENTICATED || code === CLOSE.PERMISSION_DENIED ? "signin" : "retry";
}

/** A fresh client_msg_id: printable ASCII, unique per user (random + counter). */
let counter = 0;
export function newClientMsgId(random = Math.random) {
  counter += 1;
  const r = Math.floor(random() * 2 ** 48).toString(36);
  return `w-${Date.now().toString(36)}-${r}-${counter}`;
}

/** A message text as shown: `/me waves` from bob is an action "* bob waves". */
export function display(message) {
  const text = message.text || "";
  if (text.startsWith("/me ")) return { action: true, text: `* ${message.sender} ${text.slice(4)}` };
  return { action: false, text };
}
