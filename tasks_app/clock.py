"""The one source of "now" for Taskdeck, so tests move time without sleeping.

Call it as ``clock.now()`` / ``clock.monotonic()`` (module attribute lookup at call time): the
test ``clock`` fixture replaces both on this module and moves them together.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    """Aware UTC: every stored time is UTC; a task's timezone only shapes its cron."""
    return datetime.now(UTC)


def monotonic() -> float:
    """Seconds on a clock that never goes back, for intervals and deadlines within a process."""
    return time.monotonic()
