"""The unary calls of ``chatrpc.v1.ChatService``, for every transport.

Each call takes its request message and the caller's credential (the bearer
token and the client's address, for throttling) and returns its response
message, or raises :class:`~chatrpc.errors.ChatError`. The gRPC adapter
(server.py) and the browser adapter (chatrpc.web) map those to their wires;
neither holds any of this logic.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from google.protobuf.message import Message

from .auth import Auth, hash_token
from .caller import Caller as Caller  # where the adapters import it from
from .hub import Hub
from .model import seq_field
from .moderation import Moderation
from .moderation_api import ModerationApi
from .search import SEARCH_COST, Searches
from .v1 import chat_pb2 as pb
from .wire import message_pb

log = logging.getLogger(__name__)


#: The proto's roles by the store's names.
ROLES = {"member": pb.Member.MEMBER, "moderator": pb.Member.MODERATOR, "owner": pb.Member.OWNER}


class ChatApi(ModerationApi):
    """``ChatService``'s unary methods over a hub and auth, named as in the proto."""

    def __init__(self, hub: Hub, auth: Auth) -> None:
        self.hub = hub
        self.auth = auth
        self.searches = Searches(hub.store)
        self.moderation = Moderation(hub.store, hub.rules)

    async def user(self, caller: Caller) -> str:
        """The caller's user, or UNAUTHENTICATED."""
        return await self.auth.authenticate(caller.token, client=caller.address)

    def method(self, name: str) -> Callable[[Any, Caller], Awaitable[Message]] | None:
        """The unary method named as in the proto, or None (not a unary call)."""
        if name not in UNARY:
            return None
        # A method the proto gained but this module does not implement yet is not served.
        found: Callable[[Any, Caller], Awaitable[Message]] | None = getattr(self, name, None)
        return found

    async def Login(self, request: pb.LoginRequest, caller: Caller) -> pb.LoginResponse:
        result = await self.auth.login(
            request.user,
            request.password,
            caller.token,
            client=caller.address,
            registration_token=request.registration_token,
        )
        log.info("login %s%s", result.user, " (new)" if result.created else "")
        return pb.LoginResponse(token=result.token, user=result.user, created=result.created)

    async def Logout(self, request: pb.LogoutRequest, caller: Caller) -> pb.LogoutResponse:
        user, revoked = await self.auth.logout(
            caller.token, all_sessions=request.all_sessions, client=caller.address
        )
        # Sessions opened with a revoked token end now (UNAUTHENTICATED), not at
        # their next call: a live stream makes no further calls.
        ended = self.hub.revoke(user, None if request.all_sessions else hash_token(caller.token))
        log.info("logout %s: %d tokens revoked, %d sessions ended", user, revoked, ended)
        return pb.LogoutResponse(revoked_tokens=revoked, ended_sessions=ended)

    async def History(self, request: pb.HistoryRequest, caller: Caller) -> pb.HistoryResponse:
        user = await self.user(caller)
        messages, last_seq, has_more = await self.hub.listings.history(
            user,
            room=request.room,
            with_user=request.with_user,
            after_seq=seq_field(request.after_seq, "after_seq"),
            before_seq=seq_field(request.before_seq, "before_seq"),
            limit=request.limit,  # a uint32: the hub clamps it to the page size
            descending=request.descending,
        )
        return pb.HistoryResponse(
            messages=[message_pb(m) for m in messages],
            epoch=self.hub.store.epoch,
            last_seq=last_seq,
            has_more=has_more,
        )

    async def Search(self, request: pb.SearchRequest, caller: Caller) -> pb.SearchResponse:
        user = await self.user(caller)
        # A search may read thousands of stored items: it costs like a send.
        self.hub.rules.spend(user, SEARCH_COST)
        found = await self.searches.search(
            user,
            request.query,
            room=request.room,
            with_user=request.with_user,
            limit=request.limit,  # a uint32: clamped to the largest page
            before_seq=seq_field(request.before_seq, "before_seq"),
            page_token=request.page_token,
        )
        blocked = set(await self.hub.store.blocked(user)) if found.hits else set()
        hits = []
        for hit in found.hits:
            msg, snippet = hit.message, hit.snippet
            if msg.room and msg.sender in blocked:  # as History shows it: hidden
                msg, snippet = replace(msg, text="", reactions=(), hidden=True), ""
            hits.append(pb.SearchHit(message=message_pb(msg), snippet=snippet))
        return pb.SearchResponse(hits=hits, next_page_token=found.next_page_token)

    async def SetPassword(
        self, request: pb.SetPasswordRequest, caller: Caller
    ) -> pb.SetPasswordResponse:
        change = await self.auth.set_password(
            caller.token, request.current_password, request.new_password, client=caller.address
        )
        if change.changed:
            log.info("password %s for %s", "changed" if change.had_password else "set", change.user)
        return pb.SetPasswordResponse(had_password=change.had_password, changed=change.changed)

    async def ListRooms(self, request: pb.ListRoomsRequest, caller: Caller) -> pb.ListRoomsResponse:
        user = await self.user(caller)
        page, token = await self.hub.listings.rooms(
            limit=request.page_size, page_token=request.page_token, prefix=request.prefix
        )
        shown = await self.hub.listings.shown_rooms(user, [n for n, _, _ in page])
        page = [row for row in page if row[0] in shown]
        reads = await self.hub.reads.rooms(user, [(n, s) for n, _, s in page])
        rooms = [
            pb.Room(
                name=n,
                online=o,
                last_seq=s,
                topic=shown[n].topic,
                private=shown[n].private,
                kept=shown[n].kept,
                read_seq=mark,
                unread=count.unread,
                mentions=count.mentions,
            )
            for (n, o, s), (mark, count) in zip(page, reads, strict=True)
        ]
        return pb.ListRoomsResponse(rooms=rooms, next_page_token=token)

    async def ListMembers(
        self, request: pb.ListMembersRequest, caller: Caller
    ) -> pb.ListMembersResponse:
        user = await self.user(caller)
        room, members, token = await self.hub.listings.members(
            request.room, limit=request.page_size, page_token=request.page_token, user=user
        )
        held = await self.hub.store.room_roles(room)
        roles = [pb.Member(user=m, role=ROLES[held.get(m, "member")]) for m in members]
        return pb.ListMembersResponse(
            room=room, members=members, next_page_token=token, roles=roles
        )

    async def ListDirects(
        self, request: pb.ListDirectsRequest, caller: Caller
    ) -> pb.ListDirectsResponse:
        user = await self.user(caller)
        page, token = await self.hub.listings.directs(
            user, limit=request.page_size, page_token=request.page_token
        )
        reads = await self.hub.reads.directs(user, page)
        directs = [
            pb.Direct(
                with_user=u,
                last_seq=s,
                read_seq=mark,
                peer_read_seq=peer_mark,
                unread=count.unread,
                mentions=count.mentions,
            )
            for (u, s), (mark, peer_mark, count) in zip(page, reads, strict=True)
        ]
        return pb.ListDirectsResponse(
            directs=directs, epoch=self.hub.store.epoch, next_page_token=token
        )


#: The service's unary methods: (request class, response class) by name.
UNARY: dict[str, tuple[type[Message], type[Message]]] = {
    m.name: (getattr(pb, m.input_type.name), getattr(pb, m.output_type.name))
    for m in pb.DESCRIPTOR.services_by_name["ChatService"].methods
    if not (m.client_streaming or m.server_streaming)
}
