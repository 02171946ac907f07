"""Tasks as declared and as operators change them: the definitions sync, the admin's saves, and the
operator fields (enabled, schedule) an edit sets and a later sync keeps."""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db import transaction

from tasks_app import clock
from tasks_app.db.locks import retry_on_conflict
from tasks_app.definitions.validate import OPERATOR_FIELDS
from tasks_app.exceptions import InvalidSchedule, NotCronScheduled, NotIntervalScheduled
from tasks_app.live import outbox
from tasks_app.models import DefinitionSource, EndReason, RunStatus, Task, TaskKind
from tasks_app.scheduling import rules
from tasks_app.scheduling import cron
from tasks_app.services.lookups import get_task
from tasks_app.services.outcomes import finish_run


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
            write_definition(existing.get(task_id), definition, now=now)
            report["created" if task_id not in existing else "updated"].append(task_id)
        vanished = Task.objects.filter(removed_at__isnull=True, source__in=("code", "file")).exclude(pk__in=declared)
        for task in vanished.select_for_update():
            task.removed_at, task.next_run_at = now, None
            task.save(update_fields=["removed_at", "next_run_at", "updated_at"])
            report["removed"].append(task.pk)
            for run in task.runs.filter(status=RunStatus.QUEUED):
                finish_run(
                    run.id,
                    reason=EndReason.CANCELLED,
                    from_statuses=(RunStatus.QUEUED,),
                    error="The task was removed from its definitions.",
                )
            outbox.emit_task_updated(task, message="Task removed from its definitions")
    return report


def write_definition(task: Task | None, definition: Mapping[str, Any], *, now: datetime) -> Task:
    """Create the task a checked ``definition`` declares, or update ``task`` (its row, locked by
    the caller) in place: the operator fields an operator changed (Task.overrides) are kept, a
    removed task comes back, and a changed schedule starts from now. The definitions sync and the
    importers (services/imports.py) write through here, so both keep the same operator changes."""
    values = {key: value for key, value in definition.items() if key != "id"}
    if task is None:
        return Task.objects.create(id=definition["id"], definition=values, **values)
    schedule_before = _schedule_of(task)
    if values.get("kind") == TaskKind.SERVICE:  # a service has no schedule to keep
        task.overrides = [key for key in task.overrides
                          if key not in ("interval", "interval_unit", "cron_string", "timezone")]
    for key, value in values.items():
        if key in OPERATOR_FIELDS and key in task.overrides:
            continue
        setattr(task, key, value)
    if task.interval is None and task.cron_string:
        task.interval_unit = ""
    was_removed, task.removed_at = task.removed_at is not None, None
    if _schedule_of(task) != schedule_before or was_removed:
        task.next_run_at = cron.next_run_at(task, now=now)  # a new schedule starts from now
    task.definition = values
    task.save()
    return task


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
        task.next_run_at = cron.next_run_at(task, now=clock.now())
        task.save()
        outbox.emit_task_updated(task, message="Changed: " + ", ".join(sorted(values)))
    return task


@retry_on_conflict
def save_task(task: Task, *, changed: Collection[str], created: bool = False) -> Task:
    """Write an edit made in the admin (``task`` holds the edited values), as the API writes one.

    A new task is the admin's own (``source`` admin: no definitions sync removes it). An edit
    writes only the ``changed`` fields, under the task's row lock, so it never puts back a stale
    ``next_run_at`` or ``last_run_at`` the scheduler wrote meanwhile; operator fields are
    remembered (a definitions reload keeps them); a schedule is checked by scheduling/rules.py, and a
    new one starts from now. Either way the change is announced (task:updated).
    """
    _check_schedule(task)
    with transaction.atomic():
        if created:
            task.source = DefinitionSource.ADMIN
            task.next_run_at = cron.next_run_at(task, now=clock.now())
            task.save(force_insert=True)
            outbox.emit_task_updated(task, message="Task created")
            return task
        saved = Task.objects.select_for_update().get(pk=get_task(task.pk).pk)
        fields = [field.name for field in Task._meta.concrete_fields if field.name in changed and field.name != "id"]
        if not fields:
            return saved
        schedule_before = _schedule_of(saved)
        for name in fields:
            setattr(saved, name, getattr(task, name))
        operator = set(fields) & set(OPERATOR_FIELDS)
        saved.overrides = sorted(set(saved.overrides) | operator)
        if _schedule_of(saved) != schedule_before:
            saved.next_run_at = cron.next_run_at(saved, now=clock.now())
        saved.save()
        outbox.emit_task_updated(saved, message="Changed: " + ", ".join(sorted(fields)))
    return saved


def _check_schedule(task: Task) -> None:
    """The schedule rules, whatever form or caller produced the values."""
    checks = [lambda: rules.check_timezone(task.timezone)]
    if task.cron_string:
        checks.append(lambda: rules.check_cron(task.cron_string))
    if task.interval is not None:
        checks.append(lambda: rules.check_interval(task.interval, task.interval_unit))
    errors = []
    for check in checks:
        try:
            check()
        except rules.InvalidValue as error:
            errors.append(error)
    if task.interval and task.cron_string:
        errors.append(rules.InvalidValue("cron_string", task.cron_string,
                                                  "a task has a cron string or an interval, not both"))
    if errors:
        raise _invalid_schedule(errors)


def set_enabled(task_id: str, *, enabled: bool) -> Task:
    return set_operator_fields(task_id, enabled=enabled)


def set_interval(task_id: str, *, interval: int, unit: str) -> Task:
    """A new interval for an interval-scheduled task (a cron task keeps its cron), checked here
    whoever calls (API, admin, command line) by scheduling/rules.py."""
    if not get_task(task_id).interval:
        raise NotIntervalScheduled(f"Task {task_id!r} is not interval-scheduled.")
    try:
        interval, unit = rules.check_interval(interval, unit)
    except rules.InvalidValue as error:
        raise _invalid_schedule([error], body={"interval_unit": "unit"}) from None
    return set_operator_fields(task_id, interval=interval, interval_unit=unit)


def set_schedule(task_id: str, *, cron_string: str, timezone: str | None = None) -> Task:
    """A new cron string (and optionally time zone) for a cron-scheduled task, checked here."""
    if not get_task(task_id).cron_string:
        raise NotCronScheduled(f"Task {task_id!r} is not cron-scheduled.")
    values, errors = {}, []
    for field, check, value in (("cron_string", rules.check_cron, cron_string),
                                ("timezone", rules.check_timezone, timezone)):
        if value is None or (field == "timezone" and not value):
            continue  # no time zone given: the task keeps its own
        try:
            values[field] = check(value)
        except rules.InvalidValue as error:
            errors.append(error)
    if errors:
        raise _invalid_schedule(errors)
    return set_operator_fields(task_id, **values)


def _invalid_schedule(errors: list[rules.InvalidValue], *, body: Mapping[str, str] | None = None) -> InvalidSchedule:
    """The API's problem for rule failures, each located in the request body (``body`` maps a
    rule's field to the request's name for it)."""
    located = [{"location": f"body.{(body or {}).get(error.field, error.field)}", "message": error.message(),
                "value": error.value} for error in errors]
    return InvalidSchedule("Invalid schedule: " + ", ".join(item["location"].removeprefix("body.") for item in located)
                           + ".", errors=located)
