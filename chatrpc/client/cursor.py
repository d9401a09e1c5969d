"""The conversation cursor: what was delivered, what to hold, where to resume.

:class:`Cursor` is pure bookkeeping over a :class:`~chatrpc.client.state.ClientState`
(no network, no asyncio): :class:`~chatrpc.client.chat.ChatClient` tells it what
arrived and asks it what to show, what to hold back while a gap is filled from
History, and from which seq to resume each conversation on a new session.
"""

from __future__ import annotations

from ..directs_summary import summary
from ..v1 import chat_pb2 as pb
from .state import ClientState


def conv_of(msg: pb.Message, me: str) -> str:
    """The client-side conversation key of a message: ``#room`` or ``@peer``.

    A client sees one side of a DM, so its key names the other user only; the
    server's key (:func:`chatrpc.model.dm_key`, ``@alice@bob``) names both.
    """
    if msg.WhichOneof("target") == "room":
        return "#" + msg.room
    return "@" + (msg.to_user if msg.sender == me else msg.sender)


def conv_of_joined(joined: pb.Joined) -> str:
    """The conversation key a ``joined`` answers: ``#room`` or ``@peer``."""
    if joined.WhichOneof("target") == "room":
        return "#" + joined.room
    return "@" + joined.with_user


class Cursor:
    """Per conversation (``#room`` or ``@peer``), every seq delivered, once and in order.

    The durable part lives in ``state`` (``cursors`` and ``ahead``, saved with the
    rest of a :class:`ClientState`); what belongs to one session (DM resumes not
    answered yet, gaps being filled) lives here and is cleared by
    :meth:`session_ended`.
    """

    def __init__(self, state: ClientState) -> None:
        self.state = state
        #: DM conversations this session resumes whose ``joined`` has not arrived
        #: yet, with the seq they resume from: live DMs can come before it.
        self.resuming: dict[str, int] = {}
        #: Conversations whose resume gap is being filled from History, with the
        #: live and replayed events held back meanwhile.
        self.filling: dict[str, list[pb.ServerEvent]] = {}
        #: DM conversations and their last seq at the first session (epoch, {peer: seq}).
        self.dm_baseline: tuple[str, dict[str, int]] | None = None

    # -- what arrives ------------------------------------------------------------------

    def accept(self, conv: str, seq: int) -> bool:
        """Records ``seq`` of ``conv`` as delivered; False if it already was.

        The server sends each conversation's seqs in strictly increasing order
        within a session, so a repeat comes only from this client's own History
        fills. But a DM resumed on this session can see live messages before
        its ``joined``; the server then leaves what is older out of the replay
        (``complete`` false) and a History fill puts it in below them. Those live
        ones are kept in ``ahead`` and the cursor stays where the resume started
        until the gap below them is filled, so a session that fails in between
        resumes from before the gap and still shows each message once.
        """
        start = self.resuming.get(conv)
        cursor = self.state.cursors.get(conv, start or 0)
        ahead = self.state.ahead.get(conv)
        if seq <= cursor or (ahead is not None and seq in ahead):
            return False
        if seq == cursor + 1 or (ahead is None and start is None):
            # The next one, or a jump where no resume is pending (a new conversation).
            cursor = seq
        elif start is not None or (ahead is not None and seq < max(ahead)):
            # Live before the resume's replay, or a fill-in below what that delivered.
            self.state.ahead.setdefault(conv, set()).add(seq)
            return True
        else:
            # Past everything held: the resume filled in all it had.
            cursor = seq
            ahead = None
            self.state.ahead.pop(conv, None)
        if ahead:
            while cursor + 1 in ahead:
                cursor += 1
                ahead.discard(cursor)
            if not ahead or max(ahead) <= cursor:
                self.state.ahead.pop(conv, None)
        self.state.cursors[conv] = cursor
        return True

    def hold(self, conv: str, event: pb.ServerEvent) -> bool:
        """Holds ``event`` back if the gap before it is being filled; True if it did."""
        held = self.filling.get(conv)
        if held is None:
            return False
        held.append(event)  # shown once the gap before it is filled
        return True

    def joined(self, joined: pb.Joined) -> int | None:
        """Records a ``joined``; returns the seq to fill History from, if any.

        A ``joined`` that is not ``complete`` (the server replays only the newest
        messages of a long gap) starts a fill: what arrives for the conversation
        is held (see :meth:`hold`) until :meth:`filled`.
        """
        if self.state.epoch and joined.epoch != self.state.epoch:
            # A different history: its seqs are new, so are the resumes' starts.
            self.state.cursors.clear()
            self.state.ahead.clear()
            self.resuming = dict.fromkeys(self.resuming, 0)
        self.state.epoch = joined.epoch
        conv = conv_of_joined(joined)
        start = self.resuming.pop(conv, None)
        if start is not None and conv not in self.state.cursors:
            self.state.cursors[conv] = start
        seen = self.state.cursors.get(conv)
        if joined.WhichOneof("target") == "room" and seen is None:
            self.state.cursors[conv] = joined.last_seq if not joined.replayed else 0
        if seen is None or joined.complete:
            return None
        self.filling[conv] = []
        return seen

    def filled(self, conv: str) -> list[pb.ServerEvent]:
        """Ends the fill of ``conv``: the events it held, to handle again in order."""
        return self.filling.pop(conv, [])

    def fill_failed(self, conv: str) -> None:
        """Drops what a failed fill held: the next session's resume replays it."""
        self.filling.pop(conv, None)

    # -- where to resume ---------------------------------------------------------------

    def room_point(self, room: str) -> int | None:
        """The seq to rejoin ``room`` after (None: not followed yet, join live)."""
        return self.state.cursors.get("#" + room)

    def direct_point(self, peer: str) -> int:
        """The seq to resume the DM conversation with ``peer`` from."""
        conv = "@" + peer
        return self.resuming.get(conv, self.state.cursors.get(conv, 0))

    def direct_points(self, listed: pb.ListDirectsResponse | None) -> dict[str, int]:
        """The DM conversations to resume on a new session (by peer), and from which seq.

        Those seen are resumed from their cursor, or from 0 when the server's
        history (``listed``; None from a server without ListDirects) is another
        than the cursors' (a new epoch). One that began while the client was away
        (nothing seen, but newer than at the first session) from where it stood
        then, so a first DM sent meanwhile is not missed.
        """
        state = self.state
        points: dict[str, int] = {}
        if state.epoch:
            points = {c[1:]: s for c, s in state.cursors.items() if c.startswith("@")}
        if listed is not None and listed.epoch != state.epoch:
            if state.epoch:
                # A different history (the server's was reset): its seqs are new, and
                # live DMs may come before any joined says so. Known DMs start over.
                state.cursors.clear()
                state.ahead.clear()
                state.epoch = listed.epoch
                points = dict.fromkeys(points, 0)
            elif not any(c.startswith("@") for c in state.cursors):
                # A client that only has DMs learns the history's epoch here, before
                # any DM of its own: its cursors belong to this history.
                state.epoch = listed.epoch
        if listed is None:
            return points
        if self.dm_baseline is None:
            self.dm_baseline = (listed.epoch, {d.with_user: d.last_seq for d in listed.directs})
            return points
        epoch, baseline = self.dm_baseline
        for d in listed.directs:
            start = baseline.get(d.with_user, 0) if epoch == listed.epoch else 0
            if d.with_user not in points and d.last_seq > start:
                points[d.with_user] = start
        return points

    def directs_summary(self) -> str | None:
        """What the server's summary of the DM conversations is if none changed
        since the first listing but for what this client received (see
        chatrpc.directs_summary); None before that listing."""
        if self.dm_baseline is None or self.dm_baseline[0] != self.state.epoch:
            return None
        epoch, baseline = self.dm_baseline
        known = baseline | {c[1:]: s for c, s in self.state.cursors.items() if c.startswith("@")}
        return summary(epoch, known.items())

    def resume_directs(self, points: dict[str, int]) -> None:
        """Notes the DM resumes about to be written (by peer): set before the first
        is written, so before any of their answers or of the live DMs ahead of them."""
        self.resuming = {"@" + peer: seq for peer, seq in points.items()}

    def give_up(self, conv: str) -> None:
        """A resume refused for good: no longer waited for."""
        self.resuming.pop(conv, None)

    def session_ended(self) -> None:
        """Forgets what belonged to the session: the next one resumes from the cursors."""
        self.filling.clear()
        self.resuming.clear()
