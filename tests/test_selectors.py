"""Reads: task status, run counts kept by the database, run pages and the plans that make them fast."""
from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import pytest
from django.db import connection

from tasks_app import clock, selectors
from tasks_app.db import run_reads
from tasks_app.models import (
    STATUS_FOR_REASON,
    EndReason,
    Run,
    RunCount,
    RunStatus,
    RunTrigger,
)
from tests.factories import make_run, make_task

pytestmark = pytest.mark.django_db

REASONS = [EndReason.SUCCESS, EndReason.SUCCESS, EndReason.FAILED, EndReason.CANCELLED, EndReason.SKIPPED]


def counted() -> dict[tuple[str, str], int]:
    """RunCount rows as the triggers left them, zero counts left out."""
    return {(row.task_id, row.status): row.count for row in RunCount.objects.all() if row.count}


def actual() -> dict[tuple[str, str], int]:
    rows: dict[tuple[str, str], int] = {}
    for task_id, status in Run.objects.values_list("task_id", "status"):
        rows[(task_id, status)] = rows.get((task_id, status), 0) + 1
    return rows


@pytest.mark.postgres
def test_run_counts_follow_every_kind_of_write() -> None:
    """Inserts, bulk inserts, conditional updates, deletes and cascades all keep the counts exact."""
    first, second = make_task(), make_task()
    queued = make_run(first)
    make_run(first, end_reason=EndReason.SUCCESS)
    Run.objects.bulk_create([Run(task=second, trigger=RunTrigger.SCHEDULE, created_at=clock.now(),
                                 status=RunStatus.COMPLETED, end_reason=EndReason.SUCCESS) for _ in range(5)])
    assert counted() == actual() == {(first.id, "queued"): 1, (first.id, "completed"): 1, (second.id, "completed"): 5}

    assert Run.objects.filter(pk=queued.pk, status=RunStatus.QUEUED).update(status=RunStatus.RUNNING) == 1
    assert Run.objects.filter(pk=queued.pk, status=RunStatus.QUEUED).update(status=RunStatus.RUNNING) == 0
    Run.objects.filter(pk=queued.pk).update(progress_current=3)  # not a status change
    Run.objects.filter(task=second).update(status=RunStatus.FAILED, end_reason=EndReason.CRASHED)
    assert counted() == actual() == {(first.id, "running"): 1, (first.id, "completed"): 1, (second.id, "failed"): 5}

    Run.objects.filter(pk__in=list(Run.objects.filter(task=second).values_list("pk", flat=True)[:2])).delete()
    assert counted() == actual() == {(first.id, "running"): 1, (first.id, "completed"): 1, (second.id, "failed"): 3}

    first.delete()  # cascades to its runs and its counts
    assert counted() == actual() == {(second.id, "failed"): 3}


def make_history(task, count: int, *, step: timedelta = timedelta(minutes=5)) -> list[Run]:
    """``count`` ended runs, oldest first, each a few minutes after the previous one."""
    start = clock.now() - step * count
    reasons = itertools.cycle(REASONS)
    runs = []
    for index in range(count):
        reason = next(reasons)
        runs.append(Run(task=task, trigger=RunTrigger.SCHEDULE if index % 3 else RunTrigger.API,
                        created_at=start + step * index, status=STATUS_FOR_REASON[reason], end_reason=reason))
    return Run.objects.bulk_create(runs)


@pytest.mark.parametrize("statuses", [(), ("failed",), ("completed", "failed"), tuple(RunStatus.values)])
def test_every_page_matches_the_plain_ordered_list(statuses: tuple[str, ...]) -> None:
    """Pages read from either end give exactly the slices of the newest-first list."""
    task, other = make_task(), make_task()
    make_history(task, 47)
    make_history(other, 13, step=timedelta(minutes=7))
    for task_id in (task.id, None):
        expected = Run.objects.order_by("-created_at")
        if task_id:
            expected = expected.filter(task_id=task_id)
        if statuses:
            expected = expected.filter(status__in=statuses)
        expected_ids = list(expected.values_list("id", flat=True))
        for limit in (1, 5, 20, 500):
            pages = -(-len(expected_ids) // limit)
            for page in range(1, pages + 2):
                runs, total = selectors.page_of_runs(task_id=task_id, statuses=statuses, page=page, limit=limit)
                assert total == len(expected_ids)
                assert [run.id for run in runs] == expected_ids[(page - 1) * limit: page * limit], (task_id, limit, page)


def test_a_trigger_filter_is_counted_from_the_rows() -> None:
    task = make_task()
    make_history(task, 30)
    expected = list(Run.objects.filter(trigger=RunTrigger.API).order_by("-created_at").values_list("id", flat=True))
    runs, total = selectors.page_of_runs(trigger=RunTrigger.API, page=2, limit=4)
    assert total == len(expected) == 10
    assert [run.id for run in runs] == expected[4:8]
    assert "traceback" in runs[0].get_deferred_fields()  # a page never reads the traceback


# --- Query plans (SQLite) -------------------------------------------------------------------------

LIST_FILTERS = {
    "history": {"task_id": "plans"},
    "history, one status": {"task_id": "plans", "statuses": ["failed"]},
    "history, several statuses": {"task_id": "plans", "statuses": ["completed", "failed"]},
    "runs": {},
    "runs, one status": {"statuses": ["failed"]},
    "runs, several statuses": {"statuses": ["completed", "failed"]},
}


def query_plan(sql: str, params: tuple) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return " / ".join(row[-1] for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's planner; PostgreSQL plans from its own statistics")
@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh database", "after ANALYZE"])
def test_each_page_of_ids_is_read_from_an_index_alone_without_sorting(analyzed: bool) -> None:
    """Without statistics SQLite once sorted every completed and failed run for one page (75 ms
    at 100k runs); ANALYZE changed its mind. Both directions, both ways, one covering index."""
    task = make_task(id="plans")
    make_history(task, 3000)
    for _ in range(5):
        make_history(make_task(), 400)
    if analyzed:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    for name, filters in LIST_FILTERS.items():
        index = selectors.list_index(task_id=filters.get("task_id"), statuses=filters.get("statuses", ()))
        for order in ("-created_at", "created_at"):
            ids = selectors.filter_runs(**filters).order_by(order).values_list("id", flat=True)[4000:4020]
            plan = query_plan(*run_reads.sql_through_index(ids, index))
            assert f"COVERING INDEX {index}" in plan, (name, order, plan)
            assert "TEMP B-TREE" not in plan, (name, order, plan)


# --- The admin's reads ----------------------------------------------------------------------------


@pytest.mark.postgres  # hand-written SQL: checked on both backends
def test_recent_runs_are_each_tasks_newest_first_with_their_durations(clock) -> None:
    busy, quiet = make_task(id="busy"), make_task(id="quiet")
    make_task(id="idle")
    for index in range(25):
        started = clock.advance(seconds=10)
        make_run(busy, end_reason="success", created_at=started, started_at=started,
                 ended_at=started + timedelta(seconds=index))
    skipped = make_run(quiet, end_reason="skipped", started_at=None, ended_at=clock.now())

    found = selectors.recent_runs(["busy", "quiet", "idle", "busy"], limit=20)

    assert list(found) == ["busy", "quiet", "idle"] and found["idle"] == []
    assert [run.duration for run in found["busy"]] == [float(seconds) for seconds in range(24, 4, -1)]
    created = [run.created_at for run in found["busy"]]
    assert created == sorted(created, reverse=True) and created[0] == clock.now()
    assert found["busy"][0].created_at.tzinfo is not None and isinstance(found["busy"][0].id, uuid.UUID)
    assert [(run.id, run.status, run.duration) for run in found["quiet"]] == [(skipped.id, "skipped", None)]
    assert selectors.recent_runs([]) == {}


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's planner; PostgreSQL plans from its own statistics")
def test_recent_runs_walk_each_tasks_history_index() -> None:
    make_history(make_task(id="plans"), 500)
    plan = query_plan(run_reads.latest_runs_sql(2, fields=selectors.RECENT_FIELDS, limit=20), ("plans", "other"))
    assert plan.count("USING INDEX run_task_history (task_id=?)") == 2 and "TEMP B-TREE" not in plan, plan
