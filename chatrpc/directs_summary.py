"""A summary of a user's DM conversations in the headers of a Chat call, so a
reconnecting client lists them (ListDirects) only when one changed.

A client that sends ``chatrpc-directs: 1`` metadata on the Chat call gets the
header ``chatrpc-directs: EPOCH DIGEST`` with the session's headers, DIGEST a
hash of every (other user, last seq) pair of its user's DM conversations. A
client that knows them all (from an earlier listing and what arrived since)
computes the same value and need not list them; any other value means that
something changed while it was away (a new conversation, a new message in one,
another history), and it lists them as before.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .errors import ChatError
from .model import dm_peer

if TYPE_CHECKING:  # the client library imports this module, not the stores
    from .store import Store

log = logging.getLogger(__name__)

#: The Chat call's request metadata asking for the summary, and its response header.
HEADER = "chatrpc-directs"


def summary(epoch: str, directs: Iterable[tuple[str, int]]) -> str:
    """``EPOCH DIGEST`` of (other user, last seq) pairs, in any order."""
    text = "".join(f"{peer}\n{seq}\n" for peer, seq in sorted(directs))
    return f"{epoch} {hashlib.sha256(text.encode()).hexdigest()[:32]}"


async def headers(
    store: Store, user: str, metadata: Sequence[tuple[str, object]]
) -> tuple[tuple[str, str], ...]:
    """The Chat call's response headers: the summary of ``user``'s DMs if the
    client asked for it in ``metadata``; none if not, or if the store cannot
    say now (the client then lists them)."""
    if not any(key == HEADER for key, _ in metadata):
        return ()
    try:
        convs = await store.list_directs(user)
    except ChatError as exc:
        log.warning("no DM summary for %s: %s", user, exc.message)
        return ()
    pairs = [(dm_peer(conv.key, user), conv.last_seq) for conv in convs]
    return ((HEADER, summary(store.epoch, pairs)),)
