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

/** The events of one frame, in order (a `batch` frame holds several). */
export function decodeFrame(text) {
  const event = JSON.parse(text);
  if (event && event.batch) return event.batch.events || [];
  return [event];
}

/** The kind of a ServerEvent ("message", "joined", ...) and its body. */
export function eventKind(event) {
  for (const kind of ["message", "presence", "joined", "left", "error"]) {
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

/** A send to a conversation key with its client_msg_id. */
export function sendEvent(key, text, clientMsgId) {
  const { kind, name } = parseKey(key);
  const send = kind === "room" ? { room: name } : { toUser: name };
  return { send: { ...send, text, clientMsgId } };
}

/** WebSocket close codes: 4000 + the gRPC status number (see README). */
export const CLOSE = {
  NORMAL: 1000,
  INVALID_ARGUMENT: 4003,
  RESOURCE_EXHAUSTED: 4008,
  INTERNAL: 4013,
  UNAVAILABLE: 4014,
  UNAUTHENTICATED: 4016,
};

/** What to do after the socket closed with `code`: "signin" or "retry". */
export function afterClose(code) {
  return code === CLOSE.UNAUTHENTICATED ? "signin" : "retry";
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
