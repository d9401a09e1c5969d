"""chatrpc.waits: the one-waiter Event and the bounded inbox sessions hold."""

from __future__ import annotations

import asyncio

import pytest

from chatrpc.waits import Inbox, Wakeup

WAIT = 10.0


async def test_a_wakeup_set_before_the_wait_returns_at_once_and_stays_set() -> None:
    wakeup = Wakeup()
    wakeup.set()
    await asyncio.wait_for(wakeup.wait(), WAIT)
    assert wakeup.is_set()
    wakeup.clear()
    assert not wakeup.is_set()


async def test_a_wakeup_wakes_its_waiter_and_refuses_a_second_one() -> None:
    wakeup = Wakeup()
    waiter = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="one waiter"):
        await wakeup.wait()
    wakeup.set()
    await asyncio.wait_for(waiter, WAIT)


async def test_a_cancelled_wait_leaves_the_wakeup_usable() -> None:
    wakeup = Wakeup()
    waiter = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    again = asyncio.create_task(wakeup.wait())
    await asyncio.sleep(0)
    wakeup.set()
    await asyncio.wait_for(again, WAIT)


async def test_an_inbox_is_first_in_first_out_and_holds_no_deque_when_empty() -> None:
    inbox: Inbox[int] = Inbox(4)
    assert inbox.empty()
    for i in range(3):
        await inbox.put(i)
    assert inbox.qsize() == 3
    assert [await inbox.get() for _ in range(3)] == [0, 1, 2]
    assert inbox.empty() and inbox._items is None
    with pytest.raises(asyncio.QueueEmpty):
        inbox.get_nowait()


async def test_a_full_inbox_holds_the_producer_back_until_the_consumer_takes_one() -> None:
    inbox: Inbox[int] = Inbox(2)
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    with pytest.raises(asyncio.QueueFull):
        inbox.put_nowait(3)
    putting = asyncio.create_task(inbox.put(3))
    await asyncio.sleep(0)
    assert not putting.done()
    assert inbox.get_nowait() == 1
    await asyncio.wait_for(putting, WAIT)
    assert [inbox.get_nowait(), inbox.get_nowait()] == [2, 3]


async def test_a_waiting_consumer_gets_what_is_put_later() -> None:
    inbox: Inbox[str] = Inbox(2)
    getting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait("event")
    assert await asyncio.wait_for(getting, WAIT) == "event"
