"""``StopFlag``: a process's "stop now", safe to raise from a signal handler.

A Python signal handler runs in the main thread between two bytecodes, possibly while that thread
is inside ``threading.Event.wait`` holding the event's lock. ``Event.set`` from the handler then
waits for that lock forever: a worker that got SIGTERM at that instant hung until ``serve``
killed it (its runs then ended ``crashed``, not ``shutdown``). ``StopFlag`` takes no lock: raising
it stores a flag and writes a byte to a pipe of its own (both safe in a signal handler), and
waiters wait for the pipe to be readable, so they wake at once and never poll.
"""
from __future__ import annotations

import os
import select


class StopFlag:
    """As ``threading.Event`` (``set``, ``is_set``, ``wait``) for a flag raised once and never
    lowered; ``set`` (or its alias ``signal``, to pass as a signal handler) may be called from a
    signal handler or any thread."""

    def __init__(self) -> None:
        self._raised = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def set(self, *_: object) -> None:
        """Raise the flag and wake every waiter; the byte stays in the pipe, so later waits return at once."""
        self._raised = True
        try:
            os.write(self._write, b"!")
        except BlockingIOError:
            pass  # a full pipe already wakes every waiter

    signal = set

    def is_set(self) -> bool:
        return self._raised

    def wait(self, timeout: float | None = None) -> bool:
        """Until the flag is raised or ``timeout`` seconds have passed; whether it is raised."""
        if not self._raised:
            select.select([self._read], [], [], timeout)
        return self._raised

    def __del__(self) -> None:
        for fd in (self._read, self._write):
            try:
                os.close(fd)
            except OSError:
                pass
