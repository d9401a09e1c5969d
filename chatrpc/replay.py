"""Resume planning: what a join with a resume point replays, as pure functions.

A join says the last seq it saw (``after_seq``) and the history it saw it in
(``epoch``). The hub reads the newest seq, asks :func:`plan` what to read, reads
it, and asks :func:`complete` whether what it read closes the gap exactly.
No store, no network: the rules are tested on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

from .model import StoredMessage


@dataclass(frozen=True, slots=True)
class Plan:
    """What to read for a resume."""

    #: The seq the replay starts after (what the client is taken to have seen).
    floor: int
    #: Read the ``limit`` messages after ``floor`` (True), or the newest ``limit``
    #: (False: the gap is bigger than a replay, so only its newest part is sent).
    from_floor: bool
    limit: int


def plan(after_seq: int, epoch: str, store_epoch: str, last_seq: int, max_replay: int) -> Plan:
    """The replay for a client that saw ``after_seq`` of history ``epoch``.

    A different epoch, or a seq ahead of this history's newest, means the client's
    seqs belong to another history: it gets this one from the start.
    """
    floor = after_seq
    if (epoch and epoch != store_epoch) or floor > last_seq:
        floor = 0
    return Plan(floor, last_seq - floor <= max_replay, max_replay)


def complete(after_seq: int, floor: int, last_seq: int, messages: Sequence[StoredMessage]) -> bool:
    """Whether replaying ``messages`` after ``floor`` leaves the client with every
    message from its own ``after_seq`` up to ``last_seq``, with no gap."""
    if floor != after_seq:
        return False  # another history: the client must drop what it had
    if not messages:
        return floor == last_seq
    return messages[0].seq == floor + 1 and messages[-1].seq >= last_seq


@dataclass(frozen=True, slots=True)
class Window:
    """What a join's acknowledgement reads from the store: the newest seq, the
    replay after the resume point (see :func:`plan`), and read markers."""

    last_seq: int
    messages: list[StoredMessage]
    #: The seq the replay starts after (the newest seq when nothing is replayed).
    floor: int
    complete: bool
    #: The read marker of each reader asked for, in order (0: none).
    markers: list[int]


@dataclass(frozen=True, slots=True)
class LastSeq:
    """A read :func:`window` asks for: the conversation's newest seq (an int)."""


@dataclass(frozen=True, slots=True)
class Page:
    """A read :func:`window` asks for: ``limit`` messages after ``after_seq``
    oldest first, or (``newest``) the newest ``limit`` oldest first."""

    after_seq: int
    limit: int
    newest: bool


@dataclass(frozen=True, slots=True)
class Marker:
    """A read :func:`window` asks for: ``user``'s read marker (an int)."""

    user: str


Read = LastSeq | Page | Marker
#: What a store answers to a Read: an int, or a list of messages for a Page.
Answer = int | list[StoredMessage]


def window(
    after_seq: int | None, epoch: str, store_epoch: str, max_replay: int, readers: Sequence[str]
) -> Generator[Read, Answer, Window]:
    """The reads of a join's :class:`Window`, one after the other, as a generator:
    it yields each :data:`Read` and is sent its answer, so a store may answer
    them all in one step (one SQLite read) or each with its own call.
    ``after_seq`` None: nothing is replayed."""
    last = yield LastSeq()
    assert isinstance(last, int)
    messages: list[StoredMessage] = []
    floor, done = last, False
    if after_seq is not None:
        resume = plan(after_seq, epoch, store_epoch, last, max_replay)
        floor = resume.floor
        page = yield Page(floor if resume.from_floor else 0, resume.limit, not resume.from_floor)
        assert isinstance(page, list)
        messages = page
        done = complete(after_seq, floor, last, messages)
    markers: list[int] = []
    for user in readers:
        seq = yield Marker(user)
        assert isinstance(seq, int)
        markers.append(seq)
    return Window(last, messages, floor, done, markers)


def page_rows(read: Read, last_seq: int) -> int:
    """At most how many rows ``read`` returns once the newest seq is known (a
    LastSeq or a Marker: one)."""
    if not isinstance(read, Page):
        return 1
    return read.limit if read.newest else min(read.limit, max(0, last_seq - read.after_seq))


class Driver:
    """Answers :func:`window`'s reads with a synchronous ``answer``, in one step or
    several: a store can answer the small reads where it is and leave a large
    page to a thread. A read whose answer raised is asked again by the next run;
    a page after the newest seq is not asked at all.
    """

    def __init__(self, steps: Generator[Read, Answer, Window]) -> None:
        self._steps = steps
        self._read: Read = next(steps)
        self._last_seq = 0
        #: The window, once every read is answered.
        self.result: Window | None = None

    def run(self, answer: Callable[[Read], Answer], max_rows: int | None = None) -> bool:
        """Answers reads until the window is complete (True), or until one that
        may return more than ``max_rows`` rows (False: run again to go on)."""
        while self.result is None:
            read = self._read
            rows = page_rows(read, self._last_seq)
            if max_rows is not None and rows > max_rows:
                return False
            # A page that cannot hold a message (nothing missed) is not read.
            got = [] if isinstance(read, Page) and rows == 0 else answer(read)
            if isinstance(read, LastSeq):
                assert isinstance(got, int)
                self._last_seq = got
            try:
                self._read = self._steps.send(got)
            except StopIteration as end:
                self.result = end.value
        return True
