// Typing notices, unread and mention counts, read markers, "seen" in a DM.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Throttle, TypingBoard, isTypingText, typingLabel } from "../../chatrpc/web/static/js/typing.js";
import { ReadState, mentionsMe, readTarget, seenSeq } from "../../chatrpc/web/static/js/unread.js";

test("typing goes out at most once every 3 s per conversation", () => {
  const t = new Throttle(3000);
  assert.equal(t.take("#r", 1000), true);
  assert.equal(t.take("#r", 2000), false);
  assert.equal(t.wait("#r", 2000), 2000);
  assert.equal(t.take("@bob", 2000), true);
  assert.equal(t.take("#r", 4000), true);
});

test("commands are not typing; text and /me are", () => {
  assert.equal(isTypingText("hello"), true);
  assert.equal(isTypingText("/join x"), false);
  assert.equal(isTypingText("/me waves"), true);
  assert.equal(isTypingText("   "), false);
});

test("a typing notice shows for 6 s unless renewed, and ends with the message", () => {
  const b = new TypingBoard(6000);
  b.notice("#r", "bob", 0);
  b.notice("#r", "alice", 1000);
  assert.deepEqual(b.typing("#r", 5000), ["alice", "bob"]);
  assert.equal(b.nextExpiry("#r"), 6000);
  assert.deepEqual(b.typing("#r", 6000), ["alice"]);
  b.notice("#r", "alice", 6500);
  assert.deepEqual(b.typing("#r", 8000), ["alice"]);
  assert.equal(b.clear("#r", "alice"), true);
  assert.deepEqual(b.typing("#r", 8000), []);
  assert.equal(b.nextExpiry("#r"), null);
  assert.deepEqual(b.typing("#other", 0), []);
});

test("typing labels read as sentences", () => {
  assert.equal(typingLabel([]), "");
  assert.equal(typingLabel(["alice"]), "alice is typing…");
  assert.equal(typingLabel(["alice", "bob"]), "alice and bob are typing…");
  assert.equal(typingLabel(["a", "b", "c"]), "a, b and 1 other are typing…");
  assert.equal(typingLabel(["a", "b", "c", "d"]), "a, b and 2 others are typing…");
});

test("a mention is @name as a whole word, in any case", () => {
  assert.equal(mentionsMe("hi @bob!", "bob"), true);
  assert.equal(mentionsMe("@Bob: look", "bob"), true);
  assert.equal(mentionsMe("see @bob.", "bob"), true);
  assert.equal(mentionsMe("@bobby", "bob"), false);
  assert.equal(mentionsMe("@bob.smith", "bob"), false);
  assert.equal(mentionsMe("mail bob@bob", "bob"), false);
  assert.equal(mentionsMe("a.b and @a.b", "a.b"), true);
  assert.equal(mentionsMe("axb @axb", "a.b"), false); // the dot is not a wildcard
  assert.equal(mentionsMe("(@bob) and @bob-", "bob"), true);
  assert.equal(mentionsMe("@bob-smith", "bob"), false);
  assert.equal(mentionsMe("x.@bob", "bob"), false);
});

test("unread counts start from the listing and grow with others' new messages, once", () => {
  const r = new ReadState();
  r.fromListing("#r", { unread: 2, mentions: 1, readSeq: "3", lastSeq: "5" });
  assert.deepEqual(r.counts("#r"), { unread: 2, mentions: 1 });
  const m = (seq, sender, text, extra = {}) => ({ seq: String(seq), room: "r", sender, text, ...extra });
  assert.deepEqual(r.onMessage("#r", m(4, "bob", "old"), "me"), { unread: false, mention: false });
  assert.deepEqual(r.onMessage("#r", m(6, "bob", "hi @me"), "me"), { unread: true, mention: true });
  assert.deepEqual(r.onMessage("#r", m(6, "bob", "hi @me"), "me"), { unread: false, mention: true });
  r.onMessage("#r", m(7, "me", "mine"), "me");
  r.onMessage("#r", m(8, "bob", "", { kind: "EDIT", targetSeq: "6" }), "me");
  r.onMessage("#r", m(9, "bob", "more"), "me");
  assert.deepEqual(r.counts("#r"), { unread: 4, mentions: 2 });
});

test("a read marker brings the counts down; it never moves back", () => {
  const r = new ReadState();
  r.fromListing("#r", { unread: 2, mentions: 1, readSeq: "3", lastSeq: "5" });
  const m = (seq) => ({ seq: String(seq), room: "r", sender: "bob", text: "x" });
  r.onMessage("#r", m(6), "me");
  r.onMessage("#r", m(7), "me");
  assert.equal(r.onRead("#r", 6), true);
  assert.deepEqual(r.counts("#r"), { unread: 1, mentions: 0 });
  assert.equal(r.onRead("#r", 4), false);
  assert.equal(r.readSeq("#r"), 6);
  r.onRead("#r", 7);
  assert.deepEqual(r.counts("#r"), { unread: 0, mentions: 0 });
  // A listing read already: nothing unread.
  r.fromListing("@bob", { unread: 0, readSeq: "9", lastSeq: "9", peerReadSeq: "4" });
  assert.deepEqual(r.counts("@bob"), { unread: 0, mentions: 0 });
  assert.equal(r.peerReadSeq("@bob"), 4);
  assert.equal(r.onPeerRead("@bob", 3), false);
  assert.equal(r.onPeerRead("@bob", 8), true);
});

test("what is marked read: all when at the bottom, else what is in view", () => {
  assert.equal(readTarget({ newestItem: 12, newestVisible: 10, atBottom: true, readSeq: 0 }), 12);
  assert.equal(readTarget({ newestItem: 12, newestVisible: 10, atBottom: false, readSeq: 4 }), 10);
  assert.equal(readTarget({ newestItem: 12, newestVisible: 10, atBottom: true, readSeq: 12 }), 0);
});

test("'seen' goes under my newest message the peer has read", () => {
  assert.equal(seenSeq([2, 5, 9], 7), 5);
  assert.equal(seenSeq([2, 5, 9], 9), 9);
  assert.equal(seenSeq([2, 5, 9], 1), 0);
  assert.equal(seenSeq([], 5), 0);
});
