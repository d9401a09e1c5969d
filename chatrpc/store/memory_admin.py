"""The memory store's operations role (see admin.py), over the memory store's state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..model import StoredMessage, dm_users, is_room_key, room_key
from .accounts import Account
from .admin import AccountInfo, AdminStore, RoomDeleted, RoomInfo
from .rules import store_closed


class MemoryAdmin(AdminStore):
    """Listings, disabled accounts, room owners, deletes, pruning and idle accounts
    over the dictionaries of :class:`~chatrpc.store.memory.MemoryStore`."""

    _closed: bool
    _messages: dict[str, list[StoredMessage]]
    _last_seq: dict[str, int]
    _members: set[tuple[str, str]]
    _accounts: dict[str, Account]
    _tokens: dict[str, str]
    _active: dict[str, int]
    #: Each room's owner ("" none), and each account's creation and last-seen times.
    _owners: dict[str, str]
    _born: dict[str, int]
    _seen: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owners = {}
        self._born = {}
        self._seen = {}

    def _check_open(self) -> None:
        if self._closed:
            raise store_closed()

    def _info(self, user: str) -> AccountInfo:
        account = self._accounts[user]
        return AccountInfo(
            user,
            account.password_hash is not None,
            account.disabled,
            self._born.get(user, 0),
            self._seen.get(user, 0),
        )

    async def users_page(self, prefix: str, *, limit: int, after: str = "") -> list[AccountInfo]:
        self._check_open()
        names = sorted(u for u in self._accounts if u.startswith(prefix) and u > after)
        return [self._info(u) for u in names[:limit]]

    async def account_info(self, user: str) -> AccountInfo | None:
        self._check_open()
        return self._info(user) if user in self._accounts else None

    async def count_accounts(self) -> int:
        self._check_open()
        return len(self._accounts)

    async def clear_password(self, user: str) -> bool:
        self._check_open()
        if user not in self._accounts:
            return False
        self._accounts[user] = replace(self._accounts[user], password_hash=None)
        return True

    async def set_disabled(self, user: str, disabled: bool) -> bool:
        self._check_open()
        if user not in self._accounts:
            return False
        self._accounts[user] = replace(self._accounts[user], disabled=disabled)
        return True

    def _room_info(self, name: str) -> RoomInfo:
        key = room_key(name)
        members = sum(1 for r, _ in self._members if r == name)
        stored = len(self._messages.get(key, ()))
        return RoomInfo(name, self._owners.get(key, ""), members, stored, self._last_seq[key])

    async def room_infos(self, prefix: str, *, limit: int, after: str = "") -> list[RoomInfo]:
        self._check_open()
        names = sorted(k[1:] for k in self._active if k[1:].startswith(prefix) and k[1:] > after)
        return [self._room_info(n) for n in names[:limit]]

    async def count_rooms(self) -> int:
        self._check_open()
        return len(self._active)

    async def room_owner(self, room: str) -> str | None:
        self._check_open()
        key = room_key(room)
        return self._owners.get(key, "") if key in self._active else None

    async def set_room_owner(self, room: str, owner: str) -> str | None:
        previous = await self.room_owner(room)
        if previous is not None:
            self._owners[room_key(room)] = owner
        return previous

    async def delete_room(self, room: str) -> RoomDeleted | None:
        self._check_open()
        key = room_key(room)
        if key not in self._active:
            return None
        del self._active[key]
        self._owners.pop(key, None)
        removed = self._messages.pop(key, [])
        members = sorted(u for r, u in self._members if r == room)
        self._members -= {(room, u) for u in members}
        return RoomDeleted(len(removed), members)

    async def prune_history(self, conv: str, *, before_ms: int = 0, keep_last: int = 0) -> int:
        self._check_open()
        log = self._messages.get(conv, [])
        keep = [m for m in log if not before_ms or m.sent_at_ms >= before_ms]
        if keep_last:
            keep = keep[-keep_last:]
        removed = len(log) - len(keep)
        log[:] = keep
        return removed

    async def touch_accounts(self, users: Sequence[str], now_ms: int) -> None:
        self._check_open()
        for user in users:
            if user in self._accounts:
                self._seen[user] = now_ms

    def _may_expire(self, user: str) -> bool:
        account = self._accounts[user]
        if account.password_hash is not None or account.disabled:
            return False
        # A pruned room leaves its owner behind (a room made again gets a new one).
        if any(o == user and k in self._active for k, o in self._owners.items()):
            return False
        return not any(not is_room_key(key) and user in dm_users(key) for key in self._last_seq)

    async def expire_idle_accounts(
        self, seen_before_ms: int, *, limit: int, after: str = ""
    ) -> tuple[list[str], str | None]:
        self._check_open()
        start = (-1, "")
        if after:
            t, _, u = after.partition(" ")
            start = (int(t), u)
        idle = sorted((t, u) for u, t in self._seen.items() if t < seen_before_ms)
        idle = [e for e in idle if e > start][:limit]
        gone: list[str] = []
        for _, user in idle:
            if not self._may_expire(user):
                continue
            del self._accounts[user]
            self._seen.pop(user, None)
            self._born.pop(user, None)
            for token in [t for t, u in self._tokens.items() if u == user]:
                del self._tokens[token]
            self._members = {(r, u) for r, u in self._members if u != user}
            gone.append(user)
        return gone, f"{idle[-1][0]} {idle[-1][1]}" if len(idle) == limit else None
