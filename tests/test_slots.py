"""tasks_app/db/slots.py: a task's slots from its counters, its next held runs from partial
indexes, whatever the backlog; the plans are pinned on SQLite and PostgreSQL (``make test`` runs
the postgres-marked tests on both)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app import clock, services
from tasks_app.db import slots
from tasks_app.models import EndReason, Run, RunStatus, RunTrigger, STATUS_FOR_REASON

from .factories import make_task

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def add_runs(task, count: int, *, ago: float = 0, **fields) -> list[Run]:
    """``count`` runs, one a second, the newest ``ago`` seconds old."""
    now = clock.now() - timedelta(seconds=ago)
    runs = [Run(task=task, trigger=RunTrigger.API, created_at=now - timedelta(seconds=count - index), **fields)
            for index in range(count)]
    return Run.objects.bulk_create(runs)


def naive_slots(task_id: str, now) -> tuple[int, int]:
    """What the counters stand for, counted from the rows."""
    runs = Run.objects.filter(task_id=task_id)
    occupied = runs.filter(status=RunStatus.RUNNING).count() + runs.filter(
        status=RunStatus.QUEUED, enqueued_at__isnull=False).count()
    waiting = runs.held().due(now).count()
    return occupied, waiting


def test_the_counters_give_the_same_slots_as_counting_the_rows(clock):
    task = make_task(on_overlap="queue", queue_max=100, max_concurrent=3)
    now = clock.now()
    add_runs(task, 4, status=RunStatus.QUEUED)  # held
    add_runs(task, 2, status=RunStatus.QUEUED, enqueued_at=now)  # handed to the queue
    add_runs(task, 1, status=RunStatus.RUNNING, started_at=now)
    add_runs(task, 2, status=RunStatus.QUEUED, not_before=now + timedelta(minutes=5))  # retries, later
    add_runs(task, 1, status=RunStatus.QUEUED, not_before=now - timedelta(minutes=5))  # a retry due now
    add_runs(task, 3, status=STATUS_FOR_REASON[EndReason.SUCCESS], end_reason=EndReason.SUCCESS)
    found = slots.count_slots([task.pk], now=now)[task.pk]
    assert (found.occupied, found.waiting()) == naive_slots(task.pk, now) == (3, 5)
    # They follow every change: an admission, a claim, an end, a deletion, a retry coming due.
    held = Run.objects.filter(task=task).held().due(now).order_by("created_at").first()
    Run.objects.filter(pk=held.pk).update(enqueued_at=now)
    Run.objects.filter(task=task, status=RunStatus.RUNNING).update(status=RunStatus.COMPLETED, end_reason="success")
    Run.objects.filter(task=task, status=RunStatus.QUEUED, enqueued_at__isnull=False).first().delete()
    later = now + timedelta(minutes=10)
    found = slots.count_slots([task.pk], now=later)[task.pk]
    assert (found.occupied, found.waiting()) == naive_slots(task.pk, later) == (2, 6)


def test_held_runs_are_admitted_oldest_first_and_only_when_due(clock):
    task = make_task(on_overlap="queue", queue_max=100)
    now = clock.now()
    retry = add_runs(task, 1, ago=10, status=RunStatus.QUEUED, not_before=now + timedelta(minutes=1))[0]
    first, second = add_runs(task, 2, status=RunStatus.QUEUED)
    assert slots.next_held(task.pk, now=now, limit=5) == [first.pk, second.pk]
    assert slots.next_held(task.pk, now=now + timedelta(minutes=2), limit=5) == [retry.pk, first.pk, second.pk]
    assert slots.slots_and_next_held(task.pk, now=now) == (0, first.pk)
    assert slots.slots_and_next_held(task.pk, now=now + timedelta(minutes=2)) == (0, retry.pk)
    assert slots.tasks_with_held_runs() == [task.pk] and slots.has_held_runs(task.pk)


def later_counts(queries: CaptureQueriesContext) -> list[str]:
    """The statements among ``queries`` that count held runs waiting for a later time."""
    return [query["sql"] for query in queries.captured_queries if "not_before >" in query["sql"]]


def test_held_runs_waiting_for_later_are_counted_only_when_a_decision_needs_them(clock):
    """A free slot with held runs: the trigger must know whether any is due (here only a retry
    waiting for later is held, so the new run takes the slot). A busy queue task under its
    queue_max, and a worker claiming the next held run, decide from the counters alone."""
    task = make_task(on_overlap="queue", queue_max=100, max_concurrent=1)
    add_runs(task, 1, status=RunStatus.QUEUED, not_before=clock.now() + timedelta(minutes=5))
    with CaptureQueriesContext(connection) as queries:
        first = services.trigger(task.pk, source=RunTrigger.API, requested_by="test")
    assert first.enqueued_at is not None and len(later_counts(queries)) == 1
    with CaptureQueriesContext(connection) as queries:
        second = services.trigger(task.pk, source=RunTrigger.API, requested_by="test")  # the slot is taken
        claimed = services.finish_and_claim_next(services.claim_run(first.pk, task_id=task.pk),
                                                 reason=EndReason.SUCCESS, claim_for=1)
    assert second.enqueued_at is None and claimed == second.pk
    assert later_counts(queries) == []


def test_a_queue_ten_thousand_deep_admits_in_order_as_slots_free(clock):
    task = make_task(on_overlap="queue", queue_max=20_000, max_concurrent=2)
    held = add_runs(task, 10_000, status=RunStatus.QUEUED)
    admitted = services.release_held_runs(task.pk)
    assert [run.pk for run in admitted] == [held[0].pk, held[1].pk]
    assert services.release_held_runs(task.pk) == []  # both slots taken
    services.finish_run(services.claim_run(held[0].pk, task_id=task.pk), reason=EndReason.SUCCESS)  # frees one, admits the next
    assert Run.objects.get(pk=held[2].pk).enqueued_at is not None
    assert Run.objects.get(pk=held[3].pk).enqueued_at is None


def explain(sql: str) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            return " / ".join(row[-1] for row in cursor.fetchall())
        cursor.execute("EXPLAIN " + sql)
        return " / ".join(row[0] for row in cursor.fetchall())


def test_the_slot_reads_use_the_held_indexes_not_the_backlog(clock):
    """Behind 10,000 held runs and a long history, each statement reads an index of held runs
    (or a few counter rows): none walks the backlog, none sorts it."""
    task = make_task(id="deep", on_overlap="queue", queue_max=20_000)
    add_runs(task, 10_000, status=RunStatus.QUEUED)
    add_runs(task, 20, status=RunStatus.QUEUED, not_before=clock.now() + timedelta(hours=1))
    add_runs(task, 5_000, status=RunStatus.COMPLETED, end_reason=EndReason.SUCCESS)
    for other in range(300):  # counters of many tasks, as on a busy installation
        add_runs(make_task(id=f"other{other}"), 1, status=RunStatus.COMPLETED, end_reason=EndReason.SUCCESS)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    with CaptureQueriesContext(connection) as queries:
        assert slots.count_slots([task.pk], now=clock.now())[task.pk].waiting() == 10_000
        slots.next_held(task.pk, now=clock.now(), limit=4)
        assert slots.slots_and_next_held(task.pk, now=clock.now())[0] == 0
    counters, later, fifo, hand_over = (explain(query["sql"]) for query in queries.captured_queries)
    assert not re.search(r"tasks_app_run\b", counters), counters  # counter rows only, found by index:
    assert "USING INDEX" in counters or "USING COVERING INDEX" in counters or "Index" in counters, counters
    assert "run_held_later" in later, later
    assert "run_held_fifo" in fifo, fifo
    assert "run_held_fifo" in hand_over, hand_over
    for plan in (later, fifo, hand_over):
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
        assert "SCAN tasks_app_run" not in plan and "Seq Scan" not in plan, plan
