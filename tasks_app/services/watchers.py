"""File watchers (models/watchers.py): the rows each watcher has (``ensure_watchers``), what the
supervisor that owns one writes as it watches (``set_watcher_state``), and its trigger
(``fire_watcher``): the target's run and the watcher's row written in one transaction, while its
owner holds the watcher's lease, so a trigger is recorded exactly when it happened and a
supervisor that lost the watcher cannot fire it a second time. Every write announces itself
(``watcher:updated``).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction

from tasks_app import clock
from tasks_app.db.locks import retry_on_conflict
from tasks_app.definitions.watcher import CHANGED_PATHS
from tasks_app.live import outbox
from tasks_app.models import Lease, Run, RunTrigger, Task, Watcher
from tasks_app.services.leases import Owner
from tasks_app.services.lookups import get_task
from tasks_app.services.triggering import trigger

class LeaseLost(Exception):
    """The supervisor firing a watcher no longer holds its lease: another owns it now."""


def ensure_watchers(tasks: Iterable[Task]) -> dict[str, Watcher]:
    """The state rows of ``tasks`` (watchers) by task id; those missing are created ``stopped``."""
    ids = [task.pk for task in tasks]
    rows = {row.task_id: row for row in Watcher.objects.filter(task_id__in=ids)}
    missing = [Watcher(task_id=task_id) for task_id in ids if task_id not in rows]
    if missing:  # a write only for a new watcher: this runs on every look of every supervisor
        Watcher.objects.bulk_create(missing, ignore_conflicts=True)
        rows = {row.task_id: row for row in Watcher.objects.filter(task_id__in=ids)}
    return rows


def set_watcher_state(task_id: str, *, message: str = "", **fields: Any) -> Watcher | None:
    """The owner's word on a watcher (state, paths, error, pending changes, last change...),
    announced with ``message``."""
    with transaction.atomic():
        Watcher.objects.filter(task_id=task_id).update(**fields)
        row = Watcher.objects.filter(task_id=task_id).first()
        if row is not None:
            _announce(row, message=message)
    return row


@retry_on_conflict
def fire_watcher(task_id: str, *, lease: str, owner: Owner, changed_paths: Sequence[str]) -> Run:
    """Trigger the watcher's target with trigger ``watcher``, ``triggered_by`` ``watcher:<id>``,
    its ``target_parameters`` and, when the target declares it, ``changed_paths`` (one a line),
    and record it on the watcher (nothing pending, the run, the time), in one transaction.

    Raises what the trigger door raises when the target refuses (AlreadyRunning, QueueFull,
    TaskDisabled: the changes stay pending) or cannot be triggered at all (TaskNotFound,
    TaskRemoved, UseRestart, NotManuallyRunnable, InvalidParameters), and LeaseLost when
    ``owner`` no longer holds ``lease``: then nothing is written.
    """
    settings = get_task(task_id).watch or {}
    target = get_task(settings.get("target", ""))
    parameters = dict(settings.get("target_parameters") or {})
    if any(item["key"] == CHANGED_PATHS for item in target.parameters):
        parameters[CHANGED_PATHS] = "\n".join(changed_paths)
    now = clock.now()
    with transaction.atomic():
        held = Lease.objects.select_for_update().filter(name=lease, owner=owner.name, expires_at__gt=now)
        if not held.exists():
            raise LeaseLost(f"{lease} is no longer held by {owner.name}")
        run = trigger(target, source=RunTrigger.WATCHER, requested_by=f"watcher:{task_id}", parameters=parameters)
        Watcher.objects.filter(task_id=task_id).update(pending_changes=0, pending_paths=[], last_triggered_at=now,
                                                       last_run_id=run.pk)
        row = Watcher.objects.get(task_id=task_id)
        _announce(row, message=f"triggered {target.pk} (run {run.pk})", run_id=run.pk)
    return run


def _announce(row: Watcher, *, message: str, run_id: Any = None) -> None:
    outbox.emit_watcher_updated(row.task_id, state=row.state, pending_changes=row.pending_changes, error=row.error,
                                message=message, run_id=run_id, last_change_at=row.last_change_at,
                                last_triggered_at=row.last_triggered_at)
