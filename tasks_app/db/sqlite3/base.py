"""SQLite with a write lock that waiters get promptly, shared by every process using the file.

SQLite lets one writer in at a time, and a writer that finds the lock taken waits in SQLite's
busy handler, which polls with growing sleeps (up to 100 ms). Under steady contention, such as
web, scheduler and workers all recording runs, a waiting process sleeps through many releases
while a busy one takes the lock again: waits of seconds for a sub-millisecond write. Here each
transaction Django opens (``atomic``) first takes an exclusive ``flock`` on a file beside the
database. Waiters poll it every few milliseconds, for at most the busy timeout. Writes outside
``atomic`` (autocommit) still rely on SQLite's busy handler.

Select it with ENGINE ``tasks_app.db.sqlite3`` (config/settings.py does for SQLite URLs).
"""
from __future__ import annotations

import fcntl
import os
import time
from typing import Any

from django.db import OperationalError
from django.db.backends.sqlite3 import base


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_lock: int | None = None  # an open lock file only while a transaction runs

    def _start_transaction_under_autocommit(self) -> None:
        if not self.is_in_memory_db():
            self._acquire_write_lock()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self._release_write_lock()

    def _acquire_write_lock(self) -> None:
        """Wait for the lock in short sleeps (SQLite's back-off grows to 100 ms), for at most the
        busy timeout: a writer stuck in a long transaction must make others fail, not hang.

        The lock file is opened here and closed on release, so a connection that is never
        closed (ASGI runs each request in a thread of its own) leaves no descriptor behind.
        """
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        deadline = time.monotonic() + timeout
        delay = 0.0002
        lock = os.open(f"{self.settings_dict['NAME']}-writelock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(lock)
                    raise OperationalError(f"database is locked (waited {timeout:g} s for the write lock)") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.005)
            else:
                self._write_lock = lock
                return

    def _release_write_lock(self) -> None:
        """Closing the file releases the flock."""
        if self._write_lock is not None:
            os.close(self._write_lock)
            self._write_lock = None
