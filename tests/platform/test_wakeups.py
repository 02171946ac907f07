"""platform/wakeups.py: a wake-up reaches the listener of its name on this host, and only it; a
wake-up nobody listens for is harmless. And a stop request, once committed, wakes the watchdog
of its run."""
import select

import pytest

from tasks_app import services
from tasks_app.models import RunStatus
from tasks_app.platform import wakeups

from ..factories import make_run, make_task


def readable(listener, seconds: float = 5.0) -> bool:
    return bool(select.select([listener], [], [], seconds)[0])


def test_a_wake_up_reaches_its_listener_only():
    mine, other = wakeups.listen("test-mine"), wakeups.listen("test-other")
    try:
        assert wakeups.listen("test-mine") is None  # a name has one listener
        wakeups.wake("test-mine")
        assert readable(mine) and not readable(other, 0.1)
        wakeups.drain(mine)
        assert not readable(mine, 0.1)
    finally:
        mine.close()
        other.close()
    wakeups.wake("test-mine")  # nobody listens any more: nothing happens


@pytest.mark.django_db(transaction=True)
def test_a_cancel_wakes_the_watchdog_of_its_running_run():
    run = make_run(make_task(), status=RunStatus.RUNNING)
    listener = wakeups.listen(services.stop_wakeup(run.pk))
    try:
        services.cancel_run(run.pk)
        assert readable(listener)
    finally:
        listener.close()
