"""The store's moderation role (chatrpc.store.moderation) on every store: room
settings, roles, invitations, bans, mutes and blocks, and that they are durable
and shared (a second store on the same file or Redis sees them)."""

from __future__ import annotations

import time
from pathlib import Path

from chatrpc.model import room_key
from chatrpc.store import MEMBER, MODERATOR, OWNER, RoomSettings, Store, open_store

from .redis_fixture import RedisServer
from .test_store import make_store, room_draft, store
from .test_store_changes import item

__all__ = ["make_store", "store"]


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_a_room_has_no_topic_and_is_public_until_set(store: Store) -> None:
    await store.claim_room("general", "alice")
    assert await store.room_settings("general") == RoomSettings("", False)
    await store.set_topic("general", "all things")
    assert await store.set_private("general", True)
    assert not await store.set_private("general", True)  # no change
    assert await store.room_settings("general") == RoomSettings("all things", True)
    await store.set_topic("general", "")
    assert await store.set_private("general", False)
    assert await store.room_settings("general") == RoomSettings("", False)
    assert await store.room_settings("other") == RoomSettings()


async def test_the_creator_is_an_owner_until_given_another_role(store: Store) -> None:
    await store.claim_room("general", "alice")
    assert await store.room_role("general", "alice") == OWNER
    assert await store.room_role("general", "bob") == MEMBER
    assert await store.room_roles("general") == {"alice": OWNER}
    await store.set_role("general", "bob", MODERATOR)
    await store.set_role("general", "carol", OWNER)
    assert await store.room_roles("general") == {"alice": OWNER, "bob": MODERATOR, "carol": OWNER}
    await store.set_role("general", "alice", MEMBER)
    await store.set_role("general", "bob", MEMBER)
    assert await store.room_role("general", "alice") == MEMBER
    assert await store.room_roles("general") == {"carol": OWNER}
    # Roles are per room.
    assert await store.room_role("other", "carol") == MEMBER


async def test_an_invitation_lasts_until_withdrawn_and_names_who_invited(store: Store) -> None:
    assert await store.invite("secret", "bob", "alice", "welcome")
    assert not await store.invite("secret", "bob", "alice", "again")
    assert await store.invite("hidden", "bob", "carol")
    assert await store.is_invited("secret", "bob")
    assert not await store.is_invited("secret", "carol")
    assert await store.invitations("bob") == [("hidden", "carol", ""), ("secret", "alice", "again")]
    assert await store.uninvite("secret", "bob")
    assert not await store.uninvite("secret", "bob")
    assert await store.invitations("bob") == [("hidden", "carol", "")]


async def test_a_ban_holds_until_it_expires_or_is_lifted(store: Store) -> None:
    now = now_ms()
    assert await store.banned_until("general", "bob", now) is None
    await store.ban("general", "bob", 0)
    assert await store.banned_until("general", "bob", now) == 0
    await store.ban("general", "carol", now + 60_000)
    assert await store.banned_until("general", "carol", now) == now + 60_000
    assert await store.banned_until("general", "carol", now + 60_000) is None  # expired
    assert await store.banned_until("other", "bob", now) is None
    assert await store.unban("general", "bob")
    assert not await store.unban("general", "bob")
    assert await store.banned_until("general", "bob", now) is None


async def test_a_mute_holds_until_lifted(store: Store) -> None:
    assert not await store.is_muted("general", "bob")
    assert await store.set_muted("general", "bob", True)
    assert not await store.set_muted("general", "bob", True)
    assert await store.is_muted("general", "bob")
    assert not await store.is_muted("other", "bob")
    assert await store.set_muted("general", "bob", False)
    assert not await store.is_muted("general", "bob")


async def test_blocks_are_per_user_and_one_way(store: Store) -> None:
    assert await store.block("alice", "mallory")
    assert not await store.block("alice", "mallory")
    assert await store.block("alice", "eve")
    assert await store.blocked("alice") == ["eve", "mallory"]
    assert await store.has_blocked("alice", "mallory")
    assert not await store.has_blocked("mallory", "alice")
    assert await store.blocked("mallory") == []
    assert await store.unblock("alice", "mallory")
    assert not await store.unblock("alice", "mallory")
    assert await store.blocked("alice") == ["eve"]


async def test_a_room_event_item_keeps_its_reason_target_and_detail(store: Store) -> None:
    """A moderation item (kind BAN, target user, the ban's length) is stored as
    it was sent: nothing of it is taken for a change of a message."""
    from chatrpc.model import BAN, Draft

    await store.append(room_draft("general", "alice", "hello"))
    draft = Draft(
        room_key("general"),
        "alice",
        "spam",
        now_ms(),
        "mod-1",
        room="general",
        kind=BAN,
        target_seq=3600,
        emoji="bob",
    )
    stored, duplicate = await store.append(draft)
    assert not duplicate and (stored.seq, stored.text, stored.target_user) == (2, "spam", "bob")
    found = await item(store, 2)
    assert (found.kind, found.text, found.target_user, found.detail) == (BAN, "spam", "bob", 3600)
    assert (await item(store, 1)).text == "hello"  # the message is untouched


async def _same_backing_store_sees(first: Store, second: Store) -> None:
    await first.claim_room("general", "alice")
    await first.set_private("general", True)
    await first.set_topic("general", "secrets")
    await first.set_role("general", "bob", MODERATOR)
    await first.invite("general", "carol", "alice")
    await first.ban("general", "mallory", 0)
    await first.set_muted("general", "eve", True)
    await first.block("alice", "mallory")
    await first.close()
    await second.open()
    try:
        assert await second.room_settings("general") == RoomSettings("secrets", True)
        assert await second.room_roles("general") == {"alice": OWNER, "bob": MODERATOR}
        assert await second.is_invited("general", "carol")
        assert await second.banned_until("general", "mallory", now_ms()) == 0
        assert await second.is_muted("general", "eve")
        assert await second.blocked("alice") == ["mallory"]
    finally:
        await second.close()


async def test_sqlite_keeps_moderation_across_a_restart(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'chat.db'}"
    first = open_store(url)
    await first.open()
    await _same_backing_store_sees(first, open_store(url))


async def test_redis_keeps_moderation_for_every_server(redis_server: RedisServer) -> None:
    redis_server.flush()
    url = redis_server.url_for(0)
    first = open_store(url)
    await first.open()
    await _same_backing_store_sees(first, open_store(url))


async def test_a_forgotten_room_keeps_no_settings_roles_or_bans(store: Store) -> None:
    await store.claim_room("general", "alice")
    await store.set_private("general", True)
    await store.set_topic("general", "t")
    await store.set_role("general", "bob", MODERATOR)
    await store.invite("general", "carol", "alice")
    await store.ban("general", "mallory", 0)
    await store.ban("other", "mallory", 0)
    await store.block("alice", "mallory")
    await store.forget_room("general")
    assert await store.room_settings("general") == RoomSettings()
    assert await store.room_role("general", "bob") == MEMBER
    assert await store.invitations("carol") == []
    assert await store.banned_until("general", "mallory", now_ms()) is None
    assert await store.banned_until("other", "mallory", now_ms()) == 0  # other rooms keep theirs
    assert await store.blocked("alice") == ["mallory"]


async def test_a_users_standing_in_a_room_is_read_in_one_step(store: Store) -> None:
    from chatrpc.store import Standing

    await store.claim_room("general", "alice")
    assert await store.standing("general", "bob") == Standing(
        RoomSettings(), None, False, None, False
    )
    await store.set_private("general", True)
    await store.set_topic("general", "t")
    await store.set_role("general", "bob", MODERATOR)
    await store.invite("general", "bob", "alice")
    await store.ban("general", "bob", 5)
    await store.set_muted("general", "bob", True)
    assert await store.standing("general", "bob") == Standing(
        RoomSettings("t", True), MODERATOR, True, 5, True
    )
    assert (await store.standing("general", "carol")).role is None


async def test_a_join_reads_the_standing_and_the_membership_together(store: Store) -> None:
    await store.claim_room("general", "alice")
    await store.set_muted("general", "bob", True)
    standing, member = await store.join_standing("general", "bob")
    assert standing == await store.standing("general", "bob") and standing.muted
    assert not member
    await store.add_member("general", "bob")
    assert (await store.join_standing("general", "bob"))[1]
    assert not (await store.join_standing("general", "carol"))[1]
    assert not (await store.join_standing("other", "bob"))[1]
