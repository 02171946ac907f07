"""The one source of "now" for Taskdeck, so tests move time without sleeping.

Call it as ``clock.now()`` (module attribute lookup at call time): the test ``clock`` fixture
replaces ``now`` on this module.
"""
from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    """Aware UTC: every stored time is UTC; a task's timezone only shapes its cron."""
    return datetime.now(UTC)
