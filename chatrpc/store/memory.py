"""An in-process store for tests and throwaway servers: nothing survives a restart."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace

from ..model import (
    CHANGES,
    EDIT,
    Conversation,
    Draft,
    StoredMessage,
    dm_users,
    is_room_key,
    room_key,
)
from .base import (
    QUOTA_WINDOW_MS,
    Account,
    LocalPresence,
    LocalSignals,
    RegistrationToken,
    RoomClaim,
    RoomEntry,
    Store,
    StoreOptions,
    next_prune_start,
    token_id,
)
from .changes import DELETE, applies, changed
from .memory_admin import MemoryAdmin
from .memory_markers import MemoryMarkers
from .memory_members import MemoryMembers
from .memory_moderation import MemoryModeration
from .moderation import KEPT
from .rules import dropped_original, retention_cutoff_ms, store_closed
from .scan import ScanSearch


def _now_ms() -> int:
    return int(time.time() * 1000)


def _apply_retention(log: list[StoredMessage], options: StoreOptions) -> None:
    """Drops what retention no longer keeps from the front of a conversation's log."""
    cap = options.retention_max_messages
    if cap and len(log) > cap:
        del log[: len(log) - cap]
    cutoff = retention_cutoff_ms(options, _now_ms())
    if cutoff:
        drop = 0
        while drop < len(log) and log[drop].sent_at_ms < cutoff:
            drop += 1
        del log[:drop]


class _MemoryChanges:
    """The memory store's stored changes and retries (see chatrpc.store.changes):
    items are found by seq, a change is applied to its message in the log."""

    options: StoreOptions
    _closed: bool
    _messages: dict[str, list[StoredMessage]]
    #: (sender, client_msg_id) -> (when, conversation, seq) within the window.
    _dedup: dict[tuple[str, str], tuple[float, str, int]]

    def _duplicate(
        self, sender: str, client_msg_id: str, draft: Draft | None = None
    ) -> StoredMessage | None:
        """The item stored for a client_msg_id within the window, if any (a retry's
        answer; with ``draft``, the retry itself when retention dropped it)."""
        hit = self._dedup.get((sender, client_msg_id))
        if hit is None or time.monotonic() - hit[0] >= self.options.idempotency_window_s:
            return None
        index = _index(self._messages.get(hit[1], []), hit[2])
        if index is None:
            return None if draft is None else dropped_original(hit[1], hit[2], draft)
        return replace(self._messages[hit[1]][index], wire=None, json=None)

    async def find_sent(self, sender: str, client_msg_id: str) -> StoredMessage | None:
        if self._closed:
            raise store_closed()
        return self._duplicate(sender, client_msg_id)

    @staticmethod
    def _apply(log: list[StoredMessage], item: StoredMessage) -> StoredMessage:
        """Applies a change to its message in ``log``; returns the item as stored."""
        if item.kind not in CHANGES:
            return item
        index = _index(log, item.target_seq)
        if index is None or not applies(log[index]):
            return replace(item, text="") if item.kind == EDIT else item
        # A new object: the one notified before may still be queued for sessions.
        log[index] = changed(log[index], item)
        if item.kind == DELETE:
            for i in range(index + 1, len(log)):
                if log[i].kind == EDIT and log[i].target_seq == item.target_seq:
                    log[i] = replace(log[i], text="", wire=None, json=None)
        return item


def _index(log: list[StoredMessage], seq: int) -> int | None:
    """Where item ``seq`` is in a log (retention only drops from its front)."""
    index = seq - log[0].seq if log else -1
    return index if 0 <= index < len(log) else None


class MemoryStore(
    MemoryAdmin,
    LocalPresence,
    LocalSignals,
    MemoryMembers,
    MemoryModeration,
    ScanSearch,
    _MemoryChanges,
    Store,
    MemoryMarkers,
):
    """Keeps every conversation as a list in memory; each ``open`` is a new epoch."""

    def __init__(self, options: StoreOptions | None = None) -> None:
        super().__init__(options)
        self._messages: dict[str, list[StoredMessage]] = {}
        self._last_seq: dict[str, int] = {}
        self._dedup: dict[tuple[str, str], tuple[float, str, int]] = {}
        self._members: set[tuple[str, str]] = set()
        self._mark_values: dict[tuple[str, str, str], str] = {}
        self._accounts: dict[str, Account] = {}
        self._tokens: dict[str, str] = {}
        self._generations: dict[str, int] = {}
        #: Latest activity per room key, and each user's room creations (ms).
        self._active: dict[str, int] = {}
        self._created: dict[str, list[int]] = {}
        self._newest = 0
        #: Registration tokens by hash: [uses left, expires_ms, created_ms].
        self._registration: dict[str, list[int]] = {}
        self._closed = False

    async def open(self) -> None:
        self.epoch = secrets.token_hex(8)

    async def close(self) -> None:
        self._closed = True

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise store_closed()

    async def append(self, draft: Draft) -> tuple[StoredMessage, bool]:
        self._refuse_if_closed()
        now = time.monotonic()
        window = self.options.idempotency_window_s
        if draft.client_msg_id:
            hit = self._duplicate(draft.sender, draft.client_msg_id, draft)
            if hit is not None:
                return hit, True
        seq = self._last_seq.get(draft.conv, 0) + 1
        self._last_seq[draft.conv] = seq
        log = self._messages.setdefault(draft.conv, [])
        msg = self._apply(log, draft.stored(seq))
        log.append(msg)
        if is_room_key(draft.conv):
            self._touch(draft.conv)
        _apply_retention(log, self.options)
        if draft.client_msg_id:
            self._dedup[(draft.sender, draft.client_msg_id)] = (now, draft.conv, seq)
            if len(self._dedup) > 10_000:
                self._dedup = {k: v for k, v in self._dedup.items() if now - v[0] < window}
        self._notify([msg])
        return msg, False

    async def history(
        self,
        conv: str,
        *,
        after_seq: int = 0,
        before_seq: int = 0,
        limit: int = 100,
        descending: bool = False,
    ) -> list[StoredMessage]:
        self._refuse_if_closed()
        log = self._messages.get(conv, [])
        picked = [m for m in log if m.seq > after_seq and (before_seq == 0 or m.seq < before_seq)]
        if descending:
            picked.reverse()
        return [replace(m, wire=None, json=None) for m in picked[:limit]]

    async def last_seq(self, conv: str) -> int:
        self._refuse_if_closed()
        return self._last_seq.get(conv, 0)

    async def ensure_room(self, room: str) -> None:
        self._refuse_if_closed()
        self._last_seq.setdefault(room_key(room), 0)
        if room_key(room) not in self._active:
            self._touch(room_key(room))

    async def list_rooms(self) -> list[Conversation]:
        self._refuse_if_closed()
        return [Conversation(key, self._last_seq.get(key, 0)) for key in sorted(self._active)]

    async def claim_room(self, room: str, user: str, *, per_day: int = 0) -> RoomClaim:
        self._refuse_if_closed()
        key = room_key(room)
        now = _now_ms()
        if key in self._active:
            self._touch(key)
            return RoomClaim()
        if per_day:
            mine = [t for t in self._created.get(user, []) if t > now - QUOTA_WINDOW_MS]
            self._created[user] = mine
            if len(mine) >= per_day:
                return RoomClaim(retry_after_s=(min(mine) + QUOTA_WINDOW_MS - now) / 1000)
            mine.append(now)
        self._last_seq.setdefault(key, 0)
        self._touch(key)
        self._owners[key] = user
        return RoomClaim(created=True)

    def _touch(self, key: str) -> None:
        """Marks a room the most recently active: later than every other room."""
        self._newest = max(_now_ms(), self._newest + 1)
        self._active[key] = self._newest

    def _entry(self, key: str) -> RoomEntry:
        return RoomEntry(key[1:], self._last_seq.get(key, 0), self._active[key])

    async def rooms_page(
        self, *, limit: int, after: tuple[int, str] | None = None
    ) -> list[RoomEntry]:
        self._refuse_if_closed()
        order = sorted(((t, k[1:]) for k, t in self._active.items()), reverse=True)
        picked = [(t, n) for t, n in order if after is None or (t, n) < after]
        return [self._entry("#" + n) for _, n in picked[:limit]]

    async def rooms_by_name(self, prefix: str, *, limit: int, after: str = "") -> list[RoomEntry]:
        self._refuse_if_closed()
        names = sorted(k[1:] for k in self._active if k[1:].startswith(prefix))
        return [self._entry("#" + n) for n in names if n > after][:limit]

    async def prune_rooms(
        self, idle_before_ms: int, *, limit: int, from_ms: int = 0
    ) -> tuple[list[str], int | None]:
        self._refuse_if_closed()
        idle = sorted((t, k) for k, t in self._active.items() if from_ms <= t < idle_before_ms)[
            :limit
        ]
        gone: list[str] = []
        for _, key in idle:
            name = key[1:]
            busy = self._messages.get(key) or any(r == name for r, _ in self._members)
            if busy or (name, "", KEPT) in self._mark_values:  # or its owners keep it
                continue
            del self._active[key]
            if not self._last_seq.get(key):
                self._last_seq.pop(key, None)
            gone.append(name)
        return gone, next_prune_start([t for t, _ in idle], limit)

    async def list_directs(self, user: str) -> list[Conversation]:
        self._refuse_if_closed()
        return [
            Conversation(key, seq)
            for key, seq in sorted(self._last_seq.items())
            if not is_room_key(key) and user in dm_users(key)
        ]

    async def create_account(self, user: str, password_hash: str | None, token_hash: str) -> bool:
        self._refuse_if_closed()
        if user in self._accounts:
            return False
        self._accounts[user] = Account(user, password_hash)
        self._tokens[token_hash] = user
        self._born[user] = self._seen[user] = _now_ms()
        return True

    async def get_account(self, user: str) -> Account | None:
        self._refuse_if_closed()
        return self._accounts.get(user)

    async def add_token(self, user: str, token_hash: str) -> None:
        self._refuse_if_closed()
        self._tokens[token_hash] = user

    async def mint_token(
        self,
        user: str,
        token_hash: str,
        *,
        proof_hash: str | None = None,
        generation: int | None = None,
    ) -> bool:
        self._refuse_if_closed()
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
        self._refuse_if_closed()
        return self._generations.get(user, 0)

    async def user_for_token(self, token_hash: str) -> str | None:
        self._refuse_if_closed()
        return self._tokens.get(token_hash)

    async def revoke_tokens(self, user: str) -> int:
        self._refuse_if_closed()
        if user in self._accounts:
            self._generations[user] = self._generations.get(user, 0) + 1
        mine = [t for t, u in self._tokens.items() if u == user]
        for t in mine:
            del self._tokens[t]
        return len(mine)

    async def revoke_token(self, token_hash: str) -> bool:
        self._refuse_if_closed()
        return self._tokens.pop(token_hash, None) is not None

    async def set_password(self, user: str, password_hash: str) -> bool:
        self._refuse_if_closed()
        if user not in self._accounts:
            return False
        self._accounts[user] = replace(self._accounts[user], password_hash=password_hash)
        return True

    async def create_registration_token(
        self, token_hash: str, *, uses: int, expires_ms: int
    ) -> None:
        self._refuse_if_closed()
        self._registration[token_hash] = [uses, expires_ms, _now_ms()]

    async def use_registration_token(self, token_hash: str, now_ms: int) -> bool:
        self._refuse_if_closed()
        entry = self._registration.get(token_hash)
        if entry is None or entry[0] <= 0 or entry[1] <= now_ms:
            return False
        entry[0] -= 1
        return True

    async def list_registration_tokens(self) -> list[RegistrationToken]:
        self._refuse_if_closed()
        found = [RegistrationToken(token_id(h), *entry) for h, entry in self._registration.items()]
        return sorted(found, key=lambda t: t.id)

    async def revoke_registration_token(self, token_id_: str) -> bool:
        self._refuse_if_closed()
        for h in list(self._registration):
            if token_id(h) == token_id_:
                del self._registration[h]
                return True
        return False
