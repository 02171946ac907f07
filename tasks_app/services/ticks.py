"""Schedule ticks: what a due tick fires (catch-up after downtime included), planned before the
write transaction, then claimed and fired in batches through the same policy as ``trigger``;
and the ``run_on_start`` runs of a start-up."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q

from tasks_app import queue
from tasks_app.db.locks import locked_in_id_order, retry_on_conflict
from tasks_app.db.slots import count_slots
from tasks_app.db.ticks import advance_ticks
from tasks_app.exceptions import InvalidParameters, TaskdeckError
from tasks_app.models import CatchUp, EndReason, Run, RunTrigger, Task
from tasks_app.scheduling import cron
from tasks_app.services.triggering import Writes, parameters_for, place, trigger

logger = logging.getLogger(__name__)


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
    runs: list[tuple[Run, queue.Package | None]]
    missed: Run | None = None


def initialise_schedules(*, now: datetime) -> int:
    """Give scheduled tasks without a next tick one, counted from now (a first start, a sync)."""
    pending = Task.objects.present().filter(enabled=True, next_run_at__isnull=True).filter(
        ~Q(cron_string="") | Q(interval__isnull=False))
    started = 0
    for task in pending:
        next_run_at = cron.next_run_at(task, now=now)
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
    later = cron.fire_times(task, after=due_at, until=now, limit=max(task.max_catch_up_runs, 1))
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
    every = cron.interval_seconds(task)
    if every:
        steps = int((now - last_tick).total_seconds() // every) + 1
        return last_tick + timedelta(seconds=steps * every)
    return cron.next_fire_after(task, now)


def _tick_run(task: Task, *, source: str, now: datetime) -> tuple[Run, queue.Package | None]:
    """A tick's run with the parameters' defaults; no package when they do not make valid values
    (a required parameter without a default): that run is recorded as failed, not executed."""
    run = Run(task=task, trigger=source, triggered_by="schedule", created_at=now)
    try:
        run.parameters = parameters_for(task, given=None)
    except InvalidParameters as error:
        run.error = f"Cannot run on a schedule: {error.detail}"
        return run, None
    return run, queue.prepare(run)


@retry_on_conflict
def fire_ticks(plans: list[TickPlan], *, now: datetime) -> list[Run]:
    """Claim and fire planned ticks in one short write transaction; returns the runs written.

    The same overlap policy as ``trigger`` places each run (a tick meeting a full ``skip`` task
    records a ``skipped`` run). A tick whose task changed since it was planned (fired by another
    scheduler, rescheduled, disabled) is left alone.
    """
    if not plans:
        return []
    writes = Writes()
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
                    place(run, package, policy, task_slots, writes, source=run.trigger, force=False, now=now)
            if plan.missed is not None:
                writes.record_unexecuted(plan.missed, EndReason.MISSED, now=now, message=plan.missed.error)
            written.extend(run for run, _ in plan.runs)
            if plan.missed is not None:
                written.append(plan.missed)
        advance_ticks([(plan.task.pk, plan.next_run_at, plan.last_tick_at) for plan in claimed])
        writes.flush()
    return written


def _lock_tasks(task_ids: list[str]) -> dict[str, Task]:
    """Enabled, present tasks among ``task_ids``, their rows locked in id order (db/locks.py).

    On PostgreSQL the lock waits for whoever holds a row: another scheduler firing the same tick
    (its commit moves next_run_at, so this one then leaves the tick alone) or a worker claiming or
    ending one of the task's runs, for milliseconds. Skipping locked rows instead would skip a
    task a worker happened to hold and delay its tick to the next pass. SQLite's IMMEDIATE
    transaction already excludes other writers."""
    tasks = Task.objects.present().filter(pk__in=task_ids, enabled=True).only(
        "id", "next_run_at", "last_tick_at", "enabled", "removed_at", "manual_run", "supports_dry_run",
        "on_overlap", "max_concurrent", "queue_max")
    return {task.pk: task for task in locked_in_id_order(tasks)}


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
