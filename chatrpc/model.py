"""Plain data shared by the hub, the stores and the server: names, messages, keys.

Conversations are identified by a string key: ``#room`` for a room and
``@a@b`` (the two user names sorted) for a direct conversation. Names can hold
neither ``#`` nor ``@``, so keys never collide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import invalid
from .names import NAME_MAX, normalize_name

__all__ = ["NAME_MAX", "normalize_name"]  # names live in chatrpc.names; kept here for callers

#: The largest seq a store can hold (a signed 64-bit integer, as in SQLite and
#: Redis): a seq field above it names no message of any conversation.
MAX_SEQ = 2**63 - 1


#: Kinds of stored items (the proto's ``Message.Kind``): a message someone sent,
#: and the changes to one, each naming it in ``target_seq``.
MESSAGE, EDIT, DELETE, REACTION = 0, 1, 2, 3
#: The changes: items that apply to the message named by their ``target_seq``.
CHANGES = frozenset({EDIT, DELETE, REACTION})
#: Room events (moderation), stored as items of the room like messages. For
#: these, the sender is who acted, ``text`` the reason (TOPIC: the topic), and
#: the stores keep the user acted on in the ``emoji`` field and a number in
#: ``target_seq``: :attr:`StoredMessage.target_user` and
#: :attr:`StoredMessage.detail` name them (ROLE: the role's number in
#: chatrpc.moderation.ROLE_NUMBERS; BAN: the ban's length in seconds, 0 for
#: ever; PRIVACY: 1 for private; KEEP: 1 for kept).
TOPIC, PRIVACY, INVITE, KICK, BAN, UNBAN, MUTE, UNMUTE, ROLE, KEEP = range(4, 14)
ROOM_EVENTS = frozenset({TOPIC, PRIVACY, INVITE, KICK, BAN, UNBAN, MUTE, UNMUTE, ROLE, KEEP})

#: A message's reactions: each emoji with the users who chose it, sorted.
Reactions = tuple[tuple[str, tuple[str, ...]], ...]


def seq_field(value: int, name: str) -> int:
    """A seq a client sent (a uint64), checked at the boundary: INVALID_ARGUMENT past MAX_SEQ."""
    if value > MAX_SEQ:
        raise invalid(f"{name} {value} is out of range: a seq is at most {MAX_SEQ}")
    return value


def room_key(room: str) -> str:
    return "#" + room


def dm_key(a: str, b: str) -> str:
    x, y = sorted((a, b))
    return f"@{x}@{y}"


def dm_users(key: str) -> tuple[str, str]:
    """The two users of a direct-conversation key."""
    _, a, b = key.split("@")
    return a, b


def dm_peer(key: str, user: str) -> str:
    """The other user of ``user``'s direct-conversation key (``user`` in a note to self)."""
    a, b = dm_users(key)
    return b if a == user else a


def is_room_key(key: str) -> bool:
    return key.startswith("#")


@dataclass(slots=True)
class StoredMessage:
    """A message as committed to the store, with its per-conversation seq."""

    conv: str
    seq: int
    sender: str
    text: str
    sent_at_ms: int
    client_msg_id: str = ""
    room: str = ""
    to_user: str = ""
    #: What the item is (MESSAGE, EDIT, DELETE, REACTION) and, for a change,
    #: the seq of the message it applies to; for a message, the seq it answers.
    kind: int = MESSAGE
    target_seq: int = 0
    reply_to: int = 0
    #: A REACTION's emoji, and whether it takes the reaction back.
    emoji: str = ""
    remove: bool = False
    #: A MESSAGE's current state, as History returns it (a live item carries the
    #: state it was committed with).
    edited: bool = False
    deleted: bool = False
    reactions: Reactions = ()
    #: In History, for the reader: the sender is someone the reader blocked.
    hidden: bool = False
    #: Cache for the encoded wire event, filled by the server once per message
    #: so that fan-out to many sessions does not encode it again for each.
    wire: Any = field(default=None, repr=False, compare=False)
    #: The same event as proto3 JSON, for WebSocket sessions (see chatrpc.web.jsonwire).
    json: str | None = field(default=None, repr=False, compare=False)

    @property
    def target_user(self) -> str:
        """For a room event: the user acted on (see :data:`ROOM_EVENTS`)."""
        return self.emoji if self.kind in ROOM_EVENTS else ""

    @property
    def detail(self) -> int:
        """For a room event: its number (see :data:`ROOM_EVENTS`)."""
        return self.target_seq if self.kind in ROOM_EVENTS else 0


def message_in(
    conv: str, seq: int, sender: str, text: str, sent_at_ms: int, client_msg_id: str = ""
) -> StoredMessage:
    """A stored message of ``conv``, its room or DM peer derived from the key."""
    room = to_user = ""
    if is_room_key(conv):
        room = conv[1:]
    else:
        a, b = dm_users(conv)
        to_user = b if sender == a else a
    return StoredMessage(
        conv=conv,
        seq=seq,
        sender=sender,
        text=text,
        sent_at_ms=sent_at_ms,
        client_msg_id=client_msg_id,
        room=room,
        to_user=to_user,
    )


@dataclass(slots=True, frozen=True)
class Invitation:
    """The session's user is invited to a private room (sent as an ``invitation`` event)."""

    room: str
    by: str
    reason: str = ""


@dataclass(slots=True, frozen=True)
class Draft:
    """A message to append: everything but the seq the store assigns."""

    conv: str
    sender: str
    text: str
    sent_at_ms: int
    client_msg_id: str = ""
    room: str = ""
    to_user: str = ""
    kind: int = MESSAGE
    target_seq: int = 0
    reply_to: int = 0
    emoji: str = ""
    remove: bool = False

    def stored(self, seq: int) -> StoredMessage:
        """The message as stored under ``seq``."""
        return StoredMessage(
            conv=self.conv,
            seq=seq,
            sender=self.sender,
            text=self.text,
            sent_at_ms=self.sent_at_ms,
            client_msg_id=self.client_msg_id,
            room=self.room,
            to_user=self.to_user,
            kind=self.kind,
            target_seq=self.target_seq,
            reply_to=self.reply_to,
            emoji=self.emoji,
            remove=self.remove,
        )


@dataclass(slots=True, frozen=True)
class Conversation:
    """A conversation's state: its key and newest seq."""

    key: str
    last_seq: int
