"""Every write Taskdeck makes. API, admin, command line, scheduler and runner call these.

The run lifecycle lives here: ``trigger`` is the one door for every source (overlap policy
decided under the task's row lock), ``claim_run`` and ``finish_run`` are the conditional
transitions a worker makes, and ``cancel_run``/``reap_*`` make sure nothing stays running.
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from tasks_app import clock, dispatch, events, parameters, schedules
from tasks_app.conf import taskdeck_settings
from tasks_app.exceptions import (
    AlreadyRunning,
    CancelUnsupported,
    DryRunUnsupported,
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
    TaskRemoved,
)
from tasks_app.models import (
    ON_DEMAND_TRIGGERS,
    REASON_FOR_STOP,
    STATUS_FOR_REASON,
    EndReason,
    Event,
    EventName,
    Heartbeat,
    OverlapPolicy,
    Run,
    RunStatus,
    StopRequest,
    Task,
)
from tasks_app.registry import OPERATOR_FIELDS

logger = logging.getLogger(__name__)

HOSTNAME = socket.gethostname()


# --- Triggering ---------------------------------------------------------------------------------


def trigger(
    task: Task | str,
    *,
    source: str,
    requested_by: str,
    parameters: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> Run:
    """One door for every caller, so the overlap policy is decided under one row lock.

    Returns the new run: queued (handed to a worker, or held for a free slot), or already ended
    ``skipped``/``queue_full`` when a non-interactive source (schedule, watcher, retry, ...) met a
    full task. Interactive sources (api, manual) get an exception instead and no run is created.

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
    )
    package = dispatch.prepare(run)
    with transaction.atomic():
        # Read again under the lock: an operator may just have changed the task.
        policy, occupied, waiting = _lock_and_count(task.pk, now=now)
        _check_triggerable(policy, source=source, dry_run=dry_run)
        if force or (occupied < policy.max_concurrent and not waiting):
            _admit(run, package, now=now)
        elif policy.on_overlap == OverlapPolicy.TERMINATE:
            oldest = Run.objects.filter(task_id=task.pk).occupying().order_by("created_at")
            for old in oldest[: occupied - policy.max_concurrent + 1]:
                _stop(old, StopRequest.TERMINATE, now=now)
            _admit(run, package, now=now)
        elif policy.on_overlap == OverlapPolicy.QUEUE and waiting < policy.queue_max:
            run.save(force_insert=True)
            events.emit_run_event(EventName.QUEUED, run, message="Waiting for a free slot")
        else:
            full_queue = policy.on_overlap == OverlapPolicy.QUEUE
            if source in ON_DEMAND_TRIGGERS:
                if full_queue:
                    raise QueueFull(f"Task {task.id!r} already has {waiting} run(s) waiting (queue_max {policy.queue_max}).")
                active = Run.objects.filter(task_id=task.pk).occupying().values_list("pk", flat=True)[:3]
                raise AlreadyRunning(f"Task {task.id!r} has a run in progress ({', '.join(map(str, active))}).")
            reason = EndReason.QUEUE_FULL if full_queue else EndReason.SKIPPED
            _record_unexecuted(run, reason, now=now, message="Task already running")
    return run


def _lock_and_count(task_id: str, *, now: Any) -> tuple[Task, int, int]:
    """The task's policy (its row locked), then its runs holding a slot and its held runs due.

    Two statements on purpose: on PostgreSQL a statement that waited for the row lock still
    reads with the snapshot it started with, so counts taken in the locking statement would miss
    the run the previous lock holder just committed. (On SQLite the IMMEDIATE transaction already
    serialises writers.) Hand-written SQL because this runs inside the write lock of every
    trigger, where building the equivalent ORM queries cost several times the queries.
    """
    task_table, run_table = Task._meta.db_table, Run._meta.db_table
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    fields = ("enabled", "removed_at", "manual_run", "supports_dry_run", "on_overlap", "max_concurrent", "queue_max")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(fields)} FROM {task_table} WHERE id = %s{lock}", [task_id])
        row = cursor.fetchone()
        if row is None:
            raise TaskNotFound(f"Task {task_id!r} does not exist.")
        cursor.execute(
            f"""SELECT
                  SUM(CASE WHEN status = %s OR enqueued_at IS NOT NULL THEN 1 ELSE 0 END),
                  SUM(CASE WHEN status = %s AND enqueued_at IS NULL
                           AND (not_before IS NULL OR not_before <= %s) THEN 1 ELSE 0 END)
                FROM {run_table} WHERE task_id = %s AND status IN (%s, %s)""",
            [RunStatus.RUNNING.value, RunStatus.QUEUED.value, connection.ops.adapt_datetimefield_value(now),
             task_id, RunStatus.QUEUED.value, RunStatus.RUNNING.value],
        )
        occupied, waiting = cursor.fetchone()
    values = dict(zip(fields, row, strict=True))
    if isinstance(values["removed_at"], str):  # SQLite returns text from a raw query
        values["removed_at"] = datetime.fromisoformat(values["removed_at"])
    return Task(id=task_id, **values), occupied or 0, waiting or 0


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


def _admit(run: Run, package: dispatch.Package, *, now: Any) -> None:
    """Take a slot: record the run as handed to the queue and queue it, in the caller's transaction."""
    run.enqueued_at = now
    run.save(force_insert=True)
    events.emit_run_event(EventName.QUEUED, run)
    dispatch.enqueue(package)


def _record_unexecuted(run: Run, reason: str, *, now: Any, message: str) -> None:
    """A run that policy kept from executing: recorded as ended so operators see it happened."""
    run.status = STATUS_FOR_REASON[reason]
    run.end_reason = reason
    run.ended_at = now
    run.error = message
    run.save(force_insert=True)
    events.emit_run_end(run)


def release_held_runs(task_id: str) -> list[Run]:
    """Admit held runs, oldest first, while the task has free slots. Returns those admitted."""
    admitted: list[Run] = []
    with transaction.atomic():
        now = clock.now()
        policy, occupied, _ = _lock_and_count(task_id, now=now)
        free = policy.max_concurrent - occupied
        if free <= 0:
            return admitted
        for run in Run.objects.filter(task_id=task_id).held().due(now).select_related("task").order_by("created_at")[:free]:
            if Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED, enqueued_at__isnull=True).update(enqueued_at=now):
                run.enqueued_at = now
                dispatch.enqueue(dispatch.prepare(run))
                admitted.append(run)
    return admitted


# --- Worker transitions -------------------------------------------------------------------------


def claim_run(run_id: UUID | str, task_id: str | None = None, *, pid: int | None = None) -> Run | None:
    """queued -> running for exactly one worker; a duplicate delivery gets None and does nothing.

    The transaction only writes (the claim, the task's last_run_at, the event); the run is read
    for execution after it commits.
    """
    with transaction.atomic():
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
        if task_id is None:
            task_id = Run.objects.filter(pk=run_id).values_list("task_id", flat=True).get()
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
    with transaction.atomic():
        now = clock.now()
        status = STATUS_FOR_REASON[reason]
        won = Run.objects.filter(pk=run.pk, status__in=list(from_statuses)).update(
            status=status, end_reason=reason, ended_at=now, **fields
        )
        if not won:
            return None
        for name, value in {"status": status, "end_reason": reason, "ended_at": now, **fields}.items():
            setattr(run, name, value)
        events.emit_run_end(run)
    after_run_ended(run)
    return run


def after_run_ended(run: Run) -> None:
    """What a run's end sets off: a freed slot goes to the next held run.

    Retries (issue: scheduling and policies) hook in here too: a run ending in a retryable reason
    gets its successor scheduled, in this one place, whoever ended it.
    """
    # Only the queue policy holds runs for a slot. A plain read first, so the common case
    # (nothing held) takes no write lock; a run held by a trigger racing with this end is
    # admitted by the scheduler's next pass.
    if run.task.on_overlap == OverlapPolicy.QUEUE and Run.objects.held().filter(task_id=run.task_id).exists():
        release_held_runs(run.task_id)


# --- Stopping -----------------------------------------------------------------------------------


def cancel_run(run_id: UUID | str) -> Run:
    """A queued run ends cancelled at once; a running one is asked to stop and ends within seconds."""
    run = get_run(run_id)
    if not run.is_active:
        raise RunAlreadyEnded(f"Run {run.id} already ended ({run.status}).")
    if run.status == RunStatus.RUNNING and not run.task.supports_cancel:
        raise CancelUnsupported(f"Task {run.task_id!r} does not support cancelling a running run.")
    with transaction.atomic():
        _stop(run, StopRequest.CANCEL, now=clock.now())
    run.refresh_from_db()
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


def _stop(run: Run, request: str, *, now: Any) -> None:
    """Queued: end it now. Running: record why it must stop; its watchdog does the rest."""
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
            return
    Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, stop_requested="").update(
        stop_requested=request, stop_requested_at=now
    )


def request_shutdown() -> int:
    """Ask every running run to stop because Taskdeck is stopping; returns how many were asked."""
    return Run.objects.filter(status=RunStatus.RUNNING).update(
        stop_requested=StopRequest.SHUTDOWN, stop_requested_at=clock.now()
    )


def end_shutdown_runs(*, host: str = HOSTNAME) -> list[Run]:
    """After workers stopped: runs of this host still running end ``shutdown``."""
    ended = []
    for run_id in Run.objects.running().filter(worker_host=host).values_list("pk", flat=True):
        run = finish_run(run_id, EndReason.SHUTDOWN, error="Taskdeck stopped while the run was running.")
        if run:
            ended.append(run)
    return ended


def reap_lost_runs(*, stale_after: float | None = None) -> list[Run]:
    """End as crashed every running run whose worker is gone.

    A worker is gone when its process no longer exists on this host, or, on any host, when its
    heartbeat is older than ``HEARTBEAT_STALE_AFTER``. A run past its timeout ends ``timeout``.
    """
    stale_after = taskdeck_settings.HEARTBEAT_STALE_AFTER if stale_after is None else stale_after
    now = clock.now()
    candidates = Run.objects.running().select_related("task")
    reaped = []
    for run in candidates:
        lost = run.heartbeat_at is None or run.heartbeat_at < now - timedelta(seconds=stale_after)
        if not lost and run.worker_host == HOSTNAME and run.worker_pid and not _pid_alive(run.worker_pid):
            lost = True
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
        ended = finish_run(run.id, reason, error=error, exit_code=-2 if reason == EndReason.CRASHED else None)
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
            for key, value in values.items():
                if key in OPERATOR_FIELDS and key in task.overrides:
                    continue
                setattr(task, key, value)
            if task.interval is None and task.cron_string:
                task.interval_unit = ""
            task.definition = values
            task.removed_at = None
            task.save()
            report["updated"].append(task_id)
        vanished = Task.objects.filter(removed_at__isnull=True, source__in=("code", "file")).exclude(pk__in=declared)
        for task in vanished.select_for_update():
            task.removed_at = now
            task.save(update_fields=["removed_at", "updated_at"])
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
    """A new interval for an interval-scheduled task (a cron task keeps its cron)."""
    if not get_task(task_id).interval:
        raise NotIntervalScheduled(f"Task {task_id!r} is not interval-scheduled.")
    return set_operator_fields(task_id, interval=interval, interval_unit=unit)


def set_schedule(task_id: str, cron_string: str, timezone: str | None = None) -> Task:
    """A new cron string (and optionally time zone) for a cron-scheduled task."""
    if not get_task(task_id).cron_string:
        raise NotCronScheduled(f"Task {task_id!r} is not cron-scheduled.")
    values = {"cron_string": cron_string}
    if timezone:
        values["timezone"] = timezone
    return set_operator_fields(task_id, **values)


def beat(role: str) -> None:
    """Record that this process (scheduler, worker) is alive."""
    now = clock.now()
    updated = Heartbeat.objects.filter(role=role, host=HOSTNAME, pid=os.getpid()).update(seen_at=now)
    if not updated:
        Heartbeat.objects.get_or_create(role=role, host=HOSTNAME, pid=os.getpid(), defaults={"seen_at": now})


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


def delete_run(run_id: UUID | str) -> None:
    """Remove an ended run with its activity, captured output and events; active runs refuse."""
    with transaction.atomic():
        run = get_run(run_id)
        if run.is_active:
            raise RunActive(f"Run {run.id} is {run.status}; cancel it first.")
        Event.objects.filter(run_id=run.id).delete()
        run.delete()
