"""Server events as bytes on the wire, encoded once and framed without re-encoding.

A stored message goes to every session of its conversation. Its ``ServerEvent``
is serialised once (cached on the message) and every session writes those same
bytes. A session that asked for batches (``chatrpc-batch: N`` metadata) gets
what piled up while its previous write was in flight as one ``batch`` frame of
up to N events: the frame is the events' bytes, each behind its protobuf field
header, concatenated; nothing is parsed or serialised again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from .live import ReadMark, TypingNotice
from .model import BAN, KEEP, PRIVACY, ROLE, ROOM_EVENTS, Invitation, StoredMessage
from .subscriber import Acked, Joined, Left, Notice, Outgoing, Presence
from .v1 import chat_pb2 as pb

#: Field headers (number << 3 | wire type 2): ServerEvent.batch = 6, Batch.events = 1.
_BATCH_TAG = b"\x32"
_EVENTS_TAG = b"\x0a"
#: A frame stays well under the client's default 4 MiB receive limit.
MAX_FRAME_BYTES = 1 << 20


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _timestamp(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def _room_event_pb(msg: StoredMessage) -> pb.Message:
    """A room event (moderation): the user acted on and its detail in their own fields."""
    out = pb.Message(
        seq=msg.seq,
        room=msg.room,
        sender=msg.sender,
        text=msg.text,
        sent_at=_timestamp(msg.sent_at_ms),
        client_msg_id=msg.client_msg_id,
        kind=msg.kind,  # type: ignore[arg-type]  # the model's kinds are the enum's numbers
        target_user=msg.target_user,
    )
    if msg.kind == ROLE:
        out.role = msg.detail  # type: ignore[assignment]  # the role's number
    elif msg.kind == PRIVACY:
        out.private = bool(msg.detail)
    elif msg.kind == KEEP:
        out.kept = bool(msg.detail)
    elif msg.kind == BAN and msg.detail:
        out.ban_until.CopyFrom(_timestamp(msg.sent_at_ms + msg.detail * 1000))
    return out


def message_pb(msg: StoredMessage) -> pb.Message:
    if msg.kind in ROOM_EVENTS:
        return _room_event_pb(msg)
    out = pb.Message(
        seq=msg.seq,
        sender=msg.sender,
        text=msg.text,
        sent_at=_timestamp(msg.sent_at_ms),
        client_msg_id=msg.client_msg_id,
        kind=msg.kind,  # type: ignore[arg-type]  # the model's kinds are the enum's numbers
        target_seq=msg.target_seq,
        reply_to=msg.reply_to,
        emoji=msg.emoji,
        remove=msg.remove,
        edited=msg.edited,
        deleted=msg.deleted,
        reactions=[pb.Reaction(emoji=e, users=users) for e, users in msg.reactions],
        hidden=msg.hidden,
    )
    if msg.room:
        out.room = msg.room
    else:
        out.to_user = msg.to_user
    return out


def event_pb(item: Outgoing) -> pb.ServerEvent:
    """The ``ServerEvent`` for an outgoing item."""
    if isinstance(item, StoredMessage):
        return pb.ServerEvent(message=message_pb(item))
    if isinstance(item, Presence):
        kind = pb.Presence.JOINED if item.joined else pb.Presence.LEFT
        return pb.ServerEvent(presence=pb.Presence(room=item.room, user=item.user, kind=kind))
    if isinstance(item, Joined):
        joined = pb.Joined(
            epoch=item.epoch,
            last_seq=item.last_seq,
            complete=item.complete,
            replayed=item.replayed,
            members=item.members,
            online=item.online,
            read_seq=item.read_seq,
            peer_read_seq=item.peer_read_seq,
            topic=item.topic,
            private=item.private,
        )
        if item.room:
            joined.room = item.room
        else:
            joined.with_user = item.with_user
        return pb.ServerEvent(joined=joined)
    if isinstance(item, Left):
        return pb.ServerEvent(left=pb.Left(room=item.room, reason=item.reason))
    if isinstance(item, Invitation):
        invitation = pb.Invitation(room=item.room, by=item.by, reason=item.reason)
        return pb.ServerEvent(invitation=invitation)
    if isinstance(item, (TypingNotice, ReadMark)):
        return _signal_pb(item)
    if isinstance(item, Acked):
        msg = item.message
        ack = pb.Ack(seq=msg.seq, client_msg_id=msg.client_msg_id)
        if msg.room:
            ack.room = msg.room
        else:
            ack.to_user = msg.to_user
        return pb.ServerEvent(ack=ack)
    if isinstance(item, Notice):
        return pb.ServerEvent(
            error=pb.Error(
                code=pb.Error.Code.Value(item.code),
                message=item.message,
                client_msg_id=item.client_msg_id,
            )
        )
    raise TypeError(f"cannot encode {item!r}")


def _signal_pb(item: TypingNotice | ReadMark) -> pb.ServerEvent:
    """A typing notice or a moved read marker, naming its room or the DM's peer."""
    if isinstance(item, TypingNotice):
        signal: pb.UserTyping | pb.ReadMarker = pb.UserTyping(user=item.user)
    else:
        signal = pb.ReadMarker(user=item.user, seq=item.seq)
    if item.room:
        signal.room = item.room
    else:
        signal.with_user = item.with_user
    if isinstance(signal, pb.UserTyping):
        return pb.ServerEvent(typing=signal)
    return pb.ServerEvent(read_marker=signal)


def encode(item: Outgoing) -> bytes:
    """The serialised ``ServerEvent``; a message's, a presence change's or a live
    item's is computed once for all the sessions it goes to."""
    if isinstance(item, (StoredMessage, Presence, TypingNotice, ReadMark)):
        wire = item.wire
        if wire is None:
            wire = item.wire = event_pb(item).SerializeToString()
        return wire
    return event_pb(item).SerializeToString()


def frames(events: Sequence[bytes], max_events: int) -> Iterator[bytes]:
    """Groups serialised events into frames: one event alone, more as ``batch`` frames."""
    if max_events <= 1:
        yield from events
        return
    chunk: list[bytes] = []
    size = 0
    for data in events:
        if chunk and (len(chunk) >= max_events or size + len(data) > MAX_FRAME_BYTES):
            yield _frame(chunk)
            chunk, size = [], 0
        chunk.append(data)
        size += len(data)
    if chunk:
        yield _frame(chunk)


def _frame(events: list[bytes]) -> bytes:
    if len(events) == 1:
        return events[0]
    inner = b"".join(_EVENTS_TAG + varint(len(data)) + data for data in events)
    return _BATCH_TAG + varint(len(inner)) + inner
