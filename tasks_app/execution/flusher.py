"""The one thread per process that stores every open log writer's output (``output.LogWriter``),
with one database connection.

Why one: a supervisor keeps a writer open for every service instance it runs, for the
instance's life. A thread per writer held a connection per writer (60 chatty instances, 61
PostgreSQL connections; 200 passed its default ``max_connections`` of 100) and woke 4 times a
second each. Here a writer joins the flusher at its first write and leaves it when it closes;
the thread starts with the first writer and, once the last has left, closes its connection and
ends (a worker, one run at a time, has it only while a run writes). It sleeps until the earliest
writer is due, so a quiet writer costs no wake-ups; a writer wakes it only when its due time moves
earlier (its first waiting byte, ``FLUSH_BYTES`` reached, a stop request owed).

One thread stores one writer at a time, in the order they fell due (the longest waiting first).
A flush that fails is the writer's own: it keeps its bytes, is tried again ``RETRY_AFTER`` seconds
later, behind the writers due before then, so a writer whose flushes keep failing (its run gone,
say) never keeps the others from being stored. A failure the database reports as
``OperationalError`` (a lock, a full disk, a lost connection) is taken as the database refusing
writes for everyone: the round ends, writers stop waiting for the store (``refusing``), and after
``RETRY_AFTER`` one flush is tried before the rest follow. The connection is closed after any
failure, so a broken one is replaced at the next try. A flush that *waits* holds the others
back as long as it waits: on SQLite at most the busy timeout (its one write lock makes everyone
wait anyway); on PostgreSQL the flusher's statements touch only the run's own chunks and take a
key-share lock on the run's row, which only a transaction changing that run holds, for
milliseconds.

The flusher is per process and lives in this module (``flusher()``): the point is one per
process. A forked child starts with none (``os.register_at_fork``): the parent's thread does not
exist there, and the writers it served are the parent's.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Protocol

from django.db import OperationalError, connections

from tasks_app import clock

logger = logging.getLogger(__name__)

#: Seconds before a writer whose flush failed is tried again (output.FLUSH_INTERVAL).
RETRY_AFTER = 0.25


class Flushable(Protocol):
    """What the flusher asks of a writer; each method takes the writer's own lock, never the
    flusher's (so a writer may call the flusher while holding its lock, and not the reverse)."""

    def due_at(self) -> float | None:
        """The monotonic time the writer next needs a flush (now or earlier: due), or None."""

    def store(self) -> None:
        """Store what is due; raises what the database raised (the bytes stay with the writer)."""

    def refused(self, error: Exception, *, retry_at: float) -> None:
        """A flush failed: not due again before ``retry_at``; its writers stop waiting for it."""


class Flusher:
    """Stores due writers from one thread (see the module docstring)."""

    def __init__(self) -> None:
        self.refusing = False
        """The last flush tried failed with OperationalError: writers do not wait for the store."""
        self._lock = threading.Condition()
        self._writers: dict[Flushable, None] = {}  # ordered: ties go to the writer that joined first
        self._thread: threading.Thread | None = None
        self._woken = False
        self._refused_until = float("-inf")

    def add(self, writer: Flushable) -> None:
        """``writer`` is flushed from now on (the thread starts if it is not running)."""
        with self._lock:
            self._writers[writer] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="taskdeck-log-flusher", daemon=True)
                self._thread.start()
            self._wake()

    def wake(self) -> None:
        """A writer's due time moved earlier: look again."""
        with self._lock:
            self._wake()

    def remove(self, writer: Flushable) -> None:
        """``writer`` is flushed no more. When it was the last one, returns once the thread has
        closed its connection and ended (or another writer came meanwhile)."""
        with self._lock:
            self._writers.pop(writer, None)
            self._wake()
            if threading.current_thread() is self._thread:
                return
            while self._thread is not None and not self._writers:
                self._lock.wait()

    def _wake(self) -> None:
        self._woken = True
        self._lock.notify_all()

    # -- the thread --

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:
            logger.exception("The log flusher stopped; writers are flushed again when one starts it.")
            with self._lock:
                self._thread = None
                self._lock.notify_all()
            connections.close_all()

    def _loop(self) -> None:
        while True:
            with self._lock:
                self._woken = False
                writers = list(self._writers)
            if not writers and self._ended():
                return
            due = sorted(((at, index, writer) for index, writer in enumerate(writers)
                          if (at := writer.due_at()) is not None), key=lambda item: item[:2])
            now = clock.monotonic()
            if due and due[0][0] <= now and now >= self._refused_until:
                self._store([writer for at, _, writer in due if at <= now])
                continue
            wake_at = max(due[0][0], self._refused_until) if due else None
            with self._lock:
                if not self._woken:
                    self._lock.wait(None if wake_at is None else max(wake_at - clock.monotonic(), 0.001))

    def _store(self, writers: list[Flushable]) -> None:
        """One round: each due writer once, until the database refuses."""
        for writer in writers:
            try:
                writer.store()
            except Exception as error:  # the writer keeps its bytes; task code never sees it
                retry_at = clock.monotonic() + RETRY_AFTER
                writer.refused(error, retry_at=retry_at)
                connections.close_all()  # a broken connection is replaced on the next try
                if isinstance(error, OperationalError):
                    self.refusing, self._refused_until = True, retry_at
                    return
            else:
                self.refusing = False

    def _ended(self) -> bool:
        """No writer left: close the connection, then end unless one came meanwhile."""
        connections.close_all()
        with self._lock:
            if self._writers:
                return False
            self._thread = None
            self._lock.notify_all()
            return True


_flusher: Flusher | None = None
_creating = threading.Lock()


def flusher() -> Flusher:
    """This process's flusher, made on first use."""
    global _flusher
    with _creating:
        if _flusher is None:
            _flusher = Flusher()
        return _flusher


def _forget_in_child() -> None:
    global _flusher, _creating
    _flusher, _creating = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)
