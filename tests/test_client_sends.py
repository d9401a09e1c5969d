"""ChatClient's sends against the rate limit: every one goes out, in order, once."""

from __future__ import annotations

import asyncio

import pytest

from chatrpc.client import ChatClient, SendError, retry_delay
from chatrpc.hub import Limits
from chatrpc.v1 import chat_pb2 as pb

from .conftest import WAIT, Peers, running_server, target


@pytest.mark.parametrize(
    ("message", "delay"),
    [
        ("rate limit: retry in 0.3 s", 0.3),
        ("rate limit: retry in 2 s", 2.0),
        ("too many logins from this address: retry in 12.5 s", 12.5),
        ("slow consumer: resume from seq 4 in #general", None),
    ],
)
def test_the_wait_a_refusal_hints_at_is_read_from_its_message(message, delay):
    assert retry_delay(message) == delay


async def test_sends_refused_by_the_rate_limit_go_out_in_order_after_the_hinted_wait() -> None:
    # A burst of 3 and 20 sends a second: 12 quick sends are mostly refused at first.
    async with running_server(limits=Limits(rate_limit=20, rate_burst=3)) as srv:
        group = Peers(target(srv))
        bob = await group.open("bob")
        await bob.join("flood")
        held: list[str] = []
        client = ChatClient(
            target(srv),
            "alice",
            await group.token("alice"),
            on_held=lambda send, delay: held.append(getattr(send, "text", "")),
        )
        await client.start()
        try:
            await client.join("flood")
            sent = [client.submit(f"line {i}", room="flood") for i in range(12)]
            echoes = await asyncio.wait_for(asyncio.gather(*sent), WAIT)
            assert [m.text for m in echoes] == [f"line {i}" for i in range(12)]
            first = echoes[0].seq
            assert [m.seq for m in echoes] == list(range(first, first + 12)), "stored in order"
            assert held, "some sends were refused and held for a retry"
            await bob.wait_for(lambda ev: len(bob.messages()) == 12)
            assert bob.texts() == [f"line {i}" for i in range(12)], "each once, in order"
            # A refusal for good is still the caller's to hear.
            with pytest.raises(SendError) as refused:
                await asyncio.wait_for(client.send("hi", to_user="nobody"), WAIT)
            assert refused.value.error.code == pb.Error.NOT_FOUND
        finally:
            await client.aclose()
            await group.close()
