"""Answering a join's resume point: what to replay, and who is online.

The rules (what to read, whether it closes the gap) are chatrpc.replay's pure
functions; this reads the store and the room presence and builds the
acknowledgement and the replay that the session queues.
"""

from __future__ import annotations

from . import replay
from .limits import Limits
from .model import StoredMessage
from .presence import RoomPresence
from .store import Store
from .subscriber import Joined, Replay


async def answer(
    store: Store,
    presence: RoomPresence,
    limits: Limits,
    conv: str,
    after_seq: int | None,
    epoch: str,
    *,
    room: str = "",
    with_user: str = "",
    user: str = "",
) -> Replay:
    """The acknowledgement of a join of ``conv`` and what it replays after ``after_seq``
    (None: nothing, live only), with the room's online users (see the module) and
    the read markers of ``user`` and, in a DM, of ``with_user``."""
    last = await store.last_seq(conv)
    online = await presence.online(room) if room else set()
    crowded = bool(room) and presence.crowded(room, len(online))
    members = () if crowded else tuple(sorted(online))
    messages: list[StoredMessage] = []
    complete = False
    floor = last
    if after_seq is not None:
        resume = replay.plan(after_seq, epoch, store.epoch, last, limits.max_replay)
        floor = resume.floor
        if resume.from_floor:
            messages = await store.history(conv, after_seq=floor, limit=resume.limit)
        else:
            messages = await store.history(conv, limit=resume.limit, descending=True)
            messages.reverse()
        complete = replay.complete(after_seq, floor, last, messages)
    read_seq = await store.read_marker(user, conv) if user else 0
    peer_read_seq = await store.read_marker(with_user, conv) if user and with_user else 0
    joined = Joined(
        conv=conv,
        room=room,
        with_user=with_user,
        epoch=store.epoch,
        last_seq=last,
        complete=complete,
        replayed=len(messages),
        members=members,
        online=len(online),
        read_seq=read_seq,
        peer_read_seq=peer_read_seq,
    )
    return Replay(joined, messages, floor if after_seq is not None else last)
