"""The Redis store's clients: the call wrapper that turns an unreachable Redis into
:class:`StoreUnavailable`, and the guard that keeps cancellations."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...errors import StoreUnavailable
from ...urls import redact
from ..rules import store_closed
from . import scripts
from .admin_scripts import ADMIN_SCRIPTS
from .keys import BLOCK_MS, EPOCH

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The scripts every store registers, by the name it calls them with.
SCRIPTS = {
    "append": scripts.APPEND_LUA,
    "read": scripts.READ_LUA,
    "create_account": scripts.CREATE_ACCOUNT_LUA,
    "set_password": scripts.SET_PASSWORD_LUA,
    "revoke_tokens": scripts.REVOKE_TOKENS_LUA,
    "revoke_token": scripts.REVOKE_TOKEN_LUA,
    "mint_token": scripts.MINT_TOKEN_LUA,
    "claim_room": scripts.CLAIM_ROOM_LUA,
    "set_owner": scripts.SET_OWNER_LUA,
    "rooms_page": scripts.ROOMS_PAGE_LUA,
    "prune_rooms": scripts.PRUNE_ROOMS_LUA,
    "use_regtoken": scripts.USE_REGTOKEN_LUA,
    "set_mark": scripts.SET_MARK_LUA,
    "clear_marks": scripts.CLEAR_MARKS_LUA,
    **ADMIN_SCRIPTS,
}


def _cancellations() -> int:
    """How many cancellations the current task has been asked for."""
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


class _Redis(aioredis.Redis):
    """The redis asyncio client, made to keep cancellations.

    A command can finish although the task running it was cancelled meanwhile,
    and the client then drops the cancellation: about half of the cancels that
    land during a command are lost that way (redis 8.1). A session's task that
    ignores its cancellation never ends, so after each command a cancellation
    asked for during it is raised again.
    """

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        command = super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return await keeping_cancellation(command)


async def keeping_cancellation(work: Awaitable[T]) -> T:
    """Awaits ``work`` (a pipeline, say), then raises a cancellation it dropped."""
    before = _cancellations()
    try:
        return await work
    finally:
        if _cancellations() > before:
            raise asyncio.CancelledError


async def cancel_task(task: asyncio.Task[Any]) -> None:
    """Cancels ``task`` and waits for it; its own failure is logged, not raised."""
    if task.done():
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class Connection:
    """The two clients of one store (commands, and the reader's blocking XREAD),
    its registered scripts, and the calls under way.

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS, ``unix://`` for a socket).
        timeout_s: how long one Redis command may take before the store reports
            itself unavailable.
    """

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.redis: aioredis.Redis | None = None
        self.reader_redis: aioredis.Redis | None = None
        self.scripts: dict[str, Any] = {}
        self.closed = False
        #: Redis calls under way, waited for before the clients are closed.
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def _client(self, timeout: float | None) -> aioredis.Redis:
        return _Redis.from_url(
            self.url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=self.timeout_s,
            retry=Retry(NoBackoff(), 0),
        )

    def open(self) -> None:
        """Makes the clients and registers the scripts (nothing is sent yet)."""
        self.redis = self._client(self.timeout_s)
        self.reader_redis = self._client(BLOCK_MS / 1000 + self.timeout_s)
        self.scripts = {name: self.redis.register_script(lua) for name, lua in SCRIPTS.items()}

    async def wait_idle(self) -> None:
        """Waits (a while at most) for the calls under way to end."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.timeout_s)

    async def release(self) -> None:
        for client in (self.redis, self.reader_redis):
            if client is not None:
                with contextlib.suppress(RedisError, OSError):
                    await client.aclose()

    def r(self) -> aioredis.Redis:
        """The command client; StoreUnavailable once the store is closed."""
        if self.closed or self.redis is None:
            raise store_closed()
        return self.redis

    async def call(self, fn: Callable[[], Awaitable[T]], *, retry: bool = True) -> T:
        """Runs ``fn``; Redis being unreachable becomes StoreUnavailable.

        Connections left over from before a Redis restart fail once: the pool is
        then reset, and ``fn`` is tried again when running it twice is harmless.
        """
        self.r()  # a closed store refuses work, scripts included
        self._inflight += 1
        self._idle.clear()
        try:
            for attempt in (1, 2):
                try:
                    return await keeping_cancellation(fn())
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    await self.reset_pool()
                    if attempt == 2 or not retry:
                        raise StoreUnavailable(
                            f"Redis at {redact(self.url)} is unavailable: {exc}"
                        ) from exc
            raise AssertionError("unreachable")
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()

    async def unavailable_on_error(self, work: Awaitable[T]) -> T:
        try:
            return await keeping_cancellation(work)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            await self.reset_pool()
            raise StoreUnavailable(f"Redis at {redact(self.url)} is unavailable: {exc}") from exc

    async def reset_pool(self) -> None:
        if self.redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.redis.connection_pool.disconnect()

    async def load_epoch(self) -> str:
        """The history's epoch, made on first use (see Store.epoch)."""
        r = self.r()
        await r.set(EPOCH, secrets.token_hex(8), nx=True)
        epoch = await r.get(EPOCH)
        return str(epoch)
