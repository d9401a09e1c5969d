"""Search without an index: a bounded scan of history pages, merged newest first.

How the memory and Redis stores answer :meth:`MessageSearch.search`. Each
conversation searched is a lane read newest first with ``history``, in pages
of :data:`FIRST_PAGE` items growing four times each read, up to :data:`MAX_PAGE`
and to a share of the budget: what lanes read and the merge did not take when
the budget runs out is read again by the next call, so no lane may hold much
of it. The lanes are merged by sent time, so hits come newest first across
conversations, and each item is matched in Python (chatrpc.store.matching).

One call reads at most :data:`SCAN_BUDGET` items. The page token holds where
the merge stopped: the sort key of the last item it took, and for each lane it
took items from, the seq below which that lane goes on. A lane it never took
from starts again from its newest item, skipping what sorts before the last
item taken (messages sent since the first page). The token only names
positions: the conversations searched are always the ones the caller passes.

Cost: a query reads every item of the conversations searched until it finds
``limit`` hits, so a rare word costs a scan of everything the user may read,
:data:`SCAN_BUDGET` items per call (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import heapq
import json
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import invalid
from ..model import MESSAGE, StoredMessage
from .matching import Query
from .messages import MessageLog
from .search import MessageSearch, SearchPage

#: Most items one search call reads from the store.
SCAN_BUDGET = 5000
#: The first page read from each conversation, and the largest page later.
FIRST_PAGE = 20
MAX_PAGE = 200
#: Longest page token accepted, in characters.
MAX_TOKEN = 65536

#: The merge order: sent time, then conversation key, then seq.
Key = tuple[int, str, int]


def _key(m: StoredMessage) -> Key:
    return (m.sent_at_ms, m.conv, m.seq)


@dataclass(slots=True)
class _Lane:
    conv: str
    #: The next page is read below this seq (0: from the newest).
    before: int
    #: Items read and not yet taken, newest first.
    buffer: deque[StoredMessage] = field(default_factory=deque)
    page: int = FIRST_PAGE
    exhausted: bool = False
    touched: bool = False


@dataclass(slots=True)
class _Position:
    last: Key | None = None
    lanes: dict[str, int] = field(default_factory=dict)


def _encode(pos: _Position) -> str:
    raw = json.dumps({"l": pos.last, "p": pos.lanes}, separators=(",", ":")).encode()
    return "s" + base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")


def _decode(token: str) -> _Position:
    if not token:
        return _Position()
    bad = invalid("page_token is not one this search gave: start again without it")
    if len(token) > MAX_TOKEN or not token.startswith("s"):
        raise bad
    try:
        body = token[1:]
        raw = zlib.decompress(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        data: Any = json.loads(raw)
        last = data["l"]
        lanes = data["p"]
        if last is not None:
            t, conv, seq = last
            if not (isinstance(t, int) and isinstance(conv, str) and isinstance(seq, int)):
                raise ValueError(last)
            last = (t, conv, seq)
        if not isinstance(lanes, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in lanes.items()
        ):
            raise ValueError(lanes)
    except (binascii.Error, zlib.error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise bad from None
    return _Position(last, lanes)


class _Scan:
    """One call's merge over its lanes, counting the items it reads."""

    def __init__(self, log: MessageLog, query: Query, budget: int, pos: _Position) -> None:
        self.log = log
        self.query = query
        self.budget = budget
        self.pos = pos
        self.read = 0
        #: The largest page one lane reads (see the module docstring).
        self.largest = MAX_PAGE

    async def fill(self, lane: _Lane, *, first: bool = False) -> None:
        """Reads the lane's next page (skipping new items of a lane not taken from yet).

        The ``first`` fill of a lane reads until it has an item or none are left,
        whatever the budget: the merge needs every lane's head. It reads past the
        budget only for messages sent since the search's first page.
        """
        while not lane.buffer and not lane.exhausted and (first or self.read < self.budget):
            size = lane.page if first else max(1, min(lane.page, self.budget - self.read))
            page = await self.log.history(
                lane.conv, before_seq=lane.before, limit=size, descending=True
            )
            self.read += len(page)
            lane.page = min(lane.page * 4, self.largest)
            if len(page) < size:
                lane.exhausted = True
            if page:
                lane.before = page[-1].seq
            last = self.pos.last
            if not lane.touched and last is not None:
                page = [m for m in page if _key(m) < last]
            lane.buffer.extend(page)

    def take(self, lane: _Lane) -> StoredMessage:
        item = lane.buffer.popleft()
        lane.touched = True
        self.pos.last = _key(item)
        self.pos.lanes[lane.conv] = item.seq
        return item

    def is_hit(self, item: StoredMessage) -> bool:
        return item.kind == MESSAGE and not item.deleted and self.query.matches(item.text)


class _Head:
    """A lane in the merge heap, ordered so that the newest head comes first."""

    __slots__ = ("key", "lane")

    def __init__(self, lane: _Lane) -> None:
        self.lane = lane
        self.key = _key(lane.buffer[0])

    def __lt__(self, other: _Head) -> bool:
        return self.key > other.key


async def scan_search(
    log: MessageLog,
    query: Query,
    convs: Sequence[str],
    *,
    limit: int,
    before_seq: int = 0,
    page_token: str = "",
    budget: int = SCAN_BUDGET,
) -> SearchPage:
    """:meth:`MessageSearch.search` by scanning ``log``'s history (see the module doc)."""
    pos = _decode(page_token)
    searched = set(convs)
    pos.lanes = {c: s for c, s in pos.lanes.items() if c in searched}
    lanes: list[_Lane] = []
    largest = max(1, min(MAX_PAGE, budget // max(1, 2 * len(convs))))
    for conv in dict.fromkeys(convs):
        at = pos.lanes.get(conv)
        first = min(FIRST_PAGE, largest)
        lane = _Lane(conv, before_seq if at is None else at, page=first, touched=at is not None)
        lane.exhausted = at == 1
        lanes.append(lane)
    scan = _Scan(log, query, budget, pos)
    scan.largest = largest
    # Every lane gets its first page even past the budget: the merge needs every head.
    await asyncio.gather(*(scan.fill(lane, first=True) for lane in lanes))
    heap = [_Head(lane) for lane in lanes if lane.buffer]
    heapq.heapify(heap)
    hits: list[StoredMessage] = []
    while heap and len(hits) < limit:
        lane = heapq.heappop(heap).lane
        item = scan.take(lane)
        if scan.is_hit(item):
            hits.append(item)
        if not lane.buffer:
            await scan.fill(lane)
        if lane.buffer:
            heapq.heappush(heap, _Head(lane))
        elif not lane.exhausted:
            break  # out of budget with this lane unread: the token keeps its place
    for lane in lanes:
        if lane.touched and lane.exhausted and not lane.buffer:
            pos.lanes[lane.conv] = 1  # nothing below: never read again
    done = all(lane.exhausted and not lane.buffer for lane in lanes)
    return SearchPage(hits, "" if done else _encode(pos))


class ScanSearch(MessageLog, MessageSearch):
    """:class:`MessageSearch` for a store without an index: :func:`scan_search` of its log."""

    async def search(
        self,
        query: Query,
        convs: Sequence[str],
        *,
        limit: int,
        before_seq: int = 0,
        page_token: str = "",
    ) -> SearchPage:
        return await scan_search(
            self, query, convs, limit=limit, before_seq=before_seq, page_token=page_token
        )
