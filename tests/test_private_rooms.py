"""Private rooms, moderation and blocking, end to end on a real server (every store).

"Lets no one in where they don't belong": for each way a non-member could learn
about a private room (list, join, History, members, search, resume, a moderation
call) a test shows it learns nothing more than about a room that does not
exist. Kicks end delivery at once (on this server and, over Redis, on another),
bans hold across a restart, a member's every moderation action is refused, and a
blocked user's DM is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import grpc
import pytest

from chatrpc.client import auth_metadata, channel
from chatrpc.server import ChatServer
from chatrpc.v1 import chat_pb2 as pb
from chatrpc.v1 import chat_pb2_grpc as pb_grpc

from .conftest import Peer, Peers, running_server, target
from .redis_fixture import RedisServer

E = pb.Error.Code
S = grpc.StatusCode


class Calls:
    """Unary calls of one server, as any user."""

    def __init__(self, peers: Peers, ch: grpc.aio.Channel) -> None:
        self.peers = peers
        self.stub = pb_grpc.ChatServiceStub(ch)

    async def call(self, user: str, name: str, request: Any) -> Any:
        md = auth_metadata(await self.peers.token(user))
        return await getattr(self.stub, name)(request, metadata=md)

    async def status(self, user: str, name: str, request: Any) -> tuple[grpc.StatusCode, str]:
        """The status code and details of a call expected to fail."""
        try:
            await self.call(user, name, request)
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        raise AssertionError(f"{name} by {user} succeeded")

    async def moderate(self, user: str, room: str, **action: Any) -> pb.Message:
        reply = await self.call(user, "ModerateRoom", pb.ModerateRequest(room=room, **action))
        event: pb.Message = reply.event
        return event


@pytest.fixture
async def world(server: ChatServer) -> AsyncIterator[tuple[Peers, Calls]]:
    peers = Peers(target(server))
    ch = channel(target(server))
    try:
        yield peers, Calls(peers, ch)
    finally:
        await peers.close()
        await ch.close()


async def private_room(peers: Peers, calls: Calls, room: str = "secret") -> Peer:
    """alice's private room with one message in it; returns alice."""
    alice = await peers.open("alice")
    await alice.join(room)
    await calls.moderate("alice", room, set_private=True)
    await calls.moderate("alice", room, set_topic="plans")
    await alice.send_and_ack("the plan", room=room)
    return alice


# -- what a non-member learns: nothing ---------------------------------------------------


async def test_a_private_room_is_not_listed_to_a_non_member_but_to_its_members(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    await private_room(peers, calls)
    await peers.token("mallory")
    listed = await calls.call("mallory", "ListRooms", pb.ListRoomsRequest())
    assert "secret" not in [r.name for r in listed.rooms]
    by_prefix = await calls.call("mallory", "ListRooms", pb.ListRoomsRequest(prefix="sec"))
    assert by_prefix.rooms == []
    mine = await calls.call("alice", "ListRooms", pb.ListRoomsRequest())
    (room,) = [r for r in mine.rooms if r.name == "secret"]
    assert room.private and room.topic == "plans"


async def test_joining_a_private_room_uninvited_answers_as_a_missing_room(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    await private_room(peers, calls)
    mallory = await peers.open("mallory")
    await mallory.stream.join("secret")
    await mallory.wait_for(lambda ev: bool(mallory.of("error")))
    (error,) = mallory.of("error")
    assert error.code == E.NOT_FOUND and error.message == "no room named #secret"
    # A resume (with a seq and epoch) learns nothing either.
    await mallory.stream.join("secret", after_seq=0, epoch="x")
    await mallory.wait_for(lambda ev: len(mallory.of("error")) == 2)
    assert mallory.of("error")[1].code == E.NOT_FOUND
    assert mallory.of("joined") == [] and mallory.messages() == []


async def test_history_members_and_moderation_answer_a_non_member_as_for_no_room(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    await private_room(peers, calls)
    await peers.token("mallory")
    for room in ("secret", "nosuchroom"):
        hist = await calls.status("mallory", "History", pb.HistoryRequest(room=room))
        members = await calls.status("mallory", "ListMembers", pb.ListMembersRequest(room=room))
        moderate = await calls.status(
            "mallory", "ModerateRoom", pb.ModerateRequest(room=room, set_topic="mine")
        )
        expected = (S.NOT_FOUND, f"no room named #{room}")
        assert hist == members == moderate == expected


async def test_search_finds_nothing_of_a_private_room_for_a_non_member(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    await private_room(peers, calls)
    await peers.token("mallory")
    found = await calls.call("mallory", "Search", pb.SearchRequest(query="plan"))
    assert list(found.hits) == []
    scoped = await calls.status("mallory", "Search", pb.SearchRequest(query="plan", room="secret"))
    missing = await calls.status("mallory", "Search", pb.SearchRequest(query="plan", room="nope"))
    assert scoped[0] == missing[0] == S.NOT_FOUND
    assert scoped[1].replace("secret", "nope") == missing[1]
    mine = await calls.call("alice", "Search", pb.SearchRequest(query="plan"))
    assert [h.message.text for h in mine.hits] == ["the plan"]


async def test_an_invitee_is_told_and_may_join_and_read_then_the_invitation_is_spent(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    await private_room(peers, calls)
    bob = await peers.open("bob")
    event = await calls.moderate("alice", "secret", invite="bob", reason="welcome")
    assert event.kind == pb.Message.INVITE and event.target_user == "bob"
    await bob.wait_for(lambda ev: bool(bob.of("invitation")))
    (invitation,) = bob.of("invitation")
    assert (invitation.room, invitation.by, invitation.reason) == ("secret", "alice", "welcome")
    joined = await bob.join("secret", after_seq=0)
    assert joined.private and joined.topic == "plans"
    assert "the plan" in bob.texts()
    page = await calls.call("bob", "History", pb.HistoryRequest(room="secret"))
    assert "the plan" in [m.text for m in page.messages]
    # Accepted: a later session is not invited again.
    again = await peers.open("bob")
    await again.join("lobby")
    assert again.of("invitation") == []


async def test_an_offline_invitee_hears_of_it_when_they_connect(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    await private_room(peers, calls)
    await peers.token("carol")
    await calls.moderate("alice", "secret", invite="carol")
    carol = await peers.open("carol")
    await carol.wait_for(lambda ev: bool(carol.of("invitation")))
    assert carol.of("invitation")[0].room == "secret"


# -- roles -----------------------------------------------------------------------------


async def test_a_member_may_take_no_moderation_action(world: tuple[Peers, Calls]) -> None:
    peers, calls = world
    alice = await peers.open("alice")
    await alice.join("hall")
    bob = await peers.open("bob")
    await bob.join("hall")
    actions: list[dict[str, Any]] = [
        {"set_topic": "mine"},
        {"set_private": True},
        {"invite": "alice"},
        {"kick": "alice"},
        {"ban": pb.Ban(user="alice", duration_s=60)},
        {"unban": "alice"},
        {"mute": "alice"},
        {"unmute": "alice"},
        {"set_role": pb.SetRole(user="bob", role=pb.Member.OWNER)},
    ]
    for action in actions:
        code, _ = await calls.status(
            "bob", "ModerateRoom", pb.ModerateRequest(room="hall", **action)
        )
        assert code == S.PERMISSION_DENIED, action
    page = await calls.call("alice", "History", pb.HistoryRequest(room="hall"))
    assert [m.kind for m in page.messages] == []  # nothing was recorded


async def test_moderators_act_on_members_only_and_the_last_owner_stays(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    for name in ("alice", "bob", "carol", "dave"):
        peer = await peers.open(name)
        await peer.join("hall")
    await calls.moderate("alice", "hall", set_role=pb.SetRole(user="bob", role=pb.Member.MODERATOR))
    await calls.moderate(
        "alice", "hall", set_role=pb.SetRole(user="carol", role=pb.Member.MODERATOR)
    )
    listed = await calls.call("dave", "ListMembers", pb.ListMembersRequest(room="hall"))
    roles = {m.user: m.role for m in listed.roles}
    assert roles == {
        "alice": pb.Member.OWNER,
        "bob": pb.Member.MODERATOR,
        "carol": pb.Member.MODERATOR,
        "dave": pb.Member.MEMBER,
    }
    for victim in ("alice", "carol"):
        code, _ = await calls.status(
            "bob", "ModerateRoom", pb.ModerateRequest(room="hall", kick=victim)
        )
        assert code == S.PERMISSION_DENIED
    code, _ = await calls.status(
        "bob", "ModerateRoom", pb.ModerateRequest(room="hall", set_private=True)
    )
    assert code == S.PERMISSION_DENIED
    event = await calls.moderate("bob", "hall", mute="dave", reason="calm down")
    assert (event.kind, event.sender, event.target_user, event.text) == (
        pb.Message.MUTE,
        "bob",
        "dave",
        "calm down",
    )
    demote = pb.ModerateRequest(
        room="hall", set_role=pb.SetRole(user="alice", role=pb.Member.MEMBER)
    )
    code, details = await calls.status("alice", "ModerateRoom", demote)
    assert code == S.FAILED_PRECONDITION and "last owner" in details


# -- kicks, bans, mutes ---------------------------------------------------------------------


async def test_a_kicked_session_gets_left_with_the_reason_and_nothing_after(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    alice = await peers.open("alice")
    await alice.join("hall")
    troll = await peers.open("troll")
    await troll.join("hall")
    await calls.moderate("alice", "hall", kick="troll", reason="spam")
    await troll.wait_for(lambda ev: bool(troll.of("left")))
    assert troll.of("left")[0].reason == "kicked by alice: spam"
    seen = len(troll.events)
    await alice.send_and_ack("after the kick", room="hall")
    await alice.wait_for(lambda ev: any(m.kind == pb.Message.KICK for m in alice.messages()))
    # troll's next event is the answer to its own send, with nothing of the room between.
    await troll.stream.send("still here?", room="hall", client_msg_id="t-1")
    assert (await troll.error_for("t-1")).code == E.FAILED_PRECONDITION
    assert all(e.WhichOneof("event") == "error" for e in troll.events[seen:])
    assert not any(m.kind == pb.Message.KICK for m in troll.messages())
    kick = next(m for m in alice.messages() if m.kind == pb.Message.KICK)
    assert (kick.sender, kick.target_user, kick.text) == ("alice", "troll", "spam")


async def test_a_muted_user_reads_but_may_not_send(world: tuple[Peers, Calls]) -> None:
    peers, calls = world
    alice = await peers.open("alice")
    await alice.join("hall")
    bob = await peers.open("bob")
    await bob.join("hall")
    await calls.moderate("alice", "hall", mute="bob")
    await bob.wait_for(lambda ev: any(m.kind == pb.Message.MUTE for m in bob.messages()))
    await bob.stream.send("hey", room="hall", client_msg_id="b-1")
    assert (await bob.error_for("b-1")).code == E.PERMISSION_DENIED
    await alice.send_and_ack("you can read this", room="hall")
    await bob.wait_for(lambda ev: "you can read this" in bob.texts())
    await calls.moderate("alice", "hall", unmute="bob")
    await bob.wait_for(lambda ev: any(m.kind == pb.Message.UNMUTE for m in bob.messages()))
    await bob.send_and_ack("thanks", room="hall")


async def test_a_banned_user_may_not_join_until_unbanned(world: tuple[Peers, Calls]) -> None:
    peers, calls = world
    alice = await peers.open("alice")
    await alice.join("hall")
    troll = await peers.open("troll")
    await troll.join("hall")
    event = await calls.moderate("alice", "hall", ban=pb.Ban(user="troll", reason="again"))
    assert event.kind == pb.Message.BAN and not event.HasField("ban_until")
    await troll.wait_for(lambda ev: bool(troll.of("left")))
    assert troll.of("left")[0].reason == "banned by alice: again"
    await troll.stream.join("hall")
    await troll.wait_for(lambda ev: bool(troll.of("error")))
    assert troll.of("error")[0].code == E.PERMISSION_DENIED
    timed = await calls.moderate("alice", "hall", ban=pb.Ban(user="troll", duration_s=60))
    assert timed.ban_until.seconds - timed.sent_at.seconds == 60
    await calls.moderate("alice", "hall", unban="troll")
    await troll.join("hall")


# -- blocking --------------------------------------------------------------------------------


async def test_a_blocked_users_dms_are_refused_and_room_messages_hidden(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    alice = await peers.open("alice")
    await alice.join("hall")
    mallory = await peers.open("mallory")
    await mallory.join("hall")
    reply = await calls.call("alice", "Block", pb.BlockRequest(user="mallory"))
    assert reply.changed
    listed = await calls.call("alice", "ListBlocked", pb.ListBlockedRequest())
    assert list(listed.users) == ["mallory"]
    await mallory.stream.send("psst", to_user="alice", client_msg_id="m-1")
    assert (await mallory.error_for("m-1")).code == E.PERMISSION_DENIED
    await mallory.send_and_ack("noise", room="hall")
    bob = await peers.open("bob")
    await bob.join("hall")
    await bob.send_and_ack("signal", room="hall")
    await alice.wait_for(lambda ev: "signal" in alice.texts())
    assert "noise" not in alice.texts()
    page = await calls.call("alice", "History", pb.HistoryRequest(room="hall"))
    hidden = [m for m in page.messages if m.sender == "mallory"]
    assert hidden and all(m.hidden and not m.text for m in hidden)
    found = await calls.call("alice", "Search", pb.SearchRequest(query="noise", room="hall"))
    (hit,) = found.hits
    assert hit.message.hidden and not hit.message.text and not hit.snippet
    # alice's other (new) session and a resume hide them too.
    other = await peers.open("alice")
    await other.join("hall", after_seq=0)
    assert "signal" in other.texts() and "noise" not in other.texts()
    await calls.call("alice", "Unblock", pb.UnblockRequest(user="mallory"))
    await mallory.send_and_ack("hello again", to_user="alice")


async def test_a_blocked_users_typing_is_not_shown(world: tuple[Peers, Calls]) -> None:
    peers, calls = world
    alice = await peers.open("alice")
    await alice.join("hall")
    mallory = await peers.open("mallory")
    await mallory.join("hall")
    bob = await peers.open("bob")
    await bob.join("hall")
    await calls.call("alice", "Block", pb.BlockRequest(user="mallory"))
    # Handled in order: once bob sees the room's notice, the DM's was relayed too.
    await mallory.stream.write(pb.ClientEvent(typing=pb.Typing(to_user="alice")))
    await mallory.stream.write(pb.ClientEvent(typing=pb.Typing(room="hall")))
    await bob.wait_for(lambda ev: bool(bob.of("typing")))
    # bob's notice is queued for alice after any of mallory's.
    await bob.stream.write(pb.ClientEvent(typing=pb.Typing(room="hall")))
    await alice.wait_for(lambda ev: bool(alice.of("typing")))
    assert [t.user for t in alice.of("typing")] == ["bob"]
    assert [t.user for t in bob.of("typing")] == ["mallory"]


# -- across a restart and across servers ------------------------------------------------------


async def test_a_ban_and_privacy_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'chat.db'}"
    async with running_server(url) as srv:
        peers = Peers(target(srv))
        ch = channel(target(srv))
        try:
            calls = Calls(peers, ch)
            await private_room(peers, calls)
            await peers.token("troll")
            await calls.moderate("alice", "secret", invite="troll")
            await calls.moderate("alice", "secret", ban=pb.Ban(user="troll"))
            tokens = dict(peers.tokens)
        finally:
            await peers.close()
            await ch.close()
    async with running_server(url) as srv:
        peers = Peers(target(srv))
        peers.tokens = tokens
        ch = channel(target(srv))
        try:
            calls = Calls(peers, ch)
            troll = await peers.open("troll")
            await troll.stream.join("secret")
            await troll.wait_for(lambda ev: bool(troll.of("error")))
            assert troll.of("error")[0].code == E.NOT_FOUND  # a ban also withdrew the invitation
            listed = await calls.call("troll", "ListRooms", pb.ListRoomsRequest())
            assert "secret" not in [r.name for r in listed.rooms]
        finally:
            await peers.close()
            await ch.close()


async def test_a_kick_through_one_server_ends_delivery_on_another_over_redis(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    url = redis_server.url_for(0)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(running_server(url))
        b = await stack.enter_async_context(running_server(url))
        on_a, on_b = Peers(target(a)), Peers(target(b))
        stack.push_async_callback(on_a.close)
        stack.push_async_callback(on_b.close)
        ch = channel(target(a))
        stack.push_async_callback(ch.close)
        calls = Calls(on_a, ch)
        alice = await on_a.open("alice")
        await alice.join("hall")
        on_b.tokens["troll"] = await on_a.token("troll")
        troll = await on_b.open("troll")
        await troll.join("hall")
        await alice.send_and_ack("before", room="hall")
        await troll.wait_for(lambda ev: "before" in troll.texts())
        await calls.moderate("alice", "hall", ban=pb.Ban(user="troll", reason="bye"))
        await troll.wait_for(lambda ev: bool(troll.of("left")))
        assert troll.of("left")[0].reason == "banned by alice: bye"
        await alice.send_and_ack("after", room="hall")
        # Through server b, the ban refuses the join.
        await troll.stream.join("hall")
        await troll.wait_for(lambda ev: bool(troll.of("error")))
        assert troll.of("error")[0].code == E.PERMISSION_DENIED
        assert "after" not in troll.texts()
        assert not any(m.kind == pb.Message.BAN for m in troll.messages())


async def test_blocks_and_invitations_reach_sessions_on_another_server_over_redis(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    url = redis_server.url_for(0)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(running_server(url))
        b = await stack.enter_async_context(running_server(url))
        on_a, on_b = Peers(target(a)), Peers(target(b))
        stack.push_async_callback(on_a.close)
        stack.push_async_callback(on_b.close)
        ch = channel(target(a))
        stack.push_async_callback(ch.close)
        calls = Calls(on_a, ch)
        for user in ("alice", "bob", "carol"):
            on_b.tokens[user] = await on_a.token(user)
        mallory = await on_a.open("mallory")
        await mallory.join("hall")
        alice = await on_b.open("alice")
        await alice.join("hall")
        bob = await on_b.open("bob")
        await bob.join("hall")
        await calls.call("alice", "Block", pb.BlockRequest(user="mallory"))  # through a
        await calls.moderate("mallory", "hall", invite="carol")  # mallory created #hall
        carol = await on_b.open("carol")
        await carol.wait_for(lambda ev: bool(carol.of("invitation")))
        await mallory.send_and_ack("noise", room="hall")
        await bob.wait_for(lambda ev: "noise" in bob.texts())
        await bob.send_and_ack("signal", room="hall")
        await alice.wait_for(lambda ev: "signal" in alice.texts())
        assert "noise" not in alice.texts()
        # A live invitation crosses too.
        on_b.tokens["dave"] = await on_a.token("dave")
        dave = await on_b.open("dave")
        await dave.join("lobby")
        await calls.moderate("mallory", "hall", invite="dave", reason="come")
        await dave.wait_for(lambda ev: bool(dave.of("invitation")))
        assert (dave.of("invitation")[0].by, dave.of("invitation")[0].reason) == ("mallory", "come")


# -- bad input ----------------------------------------------------------------------------------


async def test_bad_moderation_requests_get_a_clear_status(world: tuple[Peers, Calls]) -> None:
    peers, calls = world
    alice = await peers.open("alice")
    await alice.join("hall")
    await peers.token("bob")
    cases: list[tuple[pb.ModerateRequest, grpc.StatusCode, str]] = [
        (pb.ModerateRequest(room="hall"), S.INVALID_ARGUMENT, "needs an action"),
        (pb.ModerateRequest(set_topic="x"), S.INVALID_ARGUMENT, "needs a room"),
        (pb.ModerateRequest(room="h@ll", kick="bob"), S.INVALID_ARGUMENT, "room"),
        (pb.ModerateRequest(room="hall", kick="nobody"), S.NOT_FOUND, "no user named"),
        (pb.ModerateRequest(room="hall", kick="bob"), S.FAILED_PRECONDITION, "not in #hall"),
        (pb.ModerateRequest(room="hall", kick="alice"), S.INVALID_ARGUMENT, "yourself"),
        (pb.ModerateRequest(room="hall", unban="bob"), S.FAILED_PRECONDITION, "not banned"),
        (pb.ModerateRequest(room="hall", unmute="bob"), S.FAILED_PRECONDITION, "not muted"),
        (pb.ModerateRequest(room="hall", set_topic="\x1b[2J"), S.INVALID_ARGUMENT, "control"),
        (
            pb.ModerateRequest(room="hall", mute="bob", reason="x" * 20_000),
            S.INVALID_ARGUMENT,
            "bytes",
        ),
        (
            pb.ModerateRequest(room="hall", set_role=pb.SetRole(user="bob", role=7)),  # type: ignore[arg-type]
            S.INVALID_ARGUMENT,
            "role",
        ),
    ]
    for request, code, words in cases:
        got, details = await calls.status("alice", "ModerateRoom", request)
        assert got == code and words in details, (request, got, details)
    for name, req in (("Block", pb.BlockRequest), ("Unblock", pb.UnblockRequest)):
        assert (await calls.status("alice", name, req(user="alice")))[0] == S.INVALID_ARGUMENT
        assert (await calls.status("alice", name, req(user="nobody")))[0] == S.NOT_FOUND
    # Nothing of it was recorded, and the server still serves alice.
    page = await calls.call("alice", "History", pb.HistoryRequest(room="hall"))
    assert list(page.messages) == []


async def test_moderation_is_rate_limited_like_sends(tmp_path: Path) -> None:
    from chatrpc.hub import Limits

    async with running_server(limits=Limits(rate_limit=0.1, rate_burst=3)) as srv:
        peers = Peers(target(srv))
        ch = channel(target(srv))
        try:
            calls = Calls(peers, ch)
            alice = await peers.open("alice")
            await alice.join("hall")  # a join costs from the same budget
            codes = []
            for i in range(4):
                try:
                    await calls.moderate("alice", "hall", set_topic=f"topic {i}")
                    codes.append(S.OK)
                except grpc.aio.AioRpcError as exc:
                    codes.append(exc.code())
            assert S.RESOURCE_EXHAUSTED in codes and codes[0] == S.OK
        finally:
            await peers.close()
            await ch.close()


# -- the operator ---------------------------------------------------------------------------------


async def test_the_operator_moderates_any_room_with_chatrpc_admin(tmp_path: Path) -> None:
    from .test_admin import admin, one_error

    sock = tmp_path / "admin.sock"
    async with running_server("memory://", admin_socket=str(sock)) as srv:
        peers = Peers(target(srv))
        ch = channel(target(srv))
        try:
            calls = Calls(peers, ch)
            await private_room(peers, calls)
            troll = await peers.open("troll")
            await troll.join("lobby")  # troll created it: the operator outranks him
            base = ("--socket", str(sock))
            kicked = await admin(*base, "moderate", "lobby", "kick", "troll", "--reason", "abuse")
            assert kicked.code == 0, kicked
            await troll.wait_for(lambda ev: bool(troll.of("left")))
            assert troll.of("left")[0].reason == "kicked by the operator: abuse"
            banned = await admin(*base, "moderate", "secret", "ban", "troll", "--duration", "1h")
            assert banned.code == 0, banned
            page = await calls.call("alice", "History", pb.HistoryRequest(room="secret"))
            ban = page.messages[-1]
            assert (ban.kind, ban.sender, ban.target_user) == (pb.Message.BAN, "", "troll")
            assert ban.ban_until.seconds - ban.sent_at.seconds == 3600
            role = await admin(*base, "moderate", "secret", "role", "troll", "--role", "owner")
            assert role.code == 0
            one_error(await admin(*base, "moderate", "nowhere", "kick", "troll"), 1, "no room")
            one_error(await admin(*base, "moderate", "secret", "private", "maybe"), 2, "on or off")
        finally:
            await peers.close()
            await ch.close()


async def test_owners_and_moderators_delete_the_messages_of_those_they_moderate(
    world: tuple[Peers, Calls],
) -> None:
    peers, calls = world
    alice, bob, dave = [await peers.open(name) for name in ("alice", "bob", "dave")]
    for peer in (alice, bob, dave):
        await peer.join("hall")
    await calls.moderate("alice", "hall", set_role=pb.SetRole(user="bob", role=pb.Member.MODERATOR))
    by_alice = await alice.send_and_ack("owner's", room="hall")
    by_bob = await bob.send_and_ack("moderator's", room="hall")
    by_dave = await dave.send_and_ack("member's", room="hall")
    await dave.stream.delete(by_bob.seq, room="hall", client_msg_id="d-1")
    assert (await dave.error_for("d-1")).code == E.PERMISSION_DENIED
    await bob.stream.delete(by_alice.seq, room="hall", client_msg_id="b-1")
    assert (await bob.error_for("b-1")).code == E.PERMISSION_DENIED
    await bob.stream.delete(by_dave.seq, room="hall", client_msg_id="b-2")
    await alice.stream.delete(by_bob.seq, room="hall", client_msg_id="a-1")
    await alice.wait_for(
        lambda ev: (
            {m.client_msg_id for m in alice.messages() if m.kind == pb.Message.DELETE}
            == {"b-2", "a-1"}
        )
    )
    page = await calls.call("dave", "History", pb.HistoryRequest(room="hall"))
    deleted = {m.seq for m in page.messages if m.deleted}
    assert deleted == {by_bob.seq, by_dave.seq}


async def test_the_web_adapter_serves_moderation_and_its_events(tmp_path: Path) -> None:
    """The browser's JSON API and WebSocket speak the same: ModerateRoom and Block
    as POSTs, room events, invitations and a kick's reason as proto3 JSON."""
    from .web_client import CallFailed, WebUser, web_url

    async with running_server() as srv:
        alice, bob = WebUser(web_url(srv)), WebUser(web_url(srv))
        try:
            await alice.login("alice")
            await bob.login("bob")
            a_ws, b_ws = await alice.open(), await bob.open()
            await a_ws.join("den")
            await b_ws.join("den")
            topic = await alice.call("ModerateRoom", {"room": "den", "setTopic": "plans"})
            assert topic["event"]["kind"] == "TOPIC" and topic["event"]["text"] == "plans"
            await alice.call("ModerateRoom", {"room": "den", "kick": "bob", "reason": "spam"})
            await b_ws.wait_for(lambda: bool(b_ws.of("left")))
            assert b_ws.of("left")[0] == {"room": "den", "reason": "kicked by alice: spam"}
            await alice.call("ModerateRoom", {"room": "den", "setPrivate": True})
            await alice.call("ModerateRoom", {"room": "den", "invite": "bob"})
            await b_ws.wait_for(lambda: bool(b_ws.of("invitation")))
            assert b_ws.of("invitation")[0] == {"room": "den", "by": "alice"}
            assert (await bob.call("Block", {"user": "alice"}))["changed"] is True
            assert (await bob.call("ListBlocked"))["users"] == ["alice"]
            with pytest.raises(CallFailed) as refused:
                await bob.call("ModerateRoom", {"room": "den", "setTopic": "mine"})
            assert (refused.value.status, refused.value.body["code"]) == (403, "permission_denied")
        finally:
            await alice.close()
            await bob.close()


async def test_room_events_are_replayed_on_resume_in_order(world: tuple[Peers, Calls]) -> None:
    peers, calls = world
    alice = await peers.open("alice")
    await alice.join("hall")
    bob = await peers.open("bob")
    joined = await bob.join("hall")
    await bob.close()
    await calls.moderate("alice", "hall", set_topic="plans")
    await alice.send_and_ack("between", room="hall")
    await calls.moderate("alice", "hall", mute="bob", reason="quiet")
    back = await peers.open("bob")
    resumed = await back.join("hall", after_seq=joined.last_seq, epoch=joined.epoch)
    assert resumed.complete and resumed.replayed == 3 and resumed.topic == "plans"
    kinds = [(m.kind, m.text) for m in back.messages()]
    assert kinds == [
        (pb.Message.TOPIC, "plans"),
        (pb.Message.MESSAGE, "between"),
        (pb.Message.MUTE, "quiet"),
    ]
    # The mute holds for the resumed session.
    await back.stream.send("hi", room="hall", client_msg_id="b-9")
    assert (await back.error_for("b-9")).code == E.PERMISSION_DENIED


async def test_a_dm_naming_a_private_room_learns_nothing_of_it(
    world: tuple[Peers, Calls],
) -> None:
    """Room and user names are apart: a DM to, or a DM resume with, a private
    room's name answers exactly as for a name nobody has."""
    peers, calls = world
    await private_room(peers, calls)
    mallory = await peers.open("mallory")
    for name in ("secret", "nosuchname"):
        await mallory.stream.send("hi", to_user=name, client_msg_id=f"m-{name}")
        await mallory.stream.resume_direct(name, 0)
    await mallory.wait_for(lambda ev: len(mallory.of("error")) == 4)
    answers = [(e.code, e.message.replace("nosuchname", "secret")) for e in mallory.of("error")]
    assert answers[:2] == answers[2:]
    assert all(code == E.NOT_FOUND for code, _ in answers)
    assert mallory.of("invitation") == [] and mallory.messages() == []
