"""How a session ends, as its client sees it: one table for every transport.

Each :class:`~chatrpc.subscriber.EndReason` carries the code the client gets
(None: the stream ends normally, or there is nobody left to tell), a message it
can act on, and whether reconnecting (and resuming) helps.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import INTERNAL_MESSAGE, RETRYABLE, Code
from ..subscriber import EndReason


@dataclass(frozen=True, slots=True)
class Ending:
    """What the client is told when its session ends."""

    reason: EndReason
    #: The status the stream ends with; None for a normal end (or a client gone).
    code: Code | None
    message: str

    @property
    def retry(self) -> bool:
        """Whether reconnecting (and resuming) may succeed."""
        return self.code is not None and self.code in RETRYABLE


#: The code and message of each reason. A slow consumer's message gets the
#: session's resume points appended (see :func:`ending`).
_TABLE: dict[EndReason, tuple[Code | None, str]] = {
    EndReason.DONE: (None, ""),
    EndReason.GONE: (None, ""),
    EndReason.SLOW_CONSUMER: (Code.RESOURCE_EXHAUSTED, "slow consumer: resume from seq"),
    EndReason.SHUTDOWN: (Code.UNAVAILABLE, "server shutting down: reconnect and resume"),
    EndReason.REVOKED: (Code.UNAUTHENTICATED, "token revoked: log in again"),
    EndReason.DISABLED: (Code.PERMISSION_DENIED, "account disabled"),
    EndReason.MALFORMED: (Code.INVALID_ARGUMENT, "malformed ClientEvent: not valid protobuf"),
    EndReason.FAILED: (Code.INTERNAL, INTERNAL_MESSAGE),
}


def ending(reason: EndReason, cursors: dict[str, int] | None = None) -> Ending:
    """The :class:`Ending` for ``reason``; ``cursors`` (conversation -> newest seq
    delivered) name a slow consumer's resume points."""
    code, message = _TABLE[reason]
    if reason is EndReason.SLOW_CONSUMER:
        points = ", ".join(f"{seq} in {conv}" for conv, seq in sorted((cursors or {}).items()))
        message = f"{message} {points or '0'}"
    return Ending(reason, code, message)
