"""One name normalisation for the server, the client library and the terminal UI."""

from __future__ import annotations

import asyncio

import pytest

from chatrpc.client import ChatClient
from chatrpc.errors import ChatError
from chatrpc.names import canonical, normalize_name

from .conftest import WAIT, Peers, running_server, target


@pytest.mark.parametrize(
    "typed", ["#Lobby ", "lobby", " LOBBY", "#lobby", "\uff4c\uff4f\uff42\uff42\uff59"]
)
def test_what_a_client_folds_is_what_the_server_stores(typed: str) -> None:
    assert canonical(typed) == normalize_name(typed, "room") == "lobby"


def test_an_invalid_name_is_folded_for_the_server_to_refuse() -> None:
    assert canonical("#Bad!Room") == "bad!room"
    with pytest.raises(ChatError):
        normalize_name("bad!room", "room")


async def test_the_client_library_joins_a_room_typed_with_a_hash_and_capitals() -> None:
    async with running_server() as srv:
        group = Peers(target(srv))
        client = ChatClient(target(srv), "alice", await group.token("alice"))
        try:
            await client.start()
            joined = await asyncio.wait_for(client.join("#Lobby "), WAIT)
            assert joined.room == "lobby"
            assert client.state.rooms == ["lobby"]
        finally:
            await client.aclose()
            await group.close()
