"""Notices a second server on the same SQLite file.

Two ``chatrpc-server`` processes can open one SQLite file (each commits safely),
but each fans messages out only to its own clients: users of one never see
what users of the other send until they reload history. Two servers started
without ``--db`` share the default file that way without knowing it. Each
server holds an advisory lock (``flock``) on ``FILE.lock`` beside the database
for as long as it runs, with its pid inside; a second one finds the lock held
and warns. The lock dies with its process, so a crashed server leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

#: The open lock files of this process: held until it exits.
_held: list[int] = []


def sqlite_path(store_url: str) -> Path | None:
    """The SQLite file a store URL names, or None for another store."""
    if store_url.startswith("sqlite://"):
        return Path(store_url[len("sqlite://") :])
    if "://" in store_url or not store_url:
        return None
    return Path(store_url)


def claim(db: Path) -> str | None:
    """Takes the lock beside ``db``; if another live process holds it, why that matters.

    Returns:
        None when this process holds the lock (or no lock file can be made: the
        database itself will say what is wrong), else a one-line warning.
    """
    lock = db.parent / (db.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = ""
        with contextlib.suppress(OSError, ValueError):
            other = os.read(fd, 32).decode().strip()
        os.close(fd)
        who = f"pid {other}" if other.isdigit() else "another process"
        return (
            f"another chatrpc-server ({who}) is using {db}: each server shows new messages"
            " only to its own clients; give each its own --db, or share rooms with"
            " --store redis://"
        )
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held.append(fd)
    return None
