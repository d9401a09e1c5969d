"""The mention rule (chatrpc.mentions), shared by the server's counts and the clients."""

from __future__ import annotations

import pytest

from chatrpc.mentions import mentions
from chatrpc.model import DELETE, EDIT, MESSAGE, StoredMessage
from chatrpc.store.markers import UNREAD_CAP, Span, tally


@pytest.mark.parametrize(
    "text",
    [
        "@alice",
        "hi @alice",
        "@alice: look",
        "thanks @alice.",
        "(@alice)",
        "hey @ALICE!",
        "@Alice, @bob",
        "first line\n@alice second",
        "ok @alice-",
    ],
)
def test_an_at_name_standing_alone_is_a_mention(text: str) -> None:
    assert mentions(text, "alice")


@pytest.mark.parametrize(
    "text",
    [
        "alice",
        "@alicex",
        "@alice_2",
        "@alice.b",
        "@alice-b",
        "bob@alice",
        "@@alice",
        "x.@alice",
        "@ali",
        "",
    ],
)
def test_a_longer_name_an_address_or_a_bare_name_is_not(text: str) -> None:
    assert not mentions(text, "alice")


def test_names_with_dots_and_dashes_are_matched_whole() -> None:
    assert mentions("ping @a.b-c now", "a.b-c")
    assert not mentions("ping @a.b-c now", "a.b")
    assert not mentions("ping @axb", "a.b")  # the dot is not a wildcard


def test_the_count_takes_only_the_messages_of_others_that_are_still_there() -> None:
    def item(seq: int, sender: str, text: str, **more: object) -> StoredMessage:
        return StoredMessage("#r", seq, sender, text, 0, room="r", **more)  # type: ignore[arg-type]

    items = [
        item(1, "bob", "hi @alice"),
        item(2, "alice", "@alice mine"),
        item(3, "bob", "@alice gone", deleted=True),
        item(4, "bob", "@alice edit", kind=EDIT, target_seq=1),
        item(5, "bob", "", kind=DELETE, target_seq=3),
        item(6, "carol", "plain", kind=MESSAGE),
    ]
    counted = tally(items, "alice")
    assert (counted.unread, counted.mentions) == (2, 1)


def test_a_span_looks_at_the_newest_items_past_the_marker_only() -> None:
    assert Span("#r", 0, 10).window() == (0, 10)
    assert Span("#r", 5, 10).window() == (5, 10)
    assert Span("#r", 0, 5000).window() == (5000 - UNREAD_CAP, 5000)
    assert Span("#r", 10, 10).empty and not Span("#r", 9, 10).empty
