"""Every write Taskdeck makes. API, admin, command line, scheduler and runner call these.

The run lifecycle lives here. ``trigger`` is the door for every source (overlap policy decided
under the task's row lock); the scheduler's ``fire_ticks`` is the same door for a batch of due
ticks, sharing its policy decision (``_place``) and its writes (``_Writes``). ``claim_run`` and
``finish_run`` are the conditional transitions a worker makes; ``after_run_ended`` schedules
retries; ``cancel_run``/``reap_*`` make sure nothing stays running.
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q

from tasks_app import clock, dispatch, events, parameters, schedule_rules, schedules
from tasks_app.conf import taskdeck_settings
from tasks_app.db.locks import lock_task, retry_on_conflict
from tasks_app.db.slots import Slots, count_slots, has_held_runs, next_held
from tasks_app.exceptions import (
    AlreadyRunning,
    CancelUnsupported,
    DryRunUnsupported,
    InvalidParameters,
    InvalidSchedule,
    NotCronScheduled,
    NotIntervalScheduled,
    NotManuallyRunnable,
    NotRunning,
    QueueFull,
    RunActive,
    RunAlreadyEnded,
    RunNotFound,
    TaskDisabled,
    TaskNotFound,
    TaskdeckError,
    TaskRemoved,
)
from tasks_app.models import (
    ON_DEMAND_TRIGGERS,
    REASON_FOR_STOP,
    RETRYABLE_REASONS,
    STATUS_FOR_REASON,
    CatchUp,
    EndReason,
    Event,
    EventName,
    Heartbeat,
    OverlapPolicy,
    Run,
    RunStatus,
    RunTrigger,
    StopRequest,
    Task,
)
from tasks_app.registry import OPERATOR_FIELDS

logger = logging.getLogger(__name__)

HOSTNAME = socket.gethostname()


# --- Triggering ---------------------------------------------------------------------------------


@retry_on_conflict
def trigger(
    task: Task | str,
    *,
    source: str,
    requested_by: str,
    parameters: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    force: bool = False,
    not_before: datetime | None = None,
    retry_of: Run | None = None,
) -> Run:
    """One door for every caller, so the overlap policy is decided under one row lock.

    Returns the new run: queued (handed to a worker, or held for a free slot or for its
    ``not_before`` time), or already ended ``skipped``/``queue_full`` when a non-interactive
    source (schedule, watcher, retry, ...) met a full task. Interactive sources (api, manual) get
    an exception instead and no run is created. ``retry_of`` makes the run the next attempt of
    that run's chain.

    Everything that needs no lock (checking parameters, building the queue package) happens
    before the write transaction, which SQLite serialises across every process: it holds only
    the policy decision and the writes.
    """
    task = get_task(task.pk if isinstance(task, Task) else task)
    _check_triggerable(task, source=source, dry_run=dry_run)
    now = clock.now()
    run = Run(
        task=task,
        trigger=source,
        triggered_by=requested_by,
        parameters=parameters_for(task, parameters),
        dry_run=dry_run,
        created_at=now,
        not_before=not_before,
    )
    if retry_of is not None:
        run.attempt = retry_of.attempt + 1
        run.retry_of_id = retry_of.retry_of_id or retry_of.pk  # every retry links to the first run
    package = dispatch.prepare(run)
    writes = _Writes()
    with transaction.atomic():
        # Read again under the lock: an operator may just have changed the task.
        policy, occupied, waiting = _lock_and_count(task.pk, now=now)
        _check_triggerable(policy, source=source, dry_run=dry_run)
        _place(run, package, policy, Slots(occupied, waiting), writes, source=source, force=force, now=now)
        writes.flush()
    return run


def _place(run: Run, package: dispatch.Package, policy: Task, slots: Slots, writes: _Writes, *,
           source: str, force: bool, now: datetime) -> None:
    """The overlap policy, for one new run of a task whose row is locked. Updates ``slots``."""
    if run.not_before is not None and run.not_before > now:
        writes.hold(run, message=f"Waiting until {run.not_before.isoformat()}")
    elif force or (slots.occupied < policy.max_concurrent and not slots.waiting):
        writes.admit(run, package, now=now)
        slots.occupied += 1
    elif policy.on_overlap == OverlapPolicy.TERMINATE:
        oldest = Run.objects.filter(task_id=policy.pk).occupying().order_by("created_at")
        for old in oldest[: slots.occupied - policy.max_concurrent + 1]:
            _stop(old, StopRequest.TERMINATE, now=now)
        writes.admit(run, package, now=now)
    elif policy.on_overlap == OverlapPolicy.QUEUE and slots.waiting < policy.queue_max:
        writes.hold(run, message="Waiting for a free slot")
        slots.waiting += 1
    else:
        full_queue = policy.on_overlap == OverlapPolicy.QUEUE
        if source in ON_DEMAND_TRIGGERS:
            if full_queue:
                raise QueueFull(f"Task {policy.pk!r} already has {slots.waiting} run(s) waiting (queue_max {policy.queue_max}).")
            active = Run.objects.filter(task_id=policy.pk).occupying().values_list("pk", flat=True)[:3]
            raise AlreadyRunning(f"Task {policy.pk!r} has a run in progress ({', '.join(map(str, active))}).")
        reason = EndReason.QUEUE_FULL if full_queue else EndReason.SKIPPED
        writes.record_unexecuted(run, reason, now=now, message="Task already running")


class _Writes:
    """The rows that triggering writes, collected and then written together by ``flush``.

    Inside the caller's write transaction: one run or a thousand schedule ticks cost a few bulk
    statements, not three single ones per run.
    """

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.events: list[tuple[str, Run, str]] = []
        self.packages: list[dispatch.Package] = []

    def admit(self, run: Run, package: dispatch.Package, *, now: datetime) -> None:
        """Take a slot: the run is handed to the queue."""
        run.enqueued_at = now
        self.runs.append(run)
        self.events.append((EventName.QUEUED, run, ""))
        self.packages.append(package)

    def hold(self, run: Run, *, message: str) -> None:
        """Queued but not yet handed over: the scheduler admits it when a slot (or its time) comes."""
        self.runs.append(run)
        self.events.append((EventName.QUEUED, run, message))

    def record_unexecuted(self, run: Run, reason: str, *, now: datetime, message: str) -> None:
        """A run that policy kept from executing: recorded as ended so operators see it happened."""
        run.status = STATUS_FOR_REASON[reason]
        run.end_reason = reason
        run.ended_at = now
        run.error = message
        self.runs.append(run)
        self.events.append((events.END_EVENTS[run.status], run, message or reason))

    def flush(self) -> None:
        Run.objects.bulk_create(self.runs)
        events.emit_run_events(self.events)
        dispatch.enqueue_many(self.packages)
        self.runs, self.events, self.packages = [], [], []


def _lock_and_count(task_id: str, *, now: Any) -> tuple[Task, int, int]:
    """The task's policy (its row locked), then its runs holding a slot and its held runs due.

    The counts come after the locking statement on purpose: on PostgreSQL a statement that waited
    for the row lock still reads with the snapshot it started with, so counts taken in it would
    miss the run the previous lock holder just committed. (On SQLite the IMMEDIATE transaction
    already serialises writers.) Hand-written SQL because this runs inside the write lock of
    every trigger, where building the equivalent ORM queries cost several times the queries; the
    counts come from counters and indexes that do not grow with the backlog (db/slots.py).
    """
    task_table = Task._meta.db_table
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    fields = ("enabled", "removed_at", "manual_run", "supports_dry_run", "on_overlap", "max_concurrent", "queue_max",
              "timeout")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(fields)} FROM {task_table} WHERE id = %s{lock}", [task_id])
        row = cursor.fetchone()
        if row is None:
            raise TaskNotFound(f"Task {task_id!r} does not exist.")
    task_slots = count_slots([task_id], now=now)[task_id]
    values = dict(zip(fields, row, strict=True))
    if isinstance(values["removed_at"], str):  # SQLite returns text from a raw query
        values["removed_at"] = datetime.fromisoformat(values["removed_at"])
    return Task(id=task_id, **values), task_slots.occupied, task_slots.waiting


def parameters_for(task: Task, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's parameter values: checked against the task's spec, defaults applied."""
    return parameters.resolve(task.parameters, given)


def _check_triggerable(task: Task, *, source: str, dry_run: bool) -> None:
    if task.is_removed:
        raise TaskRemoved(f"Task {task.id!r} was removed from its definitions; its history is kept.")
    if not task.enabled:
        raise TaskDisabled(f"Task {task.id!r} is disabled.")
    if source in ON_DEMAND_TRIGGERS and not task.manual_run:
        raise NotManuallyRunnable(f"Task {task.id!r} cannot be run on demand.")
    if dry_run and not task.supports_dry_run:
        raise DryRunUnsupported(f"Task {task.id!r} does not support dry runs.")


@retry_on_conflict
def release_held_runs(task_id: str) -> list[Run]:
    """Admit held runs, oldest first, while the task has free slots. Returns those admitted."""
    if not next_held(task_id, now=clock.now(), limit=1):
        return []  # none due (a plain read: no write lock for a task whose retries wait)
    with transaction.atomic():
        return _admit_held(task_id, now=clock.now())


def _admit_held(task_id: str, *, now: datetime) -> list[Run]:
    """Hand the oldest due held runs to the queue, one per free slot. Inside a transaction.

    It takes the task's row lock (db/locks.py) if the transaction does not hold it yet. Under that
    lock nothing else can admit, cancel or delete the task's runs, so the runs ``next_held`` names
    are still held when the one UPDATE marks them."""
    policy, occupied, _ = _lock_and_count(task_id, now=now)
    free = policy.max_concurrent - occupied
    ids = next_held(task_id, now=now, limit=free) if free > 0 else []
    if not ids:
        return []
    Run.objects.filter(pk__in=ids).update(enqueued_at=now)
    admitted = [Run(id=run_id, task_id=task_id, task=policy, status=RunStatus.QUEUED, enqueued_at=now)
                for run_id in ids]
    dispatch.enqueue_many([dispatch.prepare(run) for run in admitted])
    return admitted


# --- Schedule ticks -----------------------------------------------------------------------------

#: A scheduler starting this soon after another one fired a task's run_on_start run does not
#: fire it again (two schedulers started together, or a quick restart).
STARTUP_CLAIM_WINDOW = timedelta(seconds=30)


@dataclass
class TickPlan:
    """What firing one task's due tick writes, worked out before the write transaction.

    ``due_at`` is the task's next_run_at as read: the tick is claimed by finding it unchanged
    under the lock, so two schedulers never fire it twice.
    """

    task: Task
    due_at: datetime
    next_run_at: datetime | None
    last_tick_at: datetime
    runs: list[tuple[Run, dispatch.Package | None]]
    missed: Run | None = None


def initialise_schedules(*, now: datetime) -> int:
    """Give scheduled tasks without a next tick one, counted from now (a first start, a sync)."""
    pending = Task.objects.present().filter(enabled=True, next_run_at__isnull=True).filter(
        ~Q(cron_string="") | Q(interval__isnull=False))
    started = 0
    for task in pending:
        next_run_at = schedules.next_run_at(task, now=now)
        if next_run_at is not None:
            started += Task.objects.filter(pk=task.pk, next_run_at__isnull=True).update(next_run_at=next_run_at)
    return started


def due_tasks(*, now: datetime, limit: int = 1000) -> list[Task]:
    """Enabled tasks whose next tick has come, earliest first."""
    return list(Task.objects.present().filter(enabled=True, next_run_at__lte=now).order_by("next_run_at")[:limit])


def plan_tick(task: Task, *, now: datetime) -> TickPlan:
    """The runs a due tick fires, with catch-up when ticks were missed (downtime).

    One tick due: one run (trigger ``schedule``). More than one (the scheduler was down): the
    task's ``catch_up`` policy decides, ``latest`` firing the newest tick, ``all`` up to
    ``max_catch_up_runs`` of the newest, ``skip`` none; every policy records one ``missed`` run
    describing the gap. The next tick is the first one after now.
    """
    due_at = task.next_run_at
    later = schedules.fire_times(task, after=due_at, until=now, limit=max(task.max_catch_up_runs, 1))
    ticks = ([due_at] + later.latest) if later.count <= len(later.latest) else later.latest
    count = 1 + later.count
    last_tick = ticks[-1]
    plan = TickPlan(task=task, due_at=due_at, next_run_at=_next_tick(task, last_tick=last_tick, now=now),
                    last_tick_at=last_tick, runs=[])
    if count == 1:
        plan.runs.append(_tick_run(task, source=RunTrigger.SCHEDULE, now=now))
        return plan
    if task.catch_up == CatchUp.LATEST:
        fired = 1
    elif task.catch_up == CatchUp.ALL:
        fired = min(count, task.max_catch_up_runs)
    else:
        fired = 0
    plan.runs = [_tick_run(task, source=RunTrigger.CATCH_UP, now=now) for _ in range(fired)]
    plan.missed = Run(
        task=task, trigger=RunTrigger.CATCH_UP, triggered_by="schedule", created_at=now,
        error=(f"{count}{'' if later.complete else '+'} ticks due between {due_at.isoformat()} and "
               f"{last_tick.isoformat()} while no scheduler ran; catch-up '{task.catch_up}' fired {fired}."),
        result={"ticks": count, "counted_all": later.complete, "first_tick": due_at.isoformat(),
                "last_tick": last_tick.isoformat(), "catch_up": task.catch_up, "fired": fired},
    )
    return plan


def _next_tick(task: Task, *, last_tick: datetime, now: datetime) -> datetime | None:
    """The first tick after now: an interval keeps its cadence from the last tick."""
    every = schedules.interval_seconds(task)
    if every:
        steps = int((now - last_tick).total_seconds() // every) + 1
        return last_tick + timedelta(seconds=steps * every)
    return schedules.next_fire_after(task, now)


def _tick_run(task: Task, *, source: str, now: datetime) -> tuple[Run, dispatch.Package | None]:
    """A tick's run with the parameters' defaults; no package when they do not make valid values
    (a required parameter without a default): that run is recorded as failed, not executed."""
    run = Run(task=task, trigger=source, triggered_by="schedule", created_at=now)
    try:
        run.parameters = parameters_for(task, None)
    except InvalidParameters as error:
        run.error = f"Cannot run on a schedule: {error.detail}"
        return run, None
    return run, dispatch.prepare(run)


@retry_on_conflict
def fire_ticks(plans: list[TickPlan], *, now: datetime) -> list[Run]:
    """Claim and fire planned ticks in one short write transaction; returns the runs written.

    The same overlap policy as ``trigger`` places each run (a tick meeting a full ``skip`` task
    records a ``skipped`` run). A tick whose task changed since it was planned (fired by another
    scheduler, rescheduled, disabled) is left alone.
    """
    if not plans:
        return []
    writes = _Writes()
    written: list[Run] = []
    with transaction.atomic():
        locked = _lock_tasks([plan.task.pk for plan in plans])
        slots = count_slots(list(locked), now=now)
        claimed = [plan for plan in plans if plan.task.pk in locked and locked[plan.task.pk].next_run_at == plan.due_at]
        for plan in claimed:
            policy = locked[plan.task.pk]
            task_slots = slots[plan.task.pk]
            for run, package in plan.runs:
                if package is None:
                    writes.record_unexecuted(run, EndReason.FAILED, now=now, message=run.error)
                else:
                    _place(run, package, policy, task_slots, writes, source=run.trigger, force=False, now=now)
            if plan.missed is not None:
                writes.record_unexecuted(plan.missed, EndReason.MISSED, now=now, message=plan.missed.error)
            written.extend(run for run, _ in plan.runs)
            if plan.missed is not None:
                written.append(plan.missed)
        _advance_ticks(claimed)
        writes.flush()
    return written


def _advance_ticks(plans: list[TickPlan]) -> None:
    """Move each claimed task to its next tick: one prepared statement for the whole batch
    (``bulk_update`` builds a CASE per row and cost more than the rest of the batch)."""
    field = Task._meta.get_field("next_run_at")
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {quote(Task._meta.db_table)} SET {quote('next_run_at')} = %s, {quote('last_tick_at')} = %s "
            f"WHERE {quote('id')} = %s",
            [(field.get_db_prep_save(plan.next_run_at, connection), field.get_db_prep_save(plan.last_tick_at, connection),
              plan.task.pk) for plan in plans],
        )


def _lock_tasks(task_ids: list[str]) -> dict[str, Task]:
    """Enabled, present tasks among ``task_ids``, their rows locked (PostgreSQL skips rows another
    scheduler holds; SQLite's IMMEDIATE transaction already excludes other writers)."""
    tasks = Task.objects.present().filter(pk__in=task_ids, enabled=True).only(
        "id", "next_run_at", "last_tick_at", "enabled", "removed_at", "manual_run", "supports_dry_run",
        "on_overlap", "max_concurrent", "queue_max")
    if connection.features.has_select_for_update_skip_locked:
        tasks = tasks.select_for_update(skip_locked=True)
    return {task.pk: task for task in tasks}


def fire_startup_runs(*, now: datetime) -> list[Run]:
    """Fire ``run_on_start`` tasks once for this start-up (claimed in the database)."""
    runs = []
    for task in Task.objects.present().filter(enabled=True, run_on_start=True):
        recent = Q(last_startup_at__gte=now - STARTUP_CLAIM_WINDOW)
        if not Task.objects.filter(pk=task.pk).exclude(recent).update(last_startup_at=now):
            continue  # another scheduler fired it for this start-up
        try:
            runs.append(trigger(task, source=RunTrigger.STARTUP, requested_by="startup"))
        except TaskdeckError as error:  # disabled or removed since it was read: nothing to start
            logger.info("run_on_start of %s not fired: %s", task.pk, error.detail)
    return runs


# --- Worker transitions -------------------------------------------------------------------------


@retry_on_conflict
def claim_run(run_id: UUID | str, task_id: str | None = None, *, pid: int | None = None) -> Run | None:
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
        won = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker_host=HOSTNAME,
            worker_pid=pid if pid is not None else os.getpid(),
        )
        if not won:
            return None
        Task.objects.filter(pk=task_id).update(last_run_at=now)
        events.emit_run_event(EventName.STARTED, Run(id=UUID(str(run_id)), task_id=task_id, status=RunStatus.RUNNING))
    return Run.objects.select_related("task").only(*_FOR_EXECUTION).get(pk=run_id)


#: The columns the runner, its context and the end of a run use. Reading only these halves the
#: cost of a claim; a field left out still loads (with one more query) if something touches it.
_FOR_EXECUTION = (
    "id", "task_id", "status", "end_reason", "error", "parameters", "dry_run", "progress_current",
    "progress_total", "progress_message", "items_processed", "items_affected", "summary", "output",
    "output_dropped", "task__id", "task__callable", "task__timeout", "task__on_overlap",
)


def finish_run(
    run: Run | UUID | str,
    reason: str,
    *,
    from_statuses: Iterable[str] = (RunStatus.RUNNING,),
    **fields: Any,
) -> Run | None:
    """End a run with ``reason`` if it is still in one of ``from_statuses``; write its end event.

    Conditional, so the runner, its watchdog, the reaper and a shutdown can race to end a run
    and exactly one wins. Returns the ended run, or None if someone else ended it first. Pass the
    Run itself when you have it: the transaction then only writes.
    """
    if not isinstance(run, Run):
        run = Run.objects.filter(pk=run).first()
        if run is None:
            return None
    if not _end(run, reason, from_statuses=list(from_statuses), fields=fields):
        return None
    after_run_ended(run)
    return run


@retry_on_conflict
def _end(run: Run, reason: str, *, from_statuses: list[str], fields: dict[str, Any]) -> bool:
    """finish_run's transaction: the task's row locked first (db/locks.py), then the conditional end."""
    with transaction.atomic():
        lock_task(run.task_id)
        now = clock.now()
        status = STATUS_FOR_REASON[reason]
        won = Run.objects.filter(pk=run.pk, status__in=from_statuses).update(
            status=status, end_reason=reason, ended_at=now, **fields
        )
        if not won:
            return False
        for name, value in {"status": status, "end_reason": reason, "ended_at": now, **fields}.items():
            setattr(run, name, value)
        events.emit_run_end(run)
        _admit_after_end(run, now=now)
    return True


def _admit_after_end(run: Run, *, now: datetime) -> None:
    """The slot a run frees goes to the task's next held run in the same transaction, under the
    lock already held: one write per run instead of two, and no wait for the scheduler. Only the
    queue policy holds runs; a run held by a trigger racing with this end is admitted by the
    scheduler's next pass."""
    if run.task.on_overlap == OverlapPolicy.QUEUE and has_held_runs(run.task_id):
        _admit_held(run.task_id, now=now)


def after_run_ended(run: Run) -> None:
    """What a run's end sets off, whoever ended it (runner, watchdog, reaper): a retry when the
    reason is retryable and attempts remain. (The freed slot went to the next held run in the
    end's own transaction.)"""
    if run.end_reason in RETRYABLE_REASONS:
        schedule_retry(run)


def schedule_retry(run: Run) -> Run | None:
    """The next attempt of a failed, timed-out or crashed run, if its task allows one more.

    It goes through ``trigger`` like any run, with trigger ``retry``, the failed run's
    parameters and a ``not_before`` time from the task's backoff: until then it is a queued
    run waiting for its time, which operators see and can cancel (that ends the chain).
    """
    task = Task.objects.get(pk=run.task_id)
    if run.attempt > task.retry_attempts:
        return None
    delay = schedules.retry_delay(backoff=task.retry_backoff, delay=task.retry_delay, attempt=run.attempt,
                                  cap=taskdeck_settings.RETRY_MAX_DELAY)
    try:
        return trigger(task, source=RunTrigger.RETRY, requested_by=run.triggered_by, parameters=run.parameters,
                       dry_run=run.dry_run, not_before=clock.now() + timedelta(seconds=delay), retry_of=run)
    except TaskdeckError as error:  # disabled, removed or changed since: the chain ends here
        logger.info("No retry of run %s: %s", run.pk, error.detail)
        return None


# --- Stopping -----------------------------------------------------------------------------------


def cancel_run(run_id: UUID | str) -> Run:
    """A queued run ends cancelled at once; a running one is asked to stop and ends within seconds."""
    run = get_run(run_id)
    if not run.is_active:
        raise RunAlreadyEnded(f"Run {run.id} already ended ({run.status}).")
    if run.status == RunStatus.RUNNING and not run.task.supports_cancel:
        raise CancelUnsupported(f"Task {run.task_id!r} does not support cancelling a running run.")
    _request_stop(run, StopRequest.CANCEL)
    # Read again: it may have ended meanwhile. Retention may even have removed it already (an
    # ended run); the caller then gets it as the stop left it.
    run = Run.objects.select_related("task").filter(pk=run.pk).first() or run
    if not run.is_active:
        after_run_ended(run)
    return run


def cancel_task(task_id: str) -> list[Run]:
    """Cancel every active run of a task (queued ones at once, running ones by request)."""
    task = get_task(task_id)
    active = list(task.runs.active().order_by("created_at"))
    if not active:
        raise NotRunning(f"Task {task.id!r} has no queued or running run.")
    if any(run.status == RunStatus.RUNNING for run in active) and not task.supports_cancel:
        raise CancelUnsupported(f"Task {task.id!r} does not support cancelling a running run.")
    cancelled = []
    for run in active:
        try:
            cancelled.append(cancel_run(run.id))
        except RunAlreadyEnded:
            continue  # it ended while we went through the list
    return cancelled


@retry_on_conflict
def _request_stop(run: Run, request: str) -> None:
    with transaction.atomic():
        lock_task(run.task_id)
        now = clock.now()
        if _stop(run, request, now=now):
            _admit_after_end(run, now=now)


def _stop(run: Run, request: str, *, now: Any) -> bool:
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
            events.emit_run_end(run)
            return True
    Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, stop_requested="").update(
        stop_requested=request, stop_requested_at=now
    )
    return False


def request_shutdown(*, pids: Collection[int], host: str = HOSTNAME) -> int:
    """Ask the runs that worker processes ``pids`` of ``host`` are running to stop because their
    worker is stopping; returns how many were asked. Each ends ``shutdown``."""
    return Run.objects.filter(status=RunStatus.RUNNING, worker_host=host, worker_pid__in=list(pids)).update(
        stop_requested=StopRequest.SHUTDOWN, stop_requested_at=clock.now()
    )


def end_shutdown_runs(*, pids: Collection[int], host: str = HOSTNAME) -> list[Run]:
    """After worker processes ``pids`` of ``host`` were stopped: the runs they still held end ``shutdown``."""
    ended = []
    for run_id in Run.objects.running().filter(worker_host=host, worker_pid__in=list(pids)).values_list("pk", flat=True):
        run = finish_run(run_id, EndReason.SHUTDOWN, error="Taskdeck stopped while the run was running.")
        if run:
            ended.append(run)
    return ended


def reap_lost_runs(*, stale_after: float | None = None, database_failed_at: datetime | None = None) -> list[Run]:
    """End as crashed every running run whose worker is gone.

    A worker is gone when its process no longer exists on this host, or, for a worker on another
    host, when its heartbeat is older than ``HEARTBEAT_STALE_AFTER``. A worker of this host that
    is alive is never taken for gone, whatever its heartbeat says: it may be waiting for the
    database to take its writes, and will record the run's real end. Nor is a heartbeat stale
    while the database refused writes less than ``stale_after`` ago (``database_failed_at``, as
    the caller saw it): no worker could beat then. A run past its timeout ends ``timeout``.
    """
    stale_after = taskdeck_settings.HEARTBEAT_STALE_AFTER if stale_after is None else stale_after
    now = clock.now()
    heartbeats_count = database_failed_at is None or (now - database_failed_at).total_seconds() > stale_after
    candidates = Run.objects.running().select_related("task")
    reaped = []
    for run in candidates:
        if run.worker_host == HOSTNAME and run.worker_pid:
            lost = not _pid_alive(run.worker_pid)
        else:
            lost = heartbeats_count and (
                run.heartbeat_at is None or run.heartbeat_at < now - timedelta(seconds=stale_after))
        if not lost:
            continue
        timed_out = bool(run.task.timeout and run.started_at and (now - run.started_at).total_seconds() > run.task.timeout)
        if timed_out:
            reason, error = EndReason.TIMEOUT, f"Timed out after {run.task.timeout:g} s (worker lost)."
        elif run.stop_requested:
            reason = REASON_FOR_STOP[run.stop_requested]
            error = "Worker stopped before the run could end." if reason == EndReason.SHUTDOWN else ""
        else:
            reason, error = EndReason.CRASHED, "The worker running this run was lost."
        ended = finish_run(run.id, reason, error=error)  # exit_code stays null: the end is unknown (API.md)
        if ended:
            logger.warning("Run %s of %s ended %s: its worker is gone.", run.id, run.task_id, reason)
            reaped.append(ended)
    return reaped


def rebuild_queue() -> int:
    """Single-machine start-up, before any worker runs: the queue is rebuilt from the runs.

    Messages a cluster took but never ran died with it; queued runs that were handed to the
    queue are sent again, oldest first. Returns how many.
    """
    dispatch.purge()
    runs = Run.objects.filter(status=RunStatus.QUEUED, enqueued_at__isnull=False).select_related("task")
    count = 0
    for run in runs.order_by("created_at").iterator():
        dispatch.enqueue(dispatch.prepare(run))
        count += 1
    return count


def redeliver_lost_runs(*, older_than: float) -> list[Run]:
    """Send again queued runs handed to the queue over ``older_than`` s ago whose message is gone.

    A message is gone when a cluster took it and died before a worker claimed the run. The run's
    enqueued_at moves to now, so each is sent again at most once per ``older_than``.
    """
    now = clock.now()
    stale = list(
        Run.objects.filter(status=RunStatus.QUEUED, enqueued_at__lt=now - timedelta(seconds=older_than))
        .select_related("task")
    )
    if not stale:
        return []
    pending = dispatch.pending_run_ids()
    sent = []
    for run in stale:
        if str(run.id) in pending:
            continue
        package = dispatch.prepare(run)
        with transaction.atomic():
            if Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED, enqueued_at=run.enqueued_at).update(enqueued_at=now):
                dispatch.enqueue(package)
                sent.append(run)
    if sent:
        logger.warning("Sent %d queued run(s) again: their queue messages were lost.", len(sent))
    return sent


def _pid_alive(pid: int) -> bool:
    """Whether a process of this host still runs; a killed one not yet reaped (zombie) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust kill(0)
    return state not in ("Z", "X")


# --- Definitions --------------------------------------------------------------------------------


@retry_on_conflict
def sync_definitions(definitions: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Write declared tasks to the Task table; keep operator changes; mark vanished ones removed.

    Returns the ids created, updated and removed. A removed task keeps its runs; its queued runs
    end (cancelled, with an event) because nothing will ever execute them.
    """
    report: dict[str, list[str]] = {"created": [], "updated": [], "removed": []}
    declared = {definition["id"]: dict(definition) for definition in definitions}
    now = clock.now()
    with transaction.atomic():
        existing = {task.pk: task for task in Task.objects.select_for_update().filter(pk__in=declared)}
        for task_id, definition in declared.items():
            task = existing.get(task_id)
            values = {key: value for key, value in definition.items() if key != "id"}
            if task is None:
                Task.objects.create(id=task_id, definition=values, **values)
                report["created"].append(task_id)
                continue
            schedule_before = _schedule_of(task)
            for key, value in values.items():
                if key in OPERATOR_FIELDS and key in task.overrides:
                    continue
                setattr(task, key, value)
            if task.interval is None and task.cron_string:
                task.interval_unit = ""
            was_removed, task.removed_at = task.removed_at is not None, None
            if _schedule_of(task) != schedule_before or was_removed:
                task.next_run_at = schedules.next_run_at(task, now=now)  # a new schedule starts from now
            task.definition = values
            task.save()
            report["updated"].append(task_id)
        vanished = Task.objects.filter(removed_at__isnull=True, source__in=("code", "file")).exclude(pk__in=declared)
        for task in vanished.select_for_update():
            task.removed_at, task.next_run_at = now, None
            task.save(update_fields=["removed_at", "next_run_at", "updated_at"])
            report["removed"].append(task.pk)
            for run in task.runs.filter(status=RunStatus.QUEUED):
                finish_run(
                    run.id,
                    EndReason.CANCELLED,
                    from_statuses=(RunStatus.QUEUED,),
                    error="The task was removed from its definitions.",
                )
            events.emit_task_updated(task, message="Task removed from its definitions")
    return report


def _schedule_of(task: Task) -> tuple[Any, ...]:
    return (task.enabled, task.cron_string, task.timezone, task.interval, task.interval_unit)


def set_operator_fields(task_id: str, **values: Any) -> Task:
    """Change operator-editable fields and remember them, so a definitions reload keeps them.

    next_run_at is recomputed at once and the change is announced (task:updated).
    """
    unknown = set(values) - set(OPERATOR_FIELDS)
    if unknown:
        raise ValueError(f"not operator fields: {sorted(unknown)}")
    with transaction.atomic():
        task = Task.objects.select_for_update().get(pk=get_task(task_id).pk)
        for key, value in values.items():
            setattr(task, key, value)
        task.overrides = sorted(set(task.overrides) | set(values))
        task.next_run_at = schedules.next_run_at(task, now=clock.now())
        task.save()
        events.emit_task_updated(task, message="Changed: " + ", ".join(sorted(values)))
    return task


def set_enabled(task_id: str, enabled: bool) -> Task:
    return set_operator_fields(task_id, enabled=enabled)


def set_interval(task_id: str, interval: int, unit: str) -> Task:
    """A new interval for an interval-scheduled task (a cron task keeps its cron), checked here
    whoever calls (API, admin, command line) by schedule_rules."""
    if not get_task(task_id).interval:
        raise NotIntervalScheduled(f"Task {task_id!r} is not interval-scheduled.")
    try:
        interval, unit = schedule_rules.check_interval(interval, unit)
    except schedule_rules.InvalidValue as error:
        raise _invalid_schedule([error], body={"interval_unit": "unit"}) from None
    return set_operator_fields(task_id, interval=interval, interval_unit=unit)


def set_schedule(task_id: str, cron_string: str, timezone: str | None = None) -> Task:
    """A new cron string (and optionally time zone) for a cron-scheduled task, checked here."""
    if not get_task(task_id).cron_string:
        raise NotCronScheduled(f"Task {task_id!r} is not cron-scheduled.")
    values, errors = {}, []
    for field, check, value in (("cron_string", schedule_rules.check_cron, cron_string),
                                ("timezone", schedule_rules.check_timezone, timezone)):
        if value is None or (field == "timezone" and not value):
            continue  # no time zone given: the task keeps its own
        try:
            values[field] = check(value)
        except schedule_rules.InvalidValue as error:
            errors.append(error)
    if errors:
        raise _invalid_schedule(errors)
    return set_operator_fields(task_id, **values)


def _invalid_schedule(errors: list[schedule_rules.InvalidValue], *, body: Mapping[str, str] | None = None) -> InvalidSchedule:
    """The API's problem for rule failures, each located in the request body (``body`` maps a
    rule's field to the request's name for it)."""
    located = [{"location": f"body.{(body or {}).get(error.field, error.field)}", "message": error.message(),
                "value": error.value} for error in errors]
    return InvalidSchedule("Invalid schedule: " + ", ".join(item["location"].removeprefix("body.") for item in located)
                           + ".", errors=located)


def beat(role: str, *, details: dict[str, Any] | None = None) -> None:
    """Record that this process is alive (and what it reports, when it has ``details``)."""
    now = clock.now()
    fields: dict[str, Any] = {"seen_at": now} if details is None else {"seen_at": now, "details": details}
    updated = Heartbeat.objects.filter(role=role, host=HOSTNAME, pid=os.getpid()).update(**fields)
    if not updated:
        Heartbeat.objects.get_or_create(role=role, host=HOSTNAME, pid=os.getpid(), defaults=fields)


# --- Lookups used by writers (reads for display live in selectors.py) ---------------------------


def get_task(task_id: str) -> Task:
    try:
        return Task.objects.get(pk=task_id)
    except Task.DoesNotExist:
        raise TaskNotFound(f"Task {task_id!r} does not exist.") from None


def get_run(run_id: UUID | str) -> Run:
    try:
        return Run.objects.select_related("task").get(pk=run_id)
    except (Run.DoesNotExist, ValueError, ValidationError):  # a malformed id is just as unknown
        raise RunNotFound(f"Run {run_id} does not exist (or was removed by retention).") from None


@retry_on_conflict
def delete_run(run_id: UUID | str) -> None:
    """Remove an ended run with its activity, captured output and events; active runs refuse."""
    task_id = get_run(run_id).task_id
    with transaction.atomic():
        lock_task(task_id)
        run = get_run(run_id)
        if run.is_active:
            raise RunActive(f"Run {run.id} is {run.status}; cancel it first.")
        Event.objects.filter(run_id=run.id).delete()
        run.delete()
