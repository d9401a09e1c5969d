"""The transport-neutral Chat session: what every transport (gRPC, WebSocket) runs.

:class:`SessionRunner` takes a user's events in order, commits sends that queued
up together, drains the session's queue to the transport's ``write`` and ends
with a named :class:`~chatrpc.subscriber.EndReason`; :func:`ending` says what a
client is told for each. A transport is an adapter: it authenticates, turns its
frames into ``ClientEvent`` objects and outgoing items into its own frames, and
maps an :class:`Ending` to its wire (a gRPC status, a WebSocket close). Nothing
here imports grpc or aiohttp.
"""

from .ends import Ending, ending
from .runner import INBOX_EVENTS, ClientGone, MalformedEvent, SessionRunner, Write

__all__ = [
    "INBOX_EVENTS",
    "ClientGone",
    "Ending",
    "MalformedEvent",
    "SessionRunner",
    "Write",
    "ending",
]
