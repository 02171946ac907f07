"""When a task next fires: cron in the task's time zone, or an interval after its last run."""
from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, croniter

from tasks_app import clock
from tasks_app.models import IntervalUnit, Task


def is_valid_cron(expression: str) -> bool:
    """Five fields (or an alias such as @daily) that parse and fire at least once."""
    fields = expression.split()
    if not fields or not (len(fields) == 5 or (len(fields) == 1 and fields[0].startswith("@"))):
        return False
    if not croniter.is_valid(expression):
        return False
    try:
        croniter(expression, clock.now()).get_next(datetime)
    except CroniterBadDateError:
        return False  # valid syntax that never fires, e.g. "0 0 30 2 *"
    return True


def is_valid_timezone(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


def next_run_at(task: Task, *, now: datetime) -> datetime | None:
    """The next fire time after ``now`` (aware UTC); None for unscheduled or disabled tasks."""
    if not task.enabled or task.is_removed:
        return None
    if task.cron_string:
        local = now.astimezone(zoneinfo.ZoneInfo(task.timezone))
        return croniter(task.cron_string, local).get_next(datetime).astimezone(UTC)
    if task.interval:
        every = timedelta(seconds=task.interval * IntervalUnit(task.interval_unit or IntervalUnit.MINUTES).seconds)
        base = task.last_run_at or now
        return max(base + every, now)
    return None
