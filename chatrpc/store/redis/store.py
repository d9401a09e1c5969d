"""The Redis store: the parts of this package composed behind the Store interface."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ...model import Conversation, Draft, StoredMessage
from ...urls import redact
from ..base import (
    Account,
    RegistrationToken,
    RoomClaim,
    RoomEntry,
    Span,
    Store,
    StoreOptions,
    Unread,
)
from ..scan import ScanSearch
from .accounts import Accounts
from .admin import RedisAdmin
from .connection import Connection
from .feed import Feed
from .history import History
from .keys import PRESENCE, PRESENCE_MAXLEN, Entry
from .markers import Markers
from .moderation import RedisModeration
from .presence import Presence
from .rooms import RegistrationTokens, Rooms
from .signals import Signals
from .watches import Watches
from .writer import Writer

log = logging.getLogger(__name__)


class _LiveState:
    """Typing notices, read markers and notices told to the other servers."""

    _conn: Connection
    _presence: Presence
    _signals: Signals
    _markers: Markers

    async def announce(self, kind: str, user: str, detail: str = "") -> None:
        fields: dict[Any, Any] = {
            "n": self._presence.node,
            "k": "notice",
            "w": kind,
            "u": user,
            "d": detail,
        }

        async def do() -> None:
            await self._conn.r().xadd(PRESENCE, fields, maxlen=PRESENCE_MAXLEN, approximate=True)

        await self._conn.call(do, retry=False)

    def relay_typing(self, conv: str, user: str) -> None:
        self._signals.relay_typing(conv, user)

    async def mark_read(self, user: str, conv: str, seq: int) -> bool:
        return await self._markers.mark_read(user, conv, seq)

    async def read_markers(self, user: str, convs: Sequence[str]) -> list[int]:
        return await self._markers.read_markers(user, convs)

    async def unread_counts(self, user: str, spans: Sequence[Span]) -> list[Unread]:
        return await self._markers.unread_counts(user, spans)


class RedisStore(ScanSearch, RedisAdmin, RedisModeration, _LiveState, Store):
    """Chat state in Redis, shared by every server using the same URL (see the package doc).

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket).
        options: limits shared by every store.
        timeout_s: how long one Redis command may take before the store reports
            itself unavailable.
    """

    def __init__(
        self, url: str, options: StoreOptions | None = None, timeout_s: float = 5.0
    ) -> None:
        super().__init__(options)
        self.url = url
        self._conn = Connection(url, timeout_s)
        self._history = History(self._conn, self.options)
        self._watches = Watches(self._conn)
        self._presence = Presence(
            self._conn,
            self._watches,
            self.options,
            lambda room, user, online: self._presence_listener(room, user, online),
            lambda user, token_hash: self._revoke_listener(user, token_hash),
            lambda user: self._disable_listener(user),
            lambda room: self._room_drop_listener(room),
            lambda kind, user, detail: self._notice_listener(kind, user, detail),
        )
        self._feed = Feed(
            self._conn,
            self._history,
            self._watches,
            self._notify,
            self._on_stream_entries,
            self._set_epoch,
        )
        self.feed_lag = self._feed.lag
        self._signals = Signals(
            self._conn, self._presence.node, lambda signal: self._signal_listener(signal)
        )
        self._markers = Markers(self._conn, self._presence.node)
        self._writer = Writer(self._conn, self.options, self._history, self._feed)
        self._rooms = Rooms(self._conn)
        self._regtokens = RegistrationTokens(self._conn)
        self._accounts = Accounts(self._conn, self._presence.node)

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        self._conn.open()
        try:
            self.epoch = await self._conn.call(self._conn.load_epoch)
            presence_cursor = await self._conn.call(self._feed.last_presence_id)
            await self._conn.call(self._rooms.index_rooms)
            await self._conn.call(self._rooms.index_memberships)
            await self._conn.call(self.index_accounts)
        except BaseException:
            await self._conn.release()
            raise
        self._writer.start()
        self._feed.start(self.epoch, presence_cursor)
        self._presence.start()
        log.info("Redis store at %s (epoch %s)", redact(self.url), self.epoch)

    async def close(self) -> None:
        if self._conn.closed:
            return
        await self._presence.withdraw()
        await self._signals.stop()
        self._conn.closed = True
        await self._writer.stop()
        await self._feed.stop()
        # Calls still under way (a handler's read, say) end before their client closes.
        await self._conn.wait_idle()
        await self._conn.release()

    def _set_epoch(self, epoch: str) -> None:
        self.epoch = epoch

    async def _on_stream_entries(self, found: list[Entry]) -> None:
        """What the other servers told on the presence stream: signals, then presence."""
        self._signals.on_entries(found)
        await self._presence.on_entries(found)

    # -- watching and presence -------------------------------------------------------

    def watch(self, key: str) -> None:
        if self._watches.watch(key):
            self._feed.poke()

    def unwatch(self, key: str) -> None:
        if self._watches.unwatch(key) and not key.startswith("@"):
            self._presence.forget(key[1:])

    def set_online(self, room: str, user: str, online: bool) -> None:
        self._presence.set_online(room, user, online)

    def online_elsewhere(self, room: str, user: str) -> bool:
        return self._presence.online_elsewhere(room, user)

    def count_elsewhere(self, room: str) -> int:
        return self._presence.count_elsewhere(room)

    async def online_users(self, room: str) -> list[str]:
        return await self._presence.online_users(room)

    async def online_users_many(self, rooms: Sequence[str]) -> list[set[str]]:
        return await self._presence.online_users_many(rooms)

    # -- messages --------------------------------------------------------------------

    async def append(self, draft: Draft) -> tuple[StoredMessage, bool]:
        (result,) = await self.append_many([draft])
        return result

    async def append_many(self, drafts: Sequence[Draft]) -> list[tuple[StoredMessage, bool]]:
        """Queued for the writer task, which sends queued appends in one pipeline, in order."""
        return await self._writer.append_many(drafts)

    async def find_sent(self, sender: str, client_msg_id: str) -> StoredMessage | None:
        return await self._history.find_sent(sender, client_msg_id)

    async def history(
        self,
        conv: str,
        *,
        after_seq: int = 0,
        before_seq: int = 0,
        limit: int = 100,
        descending: bool = False,
    ) -> list[StoredMessage]:
        return await self._history.history(
            conv, after_seq=after_seq, before_seq=before_seq, limit=limit, descending=descending
        )

    async def last_seq(self, conv: str) -> int:
        return await self._history.last_seq(conv)

    # -- rooms and memberships --------------------------------------------------------

    async def ensure_room(self, room: str) -> None:
        await self.claim_room(room, "")

    async def claim_room(self, room: str, user: str, *, per_day: int = 0) -> RoomClaim:
        return await self._rooms.claim_room(room, user, per_day=per_day)

    async def rooms_page(
        self, *, limit: int, after: tuple[int, str] | None = None
    ) -> list[RoomEntry]:
        return await self._rooms.rooms_page(limit=limit, after=after)

    async def rooms_by_name(self, prefix: str, *, limit: int, after: str = "") -> list[RoomEntry]:
        return await self._rooms.rooms_by_name(prefix, limit=limit, after=after)

    async def prune_rooms(
        self, idle_before_ms: int, *, limit: int, from_ms: int = 0
    ) -> tuple[list[str], int | None]:
        return await self._rooms.prune_rooms(idle_before_ms, limit=limit, from_ms=from_ms)

    async def list_rooms(self) -> list[Conversation]:
        return await self._rooms.list_rooms()

    async def room_owner(self, room: str) -> str | None:
        return await self._rooms.room_owner(room)

    async def set_room_owner(self, room: str, owner: str) -> str | None:
        return await self._rooms.set_room_owner(room, owner)

    async def list_directs(self, user: str) -> list[Conversation]:
        return await self._rooms.list_directs(user)

    async def add_member(self, room: str, user: str) -> None:
        await self._rooms.add_member(room, user)

    async def remove_member(self, room: str, user: str) -> None:
        await self._rooms.remove_member(room, user)

    async def is_member(self, room: str, user: str) -> bool:
        return await self._rooms.is_member(room, user)

    async def member_rooms(self, user: str) -> list[str]:
        return await self._rooms.member_rooms(user)

    # -- accounts --------------------------------------------------------------------

    async def create_account(self, user: str, password_hash: str | None, token_hash: str) -> bool:
        return await self._accounts.create_account(user, password_hash, token_hash)

    async def get_account(self, user: str) -> Account | None:
        return await self._accounts.get_account(user)

    async def account_for_token(self, token_hash: str) -> Account | None:
        return await self._accounts.account_for_token(token_hash)

    async def add_token(self, user: str, token_hash: str) -> None:
        await self._accounts.add_token(user, token_hash)

    async def mint_token(
        self,
        user: str,
        token_hash: str,
        *,
        proof_hash: str | None = None,
        generation: int | None = None,
    ) -> bool:
        return await self._accounts.mint_token(
            user, token_hash, proof_hash=proof_hash, generation=generation
        )

    async def token_generation(self, user: str) -> int:
        return await self._accounts.token_generation(user)

    async def user_for_token(self, token_hash: str) -> str | None:
        return await self._accounts.user_for_token(token_hash)

    async def revoke_tokens(self, user: str) -> int:
        return await self._accounts.revoke_tokens(user)

    async def revoke_token(self, token_hash: str) -> bool:
        return await self._accounts.revoke_token(token_hash)

    async def set_password(self, user: str, password_hash: str) -> bool:
        return await self._accounts.set_password(user, password_hash)

    # -- registration tokens --------------------------------------------------------

    async def create_registration_token(
        self, token_hash: str, *, uses: int, expires_ms: int
    ) -> None:
        await self._regtokens.create(token_hash, uses=uses, expires_ms=expires_ms)

    async def use_registration_token(self, token_hash: str, now_ms: int) -> bool:
        return await self._regtokens.use(token_hash, now_ms)

    async def list_registration_tokens(self) -> list[RegistrationToken]:
        return await self._regtokens.list()

    async def revoke_registration_token(self, token_id_: str) -> bool:
        return await self._regtokens.revoke(token_id_)
