"""How a session's end and a refused call look on the web: one table each.

A WebSocket session ends with close code 1000 when it ends normally, else
``4000 + the gRPC status number`` of its end reason (see chatrpc.session.ends):
4014 UNAVAILABLE (server shutting down: reconnect and resume), 4008
RESOURCE_EXHAUSTED (slow consumer: reconnect and resume), 4016 UNAUTHENTICATED
(sign in again), 4007 PERMISSION_DENIED (an operator disabled the account),
4003 INVALID_ARGUMENT (a frame that is not a ClientEvent), 4013 INTERNAL. The
close reason is the end's message. A unary call's error is an HTTP status with
a JSON body ``{"code": "unauthenticated", "message": ...}``, as in Connect's
protocol.
"""

from __future__ import annotations

from ..errors import Code
from ..v1 import chat_pb2 as pb

NORMAL_CLOSE = 1000
#: A WebSocket close reason holds at most 123 bytes.
MAX_REASON_BYTES = 123

#: The close code of each code an end can carry.
CLOSE_CODES: dict[Code, int] = {code: 4000 + pb.Error.Code.Value(code.name) for code in Code}

#: The HTTP status of each code, as Connect maps gRPC codes.
HTTP_STATUS: dict[Code, int] = {
    Code.INVALID_ARGUMENT: 400,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.PERMISSION_DENIED: 403,
    Code.RESOURCE_EXHAUSTED: 429,
    Code.FAILED_PRECONDITION: 400,
    Code.UNAUTHENTICATED: 401,
    Code.UNAVAILABLE: 503,
    Code.INTERNAL: 500,
}


def close_code(code: Code | None) -> int:
    """The WebSocket close code for a session that ended with ``code`` (None: normal)."""
    return NORMAL_CLOSE if code is None else CLOSE_CODES[code]


def close_reason(message: str) -> bytes:
    """``message`` cut to what a close frame holds, on a character boundary."""
    data = message.encode()
    if len(data) <= MAX_REASON_BYTES:
        return data
    return data[: MAX_REASON_BYTES - 3].decode(errors="ignore").encode() + b"..."
