"""platform/stopflag.py: a stop raised by a real signal handler while the main thread waits (where
``threading.Event.set`` from the handler could wait forever for the lock the wait holds), or by
another thread."""
from __future__ import annotations

import os
import signal
import threading
import time

from tasks_app.platform.stopflag import StopFlag


def test_a_real_signal_ends_a_wait_in_the_main_thread_promptly():
    flag = StopFlag()
    previous = signal.signal(signal.SIGUSR1, flag.signal)
    try:
        sender = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
        sender.start()
        started = time.monotonic()
        assert flag.wait(10)
        assert time.monotonic() - started < 2
        sender.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_set_from_another_thread_wakes_a_waiter_and_a_timeout_returns_false():
    flag = StopFlag()
    assert not flag.wait(0.05) and not flag.is_set()
    threading.Timer(0.1, flag.set).start()
    assert flag.wait(5) and flag.is_set()
