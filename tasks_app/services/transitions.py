"""The conditional writes that move a run from one state to the next; everything above them calls
these, never writes a run's status itself.

Each takes the task's row lock first (db/locks.py) and reports whether it won, so racing callers
(a worker and its watchdog, the reaper, a cancel, a shutdown) end a run exactly once:

- ``claim_run``: queued -> running, for the one worker that wins it;
- ``end_run``: running (or queued) -> ended, with its event; the slot it frees goes to the task's
  next held run in the same transaction (``admit_after_end``), or, for the worker that ran it
  (``claim_for``), held -> running for that worker itself, under the same lock;
  ``end_instance_runs`` ends many runs of service instances together;
- ``admit_held``: held -> handed to the queue, one per free slot;
- ``request_stop`` / ``stop``: a queued run ends at once, a running one is asked to stop;
- ``delete_run``: an ended run and what hangs from it go.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Subquery

from tasks_app import clock, queue
from tasks_app.db.locks import lock_task, lock_task_reading, retry_on_conflict
from tasks_app.db.run_reads import run_with_task
from tasks_app.db.updates import update_row
from tasks_app.db.slots import Slots, count_slots, has_held_runs, next_held, slots_and_next_held
from tasks_app.exceptions import RunActive, TaskNotFound
from tasks_app.live import outbox
from tasks_app.models import REASON_FOR_STOP, STATUS_FOR_REASON, Event, EventName, OverlapPolicy, Run, RunStatus, Task
from tasks_app.platform import wakeups
from tasks_app.services.lookups import HOSTNAME, get_run


@retry_on_conflict
def claim_run(run_id: UUID | str, *, task_id: str | None = None, pid: int | None = None) -> Run | None:
    """queued -> running for exactly one worker; a duplicate delivery gets None and does nothing.

    The transaction only writes (the claim, the task's last_run_at, the event), the task's row
    locked first (db/locks.py); the run is read for execution after it commits.
    """
    if task_id is None:
        task_id = Run.objects.filter(pk=run_id).values_list("task_id", flat=True).first()
        if task_id is None:
            return None
    with transaction.atomic():
        lock_task(task_id)
        now = clock.now()
        won = update_row(Run, run_id, {
            "status": RunStatus.RUNNING, "started_at": now, "heartbeat_at": now, "worker_host": HOSTNAME,
            "worker_pid": pid if pid is not None else os.getpid(),
        }, where={"status": RunStatus.QUEUED})
        if not won:
            return None
        update_row(Task, task_id, {"last_run_at": now})
        outbox.emit_run_event(EventName.STARTED, Run(id=UUID(str(run_id)), task_id=task_id, status=RunStatus.RUNNING))
    return read_for_execution(run_id)


def read_for_execution(run_id: UUID | str) -> Run:
    """A run its worker claimed, with the columns execution uses (``FOR_EXECUTION``), its task's
    among them, in one hand-written query (``db.run_reads.run_with_task``); read after the claim
    commits."""
    return run_with_task(run_id, fields=FOR_EXECUTION)


#: The columns execution (its entry, executors, ctx and watchdog) and the end of a run use. Reading
#: only these halves the cost of a claim; a field left out still loads (with one more query) if
#: something touches it.
FOR_EXECUTION = (
    "id", "task_id", "status", "end_reason", "error", "parameters", "dry_run", "progress_current",
    "progress_total", "progress_message", "items_processed", "items_affected", "summary", "attempt", "task__id",
    "task__kind", "task__callable", "task__timeout", "task__on_overlap", "task__process", "task__parameters",
)


@dataclass(frozen=True)
class Ended:
    """What ``end_run`` did: ``won`` if this call ended the run (False: someone else had), and the
    task's next held run it claimed for the worker that ran it (``claim_for``), to be read for
    execution once committed (``read_for_execution``)."""

    won: bool
    next_run_id: UUID | None = None


@retry_on_conflict
def end_run(run: Run, *, reason: str, from_statuses: list[str], fields: dict[str, Any],
            claim_for: int | None = None) -> Ended:
    """finish_run's transaction: the task's row locked first (db/locks.py), then the conditional end.

    The slot the end frees goes to the task's next held run in the same transaction. With
    ``claim_for`` (the pid of the worker that ran it, which keeps the slot) that run goes straight
    to this worker, running (``_hand_over``): one transaction and one wait for the task's lock per
    run, as for forced runs, instead of an end and then a claim that locked the task again.
    Otherwise it is handed to the queue (``admit_after_end``).

    An end that loses (the watchdog, the reaper or a cancel ended the run first) claims nothing,
    and the held runs were admitted by that end. Should this worker's own earlier end have
    committed with its claim while its answer was lost (the worker then ends the run again and
    loses to itself), the run that end claimed is returned again (``_claimed_at_end``), so it is
    not left running with no one running it. Each attempt of ``retry_on_conflict`` rolled back
    whole, its claim with it.
    """
    with transaction.atomic():
        if claim_for is None:
            lock_task(run.task_id)
            on_overlap, max_concurrent = None, 0
        else:  # the lock and the two fields the hand-over needs, in one statement
            row = lock_task_reading(run.task_id, ("on_overlap", "max_concurrent"))
            on_overlap, max_concurrent = row or (None, 0)
        now = clock.now()
        status = STATUS_FOR_REASON[reason]
        won = update_row(Run, run.pk, {"status": status, "end_reason": reason, "ended_at": now, **fields},
                         where={"status": from_statuses})
        if not won:
            return Ended(won=False, next_run_id=None if claim_for is None else _claimed_at_end(run, pid=claim_for))
        for name, value in {"status": status, "end_reason": reason, "ended_at": now, **fields}.items():
            setattr(run, name, value)
        if claim_for is not None and on_overlap == OverlapPolicy.QUEUE:  # still queue, under the lock
            return Ended(won=True, next_run_id=_hand_over(run, max_concurrent=max_concurrent, pid=claim_for, now=now))
        outbox.emit_run_end(run)
        admit_after_end(run, now=now)
    return Ended(won=True)


def end_instance_runs(ends: list[tuple[Run, str, dict[str, Any]]]) -> list[Run]:
    """``end_run`` of many runs of service instances, ``(run, reason, fields)`` each, inside the
    caller's transaction: one lock per task, in id order, then each run's conditional end, and
    their end events in one insert. Nothing is ever held behind an instance (a service takes no
    triggers), so no slot is handed on. Returns the runs ended here (others ended first)."""
    if not ends:
        return []
    for task_id in sorted({run.task_id for run, _, _ in ends}):
        lock_task(task_id)
    now = clock.now()
    won = []
    for run, reason, fields in ends:
        values = {"status": STATUS_FOR_REASON[reason], "end_reason": reason, "ended_at": now, **fields}
        if update_row(Run, run.pk, values, where={"status": RunStatus.RUNNING}):
            for name, value in values.items():
                setattr(run, name, value)
            won.append(run)
    outbox.emit_run_events([outbox.run_end_event(run) for run in won])
    return won


def _hand_over(run: Run, *, max_concurrent: int, pid: int, now: datetime) -> UUID | None:
    """held -> running for the worker that just ended ``run`` (``end_run`` with ``claim_for``), if
    a slot is free: the task's next held run goes straight to that worker, with no trip through
    the queue, which is what keeps a deep queue draining as fast as forced runs. Any further free
    slots are handed to the queue as usual. Writes the end's event, then the claimed run's
    ``started``, together and in that order. Returns the claimed run's id.

    The counts come after the end, under the lock end_run took (see ``lock_and_count``): the slot
    ``run`` held is free in them. The policy was read in the locking statement itself, and the
    slots with the next held run in one statement: each trip to the database in here is a wait
    for every other writer of the task.
    """
    occupied, next_id = slots_and_next_held(run.task_id, now=now)
    free = max_concurrent - occupied
    if free <= 0 or next_id is None or not update_row(Run, next_id, {
            "status": RunStatus.RUNNING, "enqueued_at": now, "started_at": now, "heartbeat_at": now,
            "worker_host": HOSTNAME, "worker_pid": pid}, where={"status": RunStatus.QUEUED, "enqueued_at": None}):
        outbox.emit_run_end(run)
        return None
    update_row(Task, run.task_id, {"last_run_at": now})
    outbox.emit_run_events([outbox.run_end_event(run),
                            (EventName.STARTED, Run(id=next_id, task_id=run.task_id, status=RunStatus.RUNNING), "")])
    if free > 1:
        admit_held(run.task_id, now=now)
    return next_id


def _claimed_at_end(run: Run, *, pid: int) -> UUID | None:
    """The run this worker's own end of ``run`` claimed, if that end committed: a run of the task
    running in this worker that started the instant ``run`` ended (an end and its hand-over share
    one ``now``, and a claim_run's run was handed to the queue before it started). An end by
    anyone else (the watchdog, the reaper, a cancel) claims nothing. Asked only when an end with
    ``claim_for`` loses."""
    ended_at = Subquery(Run.objects.filter(pk=run.pk).values("ended_at"))
    return Run.objects.filter(task_id=run.task_id, status=RunStatus.RUNNING, worker_host=HOSTNAME, worker_pid=pid,
                              started_at=ended_at, enqueued_at=ended_at).values_list("pk", flat=True).first()


def admit_after_end(run: Run, *, now: datetime) -> None:
    """The slot a run frees goes to the task's next held run in the same transaction, under the
    lock already held: one write per run instead of two, and no wait for the scheduler. Only the
    queue policy holds runs; a run held by a trigger racing with this end is admitted by the
    scheduler's next pass."""
    if run.task.on_overlap == OverlapPolicy.QUEUE and has_held_runs(run.task_id):
        admit_held(run.task_id, now=now)


def lock_and_count(task_id: str, *, now: Any) -> tuple[Task, Slots]:
    """The task's policy (its row locked), then its slots: runs holding one, and held runs.

    The counts come after the locking statement on purpose: on PostgreSQL a statement that waited
    for the row lock still reads with the snapshot it started with, so counts taken in it would
    miss the run the previous lock holder just committed. (On SQLite the IMMEDIATE transaction
    already serialises writers.) Both reads are hand-written (db/locks.py, db/slots.py): this runs
    inside the write lock of every trigger, and the counts come from counters and indexes that do
    not grow with the backlog.
    """
    fields = ("kind", "enabled", "removed_at", "manual_run", "supports_dry_run", "on_overlap", "max_concurrent",
              "queue_max", "timeout")
    row = lock_task_reading(task_id, fields)
    if row is None:
        raise TaskNotFound(f"Task {task_id!r} does not exist.")
    task_slots = count_slots([task_id], now=now)[task_id]
    values = dict(zip(fields, row, strict=True))
    if isinstance(values["removed_at"], str):  # SQLite returns text from a raw query
        values["removed_at"] = datetime.fromisoformat(values["removed_at"])
    return Task(id=task_id, **values), task_slots


def admit_held(task_id: str, *, now: datetime) -> list[Run]:
    """Hand the oldest due held runs to the queue, one per free slot. Inside a transaction.

    It takes the task's row lock (db/locks.py) if the transaction does not hold it yet. Under that
    lock nothing else can admit, cancel or delete the task's runs, so the runs ``next_held`` names
    are still held when the one UPDATE marks them."""
    policy, slots = lock_and_count(task_id, now=now)
    free = policy.max_concurrent - slots.occupied
    ids = next_held(task_id, now=now, limit=free) if free > 0 else []
    if not ids:
        return []
    Run.objects.filter(pk__in=ids).update(enqueued_at=now)
    admitted = [Run(id=run_id, task_id=task_id, task=policy, status=RunStatus.QUEUED, enqueued_at=now)
                for run_id in ids]
    queue.enqueue_many([queue.prepare(run) for run in admitted])
    return admitted


@retry_on_conflict
def request_stop(run: Run, *, request: str) -> None:
    with transaction.atomic():
        lock_task(run.task_id)
        now = clock.now()
        if stop(run, request=request, now=now):
            admit_after_end(run, now=now)


def stop(run: Run, *, request: str, now: Any) -> bool:
    """Queued: end it now (True). Running: record why it must stop; its watchdog does the rest."""
    if run.status == RunStatus.QUEUED:
        ended = Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=STATUS_FOR_REASON[REASON_FOR_STOP[request]],
            end_reason=REASON_FOR_STOP[request],
            ended_at=now,
            stop_requested=request,
            stop_requested_at=now,
        )
        if ended:
            run.refresh_from_db()
            outbox.emit_run_end(run)
            return True
    if Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, stop_requested="").update(
            stop_requested=request, stop_requested_at=now):
        transaction.on_commit(functools.partial(wakeups.wake, stop_wakeup(run.pk)))
    return False


def stop_wakeup(run_id: Any) -> str:
    """The name a running run's watchdog listens on (platform/wakeups.py): a stop request made on
    its host wakes it once committed, rather than at its next half-second look."""
    return f"stop-{run_id}"


@retry_on_conflict
def delete_run(run_id: UUID | str) -> None:
    """Remove an ended run with its activity, log and events; active runs refuse."""
    task_id = get_run(run_id).task_id
    with transaction.atomic():
        lock_task(task_id)
        run = get_run(run_id)
        if run.is_active:
            raise RunActive(f"Run {run.id} is {run.status}; cancel it first.")
        Event.objects.filter(run_id=run.id).delete()
        run.delete()
