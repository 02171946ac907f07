"""A run's captured output on its way to its log (models/logs.py): ``LogBuffer`` keeps the cap and
the offsets, with no database; ``LogWriter`` stores what it holds, in chunks, from the process's
one flusher thread (``flusher.py``), which serves every open writer with one connection.

Every kind of run writes through one LogWriter: print() and ``ctx.log`` inside python task code
(``context.py``), a command's stdout and stderr, a service instance's output in the supervisor.
Writers hand bytes over and go on; the flusher stores them when ``FLUSH_BYTES`` are waiting or
the oldest has waited ``FLUSH_INTERVAL`` seconds, one INSERT per flush (a few more statements only when the cap cuts), so a command
writing hundreds of MB costs a statement per ``FLUSH_BYTES``, with no work per line. A writer
far ahead of the database waits (``MAX_PENDING``): the output a run keeps in memory is bounded,
and a child writing to a pipe is slowed, not the worker's memory filled. While the database
refuses writes the bytes stay buffered (the cap still applies to them) and writers no longer wait.
``close`` stores the rest in the caller's thread; ``abandon`` discards it.

The cap (``log_max_size``, ``log_on_full``): ``drop_old`` keeps the newest ``max_size`` bytes
(what it drops keeps its offsets; readers put a marker line in its place); ``drop_new`` keeps the
first ``max_size`` bytes, stores a marker line there, and discards the rest; ``kill_task`` does
the same and asks the run to stop (it ends ``log_overflow``). When the writer closes, the bytes
``drop_new`` and ``kill_task`` discarded are counted on a last marker line.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from django.db import OperationalError

from tasks_app import clock, selectors, services
from tasks_app.execution.flusher import flusher
from tasks_app.models import LogOnFull, dropped_marker, full_marker
from tasks_app.text import incomplete_character

logger = logging.getLogger(__name__)

#: Bytes waiting that make a flush (one chunk): large, so a fast writer costs few statements.
#: Measured with bench/logs.py (200 MB of lines; see its docstring for the figures).
FLUSH_BYTES = 512 * 1024
#: Seconds the oldest waiting byte waits at most: how far behind a live tail runs.
FLUSH_INTERVAL = 0.25
#: Bytes waiting past which writers wait for the store (unless the database is refusing writes).
MAX_PENDING = 4 * FLUSH_BYTES
#: Seconds between two events waking the run's log streams (the last flush's always follows).
ANNOUNCE_INTERVAL = 0.5


@dataclass(frozen=True)
class Flush:
    """What one flush stores: ``data``, the bytes from offset ``start``; ``kept_from``, the first
    offset the log keeps (``drop_old``; None when the cut has not moved since the last flush);
    ``overflowed``: the ``kill_task`` cap was reached, the run must be asked to stop."""

    start: int
    data: bytes
    kept_from: int | None
    overflowed: bool


class Pending:
    """The bytes a buffer holds, as they were written: a large write is kept as it is, small ones
    are gathered into pieces of ``GATHER`` bytes, and the pieces are joined once, when a flush
    takes them. A bytearray grown by each write and cut by each flush copied every byte three
    times and had its memory given back and faulted in again at every flush: 0.43-0.56 s of CPU
    and ~110,000 page faults for 200 MB of lines read from a pipe (with the chunks' compression,
    no database; a throwaway loop, load 3), against 0.22-0.28 s and ~37,000 this way."""

    #: Writes smaller than this are gathered (one bytes object per print() would cost more than
    #: its bytes); larger ones (a pipe's reads under load) are kept as they are.
    GATHER = 64 * 1024

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._small = bytearray()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        self._seal()
        return b"".join(self._pieces)

    def add(self, data: bytes) -> None:
        if len(data) < self.GATHER:
            self._small += data
            if len(self._small) >= self.GATHER:
                self._seal()
        else:
            self._seal()
            self._pieces.append(bytes(data))  # no copy of bytes; a copy of a buffer its writer reuses
        self._size += len(data)

    def prepend(self, data: bytes) -> None:
        if data:
            self._pieces.insert(0, data)
            self._size += len(data)

    def clear(self) -> None:
        self._pieces.clear()
        self._small.clear()
        self._size = 0

    def last(self, count: int) -> bytes:
        """The last ``count`` bytes (fewer if fewer are held)."""
        self._seal()
        found = b""
        if count <= 0:
            return found
        for piece in reversed(self._pieces):
            found = piece[-(count - len(found)):] + found
            if len(found) >= count:
                break
        return found

    def drop(self, count: int) -> None:
        """Drop the first ``count`` bytes."""
        self._take_pieces(count)

    def take(self, count: int) -> bytes:
        """The first ``count`` bytes, removed."""
        return b"".join(self._take_pieces(count))

    def _take_pieces(self, count: int) -> list[bytes]:
        self._seal()
        count = min(count, self._size)
        self._size -= count
        whole = 0
        while count and whole < len(self._pieces) and len(self._pieces[whole]) <= count:
            count -= len(self._pieces[whole])
            whole += 1
        taken = self._pieces[:whole]
        del self._pieces[:whole]
        if count:
            piece = self._pieces[0]
            taken.append(piece[:count])
            self._pieces[0] = piece[count:]
        return taken

    def _seal(self) -> None:
        if self._small:
            self._pieces.append(bytes(self._small))
            self._small.clear()


class LogBuffer:
    """One run's log as its writer sees it: the offsets, the cap, and the bytes not stored yet.

    Not thread-safe: ``LogWriter`` holds its lock around every call.
    """

    def __init__(self, *, max_size: int, on_full: str) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1 byte, not {max_size}")
        if on_full not in LogOnFull.values:
            raise ValueError(f"on_full must be one of {', '.join(LogOnFull.values)}, not {on_full!r}")
        self.max_size = max_size
        self.on_full = on_full
        self.pending = Pending()
        self.pending_start = 0
        """The offset of the first byte of ``pending``."""
        self.kept_from = 0
        """``drop_old``: the offsets before this one are dropped."""
        self.full = False
        """``drop_new`` and ``kill_task``: the cap was reached; what comes after is discarded."""
        self.discarded = 0
        self.closed = False
        self._taken_kept_from = 0
        self._overflow_owed = False
        self._last_byte = b"\n"

    @property
    def end(self) -> int:
        """The log's size once everything written so far is stored: the next byte's offset."""
        return self.pending_start + len(self.pending)

    @property
    def overflowed(self) -> bool:
        return self.full and self.on_full == LogOnFull.KILL_TASK

    @property
    def owes_flush(self) -> bool:
        """Something to store even with no bytes waiting: a cut, or the stop request."""
        return self._overflow_owed or self.kept_from != self._taken_kept_from

    @property
    def stop_owed(self) -> bool:
        """The ``kill_task`` cap was reached and the run is not yet asked to stop: flush now."""
        return self._overflow_owed

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self.closed or self.full:
            self.discarded += len(data)
            return
        if self.on_full == LogOnFull.DROP_OLD:
            self._write_dropping_old(data)
            return
        room = self.max_size - self.end
        if len(data) <= room:
            self._keep(data)
            return
        self._keep(data[:room])
        self.discarded += len(data) - room
        self.full = True
        self._overflow_owed = self.on_full == LogOnFull.KILL_TASK
        self._keep(self._line(full_marker(self.max_size, stopping=self._overflow_owed)))

    def _write_dropping_old(self, data: bytes) -> None:
        """Keep the newest ``max_size`` bytes: a cut past what is stored drops the stored chunks
        at the next flush, a cut into what is waiting drops it here (memory stays bounded)."""
        end = self.end + len(data)
        cut = end - self.max_size
        if cut <= self.kept_from:
            self._keep(data)
            return
        self.kept_from = cut
        if cut >= self.end:  # everything waiting goes, and the head of ``data``
            self.pending.clear()
            self.pending_start = cut
            self._keep(data[len(data) - (end - cut):])
            return
        self._keep(data)
        if cut > self.pending_start:
            self.pending.drop(cut - self.pending_start)
            self.pending_start = cut

    def _keep(self, data: bytes) -> None:
        if data:
            self.pending.add(data)
            self._last_byte = data[-1:]

    def _line(self, marker: bytes) -> bytes:
        """A marker on a line of its own."""
        return marker if self._last_byte == b"\n" else b"\n" + marker

    def close(self) -> None:
        """No more output: the bytes discarded are counted on a last marker line."""
        if not self.closed:
            self.closed = True
            if self.discarded:
                self._keep(self._line(dropped_marker(self.discarded)))

    def take(self, *, final: bool = False) -> Flush | None:
        """Everything waiting, as one flush; None when there is nothing to store. Short of the
        last flush, a UTF-8 character not complete yet stays for the next one."""
        size = len(self.pending) - (0 if final else incomplete_character(self.pending.last(4)))
        kept_from = self.kept_from if self.kept_from != self._taken_kept_from else None
        if size <= 0 and kept_from is None and not self._overflow_owed:
            return None
        flush = Flush(self.pending_start, self.pending.take(size), kept_from, self._overflow_owed)
        self.pending_start += size
        self._taken_kept_from = self.kept_from
        self._overflow_owed = False
        return flush

    def put_back(self, flush: Flush) -> None:
        """A flush the store refused: its bytes go back in front of what came since, and the cut
        and the stop request are owed again (what ``drop_old`` dropped meanwhile stays dropped)."""
        self.pending.prepend(flush.data)
        self.pending_start = flush.start
        self._taken_kept_from = -1 if flush.kept_from is not None else self._taken_kept_from
        self._overflow_owed = self._overflow_owed or flush.overflowed
        if self.kept_from > self.pending_start:
            self.pending.drop(self.kept_from - self.pending_start)
            self.pending_start = self.kept_from

    def start_after(self, stored: int) -> None:
        """The run's log already holds ``stored`` bytes (a writer's first flush finds them): this
        writer's bytes follow them. The cap counts this writer's bytes only."""
        if stored:
            self.pending_start += stored
            self.kept_from += stored
            self._taken_kept_from += stored


class LogWriter:
    """The one writer of a run's log: thread-safe ``write``; ``flush`` stores now; ``close`` stores
    the rest. In between, the process's flusher (``flusher.py``, one thread for every writer)
    stores what is due; a writer joins it at its first write and leaves it at ``close``.

    ``on_overflow`` is called once the ``kill_task`` cap was reached and the run asked to stop
    (the request is stored with the marker): an executor stops the run's code at once rather
    than at its watchdog's next look. It is called from the thread that stored the request.
    """

    def __init__(self, run_id: UUID | str, *, task_id: str, max_size: int, on_full: str,
                 on_overflow: Callable[[], None] | None = None) -> None:
        self.run_id = run_id
        self.task_id = task_id
        self.on_overflow = on_overflow
        self._buffer = LogBuffer(max_size=max_size, on_full=on_full)
        self._lock = threading.Condition()
        self._flushing = threading.Lock()
        self._joined = False
        """Flushed by the process's flusher (from the first write until ``close``)."""
        self._stopping = False
        self._failing = False
        self._retry_at = 0.0
        self._waiting_since: float | None = None
        self._started = False
        self._tail: services.LogTail | None = None
        self._announced_at: float | None = None
        self._announce_owed = False

    @property
    def overflowed(self) -> bool:
        """The ``kill_task`` cap was reached."""
        return self._buffer.overflowed

    @property
    def max_size(self) -> int:
        return self._buffer.max_size

    def write(self, data: bytes) -> None:
        """Add ``data`` to the log. Waits while the writer is far ahead of the database. After
        ``close``, output is discarded."""
        if not data:
            return
        with self._lock:
            while (len(self._buffer.pending) >= MAX_PENDING and self._joined and not self._failing
                   and not flusher().refusing):
                self._lock.wait(FLUSH_INTERVAL)
            was_due = self._due_at_locked()
            self._buffer.write(data)
            if self._waiting_since is None and self._buffer.pending:
                self._waiting_since = clock.monotonic()
            if not self._joined and not self._stopping:
                self._joined = True
                flusher().add(self)
            elif self._joined and self._due_at_locked() != was_due:
                flusher().wake()

    def flush(self) -> None:
        """Store what is waiting now, in this thread. Raises OperationalError if the database
        refuses (the bytes stay buffered)."""
        self._flush()

    def close(self) -> None:
        """Leave the flusher, then store the rest with the last marker line, in this thread.
        Raises OperationalError if the database refuses; calling it again tries again."""
        self._leave()
        self._flush(final=True)

    def abandon(self) -> None:
        """Leave the flusher and discard what waits: the run ends without it."""
        self._leave(discard=True)

    def _leave(self, *, discard: bool = False) -> None:
        with self._lock:
            self._stopping = True
            self._buffer.close()
            if discard:
                self._buffer.pending.clear()
            joined, self._joined = self._joined, False
            self._lock.notify_all()
        if joined:
            flusher().remove(self)

    # -- what the flusher asks (flusher.Flushable) --

    def due_at(self) -> float | None:
        with self._lock:
            due = self._due_at_locked()
            return None if due is None else max(due, self._retry_at)

    def _due_at_locked(self) -> float | None:
        """Under the lock: when enough bytes, or bytes (or an event) waiting long enough, make a
        flush; None while nothing waits (or the writer is closing: ``close`` stores the rest)."""
        if self._stopping:
            return None
        pending = len(self._buffer.pending)
        if pending >= FLUSH_BYTES or self._buffer.stop_owed:
            return float("-inf")
        if pending and self._waiting_since is not None:
            return self._waiting_since + FLUSH_INTERVAL
        if self._announce_owed:
            return (self._announced_at or 0.0) + ANNOUNCE_INTERVAL
        return None

    def store(self) -> None:
        with self._lock:
            if self._stopping:
                return  # ``close`` stores the rest itself
        self._flush()

    def refused(self, error: Exception, *, retry_at: float) -> None:
        with self._lock:
            if not self._failing:
                log = logger.warning if isinstance(error, OperationalError) else logger.exception
                log("Could not store the output of run %s (%s); it stays buffered.", self.run_id, error)
            self._failing, self._retry_at = True, retry_at
            self._lock.notify_all()  # writers no longer wait for the store

    # -- storing --

    def _flush(self, *, final: bool = False) -> None:
        with self._flushing:
            if not self._started:
                with self._lock:
                    if not self._buffer.pending and not self._buffer.owes_flush:
                        return  # nothing written yet: no statement at all
                self._start()
            with self._lock:
                flush = self._buffer.take(final=final)
                start = flush.start if flush is not None else self._buffer.pending_start
                self._waiting_since = clock.monotonic() if self._buffer.pending else None
                self._lock.notify_all()  # room for writers that wait
            now = clock.monotonic()
            stored = flush is not None and bool(flush.data)
            announce = (stored or self._announce_owed) and (
                final or self._announced_at is None or now - self._announced_at >= ANNOUNCE_INTERVAL)
            if flush is None and not announce:
                return
            try:
                self._tail = services.append_log(
                    self.run_id, task_id=self.task_id, start=start, data=flush.data if flush else b"",
                    kept_from=flush.kept_from if flush else None, tail=self._tail,
                    stop_for_overflow=flush is not None and flush.overflowed, announce=announce)
            except BaseException:
                if flush is not None:
                    with self._lock:
                        self._buffer.put_back(flush)
                        self._waiting_since = self._waiting_since or clock.monotonic()
                raise
            with self._lock:
                self._failing, self._retry_at = False, 0.0
                if announce:
                    self._announced_at, self._announce_owed = now, False
                elif stored:
                    self._announce_owed = True
                if self._joined and (self._announce_owed or self._buffer.pending):
                    flusher().wake()  # flushed from another thread: the flusher's next look may be sooner
            if flush is not None and flush.overflowed and self.on_overflow is not None:
                self.on_overflow()

    def _start(self) -> None:
        """Before the first flush: what the log already holds (normally nothing: a run has one
        writer), so this writer's offsets follow it."""
        bounds = selectors.log_bounds(self.run_id)
        with self._lock:
            self._buffer.start_after(bounds.size if bounds is not None else 0)
        self._started = True
