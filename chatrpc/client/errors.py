"""How the client library fails: a client that stopped, a refused event."""

from __future__ import annotations

import grpc

from ..v1 import chat_pb2 as pb

#: The status codes of a ``Chat`` call after which the client reconnects and resumes.
#: Broader than :data:`chatrpc.errors.RETRYABLE`, which says when the server's answer
#: to one request means that request may succeed if sent again: a whole session can
#: also end on CANCELLED, DEADLINE_EXCEEDED, INTERNAL or UNKNOWN (a server or a proxy
#: going away mid-call), and a new session resuming from the cursors loses nothing.
#: Any other status (UNAUTHENTICATED, say) would fail again: the client stops.
RECONNECT_ON = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)


class ClientClosed(Exception):
    """The client stopped for good; ``code`` and ``details`` say why."""

    def __init__(self, code: grpc.StatusCode | None, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class SendError(Exception):
    """The server refused one event (an ``error`` event)."""

    def __init__(self, error: pb.Error) -> None:
        super().__init__(f"{pb.Error.Code.Name(error.code)}: {error.message}")
        self.error = error
