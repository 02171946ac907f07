"""When a task fires: cron on the wall clock of the task's time zone, or an interval.

Every function here is pure: it reads a task-like object (``SchedulableTask``) and the times it
is given, never the database or the clock (whether a schedule is valid at all is
rules.py's business). Should a task hold both a cron string and an interval, the
cron string schedules it, everywhere here.

Cron and daylight saving time. A cron expression is read in the task's IANA time zone, on local
wall-clock time, and each wall-clock fire time becomes one UTC instant:

- A local time that does not exist (the clocks spring forward over it, e.g. 02:30 on
  2026-03-29 in Europe/Paris) fires once, at the instant the gap ends (03:00 local), as Vixie
  cron does. Every time skipped by the gap collapses onto that one instant, so ``*/15 * * * *``
  fires once at 03:00, not five times, and a job due at 03:00 anyway fires once there too.
- A local time that occurs twice (the clocks fall back over it) fires once, at its first
  occurrence. This holds for every expression: ``0 * * * *`` fires once in the repeated hour, so
  in Europe/Paris on 2026-10-25 its fires are 00:00 UTC then 02:00 UTC.
- Fire times strictly increase; a time at or before the one asked about is never returned.

Jobs away from the transition keep their local time, so their UTC time moves by the offset
change (a 09:00 Paris job fires at 08:00 UTC in winter, 07:00 UTC in summer).

Why the wall clock is walked here and not by croniter: croniter 7.0.0 given an aware datetime
fires a repeated local time twice (02:30 Paris at 00:30 and 01:30 UTC on 2026-10-25), against
the rule above. So croniter only ever sees naive wall-clock times, and ``_fire_instant`` maps
them to UTC with zoneinfo.
"""
from __future__ import annotations

import bisect
import threading
import zoneinfo
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import islice
from typing import Protocol

from croniter import CroniterBadDateError, croniter

from tasks_app.models import IntervalUnit

#: ``fire_times`` stops counting cron ticks here; past it the count is a lower bound.
MAX_COUNTED_TICKS = 100_000

_ONE_MINUTE = timedelta(minutes=1)


class SchedulableTask(Protocol):
    """What these functions read from a task: a saved or unsaved ``Task``, or any stand-in."""

    @property
    def cron_string(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def interval(self) -> int | None: ...
    @property
    def interval_unit(self) -> str: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def is_removed(self) -> bool: ...
    @property
    def last_run_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class FireTimes:
    """The fire times in a window, as catch-up after downtime needs them.

    ``latest`` holds the last ``limit`` of them, oldest first. ``count`` is how many there are in
    all, exact when ``complete``; a cron schedule stops counting at ``MAX_COUNTED_TICKS`` (then
    ``complete`` is False, ``count`` is a lower bound, and ``latest`` is still the true latest).
    """

    latest: list[datetime]
    count: int
    complete: bool


def interval_seconds(task: SchedulableTask) -> int | None:
    """The interval in seconds; None unless the task is interval-scheduled (a cron string wins)."""
    if task.cron_string or not task.interval:
        return None
    return task.interval * IntervalUnit(task.interval_unit or IntervalUnit.MINUTES).seconds


def next_fire_after(task: SchedulableTask, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after`` (aware), in UTC; None if it never fires.

    An interval runs on the grid ``anchor + k * every`` (k >= 1) anchored at the task's last run,
    else at ``after`` itself. Whether the task is enabled or removed is ``next_run_at``'s concern.
    """
    return next(_fire_instants(task, after=after), None)


def next_run_at(task: SchedulableTask, *, now: datetime) -> datetime | None:
    """The next fire time after ``now`` (aware UTC); None for unscheduled, disabled or removed tasks."""
    if not task.enabled or task.is_removed:
        return None
    return next_fire_after(task, now)


def upcoming(task: SchedulableTask, *, after: datetime, count: int = 5) -> list[datetime]:
    """The next ``count`` fire times after ``after``, in UTC: the admin's schedule preview."""
    return list(islice(_fire_instants(task, after=after), count))


def fire_times(task: SchedulableTask, *, after: datetime, until: datetime, limit: int) -> FireTimes:
    """Every fire time t with ``after < t <= until``: what a scheduler that was down has missed.

    An interval is anchored at ``after`` here (ticks ``after + every``, ``after + 2 * every``, ...),
    since the caller passes the last tick it handled; it is computed, not walked, and always
    complete. A cron schedule is walked tick by tick, up to ``MAX_COUNTED_TICKS``.
    """
    _require_aware(after=after, until=until)
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    if until <= after:
        return FireTimes(latest=[], count=0, complete=True)
    seconds = interval_seconds(task)
    if seconds is not None:
        every = timedelta(seconds=seconds)
        count = (until - after) // every
        first_kept = max(count - limit, 0) + 1
        start = after.astimezone(UTC)
        return FireTimes(latest=[start + every * k for k in range(first_kept, count + 1)], count=count, complete=True)
    if not task.cron_string:
        return FireTimes(latest=[], count=0, complete=True)
    latest: deque[datetime] = deque(maxlen=limit)
    count = 0
    for instant in _cron_instants(task, after=after):
        if instant > until:
            break
        if count == MAX_COUNTED_TICKS:
            return FireTimes(latest=_latest_cron_instants(task, after=after, until=until, limit=limit),
                             count=count, complete=False)
        count += 1
        latest.append(instant)
    return FireTimes(latest=list(latest), count=count, complete=True)


def describe(task: SchedulableTask) -> str:
    """The schedule in words for lists: "every 6 hours", "cron 0 3 * * * (Europe/Paris)", "manual"."""
    if task.cron_string:
        return f"cron {task.cron_string} ({task.timezone})"
    if task.interval:
        unit = IntervalUnit(task.interval_unit or IntervalUnit.MINUTES).value  # "minutes"
        if task.interval == 1:
            return f"every {unit.removesuffix('s')}"
        return f"every {task.interval} {unit}"
    return "manual"


def _require_aware(**times: datetime) -> None:
    """Naive datetimes would silently be read as the server's local time; refuse them."""
    for name, value in times.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime, got {value!r}")


def _fire_instants(task: SchedulableTask, *, after: datetime) -> Iterator[datetime]:
    """The task's fire times strictly after ``after``, ascending, in UTC (endless unless cron ends)."""
    _require_aware(after=after)
    if task.cron_string:
        yield from _cron_instants(task, after=after)
        return
    seconds = interval_seconds(task)
    if seconds is None:
        return
    every = timedelta(seconds=seconds)
    anchor = (task.last_run_at or after).astimezone(UTC)
    steps = 1 if anchor + every > after else (after - anchor) // every + 1
    instant = anchor + every * steps
    while True:
        yield instant
        instant += every


def _cron_instants(task: SchedulableTask, *, after: datetime) -> Iterator[datetime]:
    """Cron fire times strictly after ``after``, in UTC, by the module docstring's DST rules.

    Wall-clock times map to instants in order (a gap collapses to one instant, a repeat keeps its
    first), so walking the wall clock from ``after``'s local time and dropping every instant not
    past the last one yields each fire once and never one at or before ``after``.
    """
    zone = zoneinfo.ZoneInfo(task.timezone)
    previous = after.astimezone(UTC)
    for wall in _wall_clock_times(task.cron_string, start=after.astimezone(zone).replace(tzinfo=None)):
        instant = _fire_instant(wall, zone)
        if instant > previous:
            previous = instant
            yield instant


def _latest_cron_instants(task: SchedulableTask, *, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """The last ``limit`` cron fire times in ``(after, until]``, oldest first, walking back from ``until``.

    If ``until`` falls in the second pass of a repeated hour, the rest of that hour's wall-clock
    times fired (at their first occurrence) before ``until``, so the walk starts at the end of the
    repeat: ``until``'s wall clock plus the offset change.
    """
    zone = zoneinfo.ZoneInfo(task.timezone)
    local = until.astimezone(zone)
    start = local.replace(tzinfo=None) + (local.replace(fold=0).utcoffset() - local.utcoffset())
    latest: list[datetime] = []
    if limit == 0:
        return latest
    for wall in _wall_clock_times(task.cron_string, start=start, backward=True):
        instant = _fire_instant(wall, zone)
        if instant > until or (latest and instant == latest[-1]):
            continue
        if instant <= after:
            break
        latest.append(instant)
        if len(latest) == limit:
            break
    return latest[::-1]


def _wall_clock_times(expression: str, *, start: datetime, backward: bool = False) -> Iterator[datetime]:
    """Naive wall-clock times the expression names, ascending from ``start``'s minute, or descending.

    Both directions include ``start``'s own minute; callers drop what is out of their window.
    croniter finds each day that matches; within a day a five-field expression fires at every
    listed hour and minute, the same list every day, so the rest of the day comes from croniter's
    own expanded fields. One croniter step costs about 45 us: stepping once a day instead of once
    a tick turns a 100,000-tick catch-up from several seconds into a fraction of one.
    """
    schedule, times_of_day, every_day = _parsed(expression)
    # Whole minutes only: croniter keeps its position as a float timestamp, and it steps strictly
    # past the minute it is given (forward) or strictly before it (backward).
    minute = start.replace(second=0, microsecond=0)
    if every_day:  # day, month and weekday all "*": no day to look for, croniter is not needed
        yield from _every_day(times_of_day, minute=minute, backward=backward)
        return
    try:
        if backward:
            wall = schedule.get_prev(datetime, start_time=minute + _ONE_MINUTE)
            while True:
                day = wall.date()
                for moment in reversed(times_of_day[:bisect.bisect_right(times_of_day, wall.time())]):
                    yield datetime.combine(day, moment)
                wall = schedule.get_prev(datetime, start_time=datetime.combine(day, time()))
        else:
            wall = schedule.get_next(datetime, start_time=minute - _ONE_MINUTE)
            while True:
                day = wall.date()
                for moment in times_of_day[bisect.bisect_left(times_of_day, wall.time()):]:
                    yield datetime.combine(day, moment)
                wall = schedule.get_next(datetime, start_time=datetime.combine(day, time(23, 59)))
    except CroniterBadDateError:
        return  # no further match within croniter's horizon (50 years): the schedule has ended


_parsed_by_thread = threading.local()


def _every_day(times_of_day: list[time], *, minute: datetime, backward: bool) -> Iterator[datetime]:
    """``_wall_clock_times`` for an expression that fires on every day (most schedules)."""
    day = minute.date()
    if backward:
        today = times_of_day[:bisect.bisect_right(times_of_day, minute.time())]
        while True:
            for moment in reversed(today):
                yield datetime.combine(day, moment)
            day, today = day - timedelta(days=1), times_of_day
    else:
        today = times_of_day[bisect.bisect_left(times_of_day, minute.time()):]
        while True:
            for moment in today:
                yield datetime.combine(day, moment)
            day, today = day + timedelta(days=1), times_of_day


def _parsed(expression: str) -> tuple[croniter, list[time], bool]:
    """A croniter for ``expression``, the times of day it fires at and whether it fires every day,
    parsed once per thread.

    A scheduler pass asks about the same few expressions a thousand times, and parsing one
    (building croniter, listing up to 1,440 times of day) cost more than the rest of a tick. Every
    use passes ``start_time``, so a kept croniter's own position never matters; it is kept per
    thread because stepping it moves that position.
    """
    cache = _parsed_by_thread.__dict__.setdefault("parsed", {})
    if expression not in cache:
        schedule = croniter(expression, datetime(2000, 1, 1))
        if len(schedule.expanded) != 5:
            raise ValueError(f"only five-field cron expressions are supported, got {expression!r}")
        minute_field, hour_field = schedule.expanded[0], schedule.expanded[1]
        minutes = range(60) if minute_field == ["*"] else minute_field
        hours = range(24) if hour_field == ["*"] else hour_field
        if len(cache) >= 256:
            cache.clear()  # bounded: operators do not have thousands of distinct expressions
        every_day = all(field == ["*"] for field in schedule.expanded[2:])
        cache[expression] = (schedule, [time(hour, minute) for hour in hours for minute in minutes], every_day)
    return cache[expression]


def _fire_instant(wall: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The UTC instant a naive wall-clock fire time means in ``zone``.

    fold=0 picks the first occurrence of a repeated time. A time in a spring-forward gap does not
    survive the round trip through UTC; it fires when the gap ends.
    """
    instant = wall.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        return instant
    return _end_of_gap(wall, zone)


def _end_of_gap(wall: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The instant the clocks jump over ``wall``, found by bisecting whole seconds.

    Read with the offset after the jump (fold=1), ``wall`` lands before the jump; read with the
    offset before it (fold=0), after the jump. zoneinfo does not expose the transition itself.
    """
    earlier = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    later = int(wall.replace(tzinfo=zone, fold=0).timestamp())
    offset_after_jump = datetime.fromtimestamp(later, zone).utcoffset()
    while later - earlier > 1:
        middle = (earlier + later) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after_jump:
            later = middle
        else:
            earlier = middle
    return datetime.fromtimestamp(later, UTC)
