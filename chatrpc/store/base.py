"""The store: durable history with sequence numbers, accounts and memberships.

Every store (memory, SQLite, Redis) implements :class:`Store` and passes the same
test suite (``tests/test_store.py``). The guarantees a store gives:

* **Sequence numbers.** Each conversation's messages get ``seq`` 1, 2, 3, ...
  with no gap and no reuse, in the order :meth:`Store.append` calls were made
  from one task. ``epoch`` identifies the history: it changes only when the
  history is lost (a new database), so ``(epoch, conv, seq)`` names one message
  forever.
* **Commit before acknowledgement.** :meth:`Store.append` returns only after the
  message is as durable as the store can make it (committed to disk for SQLite).
* **Ordered notification.** Every newly committed message is passed to the
  listener (:meth:`Store.set_listener`) exactly once, in seq order within its
  conversation, on the event loop, *before* the ``append`` that made it returns.
  The hub fans messages out from there, so what a session receives live is
  always in commit order. A store shared by several servers (Redis) also
  notifies messages committed by the other servers, but only for the
  conversations this server watches (:meth:`Store.watch`); a single-process
  store notifies everything and ignores watches.
* **Idempotency.** An ``append`` whose ``(sender, client_msg_id)`` was stored
  within the idempotency window stores nothing and returns the original message
  with ``duplicate=True``; the listener is not called for it.
* **Accounts.** Name claims are first-come: :meth:`Store.create_account` is
  atomic. Only hashes of tokens and passwords are stored.
* **Revocation wins.** :meth:`Store.revoke_tokens` leaves no token of the user
  valid, even one minted concurrently: :meth:`Store.mint_token` checks its proof
  (a token still valid, or the user's token generation unchanged since a
  password was checked) and adds the new token in one atomic step, and
  ``revoke_tokens`` bumps the generation in the same step that deletes the tokens.

* **Rooms and quotas.** :meth:`Store.claim_room` counts the rooms each user
  created over the last :data:`QUOTA_WINDOW_MS` in the store itself, so servers
  sharing a store enforce one quota. Rooms are listed a page at a time by latest
  activity or by name (:meth:`Store.rooms_page`); no answer grows with the
  number of rooms. :meth:`Store.prune_rooms` removes idle rooms that have no
  members and no stored messages, keeping their seq counter so a seq is never
  reused.
* **Registration tokens.** Stored by hash, with a number of uses and an
  expiry; :meth:`Store.use_registration_token` spends one use atomically.

Methods raise :class:`chatrpc.errors.StoreUnavailable` when the backing service
cannot be reached (retryable); nothing is acknowledged in that case.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..model import Conversation, Draft, StoredMessage
from ..settings import check, setting

Listener = Callable[[Sequence[StoredMessage]], None]
PresenceListener = Callable[[str, str, bool], None]
RevokeListener = Callable[[str, "str | None"], None]


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Limits that every store applies the same way (see chatrpc.settings)."""

    idempotency_window_s: float = setting(
        24 * 3600.0,
        "--idempotency-window",
        "how long a client_msg_id is remembered",
        low=0,
        metavar="SECONDS",
    )
    retention_max_messages: int = setting(
        0,
        "--retention-max-messages",
        "keep at most N messages per conversation (0: all)",
        low=0,
        metavar="N",
    )
    retention_max_age_s: float = setting(
        0.0,
        "--retention-max-age",
        "drop messages older than this (0: never)",
        low=0,
        metavar="SECONDS",
    )
    #: A crashed server's users drop out this long after its last heartbeat.
    presence_ttl_s: float = setting(
        15.0,
        "--presence-ttl",
        "with a shared (Redis) store: a server's online users are forgotten this"
        " long after its last heartbeat",
        low=0.5,
        metavar="SECONDS",
    )

    def __post_init__(self) -> None:
        check(self)


#: The rolling window of the room creation quota: a day, in milliseconds.
QUOTA_WINDOW_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class RoomEntry:
    """A room as listed: its name (no ``#``), newest seq and latest activity."""

    name: str
    last_seq: int
    #: When the room last saw a message, a join or its creation (ms since the epoch).
    active_ms: int


@dataclass(frozen=True, slots=True)
class RoomClaim:
    """What :meth:`Store.claim_room` did."""

    #: The room did not exist and now does (counted against the user's quota).
    created: bool = False
    #: Over quota: nothing was created, and this many seconds pass before the
    #: oldest creation in the window leaves it (0: not refused).
    retry_after_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RegistrationToken:
    """A registration token as listed (never the token itself)."""

    #: The first 12 hex digits of the token's hash: how an operator names it.
    id: str
    uses_left: int
    expires_ms: int
    created_ms: int


def next_prune_start(examined: list[int], limit: int) -> int | None:
    """Where the next pruning step starts, from the activity times just looked at.

    None once fewer than ``limit`` were there to look at. Otherwise at the last
    time again (rooms sharing it may remain), or just past it when the whole
    step shared one time, so every step moves on.
    """
    if len(examined) < limit:
        return None
    return examined[-1] + 1 if examined[0] == examined[-1] else examined[-1]


def token_id(token_hash: str) -> str:
    """How a registration token is named in listings: a prefix of its hash."""
    return token_hash[:12]


@dataclass(frozen=True, slots=True)
class Account:
    user: str
    password_hash: str | None


class Store(abc.ABC):
    """Durable chat state behind one interface; see the module docstring."""

    def __init__(self, options: StoreOptions | None = None) -> None:
        self.options = options or StoreOptions()
        self._listener: Listener = _no_listener
        self._presence_listener: PresenceListener = _no_presence
        self._revoke_listener: RevokeListener = _no_revoke

    #: Identifies this history; set by :meth:`open`.
    epoch: str = ""

    def set_listener(self, listener: Listener) -> None:
        """Registers the one callback that receives newly committed messages."""
        self._listener = listener

    def watch(self, key: str) -> None:
        """Asks for messages that other servers commit to ``key`` from now on.

        ``key`` is ``#room`` for a room or ``@user`` for every direct
        conversation of ``user``. The hub watches a room while it has a local
        session in it and a user while they have a local session. A store shared
        by several servers notifies (besides this server's own appends) the
        messages of watched conversations committed after this call, never
        missing one, possibly a few committed just before it. It does not wait:
        the store catches up in the background. A no-op for single-process stores.
        """
        del key

    def unwatch(self, key: str) -> None:
        """Ends :meth:`watch` for ``key`` (called once the last local session left)."""
        del key

    # -- presence shared between servers (no-ops for a single-process store) ------------

    def set_presence_listener(self, listener: PresenceListener) -> None:
        """Registers the callback for users other servers report online or gone:
        ``listener(room, user, online)``, on the event loop."""
        self._presence_listener = listener

    def set_revoke_listener(self, listener: RevokeListener) -> None:
        """Registers the callback for tokens revoked through other servers:
        ``listener(user, token_hash)``, None for every token of ``user``, on the
        event loop, so their live sessions here end too."""
        self._revoke_listener = listener

    def set_online(self, room: str, user: str, online: bool) -> None:
        """Reports that ``user`` has (or no longer has) a session in ``room`` on this
        server. A shared store tells the other servers, in the order of the
        reports, and keeps the fact alive with heartbeats until it is withdrawn
        or this server stops. Returns at once."""
        del room, user, online

    def online_elsewhere(self, room: str, user: str) -> bool:
        """Whether ``user`` is in ``room`` through another server, as far as this
        one knows (a shared store keeps that current from the other servers'
        reports and heartbeats)."""
        del room, user
        return False

    def count_elsewhere(self, room: str) -> int:
        """How many users are in ``room`` through other servers, as far as this one
        knows (see :meth:`online_elsewhere`)."""
        del room
        return 0

    async def online_users(self, room: str) -> list[str] | None:
        """Users online in ``room`` on any server, or None if the store shares no
        presence (then the hub's own sessions are all there is)."""
        del room
        return None

    async def online_users_many(self, rooms: Sequence[str]) -> list[set[str]] | None:
        """The users online in each of ``rooms`` on any server, in one step (a
        listing page), or None if the store shares no presence."""
        del rooms
        return None

    @abc.abstractmethod
    async def open(self) -> None:
        """Connects, creates or migrates the schema and sets :attr:`epoch`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finishes pending writes and releases every resource."""

    # -- messages ---------------------------------------------------------------

    @abc.abstractmethod
    async def append(self, draft: Draft) -> tuple[StoredMessage, bool]:
        """Stores a message and returns it with its seq, and whether it was a duplicate."""

    async def append_many(self, drafts: Sequence[Draft]) -> list[tuple[StoredMessage, bool]]:
        """Appends several messages in order, as :meth:`append` would one by one.

        A store may commit them together (SQLite: in one transaction), which is
        how a session that sends faster than a commit takes keeps up.
        """
        return [await self.append(draft) for draft in drafts]

    @abc.abstractmethod
    async def history(
        self,
        conv: str,
        *,
        after_seq: int = 0,
        before_seq: int = 0,
        limit: int = 100,
        descending: bool = False,
    ) -> list[StoredMessage]:
        """Messages with ``after_seq < seq < before_seq`` (0: unbounded), ``limit`` at most.

        Oldest first; with ``descending`` the newest first, i.e. the page that
        ends just below ``before_seq``.
        """

    @abc.abstractmethod
    async def last_seq(self, conv: str) -> int:
        """The newest seq of a conversation, 0 if it has none."""

    # -- rooms and memberships --------------------------------------------------------

    @abc.abstractmethod
    async def ensure_room(self, room: str) -> None:
        """Creates the room if it does not exist yet."""

    @abc.abstractmethod
    async def list_rooms(self) -> list[Conversation]:
        """Every room (key ``#name``) with its newest seq, by name."""

    @abc.abstractmethod
    async def claim_room(self, room: str, user: str, *, per_day: int = 0) -> RoomClaim:
        """Creates ``room`` for ``user`` within their quota, or marks it active.

        An existing room is only marked active (it costs nothing). A new one is
        created unless ``user`` already created ``per_day`` rooms (0: no limit)
        over the last :data:`QUOTA_WINDOW_MS`; then nothing changes and the claim
        says when to retry. The check and the creation are one atomic step.
        """

    @abc.abstractmethod
    async def rooms_page(
        self, *, limit: int, after: tuple[int, str] | None = None
    ) -> list[RoomEntry]:
        """Up to ``limit`` rooms by latest activity, newest first (ties: name, last first).

        ``after`` is the ``(active_ms, name)`` of the last room of the previous
        page: the page holds the rooms that come strictly after it in that order.
        """

    @abc.abstractmethod
    async def rooms_by_name(self, prefix: str, *, limit: int, after: str = "") -> list[RoomEntry]:
        """Up to ``limit`` rooms whose name starts with ``prefix``, by name, after ``after``."""

    @abc.abstractmethod
    async def prune_rooms(
        self, idle_before_ms: int, *, limit: int, from_ms: int = 0
    ) -> tuple[list[str], int | None]:
        """Looks at up to ``limit`` rooms last active in ``[from_ms, idle_before_ms)``,
        oldest first, and removes those with no members and no stored messages.

        Returns the names removed and where the next step starts (None: every
        idle room was looked at). A removed room's seq counter is kept when it
        had messages (retention dropped them), so a room created again under
        that name goes on from it and a seq is never reused.
        """

    @abc.abstractmethod
    async def list_directs(self, user: str) -> list[Conversation]:
        """Every direct conversation ``user`` takes part in, with its newest seq."""

    @abc.abstractmethod
    async def add_member(self, room: str, user: str) -> None:
        """Records that ``user`` joined ``room`` (kept until they leave it)."""

    @abc.abstractmethod
    async def remove_member(self, room: str, user: str) -> None:
        """Records that ``user`` left ``room``."""

    @abc.abstractmethod
    async def is_member(self, room: str, user: str) -> bool:
        """Whether ``user`` joined ``room`` and has not left it."""

    # -- accounts --------------------------------------------------------------------

    @abc.abstractmethod
    async def create_account(self, user: str, password_hash: str | None, token_hash: str) -> bool:
        """Claims ``user`` with a first token; False (and no change) if already taken."""

    @abc.abstractmethod
    async def get_account(self, user: str) -> Account | None:
        """The account of ``user``, or None if the name is free."""

    @abc.abstractmethod
    async def add_token(self, user: str, token_hash: str) -> None:
        """Adds a valid token for an existing account."""

    @abc.abstractmethod
    async def mint_token(
        self,
        user: str,
        token_hash: str,
        *,
        proof_hash: str | None = None,
        generation: int | None = None,
    ) -> bool:
        """Adds a token for ``user`` only if its proof still holds; False (no change) if not.

        The proof is ``proof_hash``, a token that must still belong to ``user``,
        and/or ``generation``, which must still be the user's
        :meth:`token_generation` (read before a password was checked). The check
        and the write are one atomic step against :meth:`revoke_tokens`, on every
        server sharing the store, so a token minted during a revoke-all is
        either revoked by it or never minted. False also if the account is gone.
        """

    @abc.abstractmethod
    async def token_generation(self, user: str) -> int:
        """How many times every token of ``user`` was revoked (0 for a new or free name)."""

    @abc.abstractmethod
    async def user_for_token(self, token_hash: str) -> str | None:
        """The user a token belongs to, or None."""

    @abc.abstractmethod
    async def revoke_tokens(self, user: str) -> int:
        """Invalidates every token of ``user`` and bumps its :meth:`token_generation`
        (an existing account's); returns how many tokens there were."""

    @abc.abstractmethod
    async def revoke_token(self, token_hash: str) -> bool:
        """Invalidates one token; False if it was not valid."""

    @abc.abstractmethod
    async def set_password(self, user: str, password_hash: str) -> bool:
        """Replaces the password hash of an existing account; False if there is none."""

    # -- registration tokens --------------------------------------------------------

    @abc.abstractmethod
    async def create_registration_token(
        self, token_hash: str, *, uses: int, expires_ms: int
    ) -> None:
        """Stores a registration token good for ``uses`` new names until ``expires_ms``."""

    @abc.abstractmethod
    async def use_registration_token(self, token_hash: str, now_ms: int) -> bool:
        """Spends one use of a token; False (and no change) if it is unknown,
        expired or used up."""

    @abc.abstractmethod
    async def list_registration_tokens(self) -> list[RegistrationToken]:
        """Every stored registration token (expired ones too, until removed), by id."""

    @abc.abstractmethod
    async def revoke_registration_token(self, token_id: str) -> bool:
        """Removes the token with that id (see :func:`token_id`); False if none."""


def _no_listener(messages: Sequence[StoredMessage]) -> None:
    del messages


def _no_presence(room: str, user: str, online: bool) -> None:
    del room, user, online


def _no_revoke(user: str, token_hash: str | None) -> None:
    del user, token_hash
