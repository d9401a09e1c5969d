"""The memory store's memberships: who joined which room (a part of MemoryStore)."""

from __future__ import annotations


class MemoryMembers:
    """Memberships as ``(room, user)`` pairs; see :class:`~chatrpc.store.rooms.RoomStore`."""

    _members: set[tuple[str, str]]

    def _refuse_if_closed(self) -> None:
        raise NotImplementedError  # MemoryStore's

    async def add_member(self, room: str, user: str) -> None:
        self._refuse_if_closed()
        self._members.add((room, user))

    async def remove_member(self, room: str, user: str) -> None:
        self._refuse_if_closed()
        self._members.discard((room, user))

    async def is_member(self, room: str, user: str) -> bool:
        self._refuse_if_closed()
        return (room, user) in self._members

    async def member_rooms(self, user: str) -> list[str]:
        self._refuse_if_closed()
        return sorted(r for r, u in self._members if u == user)
