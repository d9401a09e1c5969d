"""asyncio's waiting primitives, cut to what one session needs: one waiter each.

A server holds a session per connected user, thousands of them idle. Measured
with tracemalloc (``bench/session_memory.py``), an ``asyncio.Queue`` costs a
session ~3.3 KiB (three deques and an Event, each deque a 512-byte block), and an
``asyncio.Event`` ~0.7 KiB, before anything is queued. These do the same for a
single consumer (and, for :class:`Inbox`, a single producer) in ~100 bytes, and
hold a deque only while something is queued.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


async def _wait(owner: Inbox[T] | Wakeup, slot: str) -> None:
    """Waits on a new future stored in ``owner``'s ``slot`` until it is woken."""
    if getattr(owner, slot) is not None:
        raise RuntimeError(f"{type(owner).__name__} has one waiter at a time")
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    setattr(owner, slot, waiter)
    try:
        await waiter
    finally:
        setattr(owner, slot, None)


class Wakeup:
    """An ``asyncio.Event`` (set, clear, wait, is_set) for one waiter at a time."""

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        _wake(self._waiter)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> None:
        while not self._flag:
            await _wait(self, "_waiter")


class Inbox(Generic[T]):
    """A bounded FIFO with ``asyncio.Queue``'s put, get, put_nowait, get_nowait and
    empty, for one producer and one consumer.

    Raises:
        RuntimeError: a second coroutine waits to put (or get) while one does.
    """

    __slots__ = ("_getter", "_items", "_maxsize", "_putter")

    def __init__(self, maxsize: int) -> None:
        self._maxsize = maxsize
        self._items: deque[T] | None = None
        self._getter: asyncio.Future[None] | None = None
        self._putter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return self.qsize() >= self._maxsize

    def put_nowait(self, item: T) -> None:
        """Queues ``item``; raises asyncio.QueueFull at the bound."""
        if self.full():
            raise asyncio.QueueFull
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        _wake(self._getter)

    async def put(self, item: T) -> None:
        """Queues ``item``, waiting while the inbox is full."""
        while self.full():
            await _wait(self, "_putter")
        self.put_nowait(item)

    def get_nowait(self) -> T:
        """The oldest item; raises asyncio.QueueEmpty if there is none."""
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items:
            self._items = None  # an idle session holds no deque
        _wake(self._putter)
        return item

    async def get(self) -> T:
        """The oldest item, waiting for one."""
        while not self._items:
            await _wait(self, "_getter")
        return self.get_nowait()
