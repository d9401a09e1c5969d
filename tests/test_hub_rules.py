"""The hub's parts without a network: send rules, room presence, limits."""

from __future__ import annotations

import asyncio

import pytest

from chatrpc import change_rules
from chatrpc.errors import ChatError, Code
from chatrpc.limits import Limits
from chatrpc.presence import RoomPresence
from chatrpc.rules import SendRules
from chatrpc.store.memory import MemoryStore
from chatrpc.subscriber import Notice, Presence, Session


def test_the_send_budget_is_shared_by_a_users_sends_and_refuses_with_a_hint() -> None:
    rules = SendRules(Limits(rate_limit=0.5, rate_burst=2))
    rules.spend("alice", 1.0)
    rules.spend("alice", 1.0)
    with pytest.raises(ChatError) as info:
        rules.spend("alice", 1.0)
    assert info.value.code is Code.RESOURCE_EXHAUSTED and "retry in 2.0 s" in info.value.message
    rules.spend("bob", 1.0)  # another user's budget is their own


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty"),
        ("\u200b\u2800 \u3164", "empty"),
        ("x" * 101, "101 bytes; the limit is 100"),
        ("hi \x1b[2J", "control characters"),
    ],
)
def test_text_without_a_visible_character_oversized_or_with_controls_is_refused(
    text: str, error: str
) -> None:
    with pytest.raises(ChatError) as info:
        SendRules(Limits(max_text_bytes=100)).text(text)
    assert info.value.code is Code.INVALID_ARGUMENT and error in info.value.message


def test_text_keeps_its_bidi_controls_inside_itself_and_ids_are_printable_ascii() -> None:
    rules = SendRules(Limits(max_client_msg_id=8))
    assert rules.text("hi \u202egnp.exe") == "hi \u202egnp.exe\u202c"
    assert rules.client_msg_id("c-1") == "c-1"
    for bad in ("c 1", "c\x1b1", "é", "123456789"):
        with pytest.raises(ChatError):
            rules.client_msg_id(bad)


async def drained(session: Session) -> list[object]:
    """What was pushed to ``session`` and not taken yet (a marker ends the batch)."""
    session.push(Notice("MARK", "end of what was queued"))
    out: list[object] = []
    while not out or out[-1] != Notice("MARK", "end of what was queued"):
        out.extend(await asyncio.wait_for(session.next_batch(), 10))
    return out[:-1]


async def test_room_presence_announces_a_users_first_session_and_last_departure_only() -> None:
    presence = RoomPresence(MemoryStore(), Limits())
    alice, alice_too, bob = Session("alice"), Session("alice"), Session("bob")
    presence.subscribe(bob, "general")
    presence.subscribe(alice, "general")
    presence.subscribe(alice_too, "general")  # alice is online already: no news
    assert await drained(bob) == [Presence("general", "alice", joined=True)]
    assert presence.users_here("general") == {"alice", "bob"}
    presence.unsubscribe(alice, "general")
    assert await drained(bob) == []  # alice_too is still there
    presence.unsubscribe(alice_too, "general")
    assert await drained(bob) == [Presence("general", "alice", joined=False)]
    assert presence.sessions_in("general") == [bob] and alice_too.rooms == set()


async def test_a_room_past_the_presence_cap_announces_nobody() -> None:
    presence = RoomPresence(MemoryStore(), Limits(presence_max_sessions=2))
    watcher = Session("watcher")
    presence.subscribe(watcher, "big")
    for name in ("a", "b", "c"):
        presence.subscribe(Session(name), "big")
    # With a, the room holds two sessions (the cap); b and c take it past it.
    joined = [p.user for p in await drained(watcher) if isinstance(p, Presence)]
    assert joined == ["a"] and presence.crowded("big")
    assert presence.crowded("small", online=3) and not presence.crowded("small", online=2)


@pytest.mark.parametrize(
    "emoji",
    ["👍", "❤️", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🇫🇷", "👍🏽", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "✅", "☕", "🫠"],
)
def test_a_reaction_may_be_any_emoji_people_use_joined_flagged_or_skin_toned(emoji: str) -> None:
    assert change_rules.emoji(emoji) == emoji


@pytest.mark.parametrize(
    ("emoji", "words"),
    [
        ("", "needs an emoji"),
        ("+1", "not letters, digits or spaces"),
        ("1\ufe0f\u20e3", "not letters, digits or spaces"),  # a keycap is a digit
        ("lol", "not letters"),
        ("👍\n", "not letters, digits or spaces"),
        ("\u200d\ufe0f", "holds no symbol"),
        ("é", "U+00E9"),
        ("👍\u200b", "U+200B"),
        ("👍" * 9, "at most 8 code points"),
    ],
)
def test_a_reaction_that_is_no_emoji_is_refused_naming_why(emoji: str, words: str) -> None:
    with pytest.raises(ChatError) as info:
        change_rules.emoji(emoji)
    assert info.value.code is Code.INVALID_ARGUMENT and words in info.value.message
