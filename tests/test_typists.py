"""The terminal's pure signal rules (chatrpc.tui.signals): who is shown typing and
for how long, where a half-typed line goes, how counts read, how a mention shows."""

from __future__ import annotations

from chatrpc.tui.formatter import Formatter
from chatrpc.tui.signals import (
    SHOW_S,
    Typists,
    describe,
    typing_target,
    unread_note,
)
from chatrpc.v1 import chat_pb2 as pb


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_typist_is_shown_for_six_seconds_after_their_last_notice() -> None:
    clock = Clock()
    typists = Typists(clock)
    typists.saw("#general", "bob")
    clock.now += SHOW_S - 1
    typists.saw("#general", "carol")
    assert typists.typing("#general") == ["bob", "carol"]
    clock.now += 1
    assert typists.typing("#general") == ["carol"]  # bob's notice is 6 s old
    typists.saw("#general", "bob")  # another one: shown again
    assert typists.typing("#general") == ["bob", "carol"]
    clock.now += SHOW_S
    assert typists.typing("#general") == [] and typists.conversations() == []


def test_a_typist_who_sent_their_message_is_no_longer_shown() -> None:
    typists = Typists(Clock())
    typists.saw("@bob", "bob")
    typists.saw("#general", "bob")
    typists.stopped("@bob", "bob")
    assert typists.conversations() == ["#general"]
    typists.stopped("#nowhere", "bob")  # nothing there: nothing happens


def test_who_is_typing_reads_as_a_sentence() -> None:
    assert describe(["bob"]) == "bob is typing"
    assert describe(["bob", "carol"]) == "bob and carol are typing"
    assert describe(["bob", "carol", "dan", "eve"]) == "bob, carol and 2 more are typing"


def test_a_half_typed_line_types_to_the_room_or_the_user_of_a_msg() -> None:
    assert typing_target("hel", "general") == ("general", "")
    assert typing_target("/me waves", "general") == ("general", "")
    assert typing_target("//not a command", "general") == ("general", "")
    assert typing_target("/msg Bob hi", "general") == ("", "bob")
    assert typing_target("/query bob hi", None) == ("", "bob")
    assert typing_target("/msg bob", "general") is None  # no text yet
    assert typing_target("/join dev", "general") is None
    assert typing_target("   ", "general") is None
    assert typing_target("hello", None) is None  # no room to type in


def test_unread_counts_read_naturally_and_the_cap_reads_as_or_more() -> None:
    assert unread_note(0, 0) == ""
    assert unread_note(3, 0) == ", 3 unread"
    assert unread_note(3, 1) == ", 3 unread, 1 mention of you"
    assert unread_note(5, 2) == ", 5 unread, 2 mentions of you"
    assert unread_note(999, 0) == ", 999+ unread"


def test_a_message_mentioning_the_reader_stands_out_on_a_color_terminal() -> None:
    colored, plain = Formatter("alice", color=True), Formatter("alice")
    mention = pb.Message(room="general", sender="bob", text="hi @Alice")
    assert "\x1b[1;33mhi @Alice\x1b[0m" in colored.message(mention)
    assert plain.message(mention).endswith("#general <bob> hi @Alice")
    action = pb.Message(room="general", sender="bob", text="/me pokes @alice")
    assert colored.message(action).endswith("\x1b[1;33mpokes @alice\x1b[0m")
    own = pb.Message(room="general", sender="alice", text="I am @alice")
    assert "1;33m" not in colored.message(own)
    other = pb.Message(room="general", sender="bob", text="hi @alicex")
    assert "1;33m" not in colored.message(other)
