"""One ``Chat`` call: :class:`ChatStream` writes events and iterates what arrives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from ..directs_summary import HEADER
from ..v1 import chat_pb2 as pb
from ..v1 import chat_pb2_grpc as pb_grpc
from .connection import auth_metadata

#: Events per frame this library asks the server for (``chatrpc-batch`` metadata).
BATCH_EVENTS = 64


class ChatStream:
    """One ``Chat`` call. Events are written by the caller and read by iterating.

    Iterating yields single events: ``batch`` frames are unpacked in order.
    """

    def __init__(
        self, ch: grpc.aio.Channel, token: str, *, batch: int = BATCH_EVENTS, directs: bool = False
    ) -> None:
        """``directs``: ask for the summary of the user's DM conversations in the
        headers (see chatrpc.directs_summary)."""
        self._stub = pb_grpc.ChatServiceStub(ch)
        metadata = auth_metadata(token)
        if batch > 1:
            metadata += (("chatrpc-batch", str(batch)),)
        if directs:
            metadata += ((HEADER, "1"),)
        self.call: Any = self._stub.Chat(metadata=metadata)
        # grpcio allows one write in flight per call; tasks take turns.
        self._write_lock = asyncio.Lock()

    async def write(self, event: pb.ClientEvent) -> None:
        async with self._write_lock:
            await self.call.write(event)

    async def join(self, room: str, after_seq: int | None = None, epoch: str = "") -> None:
        join = pb.Join(room=room, epoch=epoch)
        if after_seq is not None:
            join.after_seq = after_seq
        await self.write(pb.ClientEvent(join=join))

    async def resume_direct(self, with_user: str, after_seq: int, epoch: str = "") -> None:
        join = pb.Join(with_user=with_user, after_seq=after_seq, epoch=epoch)
        await self.write(pb.ClientEvent(join=join))

    async def leave(self, room: str) -> None:
        await self.write(pb.ClientEvent(leave=pb.Leave(room=room)))

    async def send(
        self,
        text: str,
        *,
        room: str = "",
        to_user: str = "",
        client_msg_id: str = "",
        reply_to: int = 0,
    ) -> None:
        send = pb.Send(text=text, client_msg_id=client_msg_id, reply_to=reply_to)
        if room:
            send.room = room
        else:
            send.to_user = to_user
        await self.write(pb.ClientEvent(send=send))

    async def edit(
        self, seq: int, text: str, *, room: str = "", to_user: str = "", client_msg_id: str = ""
    ) -> None:
        edit = pb.Edit(seq=seq, text=text, client_msg_id=client_msg_id)
        if room:
            edit.room = room
        else:
            edit.to_user = to_user
        await self.write(pb.ClientEvent(edit=edit))

    async def delete(
        self, seq: int, *, room: str = "", to_user: str = "", client_msg_id: str = ""
    ) -> None:
        delete = pb.Delete(seq=seq, client_msg_id=client_msg_id)
        if room:
            delete.room = room
        else:
            delete.to_user = to_user
        await self.write(pb.ClientEvent(delete=delete))

    async def react(
        self,
        seq: int,
        emoji: str,
        *,
        remove: bool = False,
        room: str = "",
        to_user: str = "",
        client_msg_id: str = "",
    ) -> None:
        react = pb.React(seq=seq, emoji=emoji, remove=remove, client_msg_id=client_msg_id)
        if room:
            react.room = room
        else:
            react.to_user = to_user
        await self.write(pb.ClientEvent(react=react))

    async def done_writing(self) -> None:
        """Half-closes: the server ends the stream after the echoes of what was sent."""
        async with self._write_lock:
            await self.call.done_writing()

    def cancel(self) -> None:
        self.call.cancel()

    async def __aiter__(self) -> AsyncIterator[pb.ServerEvent]:
        while True:
            event = await self.call.read()
            if event is grpc.aio.EOF:
                return
            if event.WhichOneof("event") == "batch":
                for inner in event.batch.events:
                    yield inner
            else:
                yield event
