// A stored message on the page, in its current state: the line it answers, its text
// ("message deleted" once deleted, "(edited)"), its reactions as chips, its menu
// button, and "Seen" in a DM. Text from the network always goes in as text.

import { HIDDEN_TEXT } from "./moderation.js";
import { display } from "./protocol.js";

function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/**
 * Fills `item` (an <li>) with the message `state` (see changes.js Folder.state).
 * @param {object} view {me, mention: bool, quote: string|null (the line answered),
 *   seen: bool, hidden: bool (from a user the reader blocked: collapsed)}
 */
export function fillMessage(item, state, view) {
  const { me } = view;
  item.className = "message";
  item.dataset.seq = String(state.seq);
  item.id = `m-${state.seq}`;
  item.classList.toggle("mine", state.sender === me);
  item.classList.toggle("mention", Boolean(view.mention) && !state.deleted);
  item.classList.toggle("deleted", state.deleted);
  if (view.hidden && !state.deleted) return fillHidden(item, state);
  const parts = [];
  if (view.quote !== null && view.quote !== undefined) {
    const quote = el("a", "quote", `↪ ${view.quote}`);
    quote.href = `#m-${state.replyTo}`;
    quote.dataset.replyTo = String(state.replyTo);
    quote.title = "Show the message answered";
    parts.push(quote);
  }
  parts.push(timeOf(state));
  const shown = state.deleted ? { action: false, text: "message deleted" } : display(state);
  item.classList.toggle("action", shown.action);
  if (!shown.action) parts.push(el("span", "sender", state.sender));
  parts.push(el("span", "text", shown.text));
  if (state.edited && !state.deleted) parts.push(el("span", "edited", "(edited)"));
  if (!state.deleted) {
    const menu = el("button", "menu-button", "⋯");
    menu.type = "button";
    menu.setAttribute("aria-label", `Actions for ${state.sender}'s message`);
    menu.setAttribute("aria-haspopup", "menu");
    parts.push(menu);
  }
  if (state.reactions && state.reactions.length && !state.deleted) {
    parts.push(reactionChips(state.reactions, me));
  }
  if (view.seen) parts.push(el("span", "seen", "Seen"));
  item.replaceChildren(...parts);
  return item;
}

/** A message from a blocked user: collapsed to one grey line, no text, no menu. */
function fillHidden(item, state) {
  item.classList.add("hidden-message");
  item.classList.remove("action");
  item.replaceChildren(timeOf(state), el("span", "sender", state.sender), el("span", "text", HIDDEN_TEXT));
  return item;
}

function timeOf(state) {
  const time = el("time");
  const at = state.sentAt ? new Date(state.sentAt) : null;
  if (at && !Number.isNaN(at.getTime())) {
    time.dateTime = at.toISOString();
    time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  return time;
}

/** The reactions as toggle buttons: "👍 2", pressed when one of them is yours. */
function reactionChips(reactions, me) {
  const row = el("div", "reactions");
  for (const r of reactions) {
    const users = r.users || [];
    const chip = el("button", "chip", `${r.emoji} ${users.length}`);
    chip.type = "button";
    chip.dataset.emoji = r.emoji;
    const mine = users.includes(me);
    chip.setAttribute("aria-pressed", String(mine));
    chip.title = `${r.emoji} ${users.join(", ")}`;
    chip.setAttribute(
      "aria-label",
      `${r.emoji} by ${users.join(", ")}: ${mine ? "take yours back" : "add yours"}`,
    );
    row.append(chip);
  }
  return row;
}

/** Briefly marks a message (one a search or a quote led to). */
export function flash(item) {
  item.classList.remove("flash");
  void item.offsetWidth; // restart the animation
  item.classList.add("flash");
}
