// A message's menu: reply, react (a small picker of common emoji), and on your own
// messages edit and delete (delete asks first). Opened by the message's ⋯ button, a
// right click or a long press, or a tap on a phone; Escape or a click elsewhere closes
// it and gives the focus back.

import { PICKER, menuActions } from "./changes.js";

function button(text, className, onClick, label = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  if (label) b.setAttribute("aria-label", label);
  b.setAttribute("role", "menuitem");
  b.addEventListener("click", onClick);
  return b;
}

export class MessageMenu {
  /**
   * @param {HTMLElement} root the (hidden) menu element
   * @param {object} actions reply(state), react(state, emoji), edit(state), remove(state)
   */
  constructor(root, actions) {
    this.root = root;
    this.actions = actions;
    this.returnFocus = null;
    this.state = null;
    root.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.close();
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp" || event.key === "ArrowRight" || event.key === "ArrowLeft") {
        event.preventDefault();
        this.step(event.key === "ArrowDown" || event.key === "ArrowRight" ? 1 : -1);
      }
    });
    document.addEventListener("pointerdown", (event) => {
      if (!this.root.hidden && !this.root.contains(event.target)) this.close(false);
    });
  }

  get isOpen() {
    return !this.root.hidden;
  }

  /** Opens the menu of the message `state` (shown as `item`), for `me`. */
  open(state, item, me) {
    const can = menuActions(state, me);
    if (!can.length) return;
    this.state = state;
    this.returnFocus = item.querySelector(".menu-button") || document.activeElement;
    const items = [];
    if (can.includes("react")) {
      const row = document.createElement("div");
      row.className = "picker";
      row.setAttribute("role", "group");
      row.setAttribute("aria-label", "React");
      const mine = new Set(
        (state.reactions || []).filter((r) => (r.users || []).includes(me)).map((r) => r.emoji),
      );
      for (const emoji of PICKER) {
        const label = mine.has(emoji) ? `Take back ${emoji}` : `React ${emoji}`;
        const b = button(emoji, "emoji", () => this.run("react", emoji), label);
        if (mine.has(emoji)) b.classList.add("chosen");
        row.append(b);
      }
      items.push(row);
    }
    if (can.includes("reply")) items.push(button("Reply", "item", () => this.run("reply")));
    if (can.includes("edit")) items.push(button("Edit", "item", () => this.run("edit")));
    if (can.includes("delete")) items.push(button("Delete", "item danger", () => this.confirmDelete()));
    this.root.setAttribute("aria-label", `Message from ${state.sender}`);
    this.root.replaceChildren(...items);
    this.root.hidden = false;
    this.place(item);
    this.focusables()[0]?.focus();
  }

  /** Beside the message on wide screens; a sheet at the bottom on phones (CSS). */
  place(item) {
    const rect = item.getBoundingClientRect();
    const menu = this.root.getBoundingClientRect();
    const below = rect.bottom + menu.height + 8 < window.innerHeight;
    const top = below ? rect.bottom + 4 : Math.max(8, rect.top - menu.height - 4);
    this.root.style.top = `${Math.round(top)}px`;
    this.root.style.left = `${Math.round(Math.max(8, Math.min(rect.right - menu.width, window.innerWidth - menu.width - 8)))}px`;
  }

  confirmDelete() {
    const question = document.createElement("p");
    question.className = "confirm";
    question.textContent = "Delete this message for everyone?";
    question.id = "menu-confirm";
    const yes = button("Delete", "item danger", () => this.run("remove"), "Delete for everyone");
    const no = button("Cancel", "item", () => this.close());
    this.root.replaceChildren(question, yes, no);
    yes.focus();
  }

  run(action, ...args) {
    const state = this.state;
    this.close(action !== "reply" && action !== "edit");
    this.actions[action](state, ...args);
  }

  close(restoreFocus = true) {
    if (this.root.hidden) return;
    this.root.hidden = true;
    this.root.replaceChildren();
    this.state = null;
    if (restoreFocus && this.returnFocus && this.returnFocus.isConnected) this.returnFocus.focus();
    this.returnFocus = null;
  }

  focusables() {
    return [...this.root.querySelectorAll("button")];
  }

  step(by) {
    const all = this.focusables();
    const at = all.indexOf(document.activeElement);
    all[(at + by + all.length) % all.length]?.focus();
  }
}
