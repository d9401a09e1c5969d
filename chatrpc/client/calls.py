"""One-off calls on a :class:`~chatrpc.client.chat.ChatClient`'s connection."""

from __future__ import annotations

from typing import Any

import grpc

from ..v1 import chat_pb2 as pb
from ..v1 import chat_pb2_grpc as pb_grpc
from .connection import auth_metadata
from .errors import ClientClosed


class Calls:
    """The unary calls of a client, on its channel with its token (a part of ChatClient)."""

    token: str
    _channel: grpc.aio.Channel | None

    def _stub(self) -> pb_grpc.ChatServiceStub:
        if self._channel is None:
            raise ClientClosed(None, "the client is not started")
        return pb_grpc.ChatServiceStub(self._channel)

    async def history(
        self,
        *,
        room: str = "",
        with_user: str = "",
        after_seq: int = 0,
        before_seq: int = 0,
        limit: int = 0,
        descending: bool = False,
        timeout: float = 10.0,
    ) -> pb.HistoryResponse:
        """A page of a room's or a DM conversation's history; raises AioRpcError."""
        request = pb.HistoryRequest(
            after_seq=after_seq, before_seq=before_seq, limit=limit, descending=descending
        )
        if room:
            request.room = room
        else:
            request.with_user = with_user
        response: pb.HistoryResponse = await self._stub().History(
            request, metadata=auth_metadata(self.token), timeout=timeout
        )
        return response

    async def list_rooms(
        self, *, prefix: str = "", page_token: str = "", page_size: int = 0, timeout: float = 10.0
    ) -> pb.ListRoomsResponse:
        """A page of rooms with how many are online in each (the most active first,
        or those named ``prefix``...); raises AioRpcError."""
        request = pb.ListRoomsRequest(prefix=prefix, page_token=page_token, page_size=page_size)
        response: pb.ListRoomsResponse = await self._stub().ListRooms(
            request, metadata=auth_metadata(self.token), timeout=timeout
        )
        return response

    async def list_members(self, room: str, *, timeout: float = 10.0) -> pb.ListMembersResponse:
        """Who is online in ``room``; raises AioRpcError."""
        response: pb.ListMembersResponse = await self._stub().ListMembers(
            pb.ListMembersRequest(room=room), metadata=auth_metadata(self.token), timeout=timeout
        )
        return response

    async def set_password(
        self, current: str, new: str, *, timeout: float = 10.0
    ) -> pb.SetPasswordResponse:
        """Sets or changes this user's password (``current``: empty if none); raises AioRpcError."""
        response: pb.SetPasswordResponse = await self._stub().SetPassword(
            pb.SetPasswordRequest(current_password=current, new_password=new),
            metadata=auth_metadata(self.token),
            timeout=timeout,
        )
        return response

    async def list_directs(self, *, timeout: float = 10.0) -> pb.ListDirectsResponse:
        """The user's DM conversations with their last seq; raises AioRpcError."""
        response: pb.ListDirectsResponse = await self._stub().ListDirects(
            pb.ListDirectsRequest(), metadata=auth_metadata(self.token), timeout=timeout
        )
        return response

    async def search(
        self,
        query: str,
        *,
        room: str = "",
        with_user: str = "",
        limit: int = 0,
        before_seq: int = 0,
        page_token: str = "",
        timeout: float = 10.0,
    ) -> pb.SearchResponse:
        """A page of the messages this user may read that match ``query``, newest first
        (in ``room`` or the DM ``with_user`` if given, else everywhere); raises AioRpcError."""
        request = pb.SearchRequest(
            query=query, limit=limit, before_seq=before_seq, page_token=page_token
        )
        if room:
            request.room = room
        elif with_user:
            request.with_user = with_user
        response: pb.SearchResponse = await self._stub().Search(
            request, metadata=auth_metadata(self.token), timeout=timeout
        )
        return response

    async def moderate(
        self, room: str, *, reason: str = "", timeout: float = 10.0, **action: Any
    ) -> pb.ModerateResponse:
        """One moderation action in ``room`` (``set_topic=``, ``kick=``, ``ban=pb.Ban(...)``...,
        as ModerateRequest names them); returns the stored event; raises AioRpcError."""
        response: pb.ModerateResponse = await self._stub().ModerateRoom(
            pb.ModerateRequest(room=room, reason=reason, **action),
            metadata=auth_metadata(self.token),
            timeout=timeout,
        )
        return response

    async def block(self, user: str, *, unblock: bool = False, timeout: float = 10.0) -> bool:
        """Blocks (or unblocks) ``user``; whether that changed anything; raises AioRpcError."""
        md = auth_metadata(self.token)
        if unblock:
            done: pb.UnblockResponse = await self._stub().Unblock(
                pb.UnblockRequest(user=user), metadata=md, timeout=timeout
            )
            return done.changed
        blocked: pb.BlockResponse = await self._stub().Block(
            pb.BlockRequest(user=user), metadata=md, timeout=timeout
        )
        return blocked.changed

    async def list_blocked(self, *, timeout: float = 10.0) -> list[str]:
        """The users this user blocked; raises AioRpcError."""
        response: pb.ListBlockedResponse = await self._stub().ListBlocked(
            pb.ListBlockedRequest(), metadata=auth_metadata(self.token), timeout=timeout
        )
        return list(response.users)
