"""What :class:`~chatrpc.client.chat.ChatClient` stores: sends, edits, deletes
and reactions.

A change is a stored item of its conversation like a message: it goes through
the client's send queue (:mod:`chatrpc.client.sends`), so it is written in
order with the sends, stored once across reconnects (its ``client_msg_id``)
and answered by its echo, the stored item (kind EDIT, DELETE or REACTION).
"""

from __future__ import annotations

from ..v1 import chat_pb2 as pb
from .sends import Sends, Stored, new_client_msg_id


class Writes:
    """The calls of a client that store an item, over its send queue."""

    _sends: Sends
    ordered: bool

    async def send(
        self,
        text: str,
        *,
        room: str = "",
        to_user: str = "",
        client_msg_id: str = "",
        reply_to: int = 0,
    ) -> pb.Message:
        """Sends and returns the echo (the acknowledgement), across reconnects if needed.

        ``reply_to`` names the seq of the message of the same conversation this
        one answers. Raises :class:`SendError` if the server refuses the message.
        """
        send = pb.Send(text=text, client_msg_id=client_msg_id or new_client_msg_id())
        send.reply_to = reply_to
        return await self._sends.send(aimed(send, room, to_user), ordered=self.ordered)

    async def edit(
        self, seq: int, text: str, *, room: str = "", to_user: str = "", client_msg_id: str = ""
    ) -> pb.Message:
        """Replaces the text of one's message ``seq``; returns the stored EDIT item.

        Changes are stored items: written in order with the sends, stored once
        across reconnects, answered by their echo. Raises :class:`SendError` if
        the server refuses it (someone else's message, a deleted one...).
        """
        edit = pb.Edit(seq=seq, text=text, client_msg_id=client_msg_id or new_client_msg_id())
        return await self._sends.send(aimed(edit, room, to_user), ordered=self.ordered)

    async def delete(
        self, seq: int, *, room: str = "", to_user: str = "", client_msg_id: str = ""
    ) -> pb.Message:
        """Deletes one's message ``seq`` (its text and its edits' are erased); returns
        the stored DELETE item. See :meth:`edit`."""
        delete = pb.Delete(seq=seq, client_msg_id=client_msg_id or new_client_msg_id())
        return await self._sends.send(aimed(delete, room, to_user), ordered=self.ordered)

    async def react(
        self,
        seq: int,
        emoji: str,
        *,
        remove: bool = False,
        room: str = "",
        to_user: str = "",
        client_msg_id: str = "",
    ) -> pb.Message:
        """Adds (or with ``remove`` takes back) a reaction to message ``seq``; returns
        the stored REACTION item. See :meth:`edit`."""
        cid = client_msg_id or new_client_msg_id()
        react = pb.React(seq=seq, emoji=emoji, remove=remove, client_msg_id=cid)
        return await self._sends.send(aimed(react, room, to_user), ordered=self.ordered)


def aimed(item: Stored, room: str, to_user: str) -> Stored:
    """``item`` with its conversation set: ``room``, else the DM with ``to_user``."""
    if room:
        item.room = room
    else:
        item.to_user = to_user
    return item
