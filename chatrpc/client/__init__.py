"""The async client library: login, one Chat stream, and a resuming client.

* :func:`login` claims or proves a name and returns a token
  (:mod:`~chatrpc.client.connection`, with the channel and its TLS).
* :class:`ChatStream` is one ``Chat`` call: send events, iterate what arrives
  (:mod:`~chatrpc.client.stream`).
* :class:`ChatClient` keeps a session alive across failures
  (:mod:`~chatrpc.client.chat`): it reconnects with backoff and resumes each
  conversation where it left off, so its consumer sees each message once and in
  order. What it delivered and where to resume is the pure
  :class:`~chatrpc.client.cursor.Cursor`; its unacknowledged sends are
  :mod:`~chatrpc.client.sends` (edits, deletes and reactions go the same way:
  :mod:`~chatrpc.client.writes`); what it does with what a session receives is
  :mod:`~chatrpc.client.events`; its typing notices and read markers are
  :mod:`~chatrpc.client.signals` (the ``typing`` and ``read_marker`` events
  that arrive go to ``on_event`` like the others).

Nothing here imports the server; the CLI, the tests and the benchmark use it.
"""

from .chat import ChatClient
from .connection import (
    CHANNEL_OPTIONS,
    ChannelSecurity,
    auth_metadata,
    channel,
    login,
    logout,
    set_password,
)
from .cursor import Cursor, conv_of
from .errors import RECONNECT_ON, ClientClosed, SendError
from .events import RESUME_RETRIES
from .sends import SEND_RETRIES, Stored, new_client_msg_id, retry_delay
from .signals import TYPING_INTERVAL_S
from .state import ClientState, State
from .stream import BATCH_EVENTS, ChatStream

__all__ = [
    "BATCH_EVENTS",
    "CHANNEL_OPTIONS",
    "RECONNECT_ON",
    "RESUME_RETRIES",
    "SEND_RETRIES",
    "TYPING_INTERVAL_S",
    "ChannelSecurity",
    "ChatClient",
    "ChatStream",
    "ClientClosed",
    "ClientState",
    "Cursor",
    "SendError",
    "State",
    "Stored",
    "auth_metadata",
    "channel",
    "conv_of",
    "login",
    "logout",
    "new_client_msg_id",
    "retry_delay",
    "set_password",
]
