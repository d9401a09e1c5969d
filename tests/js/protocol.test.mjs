// The browser client's pure modules: the JSON codec, cursors and resume rules, backoff,
// commands. Run by tests/test_web_js.py (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff } from "../../chatrpc/web/static/js/backoff.js";
import { CommandError, parseLine } from "../../chatrpc/web/static/js/commands.js";
import { Cursors, Outbox, Timeline } from "../../chatrpc/web/static/js/cursor.js";
import {
  afterClose,
  decodeFrame,
  display,
  eventKind,
  joinEvent,
  messageKey,
  newClientMsgId,
  sendEvent,
  seqOf,
} from "../../chatrpc/web/static/js/protocol.js";

test("a batch frame decodes to its events in order, a lone event to itself", () => {
  const a = { message: { seq: "1", room: "r", sender: "x", text: "a" } };
  const b = { presence: { room: "r", user: "y", kind: "JOINED" } };
  assert.deepEqual(decodeFrame(JSON.stringify({ batch: { events: [a, b] } })), [a, b]);
  assert.deepEqual(decodeFrame(JSON.stringify(a)), [a]);
  assert.deepEqual(eventKind(b), ["presence", b.presence]);
});

test("uint64 fields arrive as strings or not at all", () => {
  assert.equal(seqOf("42"), 42);
  assert.equal(seqOf(undefined), 0);
  assert.equal(seqOf("not a number"), 0);
  assert.equal(seqOf("-3"), 0);
});

test("joins resume from a cursor, sends carry their client_msg_id", () => {
  assert.deepEqual(joinEvent("#general", null), { join: { room: "general" } });
  assert.deepEqual(joinEvent("@bob", { seq: 7, epoch: "e1" }), {
    join: { withUser: "bob", afterSeq: "7", epoch: "e1" },
  });
  assert.deepEqual(sendEvent("@bob", "hi", "c-1"), {
    send: { toUser: "bob", text: "hi", clientMsgId: "c-1" },
  });
  assert.deepEqual(sendEvent("#r", "hi", "c-2"), { send: { room: "r", text: "hi", clientMsgId: "c-2" } });
});

test("a DM belongs to the other user's conversation, whoever sent it", () => {
  assert.equal(messageKey({ sender: "alice", toUser: "bob" }, "alice"), "@bob");
  assert.equal(messageKey({ sender: "bob", toUser: "alice" }, "alice"), "@bob");
  assert.equal(messageKey({ sender: "bob", room: "general" }, "alice"), "#general");
});

test("client_msg_ids are printable ASCII and unique", () => {
  const ids = new Set(Array.from({ length: 1000 }, () => newClientMsgId()));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^[!-~]{1,64}$/);
});

test("only a revoked token or a disabled account sends the page back to sign-in", () => {
  assert.equal(afterClose(4016), "signin");
  assert.equal(afterClose(4007), "signin");
  for (const code of [1000, 1006, 4003, 4008, 4013, 4014]) assert.equal(afterClose(code), "retry");
});

test("/me texts show as actions, other texts as they are", () => {
  assert.deepEqual(display({ sender: "bob", text: "/me waves" }), { action: true, text: "* bob waves" });
  assert.deepEqual(display({ sender: "bob", text: "<img src=x>" }), { action: false, text: "<img src=x>" });
});

test("a timeline holds each seq once, in order, wherever it arrives from", () => {
  const t = new Timeline();
  assert.equal(t.add(5, "e"), 0);
  assert.equal(t.add(3, "c"), 5); // goes before 5
  assert.equal(t.add(9, "i"), 0);
  assert.equal(t.add(5, "again"), null); // a replay overlapping what is shown
  assert.equal(t.add(4, "d"), 5);
  assert.deepEqual(t.messages(), ["c", "d", "e", "i"]);
  assert.equal(t.oldest, 3);
  assert.equal(t.newest, 9);
});

test("a cursor only moves forward and survives a reload", () => {
  const c = new Cursors();
  c.advance("#r", 3, "e1");
  c.advance("#r", 2, "");
  assert.deepEqual(c.get("#r"), { seq: 3, epoch: "e1" });
  const again = new Cursors(JSON.parse(JSON.stringify(c)));
  assert.deepEqual(again.get("#r"), { seq: 3, epoch: "e1" });
});

test("a fresh join starts the cursor where the conversation is", () => {
  const c = new Cursors();
  assert.deepEqual(c.joined("#r", { epoch: "e1", lastSeq: "12" }), { action: "fresh", lastSeq: 12 });
  assert.deepEqual(c.get("#r"), { seq: 12, epoch: "e1" });
});

test("a complete resume needs nothing more", () => {
  const c = new Cursors({ "#r": { seq: 10, epoch: "e1" } });
  assert.deepEqual(c.joined("#r", { epoch: "e1", lastSeq: "12", complete: true, replayed: 2 }), {
    action: "ok",
  });
});

test("an incomplete resume fills the gap from History", () => {
  const c = new Cursors({ "#r": { seq: 10, epoch: "e1" } });
  // 2,000 missed, the newest 1,000 replayed: 11..1000 come from History.
  assert.deepEqual(c.joined("#r", { epoch: "e1", lastSeq: "2010", replayed: 1000 }), {
    action: "fill",
    from: 10,
    to: 1011,
  });
});

test("another epoch means another history: start again from it", () => {
  const c = new Cursors({ "#r": { seq: 10, epoch: "e1" } });
  assert.deepEqual(c.joined("#r", { epoch: "e2", lastSeq: "4", replayed: 4 }), {
    action: "reset",
    lastSeq: 4,
  });
  assert.deepEqual(c.get("#r"), { seq: 4, epoch: "e2" });
});

test("the outbox keeps unacknowledged sends in order until settled", () => {
  const o = new Outbox();
  o.add({ key: "#r", text: "a", clientMsgId: "1" });
  o.add({ key: "@b", text: "b", clientMsgId: "2" });
  const restored = new Outbox(JSON.parse(JSON.stringify(o)));
  assert.deepEqual(restored.settle("1"), { key: "#r", text: "a", clientMsgId: "1" });
  assert.equal(restored.settle("1"), null);
  assert.deepEqual(restored.pending("@b").map((e) => e.text), ["b"]);
});

test("backoff doubles up to its cap, with jitter, and resets", () => {
  let r = 0;
  const b = new Backoff({ base: 100, cap: 1000, random: () => r });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [50, 100, 200, 400, 500]);
  r = 0.999;
  assert.ok(b.next() <= 1000);
  b.reset();
  r = 0.5;
  assert.equal(b.next(), 75);
});

test("backoff waits vary between clients (jitter)", () => {
  const waits = new Set(Array.from({ length: 20 }, () => new Backoff({ base: 1000 }).next()));
  assert.ok(waits.size > 1);
});

test("commands parse as in the terminal client", () => {
  assert.deepEqual(parseLine("hello"), { name: "say", text: "hello" });
  assert.deepEqual(parseLine("//slash"), { name: "say", text: "/slash" });
  assert.deepEqual(parseLine("/join #General"), { name: "join", target: "general" });
  assert.deepEqual(parseLine("/msg bob hi there"), { name: "msg", target: "bob", text: "hi there" });
  assert.deepEqual(parseLine("/me waves"), { name: "me", text: "/me waves" });
  assert.deepEqual(parseLine("/who"), { name: "who", target: "" });
  assert.deepEqual(parseLine("/part dev"), { name: "leave", target: "dev" });
  assert.deepEqual(parseLine("/history 5"), { name: "history", count: 5 });
  assert.equal(parseLine("   "), null);
  assert.throws(() => parseLine("/nope"), CommandError);
  assert.throws(() => parseLine("/msg bob"), /usage: \/msg USER TEXT/);
});
