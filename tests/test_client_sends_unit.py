"""The client's send queue without a network: what lets a held send go out."""

from __future__ import annotations

import asyncio

from chatrpc.client.retry import Backoff
from chatrpc.client.sends import Sends
from chatrpc.v1 import chat_pb2 as pb

WAIT = 10.0


class _Stream:
    """Records what is written, as a ChatStream would send it."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.wrote = asyncio.Event()

    async def write(self, event: pb.ClientEvent) -> None:
        self.written.append(event.send.client_msg_id)
        self.wrote.set()


async def test_an_ack_as_the_only_answer_lets_the_sends_held_behind_it_go() -> None:
    """The server answers a retried send with an ack when the session is past its
    original (a resume gap bigger than the replay, say): the next send must go."""
    connected = asyncio.Event()
    connected.set()
    stream = _Stream()
    sends = Sends(
        on_held=lambda send, delay: None,
        backoff=Backoff(0.1, 1.0),
        connected=connected,
        stream=lambda: stream,  # type: ignore[arg-type,return-value]
        closing=lambda: False,
    )
    first = asyncio.create_task(
        sends.send(pb.Send(room="general", text="a", client_msg_id="c1"), ordered=True)
    )
    await asyncio.wait_for(stream.wrote.wait(), WAIT)
    second = asyncio.create_task(
        sends.send(pb.Send(room="general", text="b", client_msg_id="c2"), ordered=True)
    )
    # It starts, and stays queued behind the first: not written, not answered.
    done, _ = await asyncio.wait({second}, timeout=0.05)
    assert not done and "c2" in sends.pending and stream.written == ["c1"]
    sends.acked(pb.Ack(seq=7, room="general", client_msg_id="c1"), "alice")
    assert (await asyncio.wait_for(first, WAIT)).seq == 7
    async with asyncio.timeout(WAIT):
        while stream.written != ["c1", "c2"]:
            stream.wrote.clear()
            await stream.wrote.wait()
    sends.echoed(pb.Message(seq=8, sender="alice", room="general", client_msg_id="c2"))
    assert (await asyncio.wait_for(second, WAIT)).seq == 8
    sends.stop()
