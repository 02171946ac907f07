"""The one door for a new run: ``trigger`` decides the overlap policy under the task's row lock.

``place`` is the policy for one run (admit, hold, terminate the oldest, refuse or record it
skipped) and ``Writes`` collects what it writes, so the scheduler's batch of ticks shares both.
``release_held_runs`` admits held runs when slots are free (the scheduler's pass).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction

from tasks_app import clock, parameters, queue
from tasks_app.db.locks import retry_on_conflict
from tasks_app.db.slots import Slots, next_held
from tasks_app.exceptions import (
    AlreadyRunning,
    DryRunUnsupported,
    NotManuallyRunnable,
    QueueFull,
    TaskDisabled,
    TaskRemoved,
    UseRestart,
)
from tasks_app.live import outbox
from tasks_app.models import (
    ON_DEMAND_TRIGGERS,
    REFUSED_TRIGGERS,
    STATUS_FOR_REASON,
    EndReason,
    EventName,
    OverlapPolicy,
    Run,
    StopRequest,
    Task,
    TaskKind,
)
from tasks_app.services.lookups import get_task
from tasks_app.services.transitions import admit_held, lock_and_count, stop


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
    source (schedule, retry, ...) met a full task. Interactive sources (api, manual) and watchers
    (which keep their changes and ask again) get an exception instead and no run is created
    (``REFUSED_TRIGGERS``). ``retry_of`` makes the run the next attempt of
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
        parameters=parameters_for(task, given=parameters),
        dry_run=dry_run,
        created_at=now,
        not_before=not_before,
    )
    if retry_of is not None:
        run.attempt = retry_of.attempt + 1
        run.retry_of_id = retry_of.retry_of_id or retry_of.pk  # every retry links to the first run
    package = queue.prepare(run)
    writes = Writes()
    with transaction.atomic():
        # Read again under the lock: an operator may just have changed the task.
        policy, slots = lock_and_count(task.pk, now=now)
        _check_triggerable(policy, source=source, dry_run=dry_run)
        place(run, package, policy, slots, writes, source=source, force=force, now=now)
        writes.flush()
    return run


def place(run: Run, package: queue.Package, policy: Task, slots: Slots, writes: Writes, *,
           source: str, force: bool, now: datetime) -> None:
    """The overlap policy, for one new run of a task whose row is locked. Updates ``slots``."""
    if run.not_before is not None and run.not_before > now:
        writes.hold(run, message=f"Waiting until {run.not_before.isoformat()}")
    elif force or (slots.occupied < policy.max_concurrent and not slots.waiting()):
        writes.admit(run, package, now=now)
        slots.occupied += 1
    elif policy.on_overlap == OverlapPolicy.TERMINATE:
        oldest = Run.objects.filter(task_id=policy.pk).occupying().order_by("created_at")
        for old in oldest[: slots.occupied - policy.max_concurrent + 1]:
            stop(old, request=StopRequest.TERMINATE, now=now)
        writes.admit(run, package, now=now)
    elif policy.on_overlap == OverlapPolicy.QUEUE and (slots.held < policy.queue_max  # waiting() <= held
                                                        or slots.waiting() < policy.queue_max):
        writes.hold(run, message="Waiting for a free slot")
        slots.held += 1
    else:
        full_queue = policy.on_overlap == OverlapPolicy.QUEUE
        if source in REFUSED_TRIGGERS:
            if full_queue:
                raise QueueFull(f"Task {policy.pk!r} already has {slots.waiting()} run(s) waiting (queue_max {policy.queue_max}).")
            active = Run.objects.filter(task_id=policy.pk).occupying().values_list("pk", flat=True)[:3]
            raise AlreadyRunning(f"Task {policy.pk!r} has a run in progress ({', '.join(map(str, active))}).")
        reason = EndReason.QUEUE_FULL if full_queue else EndReason.SKIPPED
        writes.record_unexecuted(run, reason, now=now, message="Task already running")


class Writes:
    """The rows that triggering writes, collected and then written together by ``flush``.

    Inside the caller's write transaction: one run or a thousand schedule ticks cost a few bulk
    statements, not three single ones per run.
    """

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.events: list[tuple[str, Run, str]] = []
        self.packages: list[queue.Package] = []

    def admit(self, run: Run, package: queue.Package, *, now: datetime) -> None:
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
        self.events.append((outbox.END_EVENTS[run.status], run, message or reason))

    def flush(self) -> None:
        Run.objects.bulk_create(self.runs)
        outbox.emit_run_events(self.events)
        queue.enqueue_many(self.packages)
        self.runs, self.events, self.packages = [], [], []


def parameters_for(task: Task, *, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """A run's parameter values: checked against the task's spec, defaults applied."""
    return parameters.resolve(task.parameters, given)


def _check_triggerable(task: Task, *, source: str, dry_run: bool) -> None:
    if task.is_removed:
        raise TaskRemoved(f"Task {task.id!r} was removed from its definitions; its history is kept.")
    if task.kind == TaskKind.SERVICE:
        # Whatever the source: a service's runs are its instances' lifetimes, which its supervisor
        # writes itself (issue 15), never through this door.
        raise UseRestart(f"Task {task.id!r} is a service, kept running by its supervisor: restart it, do not run it.")
    if task.kind == TaskKind.WATCHER:
        # Whatever the source: a watcher has no runs; it triggers its target when files change.
        raise NotManuallyRunnable(f"Task {task.id!r} is a file watcher: it triggers {task.watch['target']!r} when "
                                  "files change, and is not run itself." if task.watch else
                                  f"Task {task.id!r} is a file watcher: it is not run itself.")
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
        return admit_held(task_id, now=clock.now())
