"""What happens after a service instance's process exits: the restart policy of API.md
"Services", as a pure function of the instance's settings and history (no clock, no database).

* ``restart``: ``never`` keeps it down; ``on_failure`` restarts it after an exit code not in
  ``exit_codes`` or a signal; ``always`` restarts it after any exit.
* An instance that stayed up ``healthy_after`` seconds (or passed its health check) was healthy:
  its failure streak starts again from nothing.
* Each exit before it was healthy adds one to the streak (an exit after it was healthy leaves it
  at nothing); ``start_retries`` of them in a row make
  the instance ``fatal``: no more restarts until an operator starts it again.
* The delay before the next start is ``restart_delay`` on the ``restart_backoff`` curve (the
  streak is the attempt), capped at ``MAX_RESTART_DELAY`` seconds.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks_app.models import InstanceState
from tasks_app.scheduling.backoff import retry_delay

#: The longest wait before an instance starts again (seconds; API.md).
MAX_RESTART_DELAY = 60.0


@dataclass(frozen=True)
class AfterExit:
    state: str
    """``backoff`` (it starts again after ``delay``), ``fatal`` or ``stopped``."""
    delay: float
    streak: int
    """Exits before being healthy, in a row, counting this one (0 after a healthy lifetime)."""
    reason: str
    """Why, in a few words, for the instance's event and its log."""


def after_exit(settings: Mapping[str, Any], *, failed: bool, healthy: bool, streak: int) -> AfterExit:
    """The decision after an exit. ``failed``: an exit code not in ``exit_codes``, a signal, or a
    process that could not start; ``healthy``: it had been healthy before it exited; ``streak``:
    the exits before being healthy in a row, before this one."""
    streak = 0 if healthy else streak + 1
    restart = settings.get("restart", "on_failure")
    if restart == "never":
        return AfterExit(InstanceState.STOPPED, 0.0, streak, "exited; restart = never")
    if restart == "on_failure" and not failed:
        return AfterExit(InstanceState.STOPPED, 0.0, streak, "exited successfully; restart = on_failure")
    if not healthy and streak >= int(settings.get("start_retries", 3)):
        return AfterExit(InstanceState.FATAL, 0.0, streak,
                         f"exited {streak} time(s) in a row before it was healthy (start_retries)")
    delay = retry_delay(backoff=settings.get("restart_backoff", "exponential"),
                        delay=float(settings.get("restart_delay", 1)), attempt=max(streak, 1), cap=MAX_RESTART_DELAY)
    return AfterExit(InstanceState.BACKOFF, delay, streak, f"restarting in {delay:g} s")
