// Folding stored changes (edits, deletes, reactions) into messages; the menu and the Up key.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Folder,
  applyChange,
  byCodePoint,
  isChange,
  kindOf,
  lastEditable,
  menuActions,
  quoteLine,
  toggleReaction,
} from "../../chatrpc/web/static/js/changes.js";

const msg = (seq, sender, text, extra = {}) => ({ seq: String(seq), room: "r", sender, text, ...extra });
const edit = (seq, target, sender, text) => msg(seq, sender, text, { kind: "EDIT", targetSeq: String(target) });
const del = (seq, target, sender) => msg(seq, sender, "", { kind: "DELETE", targetSeq: String(target) });
const react = (seq, target, sender, emoji, remove = false) =>
  msg(seq, sender, "", { kind: "REACTION", targetSeq: String(target), emoji, ...(remove ? { remove } : {}) });

test("an absent kind is a message; names and numbers both read", () => {
  assert.equal(kindOf({}), "MESSAGE");
  assert.equal(kindOf({ kind: "EDIT" }), "EDIT");
  assert.equal(kindOf({ kind: 3 }), "REACTION");
  assert.equal(isChange({ kind: "DELETE" }), true);
  assert.equal(isChange({}), false);
  assert.equal(isChange({ kind: "TOPIC" }), false); // a kind this page does not know yet
});

test("an edit replaces the text and marks it edited; a delete blanks it", () => {
  const f = new Folder();
  f.addMessage(msg(1, "alice", "helo"), 1);
  assert.equal(f.addChange(edit(2, 1, "alice", "hello")), 1);
  assert.deepEqual([f.state(1).text, f.state(1).edited, f.state(1).deleted], ["hello", true, false]);
  f.addChange(del(3, 1, "alice"));
  assert.deepEqual([f.state(1).text, f.state(1).deleted], ["", true]);
});

test("reactions add and take back one user per emoji, users sorted, empty emoji gone", () => {
  const f = new Folder();
  f.addMessage(msg(1, "alice", "hi"), 1);
  f.addChange(react(2, 1, "carol", "👍"));
  f.addChange(react(3, 1, "bob", "👍"));
  f.addChange(react(4, 1, "bob", "🎉"));
  f.addChange(react(5, 1, "bob", "👍")); // again: still once
  assert.deepEqual(f.state(1).reactions, [
    { emoji: "🎉", users: ["bob"] },
    { emoji: "👍", users: ["bob", "carol"] },
  ]);
  f.addChange(react(6, 1, "bob", "🎉", true));
  assert.deepEqual(f.state(1).reactions, [{ emoji: "👍", users: ["bob", "carol"] }]);
});

test("changes fold in seq order whatever order they arrive in, each once", () => {
  const f = new Folder();
  f.addChange(edit(5, 1, "alice", "third"));
  f.addChange(edit(3, 1, "alice", "second"));
  assert.equal(f.state(1), null); // the message is not here yet
  f.addMessage(msg(1, "alice", "first"), 1);
  assert.equal(f.state(1).text, "third");
  f.addChange(edit(3, 1, "alice", "second")); // a replay of one already folded
  assert.equal(f.state(1).text, "third");
});

test("a message from History is in its current state: older changes do not undo it", () => {
  const f = new Folder();
  // History (last seq 9) returns message 1 edited, with bob's 👍 taken back at seq 8.
  f.addMessage(msg(1, "alice", "v2", { edited: true, reactions: [] }), 9);
  f.addChange(edit(4, 1, "alice", "v1"));
  f.addChange(react(6, 1, "bob", "👍"));
  assert.deepEqual([f.state(1).text, f.state(1).reactions], ["v2", []]);
  f.addChange(react(10, 1, "bob", "❤️")); // live, after the page
  assert.deepEqual(f.state(1).reactions, [{ emoji: "❤️", users: ["bob"] }]);
  // The live copy (as committed) does not replace the current state.
  f.addMessage(msg(1, "alice", "v0"), 1);
  assert.equal(f.state(1).text, "v2");
});

test("reactions sort by code point, as the server sorts them", () => {
  // U+FF01 sorts before U+1F44D by code point, after it in UTF-16 units.
  const r = toggleReaction(toggleReaction([], "👍", "a", false), "！", "a", false);
  assert.deepEqual(r.map((x) => x.emoji), ["！", "👍"]);
  assert.ok(byCodePoint("❤️", "👍") < 0);
});

test("a deleted message stays deleted: a late edit or reaction does not bring it back", () => {
  let s = { sender: "a", text: "x", edited: false, deleted: false, reactions: [] };
  s = applyChange(s, del(2, 1, "a"));
  s = applyChange(s, edit(3, 1, "a", "back?"));
  s = applyChange(s, react(4, 1, "b", "👍"));
  assert.deepEqual([s.text, s.deleted, s.reactions], ["", true, []]);
  assert.deepEqual(toggleReaction([], "👍", "x", true), []);
});

test("the menu offers edit and delete only on your own messages, nothing on a deleted one", () => {
  assert.deepEqual(menuActions({ sender: "me" }, "me"), ["reply", "react", "edit", "delete"]);
  assert.deepEqual(menuActions({ sender: "bob" }, "me"), ["reply", "react"]);
  assert.deepEqual(menuActions({ sender: "me", deleted: true }, "me"), []);
});

test("the Up key edits your newest message that is not deleted", () => {
  const states = [
    { seq: 1, sender: "me", text: "a" },
    { seq: 2, sender: "me", text: "b" },
    { seq: 3, sender: "me", deleted: true },
    { seq: 4, sender: "bob", text: "c" },
  ];
  assert.equal(lastEditable(states, "me").seq, 2);
  assert.equal(lastEditable(states.slice(3), "me"), null);
});

test("a quote is one short line", () => {
  assert.equal(quoteLine({ sender: "a", text: "one\ntwo" }), "a: one two");
  assert.equal(quoteLine({ sender: "a", text: "x".repeat(100) }, 10), `a: ${"x".repeat(9)}…`);
  assert.equal(quoteLine({ sender: "a", deleted: true }), "a: message deleted");
  assert.equal(quoteLine(null), "a message not loaded here");
});
