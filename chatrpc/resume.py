"""Answering a join's resume point: what to replay, and who is online.

The rules (what to read, whether it closes the gap) are chatrpc.replay's pure
functions; this reads the store and the room presence and builds the
acknowledgement and the replay that the session queues.
"""

from __future__ import annotations

from .limits import Limits
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
    readers = [r for r in (user, with_user if user else "") if r]
    window = await store.resume_window(conv, after_seq, epoch, limits.max_replay, readers)
    last, messages = window.last_seq, window.messages
    read_seq, peer_read_seq = [*window.markers, 0, 0][:2]
    online = await presence.online(room) if room else set()
    crowded = bool(room) and presence.crowded(room, len(online))
    members = () if crowded else tuple(sorted(online))
    joined = Joined(
        conv=conv,
        room=room,
        with_user=with_user,
        epoch=store.epoch,
        last_seq=last,
        complete=window.complete,
        replayed=len(messages),
        members=members,
        online=len(online),
        read_seq=read_seq,
        peer_read_seq=peer_read_seq,
    )
    return Replay(joined, messages, window.floor)
