"""``StopFlag``: a process's "stop now", safe to raise from a signal handler.

A Python signal handler runs in the main thread between two bytecodes, possibly while that thread
is inside ``threading.Event.wait`` holding the event's lock. ``Event.set`` from the handler then
waits for that lock forever: a worker that got SIGTERM at that instant hung until ``serve``
killed it (its runs then ended ``crashed``, not ``shutdown``). ``StopFlag.signal`` only stores a
flag, which takes no lock; its waiters look at the flag at least every ``LOOK_EVERY`` seconds.
Another thread calls ``set``, which also wakes the waiters at once.
"""
from __future__ import annotations

import threading
import time

#: Seconds a waiter may go without looking at a flag raised by a signal handler.
LOOK_EVERY = 0.1


class StopFlag:
    """As ``threading.Event`` (``set``, ``is_set``, ``wait``), plus ``signal`` for signal handlers."""

    def __init__(self) -> None:
        self._raised = False
        self._event = threading.Event()

    def signal(self, *_: object) -> None:
        """The signal handler: raise the flag, taking no lock (see the module's docstring)."""
        self._raised = True

    def set(self) -> None:
        """From any thread but from a signal handler: raise the flag and wake the waiters."""
        self._raised = True
        self._event.set()

    def is_set(self) -> bool:
        return self._raised

    def wait(self, timeout: float | None = None) -> bool:
        """Until the flag is raised or ``timeout`` seconds have passed; whether it is raised."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._raised:
            left = LOOK_EVERY if deadline is None else min(LOOK_EVERY, deadline - time.monotonic())
            if left <= 0:
                return False
            self._event.wait(left)
        return True
