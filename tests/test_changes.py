"""Edits, deletes, reactions and replies through a real server (memory and SQLite).

Each change is a stored item: echoed to every member with its own seq once
committed, idempotent by client_msg_id, and History gives the message it names
in its current state. Bad changes get an ``error`` event naming the problem.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from chatrpc.client import auth_metadata
from chatrpc.hub import Limits
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import Peer, Peers, running_server, target

Kind = pb.Message.Kind
Code = pb.Error.Code


async def stored(peer: Peer, cid: str, write: Awaitable[None]) -> pb.Message:
    """Writes a change (or a send) and returns its echo; fails on an ``error``."""
    await write
    await peer.wait_for(
        lambda ev: any(
            (e.WhichOneof("event") == "message" and e.message.client_msg_id == cid)
            or (e.WhichOneof("event") == "error" and e.error.client_msg_id == cid)
            for e in ev
        )
    )
    for err in peer.of("error"):
        if err.client_msg_id == cid:
            raise AssertionError(f"refused: {err}")
    return next(m for m in peer.messages() if m.client_msg_id == cid)


async def refused(peer: Peer, cid: str, write: Awaitable[None]) -> pb.Error:
    await write
    return await peer.error_for(cid)


async def history(peer: Peer, room: str = "general", **fields: object) -> list[pb.Message]:
    stub = pb_grpc.ChatServiceStub(peer.ch)
    page = await stub.History(
        pb.HistoryRequest(room=room, **fields),  # type: ignore[arg-type]
        metadata=auth_metadata(peer.token),
    )
    return list(page.messages)


async def two_in_general(peers: Peers) -> tuple[Peer, Peer]:
    alice, bob = await peers.open("alice"), await peers.open("bob")
    await alice.join("general")
    await bob.join("general")
    return alice, bob


async def test_an_edit_reaches_every_member_and_history_gives_the_new_text(
    peers: Peers,
) -> None:
    alice, bob = await two_in_general(peers)
    await alice.send_and_ack("helo", room="general")
    edit = await stored(
        alice, "e-1", alice.stream.edit(1, "hello", room="general", client_msg_id="e-1")
    )
    assert (edit.seq, edit.kind, edit.target_seq, edit.text) == (2, Kind.EDIT, 1, "hello")
    await bob.wait_for(lambda ev: len(bob.messages()) == 2)
    assert [(m.seq, m.kind) for m in bob.messages()] == [(1, Kind.MESSAGE), (2, Kind.EDIT)]
    first, change = await history(bob)
    assert (first.text, first.edited, first.deleted) == ("hello", True, False)
    assert (change.kind, change.target_seq, change.text) == (Kind.EDIT, 1, "hello")


async def test_a_delete_reaches_every_member_and_erases_the_text_and_its_edits(
    peers: Peers,
) -> None:
    alice, bob = await two_in_general(peers)
    await alice.send_and_ack("oops, my password", room="general")
    await stored(
        alice, "e-1", alice.stream.edit(1, "oops, my pass", room="general", client_msg_id="e-1")
    )
    await stored(bob, "r-1", bob.stream.react(1, "😱", room="general", client_msg_id="r-1"))
    gone = await stored(alice, "d-1", alice.stream.delete(1, room="general", client_msg_id="d-1"))
    assert (gone.seq, gone.kind, gone.target_seq, gone.text) == (4, Kind.DELETE, 1, "")
    await bob.wait_for(lambda ev: any(m.kind == Kind.DELETE for m in bob.messages()))
    found = await history(bob)
    assert [m.text for m in found] == ["", "", "", ""]
    assert found[0].deleted and not found[0].reactions


async def test_reactions_aggregate_per_emoji_and_can_be_taken_back(peers: Peers) -> None:
    alice, bob = await two_in_general(peers)
    await alice.send_and_ack("ship it?", room="general")
    await stored(bob, "r-1", bob.stream.react(1, "👍", room="general", client_msg_id="r-1"))
    await stored(alice, "r-2", alice.stream.react(1, "👍", room="general", client_msg_id="r-2"))
    heart = await stored(bob, "r-3", bob.stream.react(1, "❤️", room="general", client_msg_id="r-3"))
    assert (heart.kind, heart.emoji, heart.remove, heart.sender) == (
        Kind.REACTION,
        "❤️",
        False,
        "bob",
    )
    (message, *_) = await history(alice)
    assert [(r.emoji, list(r.users)) for r in message.reactions] == [
        ("❤️", ["bob"]),
        ("👍", ["alice", "bob"]),
    ]
    back = bob.stream.react(1, "👍", remove=True, room="general", client_msg_id="r-4")
    assert (await stored(bob, "r-4", back)).remove
    (message, *_) = await history(alice)
    assert [(r.emoji, list(r.users)) for r in message.reactions] == [
        ("❤️", ["bob"]),
        ("👍", ["alice"]),
    ]


async def test_a_reply_names_the_message_it_answers(peers: Peers) -> None:
    alice, bob = await two_in_general(peers)
    await alice.send_and_ack("lunch?", room="general")
    reply = await stored(
        bob, "s-1", bob.stream.send("yes", room="general", client_msg_id="s-1", reply_to=1)
    )
    assert reply.reply_to == 1 and reply.kind == Kind.MESSAGE
    await alice.wait_for(lambda ev: any(m.reply_to == 1 for m in alice.messages()))
    assert [m.reply_to for m in await history(alice)] == [0, 1]


async def test_changes_in_a_dm_reach_both_users_and_nobody_else(peers: Peers) -> None:
    alice, bob, carol = (
        await peers.open("alice"),
        await peers.open("bob"),
        await peers.open("carol"),
    )
    await carol.join("general")
    await stored(alice, "s-1", alice.stream.send("psst", to_user="bob", client_msg_id="s-1"))
    await stored(alice, "e-1", alice.stream.edit(1, "psst!", to_user="bob", client_msg_id="e-1"))
    await stored(bob, "r-1", bob.stream.react(1, "🤫", to_user="alice", client_msg_id="r-1"))
    await bob.wait_for(lambda ev: len(bob.messages()) == 3)
    assert [(m.seq, m.kind) for m in bob.messages()] == [
        (1, Kind.MESSAGE),
        (2, Kind.EDIT),
        (3, Kind.REACTION),
    ]
    await alice.wait_for(lambda ev: len(alice.messages()) == 3)
    assert not carol.messages()


@pytest.mark.parametrize(
    ("who", "event", "code", "words"),
    [
        (
            "bob",
            pb.ClientEvent(edit=pb.Edit(room="general", seq=1, text="mine now")),
            Code.PERMISSION_DENIED,
            "only its author",
        ),
        (
            "bob",
            pb.ClientEvent(delete=pb.Delete(room="general", seq=1)),
            Code.PERMISSION_DENIED,
            "alice's",
        ),
        (
            "alice",
            pb.ClientEvent(edit=pb.Edit(room="general", seq=99, text="x")),
            Code.NOT_FOUND,
            "no message #99",
        ),
        (
            "alice",
            pb.ClientEvent(delete=pb.Delete(room="general", seq=0)),
            Code.INVALID_ARGUMENT,
            "must name a message",
        ),
        (
            "alice",
            pb.ClientEvent(edit=pb.Edit(room="general", seq=2, text="x")),
            Code.INVALID_ARGUMENT,
            "is an edit, not a message",
        ),
        (
            "alice",
            pb.ClientEvent(react=pb.React(room="general", seq=2, emoji="👍")),
            Code.INVALID_ARGUMENT,
            "not a message",
        ),
        (
            "alice",
            pb.ClientEvent(edit=pb.Edit(room="general", seq=1, text=" \u200b")),
            Code.INVALID_ARGUMENT,
            "empty",
        ),
        (
            "alice",
            pb.ClientEvent(edit=pb.Edit(room="general", seq=1, text="x" * 5000)),
            Code.INVALID_ARGUMENT,
            "the limit is",
        ),
        (
            "alice",
            pb.ClientEvent(edit=pb.Edit(room="random", seq=1, text="x")),
            Code.FAILED_PRECONDITION,
            "join #random",
        ),
        (
            "alice",
            pb.ClientEvent(delete=pb.Delete(seq=1)),
            Code.INVALID_ARGUMENT,
            "needs a room or a to_user",
        ),
        (
            "alice",
            pb.ClientEvent(edit=pb.Edit(to_user="nobody", seq=1, text="x")),
            Code.NOT_FOUND,
            "no user named",
        ),
        (
            "alice",
            pb.ClientEvent(edit=pb.Edit(to_user="bob", seq=1, text="x")),
            Code.NOT_FOUND,
            "no message #1 in your conversation with bob",
        ),
        (
            "bob",
            pb.ClientEvent(react=pb.React(room="general", seq=1, emoji="👍")),
            Code.FAILED_PRECONDITION,
            "already",
        ),
        (
            "bob",
            pb.ClientEvent(react=pb.React(room="general", seq=1, emoji="🎉", remove=True)),
            Code.FAILED_PRECONDITION,
            "no 🎉 reaction",
        ),
        (
            "bob",
            pb.ClientEvent(react=pb.React(room="general", seq=1, emoji="")),
            Code.INVALID_ARGUMENT,
            "needs an emoji",
        ),
        (
            "bob",
            pb.ClientEvent(react=pb.React(room="general", seq=1, emoji="ok")),
            Code.INVALID_ARGUMENT,
            "not letters",
        ),
        (
            "bob",
            pb.ClientEvent(react=pb.React(room="general", seq=1, emoji="👍 ")),
            Code.INVALID_ARGUMENT,
            "not letters",
        ),
        (
            "bob",
            pb.ClientEvent(react=pb.React(room="general", seq=1, emoji="👍" * 9)),
            Code.INVALID_ARGUMENT,
            "at most 8",
        ),
        (
            "bob",
            pb.ClientEvent(react=pb.React(room="general", seq=1, emoji="é")),
            Code.INVALID_ARGUMENT,
            "U+00E9",
        ),
        (
            "bob",
            pb.ClientEvent(react=pb.React(room="general", seq=1, emoji="\ufe0f")),
            Code.INVALID_ARGUMENT,
            "no symbol",
        ),
        (
            "bob",
            pb.ClientEvent(react=pb.React(room="general", seq=1, emoji="👍\u202e")),
            Code.INVALID_ARGUMENT,
            "U+202E",
        ),
        (
            "bob",
            pb.ClientEvent(send=pb.Send(room="general", text="re", reply_to=99)),
            Code.INVALID_ARGUMENT,
            "reply_to: no message #99",
        ),
        (
            "bob",
            pb.ClientEvent(send=pb.Send(room="general", text="re", reply_to=2)),
            Code.INVALID_ARGUMENT,
            "reply_to",
        ),
        (
            "bob",
            pb.ClientEvent(delete=pb.Delete(room="general", seq=2**63)),
            Code.INVALID_ARGUMENT,
            "out of range",
        ),
    ],
)
async def test_a_bad_change_gets_an_error_naming_the_problem_and_the_session_goes_on(
    peers: Peers, who: str, event: pb.ClientEvent, code: int, words: str
) -> None:
    alice, bob = await two_in_general(peers)
    await alice.send_and_ack("original", room="general")
    await stored(alice, "e-0", alice.stream.edit(1, "edited", room="general", client_msg_id="e-0"))
    await stored(bob, "r-0", bob.stream.react(1, "👍", room="general", client_msg_id="r-0"))
    peer = alice if who == "alice" else bob
    getattr(event, event.WhichOneof("event") or "").client_msg_id = "bad-1"
    err = await refused(peer, "bad-1", peer.stream.write(event))
    assert err.code == code and words in err.message, err
    assert (await history(alice))[0].text == "edited"  # nothing changed
    await peer.send_and_ack("still here", room="general")
    assert len(await history(alice)) == 4


async def test_changing_a_deleted_message_fails_its_precondition(peers: Peers) -> None:
    alice, bob = await two_in_general(peers)
    await alice.send_and_ack("soon gone", room="general")
    await stored(alice, "d-1", alice.stream.delete(1, room="general", client_msg_id="d-1"))
    writes: list[tuple[Peer, Callable[[str], Awaitable[None]]]] = [
        (alice, lambda cid: alice.stream.edit(1, "back", room="general", client_msg_id=cid)),
        (alice, lambda cid: alice.stream.delete(1, room="general", client_msg_id=cid)),
        (bob, lambda cid: bob.stream.react(1, "👍", room="general", client_msg_id=cid)),
    ]
    for i, (peer, write) in enumerate(writes):
        err = await refused(peer, f"x-{i}", write(f"x-{i}"))
        assert err.code == Code.FAILED_PRECONDITION and "was deleted" in err.message
    assert [m.seq for m in await history(alice)] == [1, 2]


async def test_a_retried_change_is_stored_once_and_answered_without_an_error(
    peers: Peers,
) -> None:
    alice, bob = await two_in_general(peers)
    await alice.send_and_ack("take this back", room="general")
    await stored(alice, "d-1", alice.stream.delete(1, room="general", client_msg_id="d-1"))
    await stored(bob, "r-1", bob.stream.send("noted", room="general", client_msg_id="r-1"))
    # The same delete again on the same stream: the session already delivered it.
    await alice.stream.delete(1, room="general", client_msg_id="d-1")
    await alice.wait_for(lambda ev: any(a.client_msg_id == "d-1" for a in alice.of("ack")))
    assert next(a.seq for a in alice.of("ack") if a.client_msg_id == "d-1") == 2
    # And on a new session (a reconnect), which has delivered nothing yet.
    again = await peers.open("alice")
    await again.join("general")
    echo = await stored(again, "d-1", again.stream.delete(1, room="general", client_msg_id="d-1"))
    assert (echo.seq, echo.kind) == (2, Kind.DELETE)
    assert not [e for e in alice.of("error") + again.of("error") if e.client_msg_id == "d-1"]
    assert [m.seq for m in await history(alice)] == [1, 2, 3]


async def test_changes_spend_the_send_budget_reactions_too() -> None:
    async with running_server(limits=Limits(rate_limit=0.01, rate_burst=3)) as srv:
        group = Peers(target(srv))
        try:
            alice = await group.open("alice")
            await alice.join("general")
            await alice.send_and_ack("one", room="general")
            await stored(
                alice, "r-1", alice.stream.react(1, "👍", room="general", client_msg_id="r-1")
            )
            err = await refused(
                alice, "r-2", alice.stream.react(1, "🎉", room="general", client_msg_id="r-2")
            )
            assert err.code == Code.RESOURCE_EXHAUSTED and "rate limit" in err.message
        finally:
            await group.close()
