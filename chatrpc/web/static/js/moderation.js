// Rooms and moderation, the pure part: a room event (TOPIC ... KEEP) as a notice line,
// who may do what given the roles, the ModerateRoom request of an action, why the
// server ended a session's membership. No DOM, no network: tested with node --test.

import { kindOf } from "./changes.js";

/** The stored items that record a moderation action (Message.Kind 4..13). */
export const ROOM_EVENTS = ["TOPIC", "PRIVACY", "INVITE", "KICK", "BAN", "UNBAN", "MUTE", "UNMUTE", "ROLE", "KEEP"];

/** Member.Role by number, as proto3 JSON may also send it. */
const ROLE_NAMES = ["member", "moderator", "owner"];

/** Whether a stored item is a room event (shown as a notice, never as a message). */
export function isRoomEvent(message) {
  return ROOM_EVENTS.includes(kindOf(message));
}

/** "owner", "moderator" or "member" from a Member.Role in proto3 JSON (absent: member). */
export function roleOf(value) {
  if (typeof value === "number") return ROLE_NAMES[value] || "member";
  const name = String(value || "").toLowerCase();
  return ROLE_NAMES.includes(name) ? name : "member";
}

function withArticle(role) {
  return role === "owner" ? "an owner" : role === "moderator" ? "a moderator" : "a member";
}

/** A ban's end as "2026-12-01 14:05 UTC" (the same on every machine). */
export function banEnd(value) {
  const at = value ? new Date(value) : null;
  if (!at || Number.isNaN(at.getTime())) return "";
  return `${at.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function because(reason) {
  const r = (reason || "").trim();
  return r ? `: ${r}` : "";
}

/** A room event as the line members read, e.g. "bob was kicked by alice: spam". */
export function describe(message) {
  const by = message.sender || "the operator"; // the admin service acts with no sender
  const who = message.targetUser || "someone";
  const room = `#${message.room || ""}`;
  const reason = because(message.text);
  switch (kindOf(message)) {
    case "TOPIC":
      return message.text ? `${by} set the topic: ${message.text}` : `${by} cleared the topic`;
    case "PRIVACY":
      return message.private
        ? `${room} is now private (invite-only), set by ${by}`
        : `${room} is now public, set by ${by}`;
    case "INVITE":
      return `${who} was invited by ${by}${reason}`;
    case "KICK":
      return `${who} was kicked by ${by}${reason}`;
    case "BAN": {
      const until = banEnd(message.banUntil);
      return `${who} was banned by ${by}${until ? ` until ${until}` : ""}${reason}`;
    }
    case "UNBAN":
      return `${who} was unbanned by ${by}${reason}`;
    case "MUTE":
      return `${who} was muted by ${by}${reason}`;
    case "UNMUTE":
      return `${who} was unmuted by ${by}${reason}`;
    case "ROLE":
      return `${who} is now ${withArticle(roleOf(message.role))} (set by ${by})${reason}`;
    case "KEEP":
      return message.kept
        ? `${by} kept the room${reason}`
        : `${by} let the room be pruned when empty${reason}`;
    default:
      return `${by} changed ${room}`;
  }
}

/** What stands for a message from a user the reader blocked. */
export const HIDDEN_TEXT = "hidden message from a blocked user";

/** What a user with `myRole` may change in the room's settings. */
export function settingsFor(myRole) {
  const staff = myRole === "owner" || myRole === "moderator";
  return { topic: staff, invite: staff, private: myRole === "owner", keep: myRole === "owner" };
}

/**
 * The moderation actions `me` (with `myRole`) may take on `user` (with `theirRole`),
 * as the server's rules allow them: none on oneself, owners act on anyone and give
 * roles, moderators act on members only. Block is for everyone (not here).
 */
export function memberActions(me, myRole, user, theirRole) {
  if (user === me) return [];
  const onUser = ["kick", "ban", "unban", "mute", "unmute"];
  if (myRole === "owner") {
    const roles = ["owner", "moderator", "member"].filter((r) => r !== theirRole).map((r) => `role:${r}`);
    return [...onUser, ...roles];
  }
  if (myRole === "moderator" && theirRole === "member") return onUser;
  return [];
}

/** A button's words for an action of memberActions. */
export function actionLabel(action) {
  if (action.startsWith("role:")) return `Make ${action.slice(5)}`;
  return action[0].toUpperCase() + action.slice(1);
}

/**
 * The ModerateRoom request (proto3 JSON) for `action` in `room`: "topic", "private",
 * "keep", "invite", or one of memberActions on `user`; `options` {reason, topic,
 * private, kept, durationS}.
 */
export function moderateRequest(room, action, user, options = {}) {
  const body = { room };
  const reason = (options.reason || "").trim();
  if (reason) body.reason = reason;
  if (action === "topic") body.setTopic = options.topic || "";
  else if (action === "private") body.setPrivate = Boolean(options.private);
  else if (action === "keep") body.setKept = Boolean(options.kept);
  else if (action === "ban") {
    body.ban = { user, durationS: Math.max(0, Math.floor(Number(options.durationS) || 0)) };
    if (reason) body.ban.reason = reason;
  } else if (action.startsWith("role:")) {
    body.setRole = { user, role: action.slice(5).toUpperCase() };
  } else if (["invite", "kick", "unban", "mute", "unmute"].includes(action)) {
    body[action] = user;
  } else {
    throw new Error(`unknown action ${action}`);
  }
  return body;
}

/**
 * The notice for a `left` event: the user's own leave, or why the server ended it
 * (the reason reads "kicked by alice: spam", "banned by alice", "room deleted").
 */
export function leftNotice(left) {
  const room = `#${left.room || ""}`;
  const reason = left.reason || "";
  if (!reason) return `You left ${room}.`;
  const match = /^(kicked|banned)(?: by ([^:]+))?(?:: ?(.*))?$/s.exec(reason);
  if (!match) return `You are no longer in ${room} (${reason}).`;
  const [, what, by, why] = match;
  const who = by ? ` by ${by.trim()}` : "";
  return `You were ${what} from ${room}${who}${because(why)}`;
}

/**
 * The room whose join `error` (an `error` event) refused, among the rooms `pending`
 * (joins sent, not yet acknowledged), or "": a private room the user may not see
 * (NOT_FOUND) or one they are banned from (PERMISSION_DENIED) names itself "#room".
 */
export function refusedJoin(error, pending) {
  if (error.clientMsgId) return "";
  if (!["NOT_FOUND", "PERMISSION_DENIED", 5, 7].includes(error.code)) return "";
  const message = error.message || "";
  for (const room of pending) {
    const at = message.indexOf(`#${room}`);
    const next = message.charAt(at + room.length + 1);
    if (at >= 0 && !/[\w-]/.test(next)) return room;
  }
  return "";
}

/** The invitation banner's line. */
export function invitationLine(invitation) {
  return `${invitation.by || "Someone"} invited you to #${invitation.room}${because(invitation.reason)}`;
}
