"""The input and output of ``chatrpc-client``: stdin read without blocking the loop,
stdout that may go away (``| head``), one-line problems on stderr."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
import threading
from collections.abc import Callable
from typing import TextIO

PROG = "chatrpc-client"


def stderr_line(line: str) -> None:
    """Writes ``chatrpc-client: line`` on stderr."""
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


class LineReader:
    """The lines of a blocking stream (stdin), read by a daemon thread.

    A daemon thread, not the loop's executor: a read that never returns (a pipe
    nobody closes) must not keep the program from exiting when interrupted.
    """

    def __init__(self, stream: TextIO) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)
        thread = threading.Thread(target=self._pump, args=(stream,), daemon=True, name="stdin")
        thread.start()

    def _put(self, line: str | None) -> None:
        # Waits while the queue is full, so a huge input is read as it is used.
        asyncio.run_coroutine_threadsafe(self._queue.put(line), self._loop).result()

    def _pump(self, stream: TextIO) -> None:
        # The loop is gone (RuntimeError), or it ended while a line waited for room
        # in the queue (the waiting put is cancelled): nobody reads any more.
        with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
            try:
                for line in iter(stream.readline, ""):
                    self._put(line)
            except (OSError, ValueError):
                pass  # stdin closed under us: that is its end
            self._put(None)

    async def readline(self) -> str | None:
        """The next line, or ``None`` at the end of input."""
        return await self._queue.get()


class Output:
    """Prints lines to a stream; if its reader goes away (``| head``), calls ``on_gone``.

    SIGPIPE stays ignored, as Python sets it. At its default, any write to a
    closed pipe or socket in the process kills it without a word: that was seen
    while shutting down after SIGTERM (exit status 141), not only on stdout.
    """

    def __init__(self, stream: TextIO, on_gone: Callable[[], None]) -> None:
        self.stream = stream
        self.on_gone = on_gone
        self.gone = False

    def __call__(self, line: str) -> None:
        if self.gone:
            return
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:
            self.gone = True
            # Python would fail again flushing the stream at exit: point it nowhere.
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
                os.close(devnull)
            self.on_gone()
