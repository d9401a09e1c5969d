"""An in-process store for tests and throwaway servers: nothing survives a restart."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

from ..model import Conversation, Draft, StoredMessage, dm_users, is_room_key, room_key
from .base import Account, Store, StoreOptions


class MemoryStore(Store):
    """Keeps every conversation as a list in memory; each ``open`` is a new epoch."""

    def __init__(self, options: StoreOptions | None = None) -> None:
        super().__init__(options)
        self._messages: dict[str, list[StoredMessage]] = {}
        self._last_seq: dict[str, int] = {}
        self._dedup: dict[tuple[str, str], tuple[float, StoredMessage]] = {}
        self._members: set[tuple[str, str]] = set()
        self._accounts: dict[str, Account] = {}
        self._tokens: dict[str, str] = {}
        self._generations: dict[str, int] = {}

    async def open(self) -> None:
        self.epoch = secrets.token_hex(8)

    async def close(self) -> None:
        pass

    async def append(self, draft: Draft) -> tuple[StoredMessage, bool]:
        now = time.monotonic()
        window = self.options.idempotency_window_s
        if draft.client_msg_id:
            hit = self._dedup.get((draft.sender, draft.client_msg_id))
            if hit is not None and now - hit[0] < window:
                return replace(hit[1], wire=None), True
        seq = self._last_seq.get(draft.conv, 0) + 1
        self._last_seq[draft.conv] = seq
        msg = draft.stored(seq)
        log = self._messages.setdefault(draft.conv, [])
        log.append(msg)
        self._apply_retention(log, draft.sent_at_ms)
        if draft.client_msg_id:
            self._dedup[(draft.sender, draft.client_msg_id)] = (now, msg)
            if len(self._dedup) > 10_000:
                self._dedup = {k: v for k, v in self._dedup.items() if now - v[0] < window}
        self._listener([msg])
        return msg, False

    def _apply_retention(self, log: list[StoredMessage], now_ms: int) -> None:
        cap = self.options.retention_max_messages
        if cap and len(log) > cap:
            del log[: len(log) - cap]
        age = self.options.retention_max_age_s
        if age:
            cutoff = now_ms - int(age * 1000)
            drop = 0
            while drop < len(log) and log[drop].sent_at_ms < cutoff:
                drop += 1
            del log[:drop]

    async def history(
        self,
        conv: str,
        *,
        after_seq: int = 0,
        before_seq: int = 0,
        limit: int = 100,
        descending: bool = False,
    ) -> list[StoredMessage]:
        log = self._messages.get(conv, [])
        picked = [m for m in log if m.seq > after_seq and (before_seq == 0 or m.seq < before_seq)]
        if descending:
            picked.reverse()
        return [replace(m, wire=None) for m in picked[:limit]]

    async def last_seq(self, conv: str) -> int:
        return self._last_seq.get(conv, 0)

    async def ensure_room(self, room: str) -> None:
        self._last_seq.setdefault(room_key(room), 0)

    async def list_rooms(self) -> list[Conversation]:
        return [
            Conversation(key, seq)
            for key, seq in sorted(self._last_seq.items())
            if is_room_key(key)
        ]

    async def list_directs(self, user: str) -> list[Conversation]:
        return [
            Conversation(key, seq)
            for key, seq in sorted(self._last_seq.items())
            if not is_room_key(key) and user in dm_users(key)
        ]

    async def add_member(self, room: str, user: str) -> None:
        self._members.add((room, user))

    async def remove_member(self, room: str, user: str) -> None:
        self._members.discard((room, user))

    async def is_member(self, room: str, user: str) -> bool:
        return (room, user) in self._members

    async def create_account(self, user: str, password_hash: str | None, token_hash: str) -> bool:
        if user in self._accounts:
            return False
        self._accounts[user] = Account(user, password_hash)
        self._tokens[token_hash] = user
        return True

    async def get_account(self, user: str) -> Account | None:
        return self._accounts.get(user)

    async def add_token(self, user: str, token_hash: str) -> None:
        self._tokens[token_hash] = user

    async def mint_token(
        self,
        user: str,
        token_hash: str,
        *,
        proof_hash: str | None = None,
        generation: int | None = None,
    ) -> bool:
        # No await between the checks and the write: atomic on the event loop.
        if user not in self._accounts:
            return False
        if proof_hash is not None and self._tokens.get(proof_hash) != user:
            return False
        if generation is not None and self._generations.get(user, 0) != generation:
            return False
        self._tokens[token_hash] = user
        return True

    async def token_generation(self, user: str) -> int:
        return self._generations.get(user, 0)

    async def user_for_token(self, token_hash: str) -> str | None:
        return self._tokens.get(token_hash)

    async def revoke_tokens(self, user: str) -> int:
        if user in self._accounts:
            self._generations[user] = self._generations.get(user, 0) + 1
        mine = [t for t, u in self._tokens.items() if u == user]
        for t in mine:
            del self._tokens[t]
        return len(mine)

    async def revoke_token(self, token_hash: str) -> bool:
        return self._tokens.pop(token_hash, None) is not None

    async def set_password(self, user: str, password_hash: str) -> bool:
        if user not in self._accounts:
            return False
        self._accounts[user] = Account(user, password_hash)
        return True
