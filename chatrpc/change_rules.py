"""What a change (edit, delete, reaction) and a reply must be before they are stored.

* A change names a message of its conversation by seq: an unknown seq is
  NOT_FOUND, a seq of a change item (not a message) INVALID_ARGUMENT, and a
  deleted message FAILED_PRECONDITION (nothing is left to change).
* Only the author edits a message, and deletes it, but for the room's owners
  and moderators, who delete the messages of those they moderate
  (:func:`may_change`); PERMISSION_DENIED otherwise.
* A reaction is a short emoji (:func:`emoji`); a user holds each emoji on a
  message once: adding one already there, or taking back one that is not,
  stores nothing and is answered FAILED_PRECONDITION.
* A reply names a message (not a change item) of the same conversation.
* A retried change (its ``client_msg_id`` stored already) passes whatever the
  message's state now, since its original may be what changed it: the store
  answers it with the original, as it answers a retried send.
"""

from __future__ import annotations

import unicodedata

from .errors import ChatError, Code, invalid
from .model import DELETE, EDIT, MESSAGE, REACTION, StoredMessage, seq_field
from .store import MEMBER, MODERATOR, OWNER, Store

#: The most code points one reaction may have (a family emoji with skin tones
#: joined by ZWJs is about that long; a word is not an emoji).
MAX_EMOJI_CODE_POINTS = 8
#: Code points an emoji sequence may hold besides symbols: the zero-width
#: joiner, variation selectors, the keycap mark and tag characters (flags of
#: regions such as Scotland).
_JOINERS = frozenset({0x200D, 0xFE0E, 0xFE0F, 0x20E3})
_TAGS = range(0xE0020, 0xE0080)

#: The ClientEvent of each kind of change.
EVENTS = {EDIT: "edit", DELETE: "delete", REACTION: "react"}
#: What each kind is called in an error message.
NAMES = {EDIT: "an edit", DELETE: "a delete", REACTION: "a reaction", MESSAGE: "a message"}


def emoji(value: str) -> str:
    """The emoji of a reaction, or INVALID_ARGUMENT.

    At most :data:`MAX_EMOJI_CODE_POINTS` code points, none of them ASCII,
    whitespace or a control, and at least one symbol (Unicode category So or
    Sk): something a user would call an emoji, not a word.
    """
    if not value:
        raise invalid("a reaction needs an emoji")
    if len(value) > MAX_EMOJI_CODE_POINTS:
        raise invalid(f"a reaction is at most {MAX_EMOJI_CODE_POINTS} code points: one emoji")
    symbols = 0
    for char in value:
        code = ord(char)
        category = unicodedata.category(char)
        if code < 0x80 or char.isspace():
            raise invalid("a reaction is an emoji, not letters, digits or spaces")
        if category in ("So", "Sk"):
            symbols += 1
        elif not (code in _JOINERS or code in _TAGS or category in ("Mn", "Me")):
            raise invalid(f"a reaction is an emoji: U+{code:04X} is not part of one")
    if not symbols:
        raise invalid("a reaction is an emoji: it holds no symbol")
    return value


def may_change(user: str, target: StoredMessage, kind: int, *, moderates: bool = False) -> bool:
    """Whether ``user`` may edit or delete ``target``: its author, or for a delete
    someone who ``moderates`` its author in the room (an owner, or a moderator
    deleting a member's message; see :func:`moderates`). Reactions are open to
    every member."""
    return target.sender == user or (kind == DELETE and moderates)


def moderates(actor_role: str, author_role: str) -> bool:
    """Whether a user with ``actor_role`` in a room may delete the messages of one
    with ``author_role`` there (chatrpc.moderation's rule: moderators act on
    members only)."""
    return actor_role == OWNER or (actor_role == MODERATOR and author_role == MEMBER)


async def message(store: Store, conv: str, seq: int, where: str, what: str) -> StoredMessage:
    """The message ``seq`` of ``conv`` as stored now, or the error naming why not.

    ``where`` names the conversation (``#room``, ``your DM with bob``) and ``what``
    the field (``seq``, ``reply_to``) in the error messages.
    """
    seq = seq_field(seq, what)
    if seq == 0:
        raise invalid(f"{what} must name a message (its seq, 1 or more)")
    found = await store.history(conv, after_seq=seq - 1, limit=1)
    if not found or found[0].seq != seq:
        raise ChatError(Code.NOT_FOUND, f"no message #{seq} in {where}")
    target = found[0]
    if target.kind != MESSAGE:
        raise invalid(
            f"#{seq} in {where} is {NAMES.get(target.kind, 'a change')}, not a message:"
            f" name the message #{target.target_seq}"
        )
    return target


def check_change(
    user: str,
    target: StoredMessage,
    kind: int,
    where: str,
    *,
    emoji: str = "",
    remove: bool,
    moderator: bool = False,
) -> None:
    """Raises the error a change of ``target`` by ``user`` gets, if any."""
    seq = target.seq
    if target.deleted:
        raise ChatError(Code.FAILED_PRECONDITION, f"message #{seq} in {where} was deleted")
    if kind in (EDIT, DELETE) and not may_change(user, target, kind, moderates=moderator):
        verb = "edit" if kind == EDIT else "delete"
        raise ChatError(
            Code.PERMISSION_DENIED,
            f"message #{seq} in {where} is {target.sender}'s: only its author may {verb} it",
        )
    if kind == REACTION:
        users = dict(target.reactions).get(emoji, ())
        if remove and user not in users:
            raise ChatError(
                Code.FAILED_PRECONDITION, f"you have no {emoji} reaction on #{seq} in {where}"
            )
        if not remove and user in users:
            raise ChatError(
                Code.FAILED_PRECONDITION, f"you reacted {emoji} to #{seq} in {where} already"
            )
