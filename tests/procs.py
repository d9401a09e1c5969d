"""Helpers for tests that drive subprocesses: a free port, output to wait on."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .conftest import WAIT


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Output:
    """Collects a pipe's text in a thread so a test can wait for what it expects."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._text = ""
        self._ended = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for line in iter(self._pipe.readline, ""):
                with self._cond:
                    self._text += line
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return self._text

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = WAIT) -> str:
        """Waits until ``predicate(text so far)`` holds; fails on timeout or end of output."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._text):
                remaining = deadline - time.monotonic()
                if self._ended or remaining <= 0:
                    why = "output ended" if self._ended else f"no match within {timeout}s"
                    raise AssertionError(f"{why}; got:\n{self._text}")
                self._cond.wait(remaining)
            return self._text

    def wait_line(self, fragment: str, timeout: float = WAIT) -> str:
        """Waits for a line containing ``fragment``; returns that line."""
        text = self.wait_for(lambda t: any(fragment in ln for ln in t.splitlines()), timeout)
        return next(ln for ln in text.splitlines() if fragment in ln)

    def join(self, timeout: float = WAIT) -> None:
        self._thread.join(timeout)
