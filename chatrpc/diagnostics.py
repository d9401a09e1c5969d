"""What a running server is doing, for ``kill -USR1`` and for tests that time out."""

from __future__ import annotations

import asyncio
from typing import Any

from .hub import Hub


def describe(hub: Hub) -> str:
    """What every session of ``hub`` and every task of the loop is doing."""
    sessions = sorted(hub.sessions(), key=lambda s: s.id)
    lines = [f"{len(sessions)} sessions", *(s.describe() for s in sessions)]
    for task in asyncio.all_tasks():
        where = awaiting(task.get_coro())
        if any(not w.endswith(":None") for w in where):  # grpc's own tasks have no lines
            lines.append(f"task {task.get_name()}: {' > '.join(where)}")
    return "\n".join(lines)


def awaiting(coro: Any) -> list[str]:
    """Where a suspended coroutine is, down its chain of awaits."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    return where
