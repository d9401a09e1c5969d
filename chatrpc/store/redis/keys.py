"""The Redis store's key names, limits and how stream entries are read back.

Layout (every key starts with ``chatrpc:``):

* ``conv:{key}``: one stream per conversation. Message ``seq`` is the entry id
  ``{seq}-0``, so a seq range is an XRANGE. Fields: ``s`` sender, ``t``
  sent_at_ms, ``c`` client_msg_id, ``ct`` Redis time of the commit (ms); for a
  change ``k`` kind, ``g`` target_seq, ``e`` emoji, ``m`` remove; ``r`` reply_to
  when set. No text: a stream entry cannot be rewritten, and a delete must erase
  it (entries of older releases hold it in ``x``).
* ``body:{key}``: hash seq -> text of each message and edit (its current text
  for a message), beside the stream; a delete erases the fields of the message
  and of its edits.
* ``state:{key}``: hash seq -> JSON state of a message that was changed: ``e``
  edited, ``d`` deleted, ``x`` the seqs of its edits, ``r`` emoji -> users.
  Field ``lo``: the lowest seq whose fields retention has not cleared yet.
* ``seq:{key}``: the conversation's counter (INCR gives the next seq).
* ``dedup:{sender}:{client_msg_id}``: ``"{seq} {conv}"`` for the idempotency
  window (SET PX), written by the same Lua script as the INCR and the XADD, so
  a retry is never stored twice.
* ``inbox:{user}``: a stream of pointers (``k`` conversation, ``q`` seq), one
  per DM the user takes part in, so a server watches one key per local user
  rather than one per DM conversation.
* ``rooms`` (set of ``#room``), ``directs:{user}`` (set of DM keys),
  ``members:{room}``, ``memberof:{user}`` (the rooms of ``members:{room}``
  sets holding the user: an index for search, checked against them when read;
  ``memberof-indexed`` says it was built for rooms joined before it existed),
  ``account:{user}`` (fields ``user``, ``pw``, and ``gen``,
  how many times every token of the user was revoked), ``token:{hash}``,
  ``tokens:{user}``.
* ``rooms:active``: sorted set of ``#room`` by latest activity (ms, Redis time,
  made unique: one past the newest if the clock has not moved on), which pages
  the listing with no answer growing with the number of rooms.
* ``rooms:names``: the same rooms, all with score 0, for name prefix searches
  (ZRANGEBYLEX).
* ``created:{user}``: sorted set of the user's room creations over the last
  day (score: Redis time in ms), expiring a day after the newest: the quota,
  one for every server sharing the Redis.
* ``regtoken:{hash}``: hash ``uses``, ``expires``, ``created`` of a registration
  token (expiring with it); ``regtokens``: the set of their hashes.
* ``rooms:owner``: hash of each room's owner (``#room`` -> user), and
  ``owned:{user}``: the rooms a user owns.
* ``users``: every account's name, all with score 0 (listing, ZRANGEBYLEX);
  ``users:seen``: the same by last-seen time (ms), for idle accounts. An
  account hash also holds ``born`` (created, ms) and ``off`` (disabled).
* ``online:{room}``: sorted set of ``node|user`` by expiry (presence), and
  ``presence``: the stream of presence changes and revocations of every server.
"""

from __future__ import annotations

import json
from typing import Any, cast

from ...model import StoredMessage, dm_users, is_room_key, message_in

P = "chatrpc:"
ROOMS = f"{P}rooms"
ACTIVE = f"{P}rooms:active"
NAMES = f"{P}rooms:names"
REGTOKENS = f"{P}regtokens"
OWNERS = f"{P}rooms:owner"
USERS = f"{P}users"
SEEN = f"{P}users:seen"
EPOCH = f"{P}epoch"
MEMBEROF_INDEXED = f"{P}memberof-indexed"  # no ":": never a user's memberof key

#: Slack for millisecond rounding when a watch's Redis time is worked out.
WATCH_MARGIN_MS = 2
#: How long one XREAD blocks; a watch wakes it sooner through the wake stream.
BLOCK_MS = 5000
#: Most appends one pipeline takes from the queue.
MAX_BATCH = 1000
#: Pointers kept per user inbox (they only wake readers; history is elsewhere).
INBOX_MAXLEN = 10_000
#: Most messages one fetch reads.
FETCH_PAGE = 1000
#: The reader's backoff while Redis is unreachable, in seconds.
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.05, 2.0

#: Presence changes from every server, and how many of them Redis keeps.
#: Revocations are announced there too, so every server ends the live sessions
#: of the revoked tokens (fields: ``n`` node, ``k`` "revoke", ``u`` user, ``t``
#: token hash or "" for all of the user's).
PRESENCE = f"{P}presence"
PRESENCE_MAXLEN = 10_000


def owned_key(user: str) -> str:
    return f"{P}owned:{user}"


def created_key(user: str) -> str:
    return f"{P}created:{user}"


def regtoken_key(token_hash: str) -> str:
    return f"{P}regtoken:{token_hash}"


def online_key(room: str) -> str:
    return f"{P}online:{room}"


def conv_stream(conv: str) -> str:
    return f"{P}conv:{conv}"


def dedup_key(sender: str, client_msg_id: str) -> str:
    return f"{P}dedup:{sender}:{client_msg_id}"


def body_key(conv: str) -> str:
    return f"{P}body:{conv}"


def state_key(conv: str) -> str:
    return f"{P}state:{conv}"


def counter_key(conv: str) -> str:
    return f"{P}seq:{conv}"


def inbox_key(user: str) -> str:
    return f"{P}inbox:{user}"


def members_key(room: str) -> str:
    return f"{P}members:{room}"


def memberof_key(user: str) -> str:
    return f"{P}memberof:{user}"


def directs_key(user: str) -> str:
    return f"{P}directs:{user}"


def account_key(user: str) -> str:
    return f"{P}account:{user}"


def token_key(token_hash: str) -> str:
    return f"{P}token:{token_hash}"


def tokens_key(user: str) -> str:
    return f"{P}tokens:{user}"


#: A stream entry as read with decode_responses: its id and fields.
Entry = tuple[str, dict[str, str]]


def entries(raw: Any) -> list[Entry]:
    return cast("list[Entry]", list(raw or []))


def strs(raw: Any) -> list[str]:
    return [str(x) for x in raw]


def watch_keys(conv: str) -> list[str]:
    """The watch keys (see MessageLog.watch) that cover a conversation."""
    if is_room_key(conv):
        return [conv]
    return ["@" + u for u in set(dm_users(conv))]


def entry_seq(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def message(
    conv: str, seq: int, fields: dict[str, str], text: str = "", state: str = ""
) -> StoredMessage:
    """A stored item from its stream entry's fields, its text and its state (JSON)."""
    msg = message_in(
        conv,
        seq,
        fields.get("s", ""),
        text or fields.get("x", ""),
        int(fields.get("t", "0")),
        fields.get("c", ""),
    )
    msg.kind = int(fields.get("k", "0"))
    msg.target_seq = int(fields.get("g", "0"))
    msg.reply_to = int(fields.get("r", "0"))
    msg.emoji = fields.get("e", "")
    msg.remove = fields.get("m", "0") == "1"
    if state:
        st = json.loads(state)
        msg.edited, msg.deleted = bool(st.get("e")), bool(st.get("d"))
        if msg.deleted:
            msg.text = ""
        found = st.get("r")
        if isinstance(found, dict):
            msg.reactions = tuple((e, tuple(sorted(u))) for e, u in sorted(found.items()) if u)
    return msg


def flat_fields(raw: Any) -> dict[str, str]:
    """A stream entry's fields as a script returns them (a flat list) as a dict."""
    items = [str(x) for x in raw or []]
    return dict(zip(items[::2], items[1::2], strict=True))
