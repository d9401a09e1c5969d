"""The terminal face of ``chatrpc-client``: commands, how events look, the prompt.

* :func:`parse_line` turns a typed line into a :class:`Command`: plain text for
  the current room, or ``/join``, ``/leave``, ``/switch``, ``/msg``, ``/me``,
  ``/who``, ``/rooms``, ``/history``, ``/help``, ``/quit`` as IRC users expect.
* :class:`Formatter` turns a server event into one line:
  ``[HH:MM] #room <nick> text``, ``[HH:MM] #room * nick waves`` for ``/me``,
  ``[HH:MM] [dm] <alice -> bob> text`` for a direct message (``@peer <nick>`` in
  piped mode, which scripts already read), ``-- ...`` for everything else. With
  colors on, each nick has a stable color and presence lines are dimmed.
* :class:`ChatView` runs commands against a :class:`~chatrpc.client.ChatClient`
  and decides what is shown; piped mode and the interactive prompt share it.
* :func:`interact` is the prompt: prompt_toolkit in the same asyncio loop as the
  client, so incoming lines print above the input line and never clobber what
  is being typed.

``/me waves`` is sent as the text ``/me waves``, readable as it is in grpcurl
and any other client, and shown as ``* alice waves``. A line starting with
``//`` is sent with one ``/`` less, for text that must start with a slash.
"""

from .commands import (
    ACTION,
    ALIASES,
    CALL_TIMEOUT,
    COMMANDS,
    CONTEXT_DEFAULT,
    HELP,
    HISTORY_DEFAULT,
    HISTORY_MAX,
    Command,
    CommandError,
    parse_line,
)
from .formatter import PALETTE, Formatter, colors_wanted, nick_color, printable
from .output import PendingLine, rpc_problem
from .prompt import Prompt, change_password, interact
from .view import RECONNECT_WAIT, ChatView

__all__ = [
    "ACTION",
    "ALIASES",
    "CALL_TIMEOUT",
    "COMMANDS",
    "CONTEXT_DEFAULT",
    "HELP",
    "HISTORY_DEFAULT",
    "HISTORY_MAX",
    "PALETTE",
    "RECONNECT_WAIT",
    "ChatView",
    "Command",
    "CommandError",
    "Formatter",
    "PendingLine",
    "Prompt",
    "change_password",
    "colors_wanted",
    "interact",
    "nick_color",
    "parse_line",
    "printable",
    "rpc_problem",
]
