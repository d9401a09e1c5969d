// DOM pieces of the page. Text from the network always goes in with textContent,
// never as HTML: a message reading <img onerror=...> shows as those characters.

import { parseKey } from "./protocol.js";

function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** A message typed but not yet acknowledged, keyed by its client_msg_id. */
export function pendingItem(entry, me) {
  const item = el("li", "message pending mine");
  item.dataset.cid = entry.clientMsgId;
  item.append(el("span", "sender", me), el("span", "text", entry.text), el("span", "state", "sending…"));
  return item;
}

/** A line that is not a message: presence, command output, a problem. */
export function noticeItem(text, kind = "notice") {
  return el("li", kind, text);
}

/** A conversation in the side list, with its unread and mention counts. */
export function conversationItem(key, { current, unread, mentions }, onOpen) {
  const { kind, name } = parseKey(key);
  const button = el("button", "conversation-button");
  button.type = "button";
  button.dataset.key = key;
  if (current) button.setAttribute("aria-current", "true");
  button.append(el("span", "", kind === "room" ? `#${name}` : name));
  if (unread) {
    const badge = el("span", "badge", String(unread));
    badge.setAttribute("aria-label", `${unread} unread`);
    button.append(badge);
  }
  if (mentions) {
    const badge = el("span", "badge mentions", `@${mentions}`);
    badge.setAttribute("aria-label", `${mentions} mention${mentions > 1 ? "s" : ""}`);
    button.append(badge);
  }
  button.addEventListener("click", onOpen);
  const li = el("li");
  li.append(button);
  return li;
}
