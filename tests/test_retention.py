"""tasks_app/retention.py: which runs and events a sweep deletes, and what it must leave alone."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app import retention, selectors
from tasks_app.models import Activity, EndReason, Event, EventName, Run, RunLogChunk, RunStatus, RunTrigger, Task

from .factories import log_of, make_run, make_task, write_log

pytestmark = pytest.mark.django_db

DAY = 86400.0


def ended_run(task: Task, **overrides: Any) -> Run:
    return make_run(task, end_reason=EndReason.SUCCESS, **overrides)


def ended_runs(task: Task, count: int, clock: Any, *, every: float = 60) -> list[Run]:
    """``count`` ended runs, oldest first, ``every`` seconds apart; the clock ends at the newest."""
    runs = []
    for _ in range(count):
        clock.advance(seconds=every)
        runs.append(ended_run(task))
    return runs


def surviving_ids(task: Task) -> set[Any]:
    return set(Run.objects.filter(task=task).values_list("id", flat=True))


def ids(runs: list[Run]) -> set[Any]:
    return {run.id for run in runs}


def add_event(run: Run | None, task: Task, *, created_at: Any) -> Event:
    return Event.objects.create(name=EventName.PROGRESS, task_id=task.id, run_id=run.id if run else None,
                                data={}, created_at=created_at)


def test_queued_and_running_runs_survive_and_do_not_count_toward_keep_runs(clock):
    task = make_task(keep_runs=2, keep_for=DAY)
    old_queued = make_run(task)
    old_running = make_run(task, status=RunStatus.RUNNING, started_at=clock.now())
    clock.advance(seconds=2 * DAY)
    oldest_ended, *kept_ended = ended_runs(task, 3, clock)
    clock.advance(seconds=60)
    new_queued = make_run(task)
    new_running = make_run(task, status=RunStatus.RUNNING, started_at=clock.now())

    report = retention.sweep()

    # Older than keep_for and behind more than keep_runs runs, the active ones stay; and the two
    # newest runs being active does not push the two newest ended runs out.
    assert surviving_ids(task) == ids([old_queued, old_running, *kept_ended, new_queued, new_running])
    assert oldest_ended.id not in surviving_ids(task)
    assert report.runs_deleted == 1


def test_keep_runs_keeps_the_newest_ended_runs(clock):
    task = make_task(keep_runs=3, keep_for=30 * DAY)
    runs = ended_runs(task, 5, clock)

    report = retention.sweep()

    assert surviving_ids(task) == ids(runs[-3:])
    assert report.runs_deleted == 2


def test_keep_runs_is_exact_when_runs_share_a_creation_time(clock):
    task = make_task(keep_runs=2, keep_for=30 * DAY)
    for _ in range(5):
        ended_run(task)  # all created in the same (frozen) microsecond

    retention.sweep()

    assert len(surviving_ids(task)) == 2


def test_keep_for_deletes_runs_that_ended_before_the_window(clock):
    task = make_task(keep_runs=1000, keep_for=3600)
    start = clock.now()
    stale = ended_run(task)
    stale_without_end_time = ended_run(task, ended_at=None)  # falls back to created_at
    long_run = make_run(task, status=RunStatus.RUNNING, started_at=start)
    clock.advance(seconds=3600 + 1)
    long_run.status, long_run.end_reason, long_run.ended_at = RunStatus.COMPLETED, EndReason.SUCCESS, clock.now()
    long_run.save()
    clock.advance(seconds=1800)
    recent = ended_run(task)

    report = retention.sweep()

    # The long run was created before the window but ended inside it: its end is what counts.
    assert surviving_ids(task) == {long_run.id, recent.id}
    assert {stale.id, stale_without_end_time.id}.isdisjoint(surviving_ids(task))
    assert report.runs_deleted == 2


def test_keep_for_is_measured_from_the_now_given(clock):
    task = make_task(keep_runs=1000, keep_for=3600)
    run = ended_run(task)

    assert retention.sweep(now=clock.now() + timedelta(seconds=3599)).runs_deleted == 0
    assert retention.sweep(now=clock.now() + timedelta(seconds=3601)).runs_deleted == 1
    assert not Run.objects.filter(id=run.id).exists()


def test_both_limits_apply_each_deleting_what_the_other_would_keep(clock):
    busy = make_task(keep_runs=2, keep_for=DAY)
    quiet = make_task(keep_runs=3, keep_for=DAY)
    quiet_old = ended_runs(quiet, 2, clock)
    clock.advance(seconds=2 * DAY)
    busy_runs = ended_runs(busy, 5, clock)  # all within keep_for: only the count removes any
    quiet_recent = ended_run(quiet)  # within keep_runs with the old two: only the age removes them

    report = retention.sweep()

    assert surviving_ids(busy) == ids(busy_runs[-2:])
    assert surviving_ids(quiet) == {quiet_recent.id}
    assert {run.id for run in quiet_old}.isdisjoint(surviving_ids(quiet))
    assert report.runs_deleted == 3 + 2
    assert report.tasks_swept == 2


def test_a_removed_task_keeps_history_within_its_retention(clock):
    task = make_task(keep_runs=1, keep_for=30 * DAY, removed_at=clock.now())
    runs = ended_runs(task, 3, clock)

    report = retention.sweep()

    assert surviving_ids(task) == {runs[-1].id}
    assert Task.objects.filter(id=task.id).exists()
    assert report.tasks_swept == 1


def test_a_deleted_run_takes_its_activity_and_events_and_nothing_else(clock):
    task = make_task(keep_runs=1, keep_for=30 * DAY)
    other_task = make_task(keep_runs=1, keep_for=30 * DAY)
    doomed, kept = ended_runs(task, 2, clock)
    other = ended_run(other_task)
    for run in (doomed, kept, other):
        Activity.objects.create(run=run, item_id="item", action="scan", status="ok", timestamp=clock.now())
        add_event(run, run.task, created_at=clock.now())
    task_event = add_event(None, task, created_at=clock.now())

    report = retention.sweep()

    assert surviving_ids(task) == {kept.id}
    assert not Activity.objects.filter(run_id=doomed.id).exists()
    assert not Event.objects.filter(run_id=doomed.id).exists()
    assert Activity.objects.filter(run_id__in=[kept.id, other.id]).count() == 2
    assert Event.objects.filter(run_id__in=[kept.id, other.id]).count() == 2
    assert Event.objects.filter(id=task_event.id).exists()
    assert (report.runs_deleted, report.events_deleted) == (1, 1)


@pytest.mark.postgres
def test_a_deleted_run_takes_its_log_in_batches_without_reading_it(clock):
    task = make_task(keep_runs=2, keep_for=30 * DAY)
    runs = ended_runs(task, 7, clock)
    for run in runs:
        write_log(run, b"x" * 5000, chunk_size=1000)  # 5 chunks a run
    survivors = runs[-2:]

    with CaptureQueriesContext(connection) as queries:
        report = retention.sweep(batch_size=2)

    assert report.runs_deleted == 5 and surviving_ids(task) == ids(survivors)
    assert set(RunLogChunk.objects.values_list("run_id", flat=True).distinct()) == ids(survivors)
    assert all(log_of(run) == (0, b"x" * 5000, 5000) for run in survivors)
    chunk_table = RunLogChunk._meta.db_table
    touching = [query["sql"] for query in queries.captured_queries if chunk_table in query["sql"]]
    # One DELETE per batch of runs (3 batches of at most 2), never a read of the chunks' bytes.
    assert len(touching) == 3 and all(sql.startswith("DELETE") for sql in touching)


def test_events_are_pruned_once_older_than_event_retention(clock, settings):
    settings.TASKDECK = {**settings.TASKDECK, "EVENT_RETENTION": 900}
    task = make_task()
    old = add_event(None, task, created_at=clock.now())
    clock.advance(seconds=300)
    young = add_event(None, task, created_at=clock.now())

    clock.advance(seconds=599)  # old is 899 s old
    assert retention.prune_events(now=clock.now()) == 0
    clock.advance(seconds=2)  # old is 901 s old, young 601 s
    assert retention.prune_events(now=clock.now()) == 1
    assert list(Event.objects.values_list("id", flat=True)) == [young.id]
    assert not Event.objects.filter(id=old.id).exists()


def test_events_are_kept_ten_minutes_even_with_a_shorter_event_retention(clock, settings):
    settings.TASKDECK = {**settings.TASKDECK, "EVENT_RETENTION": 60}
    task = make_task()
    event = add_event(None, task, created_at=clock.now())

    clock.advance(seconds=599)
    assert retention.sweep().events_deleted == 0
    assert Event.objects.filter(id=event.id).exists()
    clock.advance(seconds=2)
    assert retention.sweep().events_deleted == 1
    assert not Event.objects.exists()


def test_run_counts_match_the_rows_after_a_sweep(clock):
    task = make_task(keep_runs=3, keep_for=DAY)
    make_run(task)
    make_run(task, status=RunStatus.RUNNING, started_at=clock.now())
    for reason in (EndReason.SUCCESS, EndReason.FAILED, EndReason.CANCELLED, EndReason.SKIPPED):
        clock.advance(seconds=60)
        make_run(task, end_reason=reason)
    clock.advance(seconds=2 * DAY)
    ended_runs(task, 2, clock)

    report = retention.sweep()

    # The three oldest ended runs are past keep_runs; the fourth is past keep_for.
    assert report.runs_deleted == 4
    assert selectors.count_runs(task_id=task.id) == Run.objects.filter(task=task).count() == 2 + 2
    for status in RunStatus.values:
        assert selectors.count_runs(task_id=task.id, statuses=[status]) == \
            Run.objects.filter(task=task, status=status).count()


def test_a_long_history_is_cut_to_keep_runs_in_batches(clock):
    task = make_task(keep_runs=1200, keep_for=30 * DAY)
    start = clock.now() - timedelta(days=1)
    rows = []
    for index in range(5000):
        created_at = start + timedelta(seconds=index)
        # Every 250th run is still running: it must survive and not count toward keep_runs.
        status = RunStatus.RUNNING if index % 250 == 0 else RunStatus.COMPLETED
        rows.append(Run(task=task, status=status, trigger=RunTrigger.SCHEDULE, created_at=created_at,
                        end_reason="" if status == RunStatus.RUNNING else EndReason.SUCCESS,
                        ended_at=None if status == RunStatus.RUNNING else created_at))
    Run.objects.bulk_create(rows)
    ended_newest_first = [run.id for run in reversed(rows) if run.status != RunStatus.RUNNING]
    running = {run.id for run in rows if run.status == RunStatus.RUNNING}

    with CaptureQueriesContext(connection) as queries:
        report = retention.sweep(batch_size=500)

    assert report.runs_deleted == len(ended_newest_first) - 1200 == 3780
    assert surviving_ids(task) == set(ended_newest_first[:1200]) | running
    assert selectors.count_runs(task_id=task.id) == 1200 + len(running)
    # One transaction (a savepoint inside the test's own) per 500 runs: 3,780 runs take 8.
    savepoints = [query for query in queries.captured_queries if query["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) == 8
