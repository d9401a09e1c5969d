"""The memory store's moderation marks (a part of MemoryStore; see
chatrpc.store.moderation)."""

from __future__ import annotations


class MemoryModeration:
    """Marks as a dict (scope, user, what) -> value."""

    _mark_values: dict[tuple[str, str, str], str]

    def _refuse_if_closed(self) -> None:
        raise NotImplementedError  # MemoryStore's

    async def _mark(self, scope: str, user: str, what: str) -> str | None:
        self._refuse_if_closed()
        return self._mark_values.get((scope, user, what))

    async def _set_mark(self, scope: str, user: str, what: str, value: str | None) -> str | None:
        self._refuse_if_closed()
        marks = self._mark_values
        if value is None:
            return marks.pop((scope, user, what), None)
        before = marks.get((scope, user, what))
        marks[scope, user, what] = value
        return before

    async def _some_marks(self, scope: str, keys: list[tuple[str, str]]) -> list[str | None]:
        self._refuse_if_closed()
        return [self._mark_values.get((scope, user, what)) for user, what in keys]

    async def _clear_marks(self, scope: str) -> None:
        self._refuse_if_closed()
        for key in [k for k in self._mark_values if k[0] == scope]:
            del self._mark_values[key]

    async def _marks(self, scope: str, what: str) -> dict[str, str]:
        self._refuse_if_closed()
        return {u: v for (s, u, w), v in self._mark_values.items() if s == scope and w == what}

    async def _marks_of(self, user: str, what: str) -> dict[str, str]:
        self._refuse_if_closed()
        return {s: v for (s, u, w), v in self._mark_values.items() if u == user and w == what}
