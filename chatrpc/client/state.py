"""What a client knows: its connection state, and what it needs to resume."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class State(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass
class ClientState:
    """What a :class:`ChatClient` knows, enough to resume after any failure."""

    epoch: str = ""
    rooms: list[str] = field(default_factory=list)
    #: Per conversation key (``#room`` or ``@peer``): every seq up to this one was
    #: delivered (or predates what the client follows); sessions resume from it.
    cursors: dict[str, int] = field(default_factory=dict)
    #: Seqs delivered above a DM's cursor, not yet contiguous with it: live DMs that
    #: arrived before the conversation's resume filled in what came before them.
    #: Saved state must keep it with ``cursors``, or those are shown again.
    ahead: dict[str, set[int]] = field(default_factory=dict)
