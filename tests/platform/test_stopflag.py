"""platform/stopflag.py: a stop raised by a real signal handler, even while the waiting thread
holds the lock its wait uses (where ``threading.Event.set`` from the handler waits forever)."""
from __future__ import annotations

import os
import signal
import threading
import time

from tasks_app.platform.stopflag import StopFlag


def test_the_signal_handler_takes_no_lock_the_interrupted_wait_may_hold():
    flag = StopFlag()
    with flag._event._cond:  # where Event.wait is between two looks, as a signal can find it
        flag.signal()  # threading.Event.set would wait here for the lock this thread holds
    assert flag.is_set() and flag.wait(0)


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
