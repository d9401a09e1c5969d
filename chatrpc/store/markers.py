"""The read markers role: how far each user has read each conversation, and what
is still unread past that.

What a store guarantees:

* **Only forward.** :meth:`ReadMarkers.mark_read` stores a user's marker in a
  conversation only if it is above the stored one, in one atomic step, so marks
  made at once through several servers keep the highest. A lower or equal seq
  changes nothing. The caller checks the seq names a stored item (the store
  does not).
* **Told to the other servers.** A store shared by several servers tells them of
  every marker that moved, in the same atomic step (see
  :mod:`chatrpc.store.signals`): their sessions of the user, and in a direct
  conversation the peer's, learn it live.
* **Bounded counts.** :meth:`ReadMarkers.unread_counts` looks at no more than the
  :data:`UNREAD_CAP` newest items past a marker in each conversation, and at
  none where the marker is at the newest seq, so a page of 500 rooms costs at
  most 500 short range reads. A count of :data:`UNREAD_CAP` means that many or more.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..mentions import mentions
from ..model import MESSAGE, StoredMessage
from .messages import MessageLog

#: The most items past a read marker that the unread counts look at, per conversation.
UNREAD_CAP = 999


@dataclass(frozen=True, slots=True)
class Span:
    """What to count in one conversation: the items after ``read_seq`` up to ``last_seq``."""

    conv: str
    read_seq: int
    last_seq: int

    def window(self) -> tuple[int, int]:
        """The seqs looked at, ``after < seq <= upto``: the newest UNREAD_CAP past the marker."""
        return max(self.read_seq, self.last_seq - UNREAD_CAP), self.last_seq

    @property
    def empty(self) -> bool:
        return self.last_seq <= self.read_seq


@dataclass(frozen=True, slots=True)
class Unread:
    """A user's unread items in a conversation, and how many of those mention them."""

    unread: int = 0
    mentions: int = 0


def counts_unread(msg: StoredMessage, user: str) -> bool:
    """Whether a stored item counts as unread for ``user``: a message (not a change),
    not deleted, sent by someone else."""
    return msg.kind == MESSAGE and not msg.deleted and msg.sender != user


def tally(items: Iterable[StoredMessage], user: str) -> Unread:
    """The unread count and the mentions of ``user`` among ``items`` (a span's window)."""
    unread = mentioned = 0
    for msg in items:
        if counts_unread(msg, user):
            unread += 1
            mentioned += mentions(msg.text, user)
    return Unread(min(unread, UNREAD_CAP), min(mentioned, UNREAD_CAP))


async def count_from_log(log: MessageLog, user: str, spans: Sequence[Span]) -> list[Unread]:
    """:meth:`ReadMarkers.unread_counts` read through a store's history (what a
    message is now: a deleted one counts no more), one range per conversation behind."""
    out: list[Unread] = []
    for span in spans:
        if span.empty:
            out.append(Unread())
            continue
        after, upto = span.window()
        items = await log.history(span.conv, after_seq=after, before_seq=upto + 1, limit=UNREAD_CAP)
        out.append(tally(items, user))
    return out


class ReadMarkers(abc.ABC):
    """Per user and conversation, the newest seq read; see the module docstring."""

    @abc.abstractmethod
    async def mark_read(self, user: str, conv: str, seq: int) -> bool:
        """Moves ``user``'s marker in ``conv`` to ``seq`` if that is forward; returns
        whether it moved."""

    @abc.abstractmethod
    async def read_markers(self, user: str, convs: Sequence[str]) -> list[int]:
        """``user``'s marker in each of ``convs`` (0: none), in one step."""

    async def read_marker(self, user: str, conv: str) -> int:
        """``user``'s marker in ``conv`` (0: none)."""
        (seq,) = await self.read_markers(user, [conv])
        return seq

    @abc.abstractmethod
    async def unread_counts(self, user: str, spans: Sequence[Span]) -> list[Unread]:
        """For each span, the items past the marker that count as unread for ``user``
        (see :func:`counts_unread`) and how many mention them, among the newest
        :data:`UNREAD_CAP` of the span."""
