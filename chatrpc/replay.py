"""Resume planning: what a join with a resume point replays, as pure functions.

A join says the last seq it saw (``after_seq``) and the history it saw it in
(``epoch``). The hub reads the newest seq, asks :func:`plan` what to read, reads
it, and asks :func:`complete` whether what it read closes the gap exactly.
No store, no network: the rules are tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
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
