// Room events as notices, who may do what, the ModerateRoom requests, why a room was left.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  actionLabel,
  banEnd,
  describe,
  invitationLine,
  isRoomEvent,
  leftNotice,
  refusedJoin,
  memberActions,
  moderateRequest,
  roleOf,
  settingsFor,
} from "../../chatrpc/web/static/js/moderation.js";

const ev = (kind, extra = {}) => ({ seq: "7", room: "ops", sender: "alice", kind, ...extra });

test("room events are told apart from messages and changes, by name or number", () => {
  assert.equal(isRoomEvent(ev("KICK")), true);
  assert.equal(isRoomEvent(ev(12)), true); // ROLE
  assert.equal(isRoomEvent(ev(4)), true); // TOPIC
  assert.equal(isRoomEvent({ seq: "1", text: "hi" }), false);
  assert.equal(isRoomEvent(ev("EDIT")), false);
  assert.equal(isRoomEvent(ev(3)), false); // REACTION
});

test("each room event reads as a sentence naming who acted, on whom, and why", () => {
  assert.equal(describe(ev("TOPIC", { text: "release on friday" })), "alice set the topic: release on friday");
  assert.equal(describe(ev("TOPIC")), "alice cleared the topic");
  assert.equal(describe(ev("PRIVACY", { private: true })), "#ops is now private (invite-only), set by alice");
  assert.equal(describe(ev("PRIVACY")), "#ops is now public, set by alice");
  assert.equal(describe(ev("INVITE", { targetUser: "dave" })), "dave was invited by alice");
  assert.equal(describe(ev("KICK", { targetUser: "bob", text: "spam" })), "bob was kicked by alice: spam");
  assert.equal(describe(ev("KICK", { targetUser: "bob", text: "  " })), "bob was kicked by alice");
  assert.equal(
    describe(ev("BAN", { targetUser: "bob", text: "again", banUntil: "2026-12-01T14:05:09Z" })),
    "bob was banned by alice until 2026-12-01 14:05 UTC: again",
  );
  assert.equal(describe(ev("BAN", { targetUser: "bob" })), "bob was banned by alice");
  assert.equal(describe(ev("UNBAN", { targetUser: "bob" })), "bob was unbanned by alice");
  assert.equal(describe(ev("MUTE", { targetUser: "bob", text: "cool off" })), "bob was muted by alice: cool off");
  assert.equal(describe(ev("UNMUTE", { targetUser: "bob" })), "bob was unmuted by alice");
  assert.equal(describe(ev("ROLE", { targetUser: "carol", role: "MODERATOR" })), "carol is now a moderator (set by alice)");
  assert.equal(describe(ev("ROLE", { targetUser: "carol", role: "OWNER" })), "carol is now an owner (set by alice)");
  // proto3 JSON leaves MEMBER (0) out.
  assert.equal(describe(ev("ROLE", { targetUser: "carol" })), "carol is now a member (set by alice)");
  assert.equal(describe(ev("KEEP", { kept: true })), "alice kept the room");
  assert.equal(describe(ev("KEEP", { text: "done" })), "alice let the room be pruned when empty: done");
  assert.equal(isRoomEvent(ev(13)), true); // KEEP by number
  // The admin service acts with no sender.
  assert.equal(describe(ev("KICK", { sender: "", targetUser: "bob" })), "bob was kicked by the operator");
});

test("markup in a topic or a reason stays the characters it is (the page sets text)", () => {
  const line = describe(ev("TOPIC", { text: "<img src=x onerror=alert(1)>" }));
  assert.equal(line, "alice set the topic: <img src=x onerror=alert(1)>");
});

test("roles read from names or numbers, anything else is a member", () => {
  assert.equal(roleOf("OWNER"), "owner");
  assert.equal(roleOf("MODERATOR"), "moderator");
  assert.equal(roleOf(2), "owner");
  assert.equal(roleOf(1), "moderator");
  assert.equal(roleOf(undefined), "member");
  assert.equal(roleOf("ADMIN"), "member");
  assert.equal(roleOf(9), "member");
});

test("a ban's end is the same on every machine; none for a ban until lifted", () => {
  assert.equal(banEnd("2027-01-02T03:04:05.678Z"), "2027-01-02 03:04 UTC");
  assert.equal(banEnd(""), "");
  assert.equal(banEnd("not a time"), "");
});

test("owners act on anyone but themselves and give roles; moderators on members only", () => {
  assert.deepEqual(memberActions("alice", "owner", "bob", "member"), [
    "kick",
    "ban",
    "unban",
    "mute",
    "unmute",
    "role:owner",
    "role:moderator",
  ]);
  assert.deepEqual(memberActions("alice", "owner", "bob", "moderator").slice(-2), ["role:owner", "role:member"]);
  assert.deepEqual(memberActions("alice", "owner", "alice", "owner"), []);
  assert.deepEqual(memberActions("mo", "moderator", "bob", "member"), ["kick", "ban", "unban", "mute", "unmute"]);
  assert.deepEqual(memberActions("mo", "moderator", "alice", "owner"), []);
  assert.deepEqual(memberActions("mo", "moderator", "mia", "moderator"), []);
  assert.deepEqual(memberActions("bob", "member", "carol", "member"), []);
  assert.deepEqual(memberActions("bob", "member", "alice", "owner"), []);
});

test("the settings a role may change: privacy is for owners", () => {
  assert.deepEqual(settingsFor("owner"), { topic: true, invite: true, private: true, keep: true });
  assert.deepEqual(settingsFor("moderator"), { topic: true, invite: true, private: false, keep: false });
  assert.deepEqual(settingsFor("member"), { topic: false, invite: false, private: false, keep: false });
});

test("action labels", () => {
  assert.equal(actionLabel("kick"), "Kick");
  assert.equal(actionLabel("role:moderator"), "Make moderator");
});

test("each action becomes its ModerateRoom request in proto3 JSON", () => {
  assert.deepEqual(moderateRequest("ops", "topic", "", { topic: "hi" }), { room: "ops", setTopic: "hi" });
  assert.deepEqual(moderateRequest("ops", "topic", ""), { room: "ops", setTopic: "" });
  assert.deepEqual(moderateRequest("ops", "private", "", { private: false }), { room: "ops", setPrivate: false });
  assert.deepEqual(moderateRequest("ops", "private", "", { private: true }), { room: "ops", setPrivate: true });
  assert.deepEqual(moderateRequest("ops", "keep", "", { kept: true }), { room: "ops", setKept: true });
  assert.deepEqual(moderateRequest("ops", "keep", ""), { room: "ops", setKept: false });
  assert.deepEqual(moderateRequest("ops", "invite", "dave"), { room: "ops", invite: "dave" });
  assert.deepEqual(moderateRequest("ops", "kick", "bob", { reason: " spam " }), {
    room: "ops",
    kick: "bob",
    reason: "spam",
  });
  assert.deepEqual(moderateRequest("ops", "ban", "bob", { durationS: "3600", reason: "again" }), {
    room: "ops",
    reason: "again",
    ban: { user: "bob", durationS: 3600, reason: "again" },
  });
  assert.deepEqual(moderateRequest("ops", "ban", "bob", { durationS: -5 }), {
    room: "ops",
    ban: { user: "bob", durationS: 0 },
  });
  assert.deepEqual(moderateRequest("ops", "unmute", "bob"), { room: "ops", unmute: "bob" });
  assert.deepEqual(moderateRequest("ops", "role:moderator", "carol"), {
    room: "ops",
    setRole: { user: "carol", role: "MODERATOR" },
  });
  assert.throws(() => moderateRequest("ops", "explode", "bob"), /unknown action/);
});

test("a left event says why the membership ended", () => {
  assert.equal(leftNotice({ room: "ops" }), "You left #ops.");
  assert.equal(leftNotice({ room: "ops", reason: "kicked by alice: spam: lots" }), "You were kicked from #ops by alice: spam: lots");
  assert.equal(leftNotice({ room: "ops", reason: "kicked by alice" }), "You were kicked from #ops by alice");
  assert.equal(leftNotice({ room: "ops", reason: "banned by the operator: trolling" }), "You were banned from #ops by the operator: trolling");
  assert.equal(leftNotice({ room: "ops", reason: "room deleted" }), "You are no longer in #ops (room deleted).");
});

test("an invitation reads as who invited to which room, and why", () => {
  assert.equal(invitationLine({ room: "ops", by: "alice", reason: "welcome" }), "alice invited you to #ops: welcome");
  assert.equal(invitationLine({ room: "ops", by: "alice" }), "alice invited you to #ops");
});

test("a refused join is told by its room's name among the joins not yet acknowledged", () => {
  const pending = ["ops", "op"];
  assert.equal(refusedJoin({ code: "NOT_FOUND", message: "no room named #op" }, pending), "op");
  assert.equal(refusedJoin({ code: "NOT_FOUND", message: "no room named #ops" }, pending), "ops");
  assert.equal(
    refusedJoin({ code: "PERMISSION_DENIED", message: "you are banned from #ops until 14:00 UTC" }, pending),
    "ops",
  );
  assert.equal(refusedJoin({ code: 5, message: "no room named #ops" }, pending), "ops");
  // Not a join's refusal: a send's (it names its client_msg_id), another code, another room.
  assert.equal(refusedJoin({ code: "NOT_FOUND", message: "no room named #ops", clientMsgId: "c1" }, pending), "");
  assert.equal(refusedJoin({ code: "INVALID_ARGUMENT", message: "bad #ops" }, pending), "");
  assert.equal(refusedJoin({ code: "NOT_FOUND", message: "no room named #opsx" }, ["ops"]), "");
  assert.equal(refusedJoin({ code: "NOT_FOUND", message: "no room named #dev" }, pending), "");
  assert.equal(refusedJoin({ code: "NOT_FOUND" }, pending), "");
});
