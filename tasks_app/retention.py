"""Retention: what history Taskdeck keeps, so the database stays small without losing what matters.

Runs. Each task keeps its newest ``keep_runs`` ended runs (newest by ``created_at``, the order the
history is shown in) and only those that ended within the last ``keep_for`` seconds; an ended run
failing either limit is deleted. Both limits apply, so a busy task is held to a count and a quiet
one to an age. Removed tasks obey their retention too: they keep their history, not for ever.
Queued and running runs are never deleted and do not count toward ``keep_runs``: a run is history
only once it has ended, and deleting one in flight would lose a worker's writes. Definitions and
settings require at least 1; a 0 typed into the admin is read as no limit of that kind, never as
"delete everything".

A deleted run takes its activity and its log's chunks (foreign key cascades: one DELETE per table
and batch, the chunks' bytes never read) and its events (by ``run_id``) with it, so nothing names
a run that is gone. The per-status run
counts follow on their own: database triggers keep them (models.RunCount).

Events. The live-event outbox is kept ``EVENT_RETENTION`` seconds and never less than 600, so an
SSE client that reconnects within ten minutes can still resume from its Last-Event-ID.

Runs are deleted ``batch_size`` at a time, one short transaction each, because SQLite lets one
writer in at a time: a sweep must never hold the write lock for as long as a whole history takes to
delete. The ids of a batch are read before its transaction starts and come from the task's history
index alone (``run_task_history``), so a sweep costs what it deletes, not the size of the history.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q

from tasks_app import clock
from tasks_app.conf import taskdeck_settings
from tasks_app.db.locks import lock_task, retry_on_conflict
from tasks_app.models import Event, Run, RunQuerySet, Task

#: Events younger than this (seconds) are kept whatever EVENT_RETENTION says: reconnecting
#: clients resume from them.
MINIMUM_EVENT_RETENTION = 600.0


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did, for the scheduler's log line and the tests."""

    runs_deleted: int
    events_deleted: int
    """Events of deleted runs plus events pruned for age."""
    tasks_swept: int
    """Tasks examined, removed ones included, whether or not they lost runs."""


def sweep(*, now: datetime | None = None, batch_size: int = 500) -> SweepReport:
    """Delete every task's ended runs past its keep_runs or keep_for, then prune old events.

    Safe to run while workers write: only ended runs are selected, and an ended run never becomes
    active again (a retry is a new run), so a batch chosen outside its transaction stays valid.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    now = now or clock.now()
    runs_deleted = 0
    events_deleted = 0
    policies = list(Task.objects.order_by("id").values_list("id", "keep_runs", "keep_for"))
    for task_id, keep_runs, keep_for in policies:
        ended = Run.objects.filter(task_id=task_id).ended()
        for doomed in (_beyond_newest(ended, keep_runs=keep_runs), _ended_before(ended, now=now, keep_for=keep_for)):
            if doomed is None:
                continue
            runs, events = _delete_in_batches(task_id, doomed, batch_size=batch_size)
            runs_deleted += runs
            events_deleted += events
    events_deleted += prune_events(now=now, batch_size=batch_size)
    return SweepReport(runs_deleted=runs_deleted, events_deleted=events_deleted, tasks_swept=len(policies))


def prune_events(*, now: datetime, batch_size: int = 500) -> int:
    """Delete events older than the retention window; returns how many went.

    Its own function because the outbox grows with every progress write, far faster than runs
    end, so the scheduler may call it more often than ``sweep``.
    """
    window = max(float(taskdeck_settings.EVENT_RETENTION), MINIMUM_EVENT_RETENTION)
    old = Event.objects.filter(created_at__lt=now - timedelta(seconds=window)).order_by()
    deleted = 0
    while ids := list(old.values_list("id", flat=True)[:batch_size]):
        with transaction.atomic():
            deleted += Event.objects.filter(id__in=ids).delete()[0]
    return deleted


def _beyond_newest(ended: RunQuerySet, *, keep_runs: int) -> RunQuerySet | None:
    """The ended runs after the newest ``keep_runs`` in history order, or None if none are.

    The boundary is the last kept run, found by one slice of the history index; everything older
    than it goes. Runs created in the same microsecond are ordered by id so the count is exact.
    """
    if keep_runs <= 0:
        return None
    newest_first = ended.order_by("-created_at", "-id").values_list("created_at", "id")
    boundary = list(newest_first[keep_runs - 1:keep_runs])
    if not boundary:
        return None
    [(created_at, run_id)] = boundary
    # created_at__lte gives the database an index range to seek to; the Q settles ties.
    return ended.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=run_id),
                        created_at__lte=created_at)


def _ended_before(ended: RunQuerySet, *, now: datetime, keep_for: float) -> RunQuerySet | None:
    """Ended runs whose end (ended_at, else created_at) is older than ``now - keep_for``.

    A run ends after it is created, so created_at before the cut-off is implied; saying it lets
    the history index narrow the scan to old runs instead of reading every row's ended_at.
    """
    if keep_for <= 0:
        return None
    cut_off = now - timedelta(seconds=keep_for)
    return ended.filter(Q(ended_at__lt=cut_off) | Q(ended_at__isnull=True), created_at__lt=cut_off)


def _delete_in_batches(task_id: str, doomed: RunQuerySet, *, batch_size: int) -> tuple[int, int]:
    """Delete runs (and their events and activity) ``batch_size`` per transaction.

    Returns (runs, events) deleted. Each pass reads the next ids before taking the write lock;
    the rows it deletes leave the query, so the loop ends when nothing matches.
    """
    runs_deleted = 0
    events_deleted = 0
    doomed = doomed.order_by()
    while ids := list(doomed.values_list("id", flat=True)[:batch_size]):
        batch_deleted, batch_events = _delete_batch(task_id, ids)
        events_deleted += batch_events
        if not batch_deleted:
            break  # another process deleted them first; the next sweep finishes, no spinning
        runs_deleted += batch_deleted
    return runs_deleted, events_deleted


@retry_on_conflict
def _delete_batch(task_id: str, ids: list[Any]) -> tuple[int, int]:
    """One batch of one task's ended runs, the task's row locked first (db/locks.py)."""
    with transaction.atomic():
        lock_task(task_id)
        events_deleted = Event.objects.filter(run_id__in=ids).delete()[0]
        # only("id"): the collector loads the rows it deletes; a run's traceback and result can
        # be large, and none of it is needed to delete the row.
        _, per_model = Run.objects.filter(id__in=ids).ended().only("id").delete()
    return per_model.get(Run._meta.label, 0), events_deleted
