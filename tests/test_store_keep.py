"""Kept rooms in the store (every backend): a room its owners keep is never pruned,
however empty and idle, in the same bounded step that prunes the others."""

from __future__ import annotations

import time

from chatrpc.store import RoomSettings, Store

from .test_store import make_store, store

__all__ = ["make_store", "store"]


def now_ms() -> int:
    return int(time.time() * 1000)


async def sweep(store: Store, cutoff: int, step: int) -> list[str]:
    """Every room a whole sweep of ``step``-sized steps removes (it must end)."""
    removed: list[str] = []
    start: int | None = 0
    steps = 0
    while start is not None:
        gone, start = await store.prune_rooms(cutoff, limit=step, from_ms=start)
        removed.extend(gone)
        steps += 1
        assert len(gone) <= step and steps < 100, "a sweep ends"
    return removed


async def test_a_kept_room_is_a_setting_of_its_own(store: Store) -> None:
    await store.claim_room("hall", "alice")
    assert not (await store.room_settings("hall")).kept
    assert await store.set_kept("hall", True)
    assert not await store.set_kept("hall", True)  # no change
    await store.set_private("hall", True)
    assert await store.room_settings("hall") == RoomSettings("", True, True)
    listed = await store.rooms_settings(["hall", "other"])
    assert listed == {"hall": RoomSettings("", True, True), "other": RoomSettings()}
    assert await store.set_kept("hall", False)
    assert await store.room_settings("hall") == RoomSettings("", True, False)


async def test_an_empty_kept_room_survives_a_sweep_an_identical_unkept_one_does_not(
    store: Store,
) -> None:
    for name in ("kept", "loose"):
        await store.claim_room(name, "alice")
        await store.set_private(name, True)
        await store.set_role(name, "bob", "moderator")
    await store.set_kept("kept", True)
    gone, nxt = await store.prune_rooms(now_ms() + 1000, limit=100)
    assert gone == ["loose"] and nxt is None
    assert {c.key for c in await store.list_rooms()} == {"#kept"}
    assert await store.room_owner("kept") == "alice"
    # Let go of, it is pruned as any empty room.
    assert await store.set_kept("kept", False)
    gone, _ = await store.prune_rooms(now_ms() + 1000, limit=100)
    assert gone == ["kept"]
    assert await store.list_rooms() == []


async def test_kept_rooms_still_move_a_bounded_sweep_on_to_its_end(store: Store) -> None:
    for i in range(9):
        await store.claim_room(f"r{i}", "alice")
        if i % 3 != 2:
            await store.set_kept(f"r{i}", True)
    removed = await sweep(store, now_ms() + 1000, step=2)
    assert sorted(removed) == ["r2", "r5", "r8"]
    # A second sweep finds only kept rooms: it looks at each and ends with none removed.
    assert await sweep(store, now_ms() + 1000, step=2) == []
    assert len(await store.list_rooms()) == 6


async def test_a_deleted_kept_room_forgets_it_was_kept(store: Store) -> None:
    await store.claim_room("hall", "alice")
    await store.set_kept("hall", True)
    assert await store.delete_room("hall") is not None
    await store.forget_room("hall")  # as the admin service does after a delete
    assert not (await store.room_settings("hall")).kept
    await store.claim_room("hall", "carol")
    assert await store.prune_rooms(now_ms() + 1000, limit=100) == (["hall"], None)
