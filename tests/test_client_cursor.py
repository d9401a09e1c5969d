"""The client's conversation cursor, on its own: no server, no network, no event loop.

:class:`chatrpc.client.Cursor` decides what a ChatClient shows (each message once),
what it holds while a resume's gap is filled from History, and from which seq each
conversation resumes on a new session. The end-to-end behaviour is in
test_durability.py; these pin the rules one at a time.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chatrpc.client import ClientState, Cursor, conv_of
from chatrpc.directs_summary import summary
from chatrpc.v1 import chat_pb2 as pb


def dm(seq: int, sender: str = "bob", to: str = "alice") -> pb.ServerEvent:
    return pb.ServerEvent(message=pb.Message(seq=seq, sender=sender, to_user=to))


def room_joined(room: str, last_seq: int, *, complete: bool = True, replayed: int = 0) -> pb.Joined:
    return pb.Joined(room=room, last_seq=last_seq, epoch="e", complete=complete, replayed=replayed)


def dm_joined(peer: str, last_seq: int = 0, *, complete: bool = True) -> pb.Joined:
    return pb.Joined(with_user=peer, last_seq=last_seq, epoch="e", complete=complete)


def listing(epoch: str, **last: int) -> pb.ListDirectsResponse:
    directs = [pb.Direct(with_user=u, last_seq=s) for u, s in last.items()]
    return pb.ListDirectsResponse(epoch=epoch, directs=directs)


def test_a_conversation_key_is_the_room_or_the_other_side_of_the_dm() -> None:
    assert conv_of(pb.Message(room="lobby", sender="bob"), "alice") == "#lobby"
    assert conv_of(pb.Message(sender="bob", to_user="alice"), "alice") == "@bob"
    assert conv_of(pb.Message(sender="alice", to_user="bob"), "alice") == "@bob"


def test_a_room_joined_live_accepts_what_follows_and_drops_repeats() -> None:
    cursor = Cursor(ClientState())
    assert cursor.joined(room_joined("lobby", 5)) is None
    assert cursor.state.cursors == {"#lobby": 5}
    assert cursor.accept("#lobby", 6)
    assert not cursor.accept("#lobby", 6)  # a repeat
    assert not cursor.accept("#lobby", 4)  # before the join
    assert cursor.accept("#lobby", 9)  # a jump in a room: seqs skip, nothing waits
    assert cursor.state.cursors == {"#lobby": 9}
    assert cursor.room_point("lobby") == 9
    assert cursor.room_point("other") is None


def test_a_room_joined_with_a_replay_starts_from_the_beginning() -> None:
    cursor = Cursor(ClientState())
    cursor.joined(room_joined("lobby", 3, replayed=3))
    assert cursor.state.cursors == {"#lobby": 0}
    assert [cursor.accept("#lobby", s) for s in (1, 2, 3, 2)] == [True, True, True, False]


def test_a_gap_too_long_to_replay_is_filled_while_what_arrives_is_held() -> None:
    cursor = Cursor(ClientState(epoch="e", rooms=["lobby"], cursors={"#lobby": 2}))
    assert cursor.joined(room_joined("lobby", 10, complete=False)) == 2  # fill after 2
    live = pb.ServerEvent(message=pb.Message(seq=8, room="lobby"))
    assert cursor.hold("#lobby", live)
    assert not cursor.hold("#other", live)  # nothing held elsewhere
    assert all(cursor.accept("#lobby", s) for s in range(3, 9))  # History's pages
    assert cursor.filled("#lobby") == [live]
    assert not cursor.accept("#lobby", 8)  # the held one: History gave it first
    assert not cursor.hold("#lobby", live)  # the fill is over
    assert cursor.state.cursors == {"#lobby": 8}


def test_a_failed_fill_drops_what_it_held_and_leaves_the_cursor_below_it() -> None:
    cursor = Cursor(ClientState(epoch="e", cursors={"#lobby": 2}))
    cursor.joined(room_joined("lobby", 10, complete=False))
    cursor.hold("#lobby", pb.ServerEvent(message=pb.Message(seq=9, room="lobby")))
    cursor.fill_failed("#lobby")
    assert cursor.filling == {}
    assert cursor.room_point("lobby") == 2  # the next session replays from there


def test_a_new_epoch_in_a_joined_forgets_the_old_history() -> None:
    state = ClientState(epoch="old", cursors={"#lobby": 7, "@bob": 4}, ahead={"@bob": {6}})
    cursor = Cursor(state)
    cursor.resume_directs({"bob": 4})
    cursor.joined(room_joined("lobby", 2))
    assert state.epoch == "e"
    assert state.ahead == {}
    assert state.cursors == {"#lobby": 2}
    assert cursor.direct_point("bob") == 0  # its resume starts over too


def test_dm_resume_points_are_the_cursors_of_the_dms_seen() -> None:
    cursor = Cursor(ClientState(epoch="e", cursors={"#lobby": 7, "@bob": 4, "@carol": 1}))
    assert cursor.direct_points(None) == {"bob": 4, "carol": 1}  # no ListDirects
    assert cursor.direct_points(listing("e", bob=9, carol=1)) == {"bob": 4, "carol": 1}


def test_dm_resume_points_start_over_on_a_new_history() -> None:
    state = ClientState(epoch="old", cursors={"#lobby": 7, "@bob": 4}, ahead={"@bob": {6}})
    cursor = Cursor(state)
    assert cursor.direct_points(listing("new", bob=2)) == {"bob": 0}
    assert (state.epoch, state.cursors, state.ahead) == ("new", {}, {})


def test_a_client_with_no_dms_learns_the_epoch_from_the_listing() -> None:
    state = ClientState()
    assert Cursor(state).direct_points(listing("e")) == {}
    assert state.epoch == "e"


def test_a_dm_begun_while_away_resumes_from_where_it_stood_at_the_first_session() -> None:
    cursor = Cursor(ClientState(epoch="e"))
    assert cursor.direct_points(listing("e", bob=3, carol=5)) == {}  # the baseline
    # Later: bob wrote while the client was away, carol did not, dave is new.
    points = cursor.direct_points(listing("e", bob=4, carol=5, dave=1))
    assert points == {"bob": 3, "dave": 0}
    # On another history the baseline means nothing: from the start.
    assert cursor.direct_points(listing("e2", bob=1)) == {"bob": 0}


def test_live_dms_ahead_of_a_resume_wait_above_the_gap_across_a_lost_session() -> None:
    """The session fails between a live DM and the resume's fill-in: the cursor stays
    below the gap, the next resume fills it, and the live one is not shown twice."""
    cursor = Cursor(ClientState(epoch="e", cursors={"@bob": 1}))
    shown = []

    def arrive(seq: int) -> None:
        if cursor.accept("@bob", seq):
            shown.append(seq)

    cursor.resume_directs({"bob": cursor.direct_point("bob")})
    arrive(3)  # live before the resume's joined
    assert (cursor.state.cursors, cursor.state.ahead) == ({"@bob": 1}, {"@bob": {3}})
    cursor.session_ended()  # the session failed before the replay

    cursor.resume_directs({"bob": cursor.direct_point("bob")})  # from 1 again
    arrive(3)  # live again? no: already shown
    arrive(4)  # a newer live one
    assert cursor.joined(dm_joined("bob")) is None
    arrive(2)  # filled in below (from History: the replay never goes below)
    assert (cursor.state.cursors, cursor.state.ahead) == ({"@bob": 4}, {})
    arrive(5)
    arrive(3)  # a late duplicate
    assert shown == [3, 4, 2, 5]
    assert cursor.state.cursors == {"@bob": 5}


def test_a_session_that_ends_forgets_its_resumes_and_fills_but_not_the_cursors() -> None:
    cursor = Cursor(ClientState(epoch="e", cursors={"#lobby": 2, "@bob": 1}))
    cursor.resume_directs({"bob": 1, "carol": 0})
    cursor.joined(room_joined("lobby", 10, complete=False))
    cursor.give_up("@carol")
    assert cursor.resuming == {"@bob": 1}
    cursor.session_ended()
    assert (cursor.resuming, cursor.filling) == ({}, {})
    assert cursor.state.cursors == {"#lobby": 2, "@bob": 1}


@st.composite
def dm_resumes(draw: st.DrawFn) -> tuple[int, int, int, int, bool, bool]:
    """A DM conversation of ``n`` messages resumed from ``cursor``: live ones from
    ``first_live`` on arrive before the resume's joined, up to ``last_early``; the
    resume may fail once before its joined, and its joined may be incomplete."""
    n = draw(st.integers(1, 25))
    cursor = draw(st.integers(0, n))
    first_live = draw(st.integers(cursor + 1, n + 1))
    last_early = draw(st.integers(first_live - 1, n))
    return n, cursor, first_live, last_early, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=300, deadline=None)
@given(dm_resumes())
def test_every_dm_resume_shows_each_message_once_and_ends_contiguous(
    scenario: tuple[int, int, int, int, bool, bool],
) -> None:
    """Whatever arrives before the resume's joined, whether the session is lost once
    before it, and whether the gap is filled from History: every seq after the
    cursor is shown exactly once, and the cursor ends on the newest with nothing
    ahead (so a saved state resumes from there)."""
    n, start, first_live, last_early, fails_once, complete = scenario
    cursor = Cursor(ClientState(epoch="e", cursors={"@bob": start}))
    shown: list[int] = []

    def arrive(event: pb.ServerEvent) -> None:
        if not cursor.hold("@bob", event) and cursor.accept("@bob", event.message.seq):
            shown.append(event.message.seq)

    early = [dm(s) for s in range(first_live, last_early + 1)]
    if fails_once:
        cursor.resume_directs({"bob": cursor.direct_point("bob")})
        for event in early[: len(early) // 2 + 1]:
            arrive(event)
        cursor.session_ended()
    cursor.resume_directs({"bob": cursor.direct_point("bob")})
    for event in early:  # a new session gets the live ones again
        arrive(event)
    fill_after = cursor.joined(dm_joined("bob", last_early, complete=complete))
    if fill_after is not None:  # History from the cursor up to the joined
        for seq in range(fill_after + 1, last_early + 1):
            if cursor.accept("@bob", seq):
                shown.append(seq)
        for event in cursor.filled("@bob"):
            arrive(event)
    else:  # the replay, in order (the server leaves out nothing here)
        for seq in range(start + 1, last_early + 1):
            arrive(dm(seq))
    for seq in range(last_early + 1, n + 1):  # live after the joined
        arrive(dm(seq))
    assert sorted(shown) == list(range(start + 1, n + 1))
    assert cursor.state.cursors["@bob"] == n
    assert cursor.state.ahead == {}


def test_the_dm_summary_a_client_expects_is_the_servers_while_nothing_changed() -> None:
    assert summary("e", [("bob", 2), ("carol", 1)]) == summary("e", [("carol", 1), ("bob", 2)])
    assert summary("e", [("bob", 2)]) != summary("e", [("bob", 3)])
    assert summary("e", [("bob", 2)]) != summary("f", [("bob", 2)])
    assert summary("e", [("bob", 2)]) != summary("e", [("bob", 2), ("carol", 0)])

    cursor = Cursor(ClientState(epoch="e"))
    assert cursor.directs_summary() is None  # nothing listed yet: list them
    cursor.direct_points(listing("e", bob=2, carol=1))  # the first listing
    assert cursor.directs_summary() == summary("e", [("bob", 2), ("carol", 1)])
    # What arrives moves the expectation with it: a new DM of bob's, a new peer.
    assert cursor.accept("@bob", 3) and cursor.accept("@dave", 1)
    assert cursor.directs_summary() == summary("e", [("bob", 3), ("carol", 1), ("dave", 1)])
    # Another history: nothing known of it, so list them.
    cursor.joined(pb.Joined(with_user="bob", epoch="f"))
    assert cursor.directs_summary() is None
