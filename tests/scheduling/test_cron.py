"""cron.py: cron on the task's wall clock across both 2026 DST changes, intervals, catch-up, retries.

Every expected UTC time is written out by hand from the zone's 2026 transitions (below), never
computed by the code under test. The tasks are SimpleNamespace stand-ins or unsaved Task rows:
no database, no wall clock.

    Europe/Paris      spring 2026-03-29 01:00Z (02:00 -> 03:00)   fall 2026-10-25 01:00Z (03:00 -> 02:00)
    America/New_York  spring 2026-03-08 07:00Z (02:00 -> 03:00)   fall 2026-11-01 06:00Z (02:00 -> 01:00)
    Australia/Sydney  fall   2026-04-04 16:00Z (03:00 -> 02:00)   spring 2026-10-03 16:00Z (02:00 -> 03:00)
    Asia/Kolkata      +05:30 all year;  UTC
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from tasks_app.models import IntervalUnit, Task
from tasks_app.scheduling import cron


def cron_task(cron_string: str, timezone: str = "UTC", **overrides: Any) -> SimpleNamespace:
    fields = {"cron_string": cron_string, "timezone": timezone, "interval": None, "interval_unit": "",
              "enabled": True, "is_removed": False, "last_run_at": None}
    return SimpleNamespace(**{**fields, **overrides})


def interval_task(interval: int, unit: str, **overrides: Any) -> SimpleNamespace:
    return cron_task("", interval=interval, interval_unit=unit, **overrides)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def fires(task: SimpleNamespace, *, after: datetime, until: datetime) -> list[datetime]:
    """Every fire time in (after, until], walked with next_fire_after one step at a time."""
    found = []
    while (instant := cron.next_fire_after(task, after)) is not None and instant <= until:
        found.append(instant)
        after = instant
    return found


# Cron across daylight saving time -------------------------------------------------------------

# A daily job whose local time falls in the gap fires once, when the gap ends (03:00 local).
@pytest.mark.parametrize(("zone", "expression", "after", "expected"), [
    ("Europe/Paris", "30 2 * * *", utc(2026, 3, 27, 12),
     [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]),
    ("America/New_York", "30 2 * * *", utc(2026, 3, 6, 12),
     [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]),
    ("Australia/Sydney", "30 2 * * *", utc(2026, 10, 2, 0),
     [utc(2026, 10, 2, 16, 30), utc(2026, 10, 3, 16), utc(2026, 10, 4, 15, 30)]),
    # On the hour, at the very start of the gap: 02:00 becomes 03:00 too.
    ("Europe/Paris", "0 2 * * *", utc(2026, 3, 27, 12),
     [utc(2026, 3, 28, 1), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0)]),
])
def test_a_daily_job_in_the_spring_gap_fires_once_when_the_gap_ends(zone, expression, after, expected):
    assert cron.upcoming(cron_task(expression, zone), after=after, count=3) == expected


# A daily job in the repeated hour fires once, at the first occurrence.
@pytest.mark.parametrize(("zone", "expression", "after", "expected"), [
    ("Europe/Paris", "30 2 * * *", utc(2026, 10, 23, 12),
     [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]),
    ("America/New_York", "30 1 * * *", utc(2026, 10, 30, 12),
     [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]),
    ("Australia/Sydney", "30 2 * * *", utc(2026, 4, 3, 0),
     [utc(2026, 4, 3, 15, 30), utc(2026, 4, 4, 15, 30), utc(2026, 4, 5, 16, 30)]),
])
def test_a_daily_job_in_the_repeated_hour_fires_once_at_its_first_occurrence(zone, expression, after, expected):
    assert cron.upcoming(cron_task(expression, zone), after=after, count=3) == expected


@pytest.mark.parametrize(("zone", "after", "expected"), [
    # Spring: local 02:00 does not exist; it and 03:00 are the same instant, fired once.
    ("Europe/Paris", utc(2026, 3, 28, 23, 30),
     [utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2), utc(2026, 3, 29, 3)]),
    ("America/New_York", utc(2026, 3, 8, 5, 30),
     [utc(2026, 3, 8, 6), utc(2026, 3, 8, 7), utc(2026, 3, 8, 8), utc(2026, 3, 8, 9)]),
    ("Australia/Sydney", utc(2026, 10, 3, 14, 30),
     [utc(2026, 10, 3, 15), utc(2026, 10, 3, 16), utc(2026, 10, 3, 17), utc(2026, 10, 3, 18)]),
    # Fall: the repeated hour fires once, so UTC skips an hour.
    ("Europe/Paris", utc(2026, 10, 24, 22, 30),
     [utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 2), utc(2026, 10, 25, 3)]),
    ("America/New_York", utc(2026, 11, 1, 3, 30),
     [utc(2026, 11, 1, 4), utc(2026, 11, 1, 5), utc(2026, 11, 1, 7), utc(2026, 11, 1, 8)]),
    ("Australia/Sydney", utc(2026, 4, 4, 13, 30),
     [utc(2026, 4, 4, 14), utc(2026, 4, 4, 15), utc(2026, 4, 4, 17), utc(2026, 4, 4, 18)]),
])
def test_an_hourly_job_across_each_transition(zone, after, expected):
    assert cron.upcoming(cron_task("0 * * * *", zone), after=after, count=4) == expected


def test_every_time_skipped_by_the_gap_collapses_onto_one_fire():
    # Paris 02:00, 02:30 (skipped) and 03:00 (regular) are all 01:00Z: one fire, not three.
    task = cron_task("*/30 * * * *", "Europe/Paris")
    assert cron.upcoming(task, after=utc(2026, 3, 29, 0, 10), count=4) == [
        utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2)]


@pytest.mark.parametrize(("zone", "dates", "expected"), [
    # 09:00 local each day: the UTC time moves by the offset change.
    ("Europe/Paris", (utc(2026, 3, 28), utc(2026, 3, 29), utc(2026, 10, 24), utc(2026, 10, 25)),
     [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 10, 24, 7), utc(2026, 10, 25, 8)]),
    ("America/New_York", (utc(2026, 3, 7), utc(2026, 3, 8), utc(2026, 10, 31), utc(2026, 11, 1)),
     [utc(2026, 3, 7, 14), utc(2026, 3, 8, 13), utc(2026, 10, 31, 13), utc(2026, 11, 1, 14)]),
    # Sydney is ahead of UTC: 09:00 local is the previous UTC day.
    ("Australia/Sydney", (utc(2026, 4, 3), utc(2026, 4, 4), utc(2026, 10, 2), utc(2026, 10, 3)),
     [utc(2026, 4, 3, 22), utc(2026, 4, 4, 23), utc(2026, 10, 2, 23), utc(2026, 10, 3, 22)]),
])
def test_a_job_away_from_the_change_keeps_its_local_time(zone, dates, expected):
    task = cron_task("0 9 * * *", zone)
    assert [cron.next_fire_after(task, date) for date in dates] == expected


def test_zones_without_daylight_saving_time_fire_at_a_fixed_offset():
    # Kolkata is +05:30 all year: 02:30 local is 21:00Z the day before, on both Paris change days.
    kolkata = cron_task("30 2 * * *", "Asia/Kolkata")
    assert cron.upcoming(kolkata, after=utc(2026, 3, 28, 12), count=2) == [utc(2026, 3, 28, 21), utc(2026, 3, 29, 21)]
    assert cron.upcoming(kolkata, after=utc(2026, 10, 24, 12), count=2) == [
        utc(2026, 10, 24, 21), utc(2026, 10, 25, 21)]
    assert cron.upcoming(cron_task("0 * * * *", "Asia/Kolkata"), after=utc(2026, 10, 25, 0), count=3) == [
        utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 30)]
    assert cron.upcoming(cron_task("0 * * * *", "UTC"), after=utc(2026, 10, 25, 0, 30), count=3) == [
        utc(2026, 10, 25, 1), utc(2026, 10, 25, 2), utc(2026, 10, 25, 3)]


def test_after_the_gap_ended_the_shifted_fire_is_not_repeated():
    task = cron_task("30 2 * * *", "Europe/Paris")
    assert cron.next_fire_after(task, utc(2026, 3, 29, 0, 59)) == utc(2026, 3, 29, 1)
    assert cron.next_fire_after(task, utc(2026, 3, 29, 1)) == utc(2026, 3, 30, 0, 30)


def test_during_the_second_pass_of_the_repeated_hour_the_next_fire_is_the_next_day():
    # 01:10Z is the second 02:10 in Paris; 02:30 already fired at its first occurrence (00:30Z).
    task = cron_task("30 2 * * *", "Europe/Paris")
    assert cron.next_fire_after(task, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 30)
    assert cron.next_fire_after(task, utc(2026, 10, 25, 0, 10)) == utc(2026, 10, 25, 0, 30)


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"])
def test_fire_times_strictly_increase_through_a_whole_year(zone):
    year = cron.fire_times(cron_task("*/20 * * * *", zone), after=utc(2026, 1, 1), until=utc(2027, 1, 1),
                                limit=3 * 8760)
    assert all(earlier < later for earlier, later in zip(year.latest, year.latest[1:], strict=False))
    assert utc(2026, 1, 1) < year.latest[0] and year.latest[-1] <= utc(2027, 1, 1)
    # Three an hour for 8760 hours. The skipped spring hour is no UTC time at all (its fires collapse
    # onto the gap's end, itself a fire time); the second pass of the fall hour fires nothing.
    assert year.count == len(year.latest) == 3 * 8760 - (0 if zone in ("Asia/Kolkata", "UTC") else 3)


@pytest.mark.parametrize(("zone", "transition", "count"), [
    # Six hours around each change, three fires an hour: a spring gap costs no UTC fire, the second
    # pass of a repeated hour costs three.
    ("Europe/Paris", utc(2026, 3, 29, 1), 18), ("Europe/Paris", utc(2026, 10, 25, 1), 15),
    ("America/New_York", utc(2026, 3, 8, 7), 18), ("America/New_York", utc(2026, 11, 1, 6), 15),
    ("Australia/Sydney", utc(2026, 4, 4, 16), 15), ("Australia/Sydney", utc(2026, 10, 3, 16), 18),
])
def test_stepping_one_fire_at_a_time_agrees_with_the_walk(zone, transition, count):
    # The scheduler steps next_fire_after from each fire it handled; the preview and catch-up walk.
    task = cron_task("*/20 * * * *", zone)
    after, until = transition - timedelta(hours=3), transition + timedelta(hours=3)
    stepped = fires(task, after=after, until=until)
    assert stepped == cron.fire_times(task, after=after, until=until, limit=100).latest
    assert len(stepped) == count


# Aliases and strictness ----------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "zone", "after", "expected"), [
    ("@daily", "UTC", utc(2026, 5, 4), utc(2026, 5, 5)),
    ("@daily", "Europe/Paris", utc(2026, 1, 14, 23), utc(2026, 1, 15, 23)),  # local midnight, winter
    ("@daily", "Europe/Paris", utc(2026, 7, 14, 22), utc(2026, 7, 15, 22)),  # local midnight, summer
    ("@hourly", "UTC", utc(2026, 5, 4, 7), utc(2026, 5, 4, 8)),
    ("@hourly", "Asia/Kolkata", utc(2026, 5, 4, 6, 30), utc(2026, 5, 4, 7, 30)),
    ("@weekly", "UTC", utc(2026, 1, 4), utc(2026, 1, 11)),  # Sundays at midnight
    ("0 3 * * *", "UTC", utc(2026, 5, 4, 3), utc(2026, 5, 5, 3)),
])
def test_next_fire_is_strictly_after_a_time_that_is_itself_a_fire_time(expression, zone, after, expected):
    task = cron_task(expression, zone)
    assert cron.next_fire_after(task, after) == expected
    assert cron.next_fire_after(task, after - timedelta(microseconds=1)) == after


def test_sub_minute_parts_of_after_are_respected():
    task = cron_task("* * * * *")
    assert cron.next_fire_after(task, utc(2026, 5, 4, 10, 0) + timedelta(seconds=59.5)) == utc(2026, 5, 4, 10, 1)


@pytest.mark.parametrize("expression", [
    "*/7 3-5 * * *", "0 0 L * *", "15 10 1,15 * 1", "0 12 * * mon#2", "0 9 15W * *", "0 0 29 2 *",
    "@weekly", "5 4 * * sun", "*/20 */6 1-7 * *", "59 23 31 * *",
])
def test_in_utc_the_fire_times_are_exactly_croniters(expression):
    # The wall-clock walk steps croniter once a day; in UTC it must agree with croniter stepping per tick.
    reference = croniter(expression, datetime(2025, 12, 31, 23, 59))
    expected = [reference.get_next(datetime).replace(tzinfo=UTC) for _ in range(120)]
    assert cron.upcoming(cron_task(expression), after=utc(2025, 12, 31, 23, 59), count=120) == expected


def test_a_cron_that_never_fires_has_no_next_time():
    assert cron.next_fire_after(cron_task("0 0 30 2 *"), utc(2026, 1, 1)) is None
    assert cron.upcoming(cron_task("0 0 30 2 *"), after=utc(2026, 1, 1)) == []


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="aware"):
        cron.next_fire_after(cron_task("* * * * *"), datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        cron.fire_times(cron_task("* * * * *"), after=utc(2026, 1, 1), until=datetime(2026, 1, 2), limit=1)


def test_a_non_utc_after_gives_utc_results():
    paris_noon = utc(2026, 7, 1, 10).astimezone(ZoneInfo("Europe/Paris"))
    result = cron.next_fire_after(cron_task("0 * * * *"), paris_noon)
    assert result == utc(2026, 7, 1, 11) and result.tzinfo is UTC


# Intervals ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("interval", "unit", "seconds"), [
    (15, "minutes", 900), (6, "hours", 21_600), (2, "days", 172_800), (5, "", 300),
])
def test_interval_seconds(interval, unit, seconds):
    assert cron.interval_seconds(interval_task(interval, unit)) == seconds
    assert cron.interval_seconds(Task(interval=interval, interval_unit=unit)) == seconds


def test_interval_seconds_is_none_without_an_interval_schedule():
    assert cron.interval_seconds(cron_task("")) is None
    assert cron.interval_seconds(cron_task("0 3 * * *", interval=6, interval_unit="hours")) is None


@pytest.mark.parametrize(("interval", "unit", "after", "expected"), [
    (10, IntervalUnit.MINUTES, utc(2026, 5, 4, 10, 5), utc(2026, 5, 4, 10, 10)),
    (10, IntervalUnit.MINUTES, utc(2026, 5, 4, 10, 10), utc(2026, 5, 4, 10, 20)),  # on a tick: the next one
    (6, IntervalUnit.HOURS, utc(2026, 5, 4, 11), utc(2026, 5, 4, 16)),
    (6, IntervalUnit.HOURS, utc(2026, 5, 7, 9), utc(2026, 5, 7, 10)),  # long after: the grid, not "now"
    (2, IntervalUnit.DAYS, utc(2026, 5, 4, 11), utc(2026, 5, 6, 10)),
    (2, IntervalUnit.DAYS, utc(2026, 5, 1), utc(2026, 5, 6, 10)),  # last run after `after`: k = 1
])
def test_an_interval_is_anchored_on_the_last_run(interval, unit, after, expected):
    task = interval_task(interval, unit, last_run_at=utc(2026, 5, 4, 10))
    assert cron.next_fire_after(task, after) == expected


def test_an_interval_without_a_last_run_is_anchored_on_after():
    after = utc(2026, 5, 4, 10, 17)
    assert cron.next_fire_after(interval_task(10, "minutes"), after) == utc(2026, 5, 4, 10, 27)
    assert cron.upcoming(interval_task(6, "hours"), after=after, count=3) == [
        utc(2026, 5, 4, 16, 17), utc(2026, 5, 4, 22, 17), utc(2026, 5, 5, 4, 17)]
    # Days are 24 hours of UTC: DST in the task's zone does not move them.
    assert cron.next_fire_after(interval_task(1, "days", timezone="Europe/Paris"), utc(2026, 3, 28, 12)) == \
        utc(2026, 3, 29, 12)


def test_an_unsaved_task_row_works_too():
    task = Task(interval=2, interval_unit=IntervalUnit.HOURS, last_run_at=utc(2026, 5, 4, 10))
    assert cron.upcoming(task, after=utc(2026, 5, 4, 13), count=2) == [utc(2026, 5, 4, 14), utc(2026, 5, 4, 16)]


def test_a_cron_string_wins_over_an_interval():
    task = cron_task("0 3 * * *", interval=10, interval_unit="minutes")
    assert cron.next_fire_after(task, utc(2026, 5, 4, 10)) == utc(2026, 5, 5, 3)


def test_a_task_with_no_schedule_never_fires():
    task = cron_task("")
    assert cron.next_fire_after(task, utc(2026, 5, 4)) is None
    assert cron.upcoming(task, after=utc(2026, 5, 4)) == []
    assert cron.fire_times(task, after=utc(2026, 5, 4), until=utc(2026, 5, 5), limit=3) == \
        cron.FireTimes(latest=[], count=0, complete=True)


# next_run_at ----------------------------------------------------------------------------------

def test_next_run_at_is_the_next_fire_for_an_enabled_task():
    assert cron.next_run_at(cron_task("30 2 * * *", "Europe/Paris"), now=utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)
    assert cron.next_run_at(Task(cron_string="0 3 * * *", timezone="UTC"), now=utc(2026, 5, 4)) == utc(2026, 5, 4, 3)


def test_next_run_at_is_none_for_a_disabled_or_removed_task():
    now = utc(2026, 5, 4)
    assert cron.next_run_at(cron_task("* * * * *", enabled=False), now=now) is None
    assert cron.next_run_at(cron_task("* * * * *", is_removed=True), now=now) is None
    assert cron.next_run_at(Task(cron_string="* * * * *", removed_at=now), now=now) is None
    assert cron.next_run_at(Task(interval=5, interval_unit="minutes", enabled=False), now=now) is None
    assert cron.next_run_at(Task(interval=5, interval_unit="minutes"), now=now) == utc(2026, 5, 4, 0, 5)
    assert cron.next_run_at(Task(), now=now) is None  # manual


# fire_times: catch-up after downtime -----------------------------------------------------------

def test_a_minute_cron_after_three_days_down():
    started = utc(2026, 6, 1)
    missed = cron.fire_times(cron_task("* * * * *"), after=started, until=started + timedelta(days=3), limit=3)
    assert missed == cron.FireTimes(
        latest=[utc(2026, 6, 3, 23, 58), utc(2026, 6, 3, 23, 59), utc(2026, 6, 4)], count=4320, complete=True)


def test_a_minute_cron_after_three_days_down_across_each_paris_change():
    task = cron_task("* * * * *", "Europe/Paris")
    # Spring: the skipped local hour is no UTC time at all, so every UTC minute still fires once.
    assert cron.fire_times(task, after=utc(2026, 3, 27), until=utc(2026, 3, 30), limit=0).count == 4320
    # Fall: the repeated local hour fires once, so its second pass (01:00Z to 01:59Z) fires nothing.
    assert cron.fire_times(task, after=utc(2026, 10, 23), until=utc(2026, 10, 26), limit=0).count == 4320 - 60
    missed = cron.fire_times(task, after=utc(2026, 10, 24, 2), until=utc(2026, 10, 25, 2), limit=3)
    assert missed == cron.FireTimes(
        latest=[utc(2026, 10, 25, 0, 58), utc(2026, 10, 25, 0, 59), utc(2026, 10, 25, 2)], count=1440 - 60, complete=True)


def test_an_hourly_cron_after_three_days_down():
    missed = cron.fire_times(cron_task("0 * * * *", "America/New_York"),
                                  after=utc(2026, 6, 1, 0, 30), until=utc(2026, 6, 4, 0, 30), limit=2)
    assert missed == cron.FireTimes(latest=[utc(2026, 6, 3, 23), utc(2026, 6, 4)], count=72, complete=True)


def test_an_interval_after_three_days_down_is_computed_from_after():
    after = utc(2026, 6, 1, 0, 3)
    missed = cron.fire_times(interval_task(7, "minutes", last_run_at=utc(2026, 5, 1)),
                                  after=after, until=after + timedelta(days=3), limit=2)
    # 4320 minutes / 7 = 617 ticks (and 1 minute to spare); the last is at 617 * 7 = 4319 minutes.
    assert missed == cron.FireTimes(
        latest=[after + timedelta(minutes=7 * 616), after + timedelta(minutes=7 * 617)], count=617, complete=True)


def test_an_interval_over_years_is_counted_exactly_without_walking():
    after = utc(2016, 1, 1)
    missed = cron.fire_times(interval_task(1, "minutes"), after=after, until=utc(2026, 1, 1), limit=1)
    # 3653 days (2016, 2020 and 2024 are leap years) of 1440 minutes.
    assert missed == cron.FireTimes(latest=[utc(2026, 1, 1)], count=5_260_320, complete=True)


def test_fire_times_bounds_are_after_exclusive_until_inclusive():
    task = cron_task("0 * * * *")
    window = cron.fire_times(task, after=utc(2026, 6, 1, 1), until=utc(2026, 6, 1, 3), limit=10)
    assert window == cron.FireTimes(latest=[utc(2026, 6, 1, 2), utc(2026, 6, 1, 3)], count=2, complete=True)
    assert cron.fire_times(task, after=utc(2026, 6, 1, 3), until=utc(2026, 6, 1, 1), limit=3).count == 0
    with pytest.raises(ValueError, match="limit"):
        cron.fire_times(task, after=utc(2026, 6, 1), until=utc(2026, 6, 2), limit=-1)


def test_counting_stops_at_the_cap_but_the_latest_are_still_the_latest():
    task = cron_task("* * * * *", "Europe/Paris")
    until = utc(2026, 9, 10, 12)  # about 100 days of minutes: 144,000 ticks
    missed = cron.fire_times(task, after=utc(2026, 6, 2), until=until, limit=3)
    assert (missed.count, missed.complete) == (cron.MAX_COUNTED_TICKS, False)
    assert missed.latest == [utc(2026, 9, 10, 11, 58), utc(2026, 9, 10, 11, 59), until]


@pytest.mark.parametrize(("until", "latest"), [
    # Until in the second pass of Paris's repeated hour: that pass fires nothing, the first did.
    (utc(2026, 10, 25, 1, 10), [utc(2026, 10, 25, 0, 58), utc(2026, 10, 25, 0, 59)]),
    # Until at the end of the spring gap: its collapsed fire counts once.
    (utc(2026, 3, 29, 1), [utc(2026, 3, 29, 0, 59), utc(2026, 3, 29, 1)]),
])
def test_past_the_cap_the_latest_follow_the_dst_rules(until, latest):
    task = cron_task("* * * * *", "Europe/Paris")
    capped = cron.fire_times(task, after=until - timedelta(days=80), until=until, limit=2)
    short = cron.fire_times(task, after=until - timedelta(hours=3), until=until, limit=2)
    assert (capped.complete, short.complete) == (False, True)
    assert capped.latest == short.latest == latest


def test_exactly_the_cap_is_complete():
    task = cron_task("* * * * *")
    after = utc(2026, 1, 1)
    missed = cron.fire_times(task, after=after, until=after + timedelta(minutes=cron.MAX_COUNTED_TICKS), limit=1)
    assert (missed.count, missed.complete) == (cron.MAX_COUNTED_TICKS, True)


# describe and validation ---------------------------------------------------------------------

@pytest.mark.parametrize(("task", "words"), [
    (interval_task(6, "hours"), "every 6 hours"),
    (interval_task(1, "minutes"), "every minute"),
    (interval_task(1, "hours"), "every hour"),
    (interval_task(1, "days"), "every day"),
    (interval_task(90, ""), "every 90 minutes"),
    (cron_task("0 3 * * *", "Europe/Paris"), "cron 0 3 * * * (Europe/Paris)"),
    (cron_task("@daily"), "cron @daily (UTC)"),
    (cron_task(""), "manual"),
    (Task(interval=2, interval_unit="days"), "every 2 days"),
])
def test_describe(task, words):
    assert cron.describe(task) == words
