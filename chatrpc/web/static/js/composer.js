// The composer's modes: a plain message, a reply (a bar names the message answered)
// or an edit (the text to fix is in the box). The Up key in an empty box edits your
// last message, Escape goes back to a plain message; typing is announced, throttled.

import { quoteLine } from "./changes.js";
import { TYPING_EVERY_MS, Throttle, isTypingText } from "./typing.js";

export class Composer {
  /**
   * @param {object} parts {input, bar, what, cancel} elements of the page
   * @param {object} hooks current(): the conversation key; editLast(): starts editing
   *   the user's last message (returns whether there was one); typing(key): say so
   */
  constructor(parts, hooks) {
    this.parts = parts;
    this.hooks = hooks;
    this.mode = null; // {kind: "reply" | "edit", key, seq}
    this.throttle = new Throttle(TYPING_EVERY_MS);
    parts.cancel.addEventListener("click", () => {
      this.cancel();
      parts.input.focus();
    });
    parts.input.addEventListener("keydown", (event) => this.onKey(event));
    parts.input.addEventListener("input", () => this.onInput());
  }

  reply(key, state) {
    this.set({ kind: "reply", key, seq: state.seq }, `Replying to ${quoteLine(state, 60)}`, "Cancel reply");
  }

  edit(key, state) {
    this.set({ kind: "edit", key, seq: state.seq }, "Editing your message (Escape cancels)", "Cancel edit");
    const input = this.parts.input;
    input.value = state.text;
    input.setSelectionRange(input.value.length, input.value.length);
  }

  set(mode, what, cancelLabel) {
    this.mode = mode;
    this.parts.what.textContent = what;
    this.parts.cancel.setAttribute("aria-label", cancelLabel);
    this.parts.bar.hidden = false;
    this.parts.bar.dataset.mode = mode.kind;
    this.parts.input.focus();
  }

  /** Back to a plain message (an edit's text leaves the box too). */
  cancel() {
    if (this.mode && this.mode.kind === "edit") this.parts.input.value = "";
    this.mode = null;
    this.parts.bar.hidden = true;
    delete this.parts.bar.dataset.mode;
  }

  /** Whether the message `seq` of `key` is being edited. */
  editing(key, seq) {
    return Boolean(this.mode && this.mode.kind === "edit" && this.mode.key === key && this.mode.seq === seq);
  }

  /** The mode a line submitted in conversation `key` goes with (then a plain message again). */
  take(key) {
    const mode = this.mode && this.mode.key === key ? this.mode : null;
    this.mode = null;
    this.parts.bar.hidden = true;
    return mode;
  }

  /** Another conversation is shown: a reply or edit of this one does not follow. */
  switched(key) {
    if (this.mode && this.mode.key !== key) this.cancel();
  }

  onKey(event) {
    if (event.key === "Escape" && this.mode) {
      event.preventDefault();
      this.cancel();
    } else if (event.key === "ArrowUp" && !this.mode && this.parts.input.value === "") {
      if (this.hooks.editLast()) event.preventDefault();
    }
  }

  onInput() {
    if (this.mode && this.mode.kind === "edit") return;
    if (!isTypingText(this.parts.input.value)) return;
    const key = this.hooks.current();
    if (key && this.throttle.take(key, Date.now())) this.hooks.typing(key);
  }
}
