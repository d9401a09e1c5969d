// Invitations to private rooms: a banner each (the server sends one live, and again at
// every connection until the user joins), with Join and Dismiss.

import { invitationLine } from "./moderation.js";

export class Invitations {
  /**
   * @param {HTMLElement} box where the banners go
   * @param {object} hooks {joined(room) -> bool (in it already), join(room)}
   */
  constructor(box, hooks) {
    this.box = box;
    this.hooks = hooks;
    this.shown = new Map(); // room -> banner
  }

  /** An `invitation` event: one banner per room, none for a room the user is in. */
  add(invitation) {
    const room = invitation.room;
    if (!room || this.hooks.joined(room)) return;
    this.remove(room);
    const banner = document.createElement("div");
    banner.className = "invitation";
    banner.setAttribute("role", "alert");
    banner.dataset.room = room;
    const text = document.createElement("span");
    text.textContent = invitationLine(invitation);
    const join = this.button("Join", `Join #${room}`, () => {
      this.remove(room);
      this.hooks.join(room);
    });
    const dismiss = this.button("Dismiss", `Dismiss the invitation to #${room}`, () => this.remove(room));
    banner.append(text, join, dismiss);
    this.box.append(banner);
    this.shown.set(room, banner);
    this.box.hidden = false;
  }

  /** Takes away the banner of `room` (joined, or dismissed). */
  remove(room) {
    const banner = this.shown.get(room);
    if (banner) banner.remove();
    this.shown.delete(room);
    this.box.hidden = this.shown.size === 0;
  }

  button(text, label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.setAttribute("aria-label", label);
    b.addEventListener("click", onClick);
    return b;
  }
}
