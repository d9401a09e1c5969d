// The search box: in the current conversation or in all of them; each hit shows its
// conversation, sender, time and snippet (the words found marked), and opens the
// conversation at that message.

import { ApiError, call } from "./api.js";
import { parseKey } from "./protocol.js";
import { hitKey, searchBody, snippetParts } from "./search.js";

function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

function conversationName(key) {
  const { kind, name } = parseKey(key);
  return kind === "room" ? `#${name}` : name;
}

export class SearchPanel {
  /**
   * @param {object} parts {panel, form, input, scope, results, more, status, close, toggle}
   * @param {object} hooks me, current(): key, openAt(key, seq), shown(open)
   */
  constructor(parts, hooks) {
    this.parts = parts;
    this.hooks = hooks;
    this.query = "";
    this.scopeKey = "";
    this.nextToken = "";
    parts.toggle.addEventListener("click", () => (parts.panel.hidden ? this.show() : this.hide()));
    parts.close.addEventListener("click", () => this.hide());
    parts.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.search();
    });
    parts.more.addEventListener("click", () => this.page());
    parts.panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.hide();
    });
  }

  show() {
    const { panel, toggle, input, scope } = this.parts;
    const current = this.hooks.current();
    scope.options[0].textContent = current ? `In ${conversationName(current)}` : "In this conversation";
    panel.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    this.hooks.shown(true);
    input.focus();
    input.select();
  }

  hide() {
    const { panel, toggle } = this.parts;
    if (panel.hidden) return;
    panel.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    this.hooks.shown(false);
    toggle.focus();
  }

  async search() {
    const { input, scope, results } = this.parts;
    this.query = input.value.trim();
    this.scopeKey = scope.value === "here" ? this.hooks.current() : "";
    this.nextToken = "";
    results.replaceChildren();
    if (!this.query) {
      this.say("Type words to find.");
      return;
    }
    await this.page();
  }

  async page() {
    const { results, more } = this.parts;
    more.hidden = true;
    this.say("Searching…");
    let reply;
    try {
      reply = await call("Search", searchBody(this.query, this.scopeKey, this.nextToken));
    } catch (error) {
      this.say(error instanceof ApiError ? error.message : "Cannot reach the server.");
      return;
    }
    const hits = reply.hits || [];
    for (const hit of hits) results.append(this.hitItem(hit));
    this.nextToken = reply.nextPageToken || "";
    more.hidden = !this.nextToken;
    const count = results.children.length;
    this.say(count ? `${count} message${count > 1 ? "s" : ""} found${this.nextToken ? " so far" : ""}.` : "Nothing found.");
  }

  say(text) {
    this.parts.status.textContent = text;
  }

  hitItem(hit) {
    const message = hit.message || {};
    const key = hitKey(hit, this.hooks.me);
    const seq = Number(message.seq || 0);
    const open = el("button", "hit");
    open.type = "button";
    open.dataset.key = key;
    open.dataset.seq = String(seq);
    const head = el("span", "hit-head");
    head.append(el("span", "hit-where", conversationName(key)), el("span", "sender", message.sender || ""));
    const at = message.sentAt ? new Date(message.sentAt) : null;
    if (at && !Number.isNaN(at.getTime())) {
      const time = el("time", "", at.toLocaleString([], { dateStyle: "short", timeStyle: "short" }));
      time.dateTime = at.toISOString();
      head.append(time);
    }
    const snippet = el("span", "snippet");
    for (const part of snippetParts(hit.snippet || message.text || "", this.query)) {
      snippet.append(part.match ? el("mark", "", part.text) : document.createTextNode(part.text));
    }
    open.append(head, snippet);
    open.addEventListener("click", () => {
      if (window.matchMedia("(max-width: 700px)").matches) this.hide();
      this.hooks.openAt(key, seq);
    });
    const li = el("li");
    li.append(open);
    return li;
  }
}
