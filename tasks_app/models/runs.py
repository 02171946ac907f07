"""Run: one execution of a task, from queued to its end; its per-item Activity; the per-status
RunCount the database keeps. The states and end reasons, and which status each reason gives.

Transitions are conditional updates that report whether they won (services/transitions.py),
never read-modify-write.
"""
from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from tasks_app.fields import StorableJSONField
from tasks_app.models.tasks import Task


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    """Committed and waiting: handed to the queue (enqueued_at set) or held for a free slot."""
    RUNNING = "running", _("Running")
    """Claimed by exactly one worker, which heartbeats while it runs."""
    COMPLETED = "completed", _("Completed")
    """Ended well (end reason success)."""
    FAILED = "failed", _("Failed")
    """Ended badly: failed, timeout, crashed, log_overflow or shutdown."""
    CANCELLED = "cancelled", _("Cancelled")
    """Stopped on request: cancelled, or terminated by a newer run's overlap policy."""
    SKIPPED = "skipped", _("Skipped")
    """Never executed by policy: skipped, queue_full or missed. Not a failure."""


class EndReason(models.TextChoices):
    SUCCESS = "success", _("Success")
    """The callable returned, or the process exited with a code in exit_codes."""
    FAILED = "failed", _("Failed")
    """The task raised, or its process exited with a code not in exit_codes."""
    TIMEOUT = "timeout", _("Timed out")
    """Ran past the task's timeout and was stopped."""
    CRASHED = "crashed", _("Crashed")
    """Its worker was lost (killed, or the system stopped hard)."""
    CANCELLED = "cancelled", _("Cancelled")
    """An operator cancelled it (a queued run at once, a running one once it stopped)."""
    TERMINATED = "terminated", _("Terminated")
    """Stopped by the overlap policy terminate."""
    SKIPPED = "skipped", _("Skipped")
    """A non-interactive trigger met a busy skip task: recorded, never executed."""
    QUEUE_FULL = "queue_full", _("Queue full")
    """A non-interactive trigger met a queue task whose queue_max runs were already waiting."""
    MISSED = "missed", _("Missed")
    """Records a catch-up gap."""
    LOG_OVERFLOW = "log_overflow", _("Log overflow")
    """Its output passed log_max_size with log_on_full kill_task."""
    SHUTDOWN = "shutdown", _("Shut down")
    """Taskdeck stopped while the run was running."""


#: Which status each end reason gives a run.
STATUS_FOR_REASON: dict[str, str] = {
    EndReason.SUCCESS: RunStatus.COMPLETED,
    EndReason.FAILED: RunStatus.FAILED,
    EndReason.TIMEOUT: RunStatus.FAILED,
    EndReason.CRASHED: RunStatus.FAILED,
    EndReason.LOG_OVERFLOW: RunStatus.FAILED,
    EndReason.SHUTDOWN: RunStatus.FAILED,
    EndReason.CANCELLED: RunStatus.CANCELLED,
    EndReason.TERMINATED: RunStatus.CANCELLED,
    EndReason.SKIPPED: RunStatus.SKIPPED,
    EndReason.QUEUE_FULL: RunStatus.SKIPPED,
    EndReason.MISSED: RunStatus.SKIPPED,
}


#: The end reasons that start or continue a retry chain (issue: scheduling and policies).
RETRYABLE_REASONS = frozenset({EndReason.FAILED, EndReason.TIMEOUT, EndReason.CRASHED})


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", _("Schedule")
    """A cron or interval tick."""
    MANUAL = "manual", _("Manual (admin or command line)")
    """Someone asked, in the admin or on the command line."""
    API = "api", _("API")
    """Someone asked through the REST API, with a key."""
    STARTUP = "startup", _("Start-up")
    """The scheduler started and the task has run_on_start."""
    CATCH_UP = "catch_up", _("Catch-up")
    """A tick missed while Taskdeck was down, run by the catch-up policy."""
    RETRY = "retry", _("Retry")
    """The next attempt of a failed, timed-out or crashed run."""
    WATCHER = "watcher", _("Watcher")
    """A file watcher saw changes settle and triggered its target."""
    SUPERVISOR = "supervisor", _("Supervisor")
    """The supervisor started a service instance: the run is that instance's lifetime."""


#: Triggers that count as "someone asked": they need the task's manual_run.
ON_DEMAND_TRIGGERS = frozenset({RunTrigger.MANUAL, RunTrigger.API})

#: Triggers told no (an exception, and no run) when the task's overlap policy refuses a run: a
#: person asking, or a file watcher, which keeps its changes pending and asks again once the task
#: is free. The others (a schedule tick, a retry...) record a run ended skipped or queue_full.
REFUSED_TRIGGERS = ON_DEMAND_TRIGGERS | {RunTrigger.WATCHER}


class StopRequest(models.TextChoices):
    """Why a running run was asked to stop; it decides the end reason once it stops."""

    CANCEL = "cancel", _("Cancel")
    """An operator cancelled it; it ends cancelled."""
    TERMINATE = "terminate", _("Terminate (overlap)")
    """A newer run of a terminate task took its slot; it ends terminated."""
    SHUTDOWN = "shutdown", _("Shutdown")
    """Its worker is stopping; it ends shutdown."""
    OVERFLOW = "overflow", _("Log overflow")
    """Its output passed log_max_size with log_on_full kill_task; it ends log_overflow."""


REASON_FOR_STOP: dict[str, str] = {
    StopRequest.CANCEL: EndReason.CANCELLED,
    StopRequest.TERMINATE: EndReason.TERMINATED,
    StopRequest.SHUTDOWN: EndReason.SHUTDOWN,
    StopRequest.OVERFLOW: EndReason.LOG_OVERFLOW,
}


class RunQuerySet(models.QuerySet):
    def active(self) -> RunQuerySet:
        """Not ended: waiting in the queue, held for a slot, or running."""
        return self.filter(status__in=(RunStatus.QUEUED, RunStatus.RUNNING))

    def occupying(self) -> RunQuerySet:
        """Runs that hold one of the task's max_concurrent slots: running or handed to the queue."""
        return self.filter(
            models.Q(status=RunStatus.RUNNING)
            | models.Q(status=RunStatus.QUEUED, enqueued_at__isnull=False)
        )

    def held(self) -> RunQuerySet:
        """Queued runs not yet handed to the queue (waiting for a slot or a not-before time)."""
        return self.filter(status=RunStatus.QUEUED, enqueued_at__isnull=True)

    def due(self, now: Any) -> RunQuerySet:
        """Without a not-before time, or past it (retries wait for theirs)."""
        return self.filter(models.Q(not_before__isnull=True) | models.Q(not_before__lte=now))

    def running(self) -> RunQuerySet:
        return self.filter(status=RunStatus.RUNNING)

    def ended(self) -> RunQuerySet:
        return self.exclude(status__in=(RunStatus.QUEUED, RunStatus.RUNNING))


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: run_task_history and run_task_status start with it (one less to write per run).
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="runs", db_index=False)
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    end_reason = models.CharField(max_length=15, choices=EndReason.choices, blank=True)
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices)
    triggered_by = models.CharField(max_length=200, blank=True)
    parameters = StorableJSONField(default=dict, blank=True)
    dry_run = models.BooleanField(default=False)
    attempt = models.PositiveIntegerField(default=1)
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")

    created_at = models.DateTimeField()
    enqueued_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    progress_current = models.FloatField(null=True, blank=True)
    progress_total = models.FloatField(null=True, blank=True)
    progress_message = models.CharField(max_length=500, blank=True)
    items_processed = models.PositiveIntegerField(default=0)
    items_affected = models.PositiveIntegerField(default=0)
    summary = StorableJSONField(default=dict, blank=True)
    result = StorableJSONField(null=True, blank=True)
    error = models.TextField(blank=True, help_text=_("A message, never a traceback"))
    traceback = models.TextField(blank=True, help_text=_("Shown to superusers only"))
    exit_code = models.IntegerField(null=True, blank=True)
    # Null, not "", when there is none (API.md): a nullable column without a default is the kind
    # SQLite adds in place, so the run table is not rebuilt and keeps its RunCount triggers.
    exit_signal = models.CharField(max_length=16, null=True, blank=True,
                                   help_text=_("The signal that ended the process (SIGTERM, SIGKILL…)"))
    pid = models.PositiveIntegerField(null=True, blank=True, help_text=_("The child process's pid; none for python runs"))
    instance_index = models.PositiveIntegerField(null=True, blank=True)

    stop_requested = models.CharField(max_length=10, choices=StopRequest.choices, blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        # Each list the API pages through has an index in its own order that holds the status and
        # the id, so a page's ids come from the index alone, whatever the status filter
        # (selectors.page_of_runs). tests/test_selectors.py pins the plans.
        indexes = [
            # A task's history, newest first, any statuses.
            models.Index(fields=["task", "-created_at", "status", "id"], name="run_task_history"),
            # A task's history in one status; also covers the trigger's slot count (services).
            models.Index(fields=["task", "status", "-created_at", "id", "enqueued_at", "not_before"],
                         name="run_task_status"),
            # All runs in one status (the API's ?status=, the scheduler's running and held runs).
            models.Index(fields=["status", "-created_at", "id"], name="run_status_recent"),
            # All runs, newest first, any statuses.
            models.Index(fields=["-created_at", "status", "id"], name="run_recent"),
            # Held runs (queued, not yet handed to the queue) in the order they are admitted, and
            # those waiting for a later time (retries): only held runs are in them, so admitting
            # the next one, or counting those not yet due, costs the same behind 10 or 10,000.
            # The statements that use them (services) spell the same conditions out as literals:
            # SQLite uses a partial index only for a WHERE clause that matches it as written.
            models.Index(fields=["task", "created_at", "not_before", "id"], name="run_held_fifo",
                         condition=models.Q(status="queued", enqueued_at__isnull=True)),
            models.Index(fields=["task", "not_before"], name="run_held_later",
                         condition=models.Q(status="queued", enqueued_at__isnull=True, not_before__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.task_id} {self.id}"

    @property
    def is_active(self) -> bool:
        return self.status in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def cancel_requested(self) -> bool:
        return bool(self.stop_requested)

    @property
    def duration(self) -> float | None:
        if not self.started_at:
            return None
        end = self.ended_at
        if end is None:
            from tasks_app import clock

            end = clock.now()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def percent(self) -> float | None:
        if self.progress_total and self.progress_current is not None:
            return round(min(100.0, 100.0 * self.progress_current / self.progress_total), 1)
        return None

    @property
    def progress(self) -> dict[str, Any]:
        return {
            "current": self.progress_current,
            "total": self.progress_total,
            "percent": self.percent,
            "message": self.progress_message,
        }


class RunCount(models.Model):
    """How many runs a task has in each status, kept exact by database triggers on the run table.

    The API's pagination totals read these few rows instead of counting a history that may hold
    hundreds of thousands of runs, and a trigger reads its task's slots from them (running, queued,
    and ``held``: queued but not handed to the queue) instead of counting a backlog. Triggers
    (migration 0009), not Python code, keep them, so every write path counts: a bulk insert, a
    conditional update, a cascade, retention. SQLite drops a table's triggers when a migration
    rebuilds it: such a migration on Run must install them again (as 0007 does);
    tests/test_selectors.py fails if they are missing.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="run_counts")
    status = models.CharField(max_length=10, choices=RunStatus.choices)
    count = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0, help_text=_("Of the queued runs, those not yet handed to the queue"))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "status"], name="run_count_task_status")]

    def __str__(self) -> str:
        return f"{self.task_id} {self.status}: {self.count}"


class Activity(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="activity")
    item_id = models.CharField(max_length=300)
    item_title = models.CharField(max_length=500, blank=True)
    item_type = models.CharField(max_length=50, blank=True)
    action = models.CharField(max_length=50)
    status = models.CharField(max_length=20)
    message = models.TextField(blank=True)
    data = StorableJSONField(default=dict, blank=True)
    timestamp = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "activity"
        indexes = [
            models.Index(fields=["run", "id"], name="activity_run_order"),
            models.Index(fields=["run", "status"], name="activity_run_status"),
            models.Index(fields=["run", "action"], name="activity_run_action"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.item_id}: {self.status}"
