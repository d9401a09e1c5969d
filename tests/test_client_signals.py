"""ChatClient.typing() and mark_read() against a real server, and the typing and
read_marker events it passes on."""

from __future__ import annotations

import asyncio

from chatrpc.client import ChatClient
from chatrpc.v1 import chat_pb2 as pb

from .conftest import WAIT, Peers, running_server, target
from .test_signals import markers, typing, typing_events


async def test_the_client_types_and_marks_only_where_the_server_takes_it() -> None:
    async with running_server() as srv:
        group = Peers(target(srv))
        bob = await group.open("bob")
        await bob.join("general")
        events: list[pb.ServerEvent] = []
        arrived = asyncio.Event()

        def on_event(event: pb.ServerEvent | None) -> None:
            if event is not None:
                events.append(event)
                arrived.set()

        def of(kind: str) -> list[pb.ServerEvent]:
            return [e for e in events if e.WhichOneof("event") == kind]

        async def seen(kind: str, n: int = 1) -> list[pb.ServerEvent]:
            async def until() -> None:
                while len(of(kind)) < n:
                    arrived.clear()
                    await arrived.wait()

            await asyncio.wait_for(until(), WAIT)
            return of(kind)

        client = ChatClient(target(srv), "alice", await group.token("alice"), on_event=on_event)
        await client.start()
        try:
            assert not await client.typing(room="general")  # not joined: not written
            assert not await client.typing(to_user="bob")  # no DM seen yet
            await client.join("general")
            assert await client.typing(room="general")
            assert not await client.typing(room="general")  # the server would drop it
            await bob.wait_for(lambda ev: bool(typing_events(bob)))
            assert typing_events(bob) == [pb.UserTyping(room="general", user="alice")]

            await bob.send_and_ack("one", room="general")
            await bob.send_and_ack("psst", to_user="alice")
            await seen("message", 2)
            assert not await client.mark_read(2, room="general")  # not delivered
            assert await client.mark_read(1, room="general")
            assert not await client.mark_read(1, room="general")  # not forward
            assert await client.mark_read(1, to_user="bob")
            await bob.wait_for(lambda ev: bool(markers(bob)))
            assert markers(bob) == [pb.ReadMarker(with_user="alice", user="alice", seq=1)]

            # Bob's typing and his marker reach the client's consumer as events.
            await typing(bob, to_user="alice")
            (notice,) = await seen("typing")
            assert notice.typing == pb.UserTyping(with_user="bob", user="bob")
            await bob.stream.write(pb.ClientEvent(mark_read=pb.MarkRead(to_user="alice", seq=1)))
            (mark,) = await seen("read_marker")
            assert mark.read_marker == pb.ReadMarker(with_user="bob", user="bob", seq=1)
            assert of("error") == []
        finally:
            await client.aclose()
            await group.close()
