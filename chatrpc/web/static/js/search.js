// Search: the request, where a hit belongs, the snippet with the words found marked,
// and the History window around a message. Pure: tested with node --test.

import { messageKey, parseKey } from "./protocol.js";

/** Hits per page. */
export const SEARCH_LIMIT = 20;

/** A SearchRequest: in one conversation (`scopeKey`) or every one the user may read. */
export function searchBody(query, scopeKey = "", pageToken = "", limit = SEARCH_LIMIT) {
  const body = { query: query.trim(), limit };
  if (scopeKey) {
    const { kind, name } = parseKey(scopeKey);
    body[kind === "room" ? "room" : "withUser"] = name;
  }
  if (pageToken) body.pageToken = pageToken;
  return body;
}

/** The conversation a hit belongs to, seen by `me`. */
export function hitKey(hit, me) {
  return messageKey(hit.message || {}, me);
}

/** The words of a query, lower case, without a trailing * (a prefix search). */
export function queryWords(query) {
  return query
    .toLowerCase()
    .split(/\s+/)
    .map((w) => w.replace(/^["']+|["'*]+$/g, ""))
    .filter(Boolean);
}

/**
 * A snippet cut into parts, [{text, match}], where `match` marks the starts of words
 * that begin with a query word: the page shows matches as <mark>, all as text.
 */
export function snippetParts(snippet, query) {
  const words = queryWords(query);
  const text = snippet || "";
  if (!words.length || !text) return text ? [{ text, match: false }] : [];
  const lower = text.toLowerCase();
  const marks = [];
  for (const word of words) {
    let at = lower.indexOf(word);
    while (at >= 0) {
      const startsWord = at === 0 || !/[\p{L}\p{N}_]/u.test(lower[at - 1]);
      if (startsWord) marks.push([at, at + word.length]);
      at = lower.indexOf(word, at + 1);
    }
  }
  marks.sort((a, b) => a[0] - b[0]);
  const parts = [];
  let pos = 0;
  for (const [start, end] of marks) {
    if (start < pos) continue; // overlaps the previous mark
    if (start > pos) parts.push({ text: text.slice(pos, start), match: false });
    parts.push({ text: text.slice(start, end), match: true });
    pos = end;
  }
  if (pos < text.length) parts.push({ text: text.slice(pos), match: false });
  return parts;
}

/**
 * History requests that load a conversation from `around - context` up to `upTo`
 * (exclusive; 0: to the newest), oldest first, a page each: what is shown then runs
 * from the message found to what was there, with no hole.
 */
export function windowBody(key, around, upTo, context = 25, limit = 500) {
  const { kind, name } = parseKey(key);
  const body = { afterSeq: String(Math.max(0, around - context - 1)), limit };
  body[kind === "room" ? "room" : "withUser"] = name;
  if (upTo) body.beforeSeq = String(upTo);
  return body;
}
