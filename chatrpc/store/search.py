"""The search role: finding the messages whose current text matches a query.

What a store guarantees to its callers:

* **Only the conversations asked for.** :meth:`MessageSearch.search` looks in
  the conversation keys it is given and nowhere else; a page token never widens
  that (who may read what is decided by the caller, chatrpc.search).
* **Current state only.** A hit is a message (kind MESSAGE, never a change
  item) as :meth:`~chatrpc.store.messages.MessageLog.history` returns it now:
  its current text matches the query (chatrpc.store.matching) and it is not
  deleted. Deleted text is never returned.
* **Newest first, paged.** Hits come by sent time, newest first (ties: by
  conversation key, then seq, both descending); within a search of one
  conversation by seq, newest first. ``before_seq`` keeps only seqs below it
  in every conversation searched. ``next_page_token`` continues after
  the page's last hit; it is empty once nothing is left.
* **Bounded work.** A store without an index (memory, Redis) scans history and
  reads at most :data:`~chatrpc.store.scan.SCAN_BUDGET` items per call: a page
  may then hold fewer hits than the limit, or none, with a token to go on.
  SQLite answers from an FTS5 index (chatrpc.store.sqlite.search) and fills
  every page it can.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..model import StoredMessage
from .matching import Query


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of hits, newest first, and the token of the next (empty: the last)."""

    hits: list[StoredMessage] = field(default_factory=list)
    next_page_token: str = ""


class MessageSearch(abc.ABC):
    """Searches the message log; see the module docstring."""

    @abc.abstractmethod
    async def search(
        self,
        query: Query,
        convs: Sequence[str],
        *,
        limit: int,
        before_seq: int = 0,
        page_token: str = "",
    ) -> SearchPage:
        """Up to ``limit`` hits of ``query`` in the conversations ``convs``.

        Raises INVALID_ARGUMENT for a ``page_token`` this store did not make.
        """
