"""The in-process store's read markers: a dictionary, counted through its log."""

from __future__ import annotations

from collections.abc import Sequence

from .markers import ReadMarkers, Span, Unread, count_from_log
from .messages import MessageLog


class MemoryMarkers(ReadMarkers):
    """Read markers kept in memory, for a store that is also a :class:`MessageLog`."""

    def __init__(self) -> None:
        super().__init__()
        #: Markers by (user, conversation key).
        self._reads: dict[tuple[str, str], int] = {}

    async def mark_read(self, user: str, conv: str, seq: int) -> bool:
        if seq <= self._reads.get((user, conv), 0):
            return False
        self._reads[(user, conv)] = seq
        return True

    async def read_markers(self, user: str, convs: Sequence[str]) -> list[int]:
        return [self._reads.get((user, conv), 0) for conv in convs]

    async def unread_counts(self, user: str, spans: Sequence[Span]) -> list[Unread]:
        assert isinstance(self, MessageLog)
        return await count_from_log(self, user, spans)
