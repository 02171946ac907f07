"""The captured output of a run, capped at ``LOG_MAX_SIZE`` bytes: ``OutputBuffer``.

Whatever writes output (print and ``ctx.log`` inside task code today, a child process's stdout
and stderr once command tasks run) writes text to one buffer; whoever flushes the run takes what
is pending as an ``OutputWrite`` and stores it. The buffer knows only text and sizes, not the
database: it mirrors what is stored (``kept``, and ``dropped``, the bytes cut from its head), so
it can tell whether pending text is simply added to the end or the cap pushes the oldest text
out. There is no marker in the text itself: ``dropped`` is the record of what was cut (pages
show the output from that offset on).

Thread-safe: writers and the flusher may be different threads.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from tasks_app.text import storable


@dataclass(frozen=True)
class OutputWrite:
    """What one flush stores: ``added``, the text written since the last one; and the output as
    it stands once stored (``kept``, ``dropped`` bytes cut from its head). When ``truncated`` is
    False, adding ``added`` to the end of the stored output is enough; when True the cap cut its
    head, and the stored output is replaced by ``kept`` and ``dropped``."""

    added: str
    kept: str
    dropped: int
    truncated: bool


class OutputBuffer:
    """Output waiting to be stored, and what is stored already (at most ``max_bytes`` of UTF-8).

    ``kept`` and ``dropped`` start from what the run has stored (a run resumed keeps its output)
    and change only when the caller reports a write ``landed``: a write the database refused is
    ``put_back`` and taken again, in order, by the next ``take``.
    """

    def __init__(self, *, max_bytes: int, kept: str = "", dropped: int = 0) -> None:
        self.max_bytes = max_bytes
        self._kept = kept
        self._dropped = dropped
        self._pending: list[str] = []
        self._lock = threading.Lock()

    @property
    def kept(self) -> str:
        """The stored output, as of the last write that landed."""
        return self._kept

    @property
    def dropped(self) -> int:
        """Bytes cut from the head of the stored output so far."""
        return self._dropped

    def write(self, text: str) -> None:
        """Add ``text`` (made storable: no lone surrogates or NULs) to what waits to be stored."""
        if text:
            with self._lock:
                self._pending.append(storable(text))

    def take(self) -> OutputWrite | None:
        """Everything pending, as the write that stores it; None when nothing is pending."""
        with self._lock:
            added, self._pending = "".join(self._pending), []
        return self._write_of(added) if added else None

    def put_back(self, write: OutputWrite) -> None:
        """A write that did not land: its text goes back in front of what came meanwhile."""
        with self._lock:
            self._pending.insert(0, write.added)

    def landed(self, write: OutputWrite) -> None:
        """A write is stored: the buffer now mirrors it."""
        self._kept, self._dropped = write.kept, write.dropped

    def _write_of(self, added: str) -> OutputWrite:
        """The stored output with ``added`` at its end; past ``max_bytes`` the oldest bytes go (a
        character cut in two goes whole, and its bytes count as dropped)."""
        combined = self._kept + added
        size = len(combined.encode("utf-8"))
        if size <= self.max_bytes:
            return OutputWrite(added, combined, self._dropped, truncated=False)
        raw = combined.encode("utf-8")
        kept = raw[size - self.max_bytes:].decode("utf-8", errors="ignore")
        dropped = self._dropped + size - len(kept.encode("utf-8"))
        return OutputWrite(added, kept, dropped, truncated=True)
