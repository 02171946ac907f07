"""Stopping runs: an operator's cancel, and a worker's shutdown (its runs asked to stop, then the
ones left ended ``shutdown``)."""
from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

from tasks_app import clock
from tasks_app.exceptions import CancelUnsupported, NotRunning, RunAlreadyEnded
from tasks_app.models import EndReason, Run, RunStatus, StopRequest
from tasks_app.services.lookups import HOSTNAME, get_run, get_task
from tasks_app.services.outcomes import after_run_ended, finish_run
from tasks_app.services.recovery import kill_lost_group
from tasks_app.services.transitions import request_stop


def cancel_run(run_id: UUID | str) -> Run:
    """A queued run ends cancelled at once; a running one is asked to stop and ends within seconds."""
    run = get_run(run_id)
    if not run.is_active:
        raise RunAlreadyEnded(f"Run {run.id} already ended ({run.status}).")
    if run.status == RunStatus.RUNNING and not run.task.supports_cancel:
        raise CancelUnsupported(f"Task {run.task_id!r} does not support cancelling a running run.")
    request_stop(run, request=StopRequest.CANCEL)
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


def request_shutdown(*, pids: Collection[int], host: str = HOSTNAME) -> int:
    """Ask the runs that worker processes ``pids`` of ``host`` are running to stop because their
    worker is stopping; returns how many were asked. Each ends ``shutdown``."""
    return Run.objects.filter(status=RunStatus.RUNNING, worker_host=host, worker_pid__in=list(pids)).update(
        stop_requested=StopRequest.SHUTDOWN, stop_requested_at=clock.now()
    )


def end_shutdown_runs(*, pids: Collection[int], host: str = HOSTNAME) -> list[Run]:
    """After worker processes ``pids`` of ``host`` were stopped: the runs they still held end
    ``shutdown``, and what is left of their command's processes is killed."""
    ended = []
    for lost in Run.objects.running().filter(worker_host=host, worker_pid__in=list(pids)).only("id", "pid", "worker_host"):
        kill_lost_group(lost)
        run = finish_run(lost.pk, reason=EndReason.SHUTDOWN, error="Taskdeck stopped while the run was running.")
        if run:
            ended.append(run)
    return ended
