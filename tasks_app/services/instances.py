"""Service instances (models/instances.py): what the supervisor that owns one writes as it runs it
(``begin_instances``, ``instances_up``, ``instances_ended``, ``set_instance_state``), the rows each
service has (``ensure_instances``), and what operators ask of a service (``start_service``,
``stop_service``, ``restart_service``), which its owner acts on at its next look.

An instance's lifetime is a Run with trigger ``supervisor`` and its ``instance_index``, created
``running`` (no queue: its supervisor runs it) under the task's row lock, before its process is
spawned; it ends through ``end_instance_runs`` (no retry: the instance's owner restarts it). Every change of an instance writes
a ``service:updated`` event.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.db import transaction
from django.db.models import F

from tasks_app import clock
from tasks_app.db.locks import lock_task, retry_on_conflict
from tasks_app.exceptions import NotAService
from tasks_app.live import outbox
from tasks_app.models import EndReason, EventName, Heartbeat, HeartbeatRole, InstanceState, Run, RunStatus, RunTrigger, ServiceInstance, Task, TaskKind
from tasks_app.platform import wakeups
from tasks_app.services.lookups import HOSTNAME, get_task
from tasks_app.services.recovery import kill_lost_group
from tasks_app.services.transitions import end_instance_runs


class InstanceRow(NamedTuple):
    """What a supervisor's look reads of an instance row. It reads every row every second: plain
    tuples, no model objects, no dates to parse."""

    pk: int
    task_id: str
    index: int
    wanted: bool
    state: str
    start_requested: int
    restart_requested: int


def ensure_instances(tasks: Iterable[Task]) -> list[InstanceRow]:
    """The instance rows of ``tasks`` (services), one per index below their ``instances``: those
    missing are created, wanted if the service starts by itself (``autostart``). Rows past the
    count stay until their owner has stopped them, then go. As ``InstanceRow``s."""
    tasks = list(tasks)
    return _fitted(tasks, ServiceInstance.objects.filter(task__in=tasks))


def look_at_instances(live: Iterable[Task]) -> list[InstanceRow]:
    """A supervisor's look: every instance row (``InstanceRow``s), the rows of ``live``
    (enabled services) first fitted to their count as ``ensure_instances`` does."""
    return _fitted(list(live), ServiceInstance.objects.all())


def _fitted(tasks: list[Task], query: Any) -> list[InstanceRow]:
    rows = _read(query)
    counts = {task.id: int(task.process.get("instances", 1)) for task in tasks}
    past = [row.pk for row in rows if row.task_id in counts and row.index >= counts[row.task_id]
            and row.state == InstanceState.STOPPED]
    present = {(row.task_id, row.index) for row in rows}
    missing = [ServiceInstance(task_id=task.id, index=index, wanted=bool(task.process.get("autostart", True)))
               for task in tasks for index in range(counts[task.id]) if (task.id, index) not in present]
    if past:  # a write only when a service shrank or grew: this runs on every look of every supervisor
        ServiceInstance.objects.filter(pk__in=past, state=InstanceState.STOPPED).delete()
    if missing:
        ServiceInstance.objects.bulk_create(missing, ignore_conflicts=True)
    return _read(query) if past or missing else rows


def _read(query: Any) -> list[InstanceRow]:
    return [InstanceRow(*values) for values in query.order_by("task_id", "index").values_list(*InstanceRow._fields)]


@retry_on_conflict
def begin_instances(starts: Iterable[tuple[str, int, int]], *, supervisor_pid: int) -> list[Run]:
    """New lifetimes of instances, ``(task id, index, restarts)`` each, in one transaction (a
    supervisor starts what is due in one look together: 200 at boot): their Runs, ``running``
    from now, recorded before their processes are spawned; the instances ``starting``. Task
    locks are taken in id order (db/locks.py); the runs come back in the order asked."""
    starts = list(starts)
    if not starts:
        return []
    with transaction.atomic():
        for task_id in sorted({task_id for task_id, _, _ in starts}):
            lock_task(task_id)
        now = clock.now()
        runs = [Run(task_id=task_id, trigger=RunTrigger.SUPERVISOR, triggered_by="supervisor", status=RunStatus.RUNNING,
                    created_at=now, enqueued_at=now, started_at=now, heartbeat_at=now, worker_host=HOSTNAME,
                    worker_pid=supervisor_pid, instance_index=index) for task_id, index, _ in starts]
        Run.objects.bulk_create(runs)
        Task.objects.filter(pk__in={task_id for task_id, _, _ in starts}).update(last_run_at=now)
        for run, (task_id, index, restarts) in zip(runs, starts):
            ServiceInstance.objects.filter(task_id=task_id, index=index).update(
                state=InstanceState.STARTING, run=run, pid=None, started_at=now, next_start_at=None, restarts=restarts)
        outbox.emit_run_events([(EventName.STARTED, run, "") for run in runs])
        outbox.emit_service_updates([outbox.service_updated_row(run.task_id, index=run.instance_index,
                                                                state=InstanceState.STARTING, run_id=run.id)
                                     for run in runs])
    return runs


def instances_up(started: Iterable[tuple[Run, int]]) -> None:
    """The instances' processes started: each pid on its run and its instance, in one transaction."""
    started = list(started)
    if not started:
        return
    with transaction.atomic():
        for run, pid in started:
            Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(pid=pid)
            ServiceInstance.objects.filter(task_id=run.task_id, index=run.instance_index, run=run).update(pid=pid)
        outbox.emit_service_updates([outbox.service_updated_row(
            run.task_id, index=run.instance_index, state=InstanceState.STARTING, run_id=run.id, pid=pid)
            for run, pid in started])


def set_instances_state(changes: Iterable[tuple[str, int, str, str]]) -> None:
    """The owner's word on where instances are, ``(task id, index, state, message)`` each (those
    found healthy in one look: ``running``), in one transaction."""
    changes = list(changes)
    if not changes:
        return
    with transaction.atomic():
        for task_id, index, state, _ in changes:
            ServiceInstance.objects.filter(task_id=task_id, index=index).update(state=state)
        outbox.emit_service_updates([outbox.service_updated_row(task_id, index=index, state=state, message=message)
                                     for task_id, index, state, message in changes])


def set_instance_state(task_id: str, index: int, state: str, *, message: str = "", **fields: Any) -> None:
    """The owner's word on where an instance is (``running`` once healthy, ``stopped``...)."""
    with transaction.atomic():
        ServiceInstance.objects.filter(task_id=task_id, index=index).update(state=state, **fields)
        outbox.emit_service_updated(task_id, index=index, state=state, message=message)


@dataclass(frozen=True)
class InstanceEnd:
    """An instance's process ended (or never started): its run ends with ``reason`` and
    ``fields`` (exit_code, exit_signal, error), the instance goes to ``state``."""

    run: Run
    reason: str
    state: str
    fields: dict[str, Any] = field(default_factory=dict)
    next_start_at: datetime | None = None
    message: str = ""


@retry_on_conflict
def instances_ended(ends: Iterable[InstanceEnd]) -> None:
    """``ends``, in one transaction: a supervisor writes what ended in one look together (at
    shutdown, every instance of a level, in a few statements)."""
    ends = list(ends)
    if not ends:
        return
    with transaction.atomic():
        end_instance_runs([(end.run, end.reason, end.fields) for end in ends])
        alike: dict[tuple[Any, ...], list[Run]] = {}
        for end in ends:  # at shutdown, all alike: one statement
            key = (end.state, end.next_start_at, end.fields.get("exit_code"), end.fields.get("exit_signal"))
            alike.setdefault(key, []).append(end.run)
        for (state, next_start_at, exit_code, exit_signal), runs in alike.items():
            ServiceInstance.objects.filter(run__in=runs).update(state=state, pid=None, next_start_at=next_start_at,
                                                                last_exit_code=exit_code, last_exit_signal=exit_signal)
        outbox.emit_service_updates([outbox.service_updated_row(
            end.run.task_id, index=end.run.instance_index, state=end.state, run_id=end.run.id,
            message=end.message or end.fields.get("error", "")) for end in ends])


def beat_instances(run_ids: Iterable[Any]) -> None:
    """The supervisor is alive and runs these instances: their runs' heartbeats, in one statement."""
    ids = list(run_ids)
    if ids:
        Run.objects.filter(pk__in=ids, status=RunStatus.RUNNING).update(heartbeat_at=clock.now())


@retry_on_conflict
def end_previous_instance_runs(keys: Collection[tuple[str, int]]) -> list[Run]:
    """A supervisor just took these instances, ``(task id, index)`` each, over: the runs their
    previous owners left running end ``crashed`` (what is left of their processes on this host
    killed) before it starts its own. One read, and one transaction when there is anything to end."""
    keys = set(keys)
    if not keys:
        return []
    candidates = Run.objects.filter(task_id__in={task_id for task_id, _ in keys}, trigger=RunTrigger.SUPERVISOR,
                                    status=RunStatus.RUNNING, instance_index__in={index for _, index in keys})
    left = [run for run in candidates if (run.task_id, run.instance_index) in keys]
    for run in left:
        kill_lost_group(run)
    with transaction.atomic():
        return end_instance_runs([(run, EndReason.CRASHED, {"error": "Its supervisor was lost; another took the "
                                                                     "instance over."}) for run in left])


def start_service(task_id: str) -> Task:
    """Operators: start the service's stopped and fatal instances, with a fresh retry budget; it
    stays wanted across restarts of Taskdeck. Its owner acts within ``SUPERVISOR_INTERVAL``."""
    return _ask(task_id, "start", wanted=True, start_requested=F("start_requested") + 1)


def stop_service(task_id: str) -> Task:
    """Operators: stop every instance of the service, and keep them stopped, across restarts of
    Taskdeck too, until started again."""
    return _ask(task_id, "stop", wanted=False)


def restart_service(task_id: str) -> Task:
    """Operators: stop the service's running instances and start them all again (fresh budget)."""
    return _ask(task_id, "restart", wanted=True, restart_requested=F("restart_requested") + 1)


def _ask(task_id: str, what: str, **changes: Any) -> Task:
    task = get_task(task_id)
    if task.kind != TaskKind.SERVICE:
        raise NotAService(f"Task {task.id!r} is a {task.kind} task; only services start, stop and restart.")
    with transaction.atomic():
        ensure_instances([task])
        ServiceInstance.objects.filter(task=task).update(**changes)
        outbox.emit_service_updated(task.id, index=None, state=what, message=f"{what} requested")
        transaction.on_commit(_wake_supervisors)
    return task


def supervisor_wakeup(pid: int) -> str:
    """The name a supervisor listens on (platform/wakeups.py): an operator's ask made on its host
    wakes it to look at once, rather than at its next look (``SUPERVISOR_INTERVAL``)."""
    return f"supervisor-{pid}"


def _wake_supervisors() -> None:
    for pid in Heartbeat.objects.filter(role=HeartbeatRole.SUPERVISOR, host=HOSTNAME).values_list("pid", flat=True):
        wakeups.wake(supervisor_wakeup(pid))
