"""How a stored change (EDIT, DELETE, REACTION) changes the message it names.

A change is an item of its conversation like a message: it takes the next seq,
is deduplicated by ``client_msg_id`` and notified in order. Every store applies
its effect in the same atomic step as its append, to the message row itself, so
the row always holds the message's current state (what History and Search read):

* **EDIT**: the message's text becomes the edit's text, and ``edited`` is set.
* **DELETE**: the message's text becomes empty, ``deleted`` is set, its
  reactions are dropped, and the text of every EDIT item naming it is erased too:
  no copy of what was deleted stays in the store.
* **REACTION**: adds the (emoji, sender) pair to the message's reactions, or
  takes it back when ``remove`` is set; a pair is there once at most.

A change whose target is not a live message (unknown, dropped by retention, a
change item itself, or deleted) is still stored, since it took its seq, but
changes nothing, and an EDIT's text is then not kept. The hub refuses such
changes before they reach the store; this rule settles the races between its
check and the commit (a delete committed meanwhile by another session).
"""

from __future__ import annotations

from dataclasses import replace

from ..model import DELETE, EDIT, MESSAGE, REACTION, Draft, Reactions, StoredMessage

__all__ = ["DELETE", "EDIT", "MESSAGE", "REACTION", "applies", "changed", "with_reaction"]


def applies(target: StoredMessage | None) -> bool:
    """Whether a change may change ``target``: a message that is not deleted."""
    return target is not None and target.kind == MESSAGE and not target.deleted


def with_reaction(reactions: Reactions, emoji: str, user: str, remove: bool) -> Reactions:
    """``reactions`` with ``user``'s ``emoji`` added (or taken back), sorted by emoji."""
    found = {e: set(users) for e, users in reactions}
    users = found.setdefault(emoji, set())
    if remove:
        users.discard(user)
    else:
        users.add(user)
    return tuple((e, tuple(sorted(u))) for e, u in sorted(found.items()) if u)


def changed(target: StoredMessage, change: Draft | StoredMessage) -> StoredMessage:
    """``target`` (a live message) in its state after ``change``."""
    if change.kind == EDIT:
        return replace(target, text=change.text, edited=True, wire=None, json=None)
    if change.kind == DELETE:
        return replace(target, text="", deleted=True, reactions=(), wire=None, json=None)
    if change.kind == REACTION:
        reactions = with_reaction(target.reactions, change.emoji, change.sender, change.remove)
        return replace(target, reactions=reactions, wire=None, json=None)
    return target
