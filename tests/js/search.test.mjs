// Search requests, hits, snippets; the new ClientEvents on the wire.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  deleteEvent,
  editEvent,
  entryEvent,
  eventKey,
  eventKind,
  markReadEvent,
  reactEvent,
  sendEvent,
  typingEvent,
} from "../../chatrpc/web/static/js/protocol.js";
import { hitKey, queryWords, searchBody, snippetParts, windowBody } from "../../chatrpc/web/static/js/search.js";

test("a search is scoped to a conversation or to all", () => {
  assert.deepEqual(searchBody(" deploy friday ", ""), { query: "deploy friday", limit: 20 });
  assert.deepEqual(searchBody("x", "#dev", "tok"), { query: "x", limit: 20, room: "dev", pageToken: "tok" });
  assert.deepEqual(searchBody("x", "@bob"), { query: "x", limit: 20, withUser: "bob" });
});

test("a hit opens its conversation", () => {
  assert.equal(hitKey({ message: { room: "dev", sender: "a" } }, "me"), "#dev");
  assert.equal(hitKey({ message: { toUser: "me", sender: "bob" } }, "me"), "@bob");
});

test("snippets mark the words found, at word starts, as text parts", () => {
  assert.deepEqual(queryWords('Deploy* "friday"'), ["deploy", "friday"]);
  assert.deepEqual(snippetParts("We deploy on Friday, redeploy never", "deploy friday"), [
    { text: "We ", match: false },
    { text: "deploy", match: true },
    { text: " on ", match: false },
    { text: "Friday", match: true },
    { text: ", redeploy never", match: false },
  ]);
  assert.deepEqual(snippetParts("<b>x</b>", "b"), [
    { text: "<", match: false },
    { text: "b", match: true },
    { text: ">x</", match: false },
    { text: "b", match: true },
    { text: ">", match: false },
  ]);
  assert.deepEqual(snippetParts("", "x"), []);
});

test("the History window around a hit runs from before it to what is shown", () => {
  assert.deepEqual(windowBody("#dev", 100, 400), { afterSeq: "74", limit: 500, room: "dev", beforeSeq: "400" });
  assert.deepEqual(windowBody("@bob", 3, 0), { afterSeq: "0", limit: 500, withUser: "bob" });
});

test("changes, typing and read markers go out as the contract names them", () => {
  assert.deepEqual(sendEvent("#r", "hi", "c-1", 4), { send: { room: "r", text: "hi", clientMsgId: "c-1", replyTo: "4" } });
  assert.deepEqual(editEvent("@bob", 7, "fixed", "c-2"), {
    edit: { toUser: "bob", seq: "7", text: "fixed", clientMsgId: "c-2" },
  });
  assert.deepEqual(deleteEvent("#r", 7, "c-3"), { delete: { room: "r", seq: "7", clientMsgId: "c-3" } });
  assert.deepEqual(reactEvent("#r", 7, "👍", false, "c-4"), {
    react: { room: "r", seq: "7", emoji: "👍", clientMsgId: "c-4" },
  });
  assert.deepEqual(reactEvent("#r", 7, "👍", true, "c-5").react.remove, true);
  assert.deepEqual(typingEvent("@bob"), { typing: { toUser: "bob" } });
  assert.deepEqual(markReadEvent("#r", 9), { markRead: { room: "r", seq: "9" } });
});

test("an outbox entry becomes its event again after a reconnect", () => {
  assert.deepEqual(entryEvent({ key: "#r", text: "a", clientMsgId: "1", replyTo: 3 }).send.replyTo, "3");
  assert.deepEqual(entryEvent({ key: "#r", clientMsgId: "2", change: { kind: "edit", seq: 3, text: "b" } }), {
    edit: { room: "r", seq: "3", text: "b", clientMsgId: "2" },
  });
  assert.deepEqual(entryEvent({ key: "#r", clientMsgId: "3", change: { kind: "delete", seq: 3 } }), {
    delete: { room: "r", seq: "3", clientMsgId: "3" },
  });
  assert.equal(entryEvent({ key: "#r", clientMsgId: "4", change: { kind: "react", seq: 3, emoji: "x" } }).react.emoji, "x");
});

test("the new server events are recognised", () => {
  assert.deepEqual(eventKind({ typing: { room: "r", user: "b" } }), ["typing", { room: "r", user: "b" }]);
  assert.equal(eventKind({ readMarker: { withUser: "b", user: "b", seq: "3" } })[0], "readMarker");
  assert.equal(eventKind({ ack: { seq: "3" } })[0], "ack");
  assert.equal(eventKey({ withUser: "b" }), "@b");
  assert.equal(eventKey({ room: "r" }), "#r");
});
