"""``chatrpc-client --json`` prints typing notices and read markers as events; the
text mode shows neither (a script reads the conversation only)."""

from __future__ import annotations

import json

from .conftest import Peers
from .test_cli import listen, other_config
from .test_signals import mark_read, typing

__all__ = ["listen"]  # the fixture, used by name


async def test_json_mode_prints_typing_and_read_marker_events(
    server_process, client_env, tmp_path, listen
):
    address = server_process.address
    bob_env = other_config(client_env, tmp_path, "bob")
    as_json = listen(bob_env, "--user", "bob", "--server", address, "--json")
    as_json.out.wait_line('"joined"')
    as_text = listen(bob_env, "--user", "bob", "--server", address)
    as_text.out.wait_line("-- you joined #general")
    group = Peers(address)
    try:
        alice = await group.open("alice")
        await alice.join("general")
        await typing(alice, room="general")
        await alice.send_and_ack("psst", to_user="bob")
        await mark_read(alice, 1, to_user="bob")
        line = as_json.out.wait_line('"readMarker"')
        assert json.loads(line) == {
            "readMarker": {"withUser": "alice", "user": "alice", "seq": "1"}
        }
        typed = json.loads(as_json.out.wait_line('"typing"'))
        assert typed == {"typing": {"room": "general", "user": "alice"}}
        as_text.out.wait_line("@alice <alice> psst")
        await alice.send_and_ack("after", room="general")
        as_text.out.wait_line("<alice> after")
        assert "typing" not in as_text.out.text and "readMarker" not in as_text.out.text
    finally:
        await group.close()
