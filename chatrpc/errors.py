"""Errors the chat core raises, named by the gRPC status they map to.

The hub, the stores and auth raise :class:`ChatError` with a :class:`Code`; they
know nothing of gRPC. Only ``server.py`` turns a code into a gRPC status (for a
whole call) or an ``error`` event (for one event of a Chat stream).
"""

from __future__ import annotations

import enum


class Code(enum.Enum):
    """The subset of gRPC status codes chatrpc uses, with the same names."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


#: Codes after which the same request may succeed if retried (after a pause or
#: a reconnect); the others need the request or the credentials to change.
RETRYABLE = frozenset({Code.RESOURCE_EXHAUSTED, Code.UNAVAILABLE})

#: What a client is told about a problem the server did not expect (logged with
#: its traceback on the server; the client learns nothing of its internals).
INTERNAL_MESSAGE = "internal error; it has been logged"


class ChatError(Exception):
    """A problem the user can act on: its code and a one-line message."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ChatError({self.code.name}, {self.message!r})"


def invalid(message: str) -> ChatError:
    return ChatError(Code.INVALID_ARGUMENT, message)


class StoreUnavailable(ChatError):
    """The store cannot be reached now; retrying later may succeed."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.UNAVAILABLE, message)
