"""Nothing stuck: runs whose worker is gone end (``reap_lost_runs``), and queued runs whose queue
message was lost are sent again (``rebuild_queue`` at start-up, ``redeliver_lost_runs`` later)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction

from tasks_app import clock, queue
from tasks_app.conf import taskdeck_settings
from tasks_app.models import REASON_FOR_STOP, EndReason, Run, RunStatus
from tasks_app.platform import children, groups
from tasks_app.services.lookups import HOSTNAME
from tasks_app.services.outcomes import finish_run

logger = logging.getLogger(__name__)


def reap_lost_runs(*, stale_after: float | None = None, database_failed_at: datetime | None = None) -> list[Run]:
    """End as crashed every running run whose worker is gone.

    A worker is gone when its process no longer exists on this host, or, for a worker on another
    host, when its heartbeat is older than ``HEARTBEAT_STALE_AFTER``. A worker of this host that
    is alive is never taken for gone, whatever its heartbeat says: it may be waiting for the
    database to take its writes, and will record the run's real end. Nor is a heartbeat stale
    while the database refused writes less than ``stale_after`` ago (``database_failed_at``, as
    the caller saw it): no worker could beat then. A run past its timeout ends ``timeout``.

    A command run's group was killed by its worker's keeper (platform/keeper.py) when the worker
    died; should the keeper have gone too, what is left is killed here, when the run was on this
    host and its pid was recorded (``kill_lost_group``).
    """
    stale_after = taskdeck_settings.HEARTBEAT_STALE_AFTER if stale_after is None else stale_after
    now = clock.now()
    heartbeats_count = database_failed_at is None or (now - database_failed_at).total_seconds() > stale_after
    candidates = Run.objects.running().select_related("task")
    reaped = []
    for run in candidates:
        if run.worker_host == HOSTNAME and run.worker_pid:
            lost = not children.alive(run.worker_pid)
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
        kill_lost_group(run)
        ended = finish_run(run.id, reason=reason, error=error)  # exit_code stays null: the end is unknown (API.md)
        if ended:
            logger.warning("Run %s of %s ended %s: its worker is gone.", run.id, run.task_id, reason)
            reaped.append(ended)
    return reaped


def kill_lost_group(run: Run) -> None:
    """What is left of the process group of a command run of this host whose worker is gone.
    Its group id is its leader's pid, which no new process takes while any member still lives."""
    if run.pid and run.worker_host == HOSTNAME and groups.kill_group(run.pid):
        logger.warning("Killed what was left of the processes of run %s (group %s).", run.id, run.pid)


def rebuild_queue() -> int:
    """Single-machine start-up, before any worker runs: the queue is rebuilt from the runs.

    Messages a cluster took but never ran died with it; queued runs that were handed to the
    queue are sent again, oldest first. Returns how many.
    """
    queue.purge()
    runs = Run.objects.filter(status=RunStatus.QUEUED, enqueued_at__isnull=False).select_related("task")
    count = 0
    for run in runs.order_by("created_at").iterator():
        queue.enqueue(queue.prepare(run))
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
    pending = queue.pending_run_ids()
    sent = []
    for run in stale:
        if str(run.id) in pending:
            continue
        package = queue.prepare(run)
        with transaction.atomic():
            if Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED, enqueued_at=run.enqueued_at).update(enqueued_at=now):
                queue.enqueue(package)
                sent.append(run)
    if sent:
        logger.warning("Sent %d queued run(s) again: their queue messages were lost.", len(sent))
    return sent
