"""Server events as proto3 JSON text, encoded once per message, batched into frames.

The JSON is what ``google.protobuf.json_format`` gives (the shapes grpcurl
prints: lowerCamel names, 64-bit integers as strings, enums by name). A stored
message or a presence change goes to many sessions: its JSON is computed once
and cached on the item, as its protobuf bytes are (see chatrpc.wire), and every
session writes the same string. What piled up while a write was in
flight goes out as one frame, ``{"batch": {"events": [...]}}``, made by joining
those strings: nothing is parsed or encoded again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

from google.protobuf import json_format
from google.protobuf.message import Message

from ..live import ReadMark, TypingNotice
from ..model import StoredMessage
from ..subscriber import Outgoing, Presence
from ..wire import event_pb

#: Most events in one WebSocket frame, and the size past which a frame is cut.
MAX_FRAME_EVENTS = 256
MAX_FRAME_CHARS = 1 << 20


def to_json(message: Message) -> str:
    """A protobuf message as compact proto3 JSON."""
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":"), ensure_ascii=False)


def event_json(item: Outgoing) -> str:
    """The ``ServerEvent`` JSON of an outgoing item; shared items' once for all sessions."""
    if not isinstance(item, (StoredMessage, Presence, TypingNotice, ReadMark)):
        return to_json(event_pb(item))
    text = item.json
    if text is None:
        text = item.json = to_json(event_pb(item))
    return text


def json_frames(events: Sequence[str]) -> Iterator[str]:
    """Groups encoded events into frames: one event alone, more as a ``batch``."""
    chunk: list[str] = []
    size = 0
    for text in events:
        if chunk and (len(chunk) >= MAX_FRAME_EVENTS or size + len(text) > MAX_FRAME_CHARS):
            yield _frame(chunk)
            chunk, size = [], 0
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        yield _frame(chunk)


def _frame(events: list[str]) -> str:
    if len(events) == 1:
        return events[0]
    return '{"batch":{"events":[' + ",".join(events) + "]}}"
