"""Typing and read markers in the interactive ``chatrpc-client`` (tmux, real server)."""

from __future__ import annotations

import json
from pathlib import Path

from chatrpc.v1 import chat_pb2 as pb

from . import test_tui as tui
from .test_signals import markers, typing, typing_events
from .test_tui import prompt

pytestmark = tui.pytestmark

#: The terminal fixtures of tests/test_tui.py.
terminals = tui.terminals
peers_of = tui.peers_of


async def test_who_is_typing_shows_under_the_input_line_until_their_message_comes(
    server_process, terminals, peers_of
):
    bob = await peers_of.open("bob")
    await bob.join("general")
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address)
    await term.wait_input(prompt("alice", "general"))
    await typing(bob, room="general")
    await term.wait_text("… bob is typing in #general")
    await bob.send_and_ack("here it is", room="general")
    screen = await term.wait_text("#general <bob> here it is")
    screen = await term.wait_for(lambda s: "bob is typing" not in s)
    assert "Traceback" not in screen


async def test_a_typing_notice_is_gone_after_six_seconds_without_another(
    server_process, terminals, peers_of
):
    bob = await peers_of.open("bob")
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address)
    await term.wait_input(prompt("alice", "general"))
    await typing(bob, to_user="alice")
    await term.wait_text("… bob is typing to you")
    await term.wait_for(lambda s: "bob is typing" not in s, timeout=12)


async def test_typing_at_the_prompt_tells_the_room_and_a_msg_tells_its_user(
    server_process, terminals, peers_of
):
    bob = await peers_of.open("bob")
    await bob.join("general")
    term = terminals()
    await term.start("--user", "alice", "--server", server_process.address)
    await term.wait_input(prompt("alice", "general"))
    await bob.send_and_ack("hi alice", to_user="alice")  # a DM the client knows
    await term.wait_text("<bob -> alice> hi alice")
    await term.type("hel")
    await bob.wait_for(lambda ev: bool(typing_events(bob)))
    assert typing_events(bob) == [pb.UserTyping(room="general", user="alice")]
    await term.press("C-u")
    await term.type("/msg bob se")
    await bob.wait_for(lambda ev: len(typing_events(bob)) == 2)
    assert typing_events(bob)[1] == pb.UserTyping(with_user="alice", user="alice")
    await term.press("C-u")
    await term.type("/who")  # a command: nobody is told
    await term.press("Enter")
    await term.wait_text("-- online in #general")
    assert len(typing_events(bob)) == 2


async def test_what_the_terminal_shows_is_marked_read_and_rooms_lists_the_rest(
    server_process, terminals, peers_of, client_env
):
    address = server_process.address
    bob = await peers_of.open("bob")
    await bob.join("dev")
    await bob.join("general")
    term = terminals()
    await term.start("--user", "alice", "--server", address, "--room", "dev")
    await term.wait_input(prompt("alice", "dev"))
    # Alice on another device: with the token the terminal stored.
    stored = Path(client_env["XDG_CONFIG_HOME"]) / "chatrpc" / "tokens.json"
    alice_elsewhere = await peers_of.open(
        "alice", json.loads(stored.read_text())[f"alice@{address}"]
    )
    await term.enter("/join general")
    await term.wait_input(prompt("alice", "general"))
    await bob.send_and_ack("@alice in dev", room="dev")  # shown, but not the current room
    await bob.send_and_ack("in general", room="general")
    await bob.send_and_ack("just you", to_user="alice")
    await term.wait_text("<bob -> alice> just you")
    # The current room and the DM are marked read: alice's other session hears it.
    await alice_elsewhere.wait_for(lambda ev: len(markers(alice_elsewhere)) == 2)
    assert sorted((m.room, m.with_user, m.seq) for m in markers(alice_elsewhere)) == [
        ("", "bob", 1),
        ("general", "", 1),
    ]
    await bob.wait_for(lambda ev: bool(markers(bob)))
    assert markers(bob) == [pb.ReadMarker(with_user="alice", user="alice", seq=1)]
    await term.enter("/rooms")
    screen = await term.wait_text("-- #dev (2 online, 1 unread, 1 mention of you)")
    assert "-- #general (2 online)" in screen
