"""``chatrpc.v1.AdminService``: the operator's calls, over the hub and the store.

Served only on the admin Unix socket (see chatrpc.admin.socket): whoever can
open that file is the operator, so no call here asks who is calling. A change
that affects live sessions takes effect on every server: this one through the
hub, the others through the store (a shared store announces revocations,
disables and deleted rooms; see chatrpc.store.admin).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

from .. import __version__
from ..auth import MAX_PASSWORD, hash_password
from ..errors import ChatError, Code, invalid
from ..hub import Hub
from ..listing import decode_token, encode_token, page_size
from ..model import dm_key, normalize_name, room_key
from ..moderation import Moderation
from ..moderation_api import action_of, announce
from ..store import OWNER, AccountInfo
from ..subscriber import EndReason
from ..urls import redact
from ..v1 import admin_pb2 as apb
from ..v1 import chat_pb2 as pb
from ..wire import message_pb

log = logging.getLogger(__name__)

#: Items a page of users or rooms holds by default, and at most.
DEFAULT_PAGE, MAX_PAGE = 100, 1000
#: Stored items one read of an export takes.
EXPORT_STEP = 500


def _user(raw: str) -> str:
    return normalize_name(raw, "user")


def _not_found(user: str) -> ChatError:
    return ChatError(Code.NOT_FOUND, f"no user named {user!r}")


class AdminService:
    """Every AdminService method as a coroutine of its request (the socket's
    adapter maps what they raise to gRPC statuses)."""

    def __init__(self, hub: Hub, store_url: str) -> None:
        self.hub = hub
        self.store = hub.store
        self.store_url = store_url
        self.started = time.monotonic()
        self.moderation = Moderation(hub.store, hub.rules)

    async def ListUsers(self, request: apb.ListUsersRequest) -> apb.ListUsersResponse:
        after = decode_token(request.page_token, "users", 1)[0] if request.page_token else ""
        limit = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        prefix = request.prefix.strip().lower()
        found = await self.store.users_page(prefix, limit=limit + 1, after=after)
        page = found[:limit]
        more = len(found) > limit
        here = Counter(s.user for s in self.hub.sessions())
        return apb.ListUsersResponse(
            users=[_user_pb(u, here[u.user]) for u in page],
            next_page_token=encode_token("users", page[-1].user) if more else "",
        )

    async def GetUser(self, request: apb.GetUserRequest) -> apb.User:
        user = _user(request.user)
        info = await self.store.account_info(user)
        if info is None:
            raise _not_found(user)
        return _user_pb(info, sum(1 for s in self.hub.sessions() if s.user == user))

    async def ResetPassword(self, request: apb.ResetPasswordRequest) -> apb.ResetPasswordResponse:
        user = _user(request.user)
        if request.clear == bool(request.password):
            raise invalid("give a new password, or clear to remove it (not both)")
        if len(request.password) > MAX_PASSWORD:
            raise invalid(f"password is longer than {MAX_PASSWORD} characters")
        if request.clear:
            done = await self.store.clear_password(user)
        else:
            pw_hash = await asyncio.to_thread(hash_password, request.password)
            done = await self.store.set_password(user, pw_hash)
        if not done:
            raise _not_found(user)
        # A reset is for a lost or leaked password: whoever holds a session ends it.
        revoked = await self._revoke(user)
        log.info("admin: password of %s %s", user, "cleared" if request.clear else "reset")
        return apb.ResetPasswordResponse(tokens_revoked=revoked)

    async def _revoke(self, user: str) -> int:
        revoked = await self.store.revoke_tokens(user)
        self.hub.revoke(user)  # the other servers are told by the store
        return revoked

    async def DisableUser(self, request: apb.DisableUserRequest) -> apb.DisableUserResponse:
        user = _user(request.user)
        if not await self.store.set_disabled(user, True):
            raise _not_found(user)
        ended = self.hub.revoke(user, reason=EndReason.DISABLED)
        log.info("admin: %s disabled, %d sessions ended here", user, ended)
        return apb.DisableUserResponse(sessions_ended_here=ended)

    async def EnableUser(self, request: apb.EnableUserRequest) -> apb.EnableUserResponse:
        user = _user(request.user)
        if not await self.store.set_disabled(user, False):
            raise _not_found(user)
        log.info("admin: %s enabled", user)
        return apb.EnableUserResponse()

    async def RevokeTokens(self, request: apb.RevokeTokensRequest) -> apb.RevokeTokensResponse:
        user = _user(request.user)
        if await self.store.get_account(user) is None:
            raise _not_found(user)
        revoked = await self._revoke(user)
        log.info("admin: %d tokens of %s revoked", revoked, user)
        return apb.RevokeTokensResponse(tokens_revoked=revoked)

    async def ListRooms(self, request: apb.AdminListRoomsRequest) -> apb.AdminListRoomsResponse:
        after = decode_token(request.page_token, "admin-rooms", 1)[0] if request.page_token else ""
        limit = page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        prefix = request.prefix.strip().lower().removeprefix("#")
        found = await self.store.room_infos(prefix, limit=limit + 1, after=after)
        page = found[:limit]
        online = await self.hub.presence.online_many([r.name for r in page])
        rooms = [
            apb.RoomInfo(
                name=r.name,
                owner=r.owner,
                members=r.members,
                stored=r.stored,
                last_seq=r.last_seq,
                online=len(users),
            )
            for r, users in zip(page, online, strict=True)
        ]
        more = len(found) > limit
        token = encode_token("admin-rooms", page[-1].name) if more else ""
        return apb.AdminListRoomsResponse(rooms=rooms, next_page_token=token)

    async def DeleteRoom(self, request: apb.DeleteRoomRequest) -> apb.DeleteRoomResponse:
        room = normalize_name(request.room.removeprefix("#"), "room")
        deleted = await self.store.delete_room(room)
        if deleted is None:
            raise ChatError(Code.NOT_FOUND, f"no room named #{room}")
        await self.store.forget_room(room)
        left = self.hub.presence.drop(room)
        log.info("admin: #%s deleted (%d sessions left it here)", room, left)
        return apb.DeleteRoomResponse(
            messages_deleted=deleted.messages, members_removed=len(deleted.members)
        )

    async def SetRoomOwner(self, request: apb.SetRoomOwnerRequest) -> apb.SetRoomOwnerResponse:
        room = normalize_name(request.room.removeprefix("#"), "room")
        owner = _user(request.owner)
        if await self.store.get_account(owner) is None:
            raise _not_found(owner)
        previous = await self.store.set_room_owner(room, owner)
        if previous is None:
            raise ChatError(Code.NOT_FOUND, f"no room named #{room}")
        await self.store.set_role(room, owner, OWNER)  # whatever role they held before
        log.info("admin: #%s now owned by %s", room, owner)
        return apb.SetRoomOwnerResponse(previous_owner=previous)

    async def ModerateRoom(self, request: pb.ModerateRequest) -> pb.ModerateResponse:
        event = await self.moderation.act("", action_of(request), operator=True)
        await announce(self.hub, event)
        log.info(
            "admin: moderation in #%s: kind %d on %r", event.room, event.kind, event.target_user
        )
        return pb.ModerateResponse(event=message_pb(event))

    async def PruneHistory(self, request: apb.PruneHistoryRequest) -> apb.PruneHistoryResponse:
        if not (request.older_than_s or request.keep_last):
            raise invalid("say what to prune: older_than_s, keep_last, or both")
        conv = _conversation(request.conversation)
        before_ms = 0
        if request.older_than_s:
            before_ms = int(time.time() * 1000) - min(request.older_than_s, 2**40) * 1000
        deleted = await self.store.prune_history(
            conv, before_ms=max(before_ms, 0), keep_last=min(request.keep_last, 2**62)
        )
        log.info("admin: %d items of %s pruned", deleted, conv)
        return apb.PruneHistoryResponse(messages_deleted=deleted)

    async def ExportConversation(
        self, request: apb.ExportConversationRequest
    ) -> AsyncIterator[pb.Message]:
        conv = _conversation(request.conversation)
        if await self.store.last_seq(conv) == 0:
            what = f"#{conv[1:]}" if conv.startswith("#") else "that direct conversation"
            raise ChatError(Code.NOT_FOUND, f"nothing stored in {what}")
        after = 0
        while True:
            page = await self.store.history(conv, after_seq=after, limit=EXPORT_STEP)
            for msg in page:
                yield message_pb(msg)
            if len(page) < EXPORT_STEP:
                return
            after = page[-1].seq

    async def ServerStats(self, request: apb.ServerStatsRequest) -> apb.ServerStatsResponse:
        del request
        by_transport: dict[str, int] = {}
        for session in self.hub.sessions():
            key = session.transport or "unknown"
            by_transport[key] = by_transport.get(key, 0) + 1
        return apb.ServerStatsResponse(
            version=__version__,
            store=redact(self.store_url),
            epoch=self.store.epoch,
            uptime_s=time.monotonic() - self.started,
            sessions=self.hub.sessions_open,
            sessions_by_transport=by_transport,
            rooms=await self.store.count_rooms(),
            users=await self.store.count_accounts(),
            messages_committed=self.hub.stats.committed,
        )


def _user_pb(info: AccountInfo, sessions_here: int) -> apb.User:
    return apb.User(
        name=info.user,
        has_password=info.has_password,
        disabled=info.disabled,
        created_ms=info.created_ms,
        last_seen_ms=info.last_seen_ms,
        sessions_here=sessions_here,
    )


def _conversation(ref: apb.ConversationRef) -> str:
    """The store key of a conversation a request names; INVALID_ARGUMENT if none."""
    which = ref.WhichOneof("target")
    if which == "room":
        return room_key(normalize_name(ref.room.removeprefix("#"), "room"))
    if which == "direct":
        return dm_key(_user(ref.direct.user_a), _user(ref.direct.user_b))
    raise invalid("name a conversation: a room, or the two users of a direct conversation")
