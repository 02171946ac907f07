"""Taskdeck's data: Task (definition + operational state), Run, Activity, Event.

States are TextChoices with a docstring per member; transitions are conditional updates that
report whether they won (services/transitions.py), never read-modify-write.
"""
from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from tasks_app.conf import taskdeck_settings
from tasks_app.fields import StorableJSONField


class TaskKind(models.TextChoices):
    PYTHON = "python", _("Python callable")
    """A function decorated with @task or named by dotted path in the definitions file."""
    COMMAND = "command", _("Shell command")
    """A command line run to completion; defined in the definitions file or by a superuser."""
    SERVICE = "service", _("Service")
    """Long-running processes kept alive; a run is one instance lifetime."""
    WATCHER = "watcher", _("File watcher")
    """Watches paths and triggers another task after a quiet delay."""


class TaskTrigger(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    """Has a cron string or an interval."""
    MANUAL = "manual", _("Manual")
    """Runs only when someone asks."""
    WATCHER = "watcher", _("Watcher")
    """Fired by file changes."""


class IntervalUnit(models.TextChoices):
    MINUTES = "minutes", _("minutes")
    """Every N minutes."""
    HOURS = "hours", _("hours")
    """Every N hours."""
    DAYS = "days", _("days")
    """Every N days (each 86,400 s, whatever the clocks do)."""

    @property
    def seconds(self) -> int:
        return {"minutes": 60, "hours": 3600, "days": 86400}[self.value]


class OverlapPolicy(models.TextChoices):
    SKIP = "skip", _("Skip")
    """A trigger that finds max_concurrent runs active is refused (a schedule tick records a skipped run)."""
    QUEUE = "queue", _("Queue")
    """It waits, first in first out, up to queue_max waiting runs; past that it ends queue_full."""
    TERMINATE = "terminate", _("Terminate")
    """The oldest active run is stopped (ends terminated) and the new one starts."""


class RetryBackoff(models.TextChoices):
    CONSTANT = "constant", _("Constant")
    """Each retry waits retry_delay."""
    LINEAR = "linear", _("Linear")
    """Retry n waits n × retry_delay."""
    EXPONENTIAL = "exponential", _("Exponential")
    """Retry n waits retry_delay × 2^(n-1); every curve is capped (TASKDECK_RETRY_MAX_DELAY)."""


class CatchUp(models.TextChoices):
    LATEST = "latest", _("Run once")
    """After downtime, one run for all the ticks missed; a missed run records the gap."""
    ALL = "all", _("Run each missed tick (capped)")
    """One run per missed tick, up to max_catch_up_runs; a missed run records the gap."""
    SKIP = "skip", _("Run none")
    """No run for the missed ticks; a missed run records the gap."""


class DefinitionSource(models.TextChoices):
    CODE = "code", _("Code (@task)")
    """Declared with the @task decorator in an installed app."""
    FILE = "file", _("Definitions file")
    """Declared in the TOML definitions file (TASKDECK_DEFINITIONS)."""
    ADMIN = "admin", _("Admin")
    """Created in the admin by a superuser."""


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


class TaskStatus(models.TextChoices):
    """A task's status, derived from its runs (selectors.task_status), never stored."""

    IDLE = "idle", _("Idle")
    """No run queued or running, and the latest ended run did not fail."""
    QUEUED = "queued", _("Queued")
    """A run waits (handed to the queue or held) and none runs."""
    RUNNING = "running", _("Running")
    """A run is running."""
    ERROR = "error", _("Error")
    """Nothing active, and the latest ended run failed."""
    REMOVED = "removed", _("Removed")
    """Gone from its definitions; its runs are kept (the admin shows it, the API hides it)."""


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


#: Triggers that count as "someone asked": they need the task's manual_run.
ON_DEMAND_TRIGGERS = frozenset({RunTrigger.MANUAL, RunTrigger.API})


class StopRequest(models.TextChoices):
    """Why a running run was asked to stop; it decides the end reason once it stops."""

    CANCEL = "cancel", _("Cancel")
    """An operator cancelled it; it ends cancelled."""
    TERMINATE = "terminate", _("Terminate (overlap)")
    """A newer run of a terminate task took its slot; it ends terminated."""
    SHUTDOWN = "shutdown", _("Shutdown")
    """Its worker is stopping; it ends shutdown."""


REASON_FOR_STOP: dict[str, str] = {
    StopRequest.CANCEL: EndReason.CANCELLED,
    StopRequest.TERMINATE: EndReason.TERMINATED,
    StopRequest.SHUTDOWN: EndReason.SHUTDOWN,
}


def default_timezone() -> str:
    """A new task's time zone: TASKDECK_DEFAULT_TIMEZONE (tasks_app/conf.py)."""
    return taskdeck_settings.DEFAULT_TIMEZONE


def default_keep_runs() -> int:
    """Ended runs a new task keeps: TASKDECK_KEEP_RUNS."""
    return taskdeck_settings.DEFAULT_KEEP_RUNS


def default_keep_for() -> float:
    """Seconds a new task keeps its ended runs: TASKDECK_KEEP_FOR."""
    return taskdeck_settings.DEFAULT_KEEP_FOR


#: A task's policy fields, in the order the API and the admin show them.
POLICY_FIELDS = (
    "on_overlap", "max_concurrent", "queue_max", "timeout", "retry_attempts", "retry_backoff", "retry_delay",
    "catch_up", "max_catch_up_runs", "jitter", "keep_runs", "keep_for", "run_on_start",
)


class TaskQuerySet(models.QuerySet):
    def present(self) -> TaskQuerySet:
        """Tasks still defined somewhere; removed ones keep their history but are hidden here."""
        return self.filter(removed_at__isnull=True)


class Task(models.Model):
    id = models.CharField(primary_key=True, max_length=200)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=50, default="generic", help_text=_("Category, free text"))
    kind = models.CharField(max_length=20, choices=TaskKind.choices, default=TaskKind.PYTHON)
    callable = models.CharField(max_length=300, blank=True, help_text=_("Dotted path, python tasks"))
    source = models.CharField(max_length=10, choices=DefinitionSource.choices, default=DefinitionSource.CODE)

    enabled = models.BooleanField(default=True)
    manual_run = models.BooleanField(default=True)
    cron_string = models.CharField(max_length=120, blank=True)
    timezone = models.CharField(max_length=64, default=default_timezone)
    interval = models.PositiveIntegerField(null=True, blank=True)
    interval_unit = models.CharField(max_length=10, choices=IntervalUnit.choices, blank=True)
    default_interval = models.PositiveIntegerField(null=True, blank=True)

    supports_cancel = models.BooleanField(default=True)
    supports_dry_run = models.BooleanField(default=False)
    supports_history = models.BooleanField(default=True)
    parameters = StorableJSONField(default=list, blank=True)

    on_overlap = models.CharField(max_length=10, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP)
    max_concurrent = models.PositiveIntegerField(default=1)
    queue_max = models.PositiveIntegerField(default=0)
    timeout = models.FloatField(null=True, blank=True, help_text=_("Seconds; empty for none"))
    retry_attempts = models.PositiveIntegerField(default=0)
    retry_backoff = models.CharField(max_length=12, choices=RetryBackoff.choices, default=RetryBackoff.EXPONENTIAL)
    retry_delay = models.FloatField(default=30)
    catch_up = models.CharField(max_length=10, choices=CatchUp.choices, default=CatchUp.LATEST)
    max_catch_up_runs = models.PositiveIntegerField(default=3)
    jitter = models.FloatField(default=0)
    keep_runs = models.PositiveIntegerField(default=default_keep_runs)
    keep_for = models.FloatField(default=default_keep_for, help_text=_("Seconds"))
    run_on_start = models.BooleanField(default=False)

    last_run_at = models.DateTimeField(null=True, blank=True, help_text=_("When its latest run started"))
    next_run_at = models.DateTimeField(null=True, blank=True, help_text=_("Its next scheduled tick"))
    last_tick_at = models.DateTimeField(
        null=True, blank=True, help_text=_("The last scheduled tick fired: catch-up counts missed ticks from here"))
    last_startup_at = models.DateTimeField(
        null=True, blank=True, help_text=_("When a scheduler last fired its run_on_start run"))

    definition = StorableJSONField(default=dict, blank=True, help_text=_("Values as last declared"))
    overrides = models.JSONField(default=list, blank=True, help_text=_("Fields an operator changed"))
    removed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        permissions = [
            ("run_task", "Can run and cancel tasks (API scope tasks:run)"),
            ("manage_task", "Can enable, disable and reschedule tasks (API scope tasks:manage)"),
        ]

    def __str__(self) -> str:
        return self.title or self.id

    @property
    def trigger(self) -> str:
        if self.kind == TaskKind.WATCHER:
            return TaskTrigger.WATCHER
        if self.cron_string or self.interval:
            return TaskTrigger.SCHEDULED
        return TaskTrigger.MANUAL

    @property
    def is_removed(self) -> bool:
        return self.removed_at is not None


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
    instance_index = models.PositiveIntegerField(null=True, blank=True)

    stop_requested = models.CharField(max_length=10, choices=StopRequest.choices, blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    worker_host = models.CharField(max_length=255, blank=True)
    worker_pid = models.PositiveIntegerField(null=True, blank=True)

    output = models.TextField(blank=True, help_text=_("Captured output, capped; the tail is kept"))
    output_dropped = models.PositiveBigIntegerField(default=0, help_text=_("Bytes dropped from the head"))

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

    @property
    def output_size(self) -> int:
        """Bytes written so far, including any dropped from the head (the log offset space)."""
        return self.output_dropped + len(self.output.encode("utf-8"))


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


class EventName(models.TextChoices):
    QUEUED = "task:queued", _("Queued")
    """A run was created: handed to the queue, or held for a slot or its time."""
    STARTED = "task:started", _("Started")
    """A worker claimed a run and began it."""
    PROGRESS = "task:progress", _("Progress")
    """A running run reported progress, counts or a message (coalesced)."""
    COMPLETED = "task:completed", _("Completed")
    """A run ended completed."""
    ERROR = "task:error", _("Error")
    """A run ended failed (any failing end reason)."""
    CANCELLED = "task:cancelled", _("Cancelled")
    """A run ended cancelled or terminated."""
    SKIPPED = "task:skipped", _("Skipped")
    """A run ended skipped, queue_full or missed without executing."""
    UPDATED = "task:updated", _("Definition updated")
    """A task's definition or operator settings changed."""


class Event(models.Model):
    """Outbox of live events: the SSE id is the primary key; pruned after a retention window.

    task_id and run_id are plain values, not foreign keys, so an event outlives nothing it names
    and deleting a run removes its events explicitly.
    """

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=30, choices=EventName.choices)
    task_id = models.CharField(max_length=200)
    run_id = models.UUIDField(null=True, blank=True)
    data = StorableJSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["run_id"], name="event_run"),
            models.Index(fields=["created_at"], name="event_created"),
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.name} {self.task_id}"


class Scope(models.TextChoices):
    """What an API caller may do; each scope implies the ones below it."""

    READ = "tasks:read", _("Read tasks, runs, activity, logs and streams")
    """GET routes and the live streams."""
    RUN = "tasks:run", _("Trigger and cancel (implies read)")
    """Trigger and cancel runs, and everything read allows."""
    MANAGE = "tasks:manage", _("Enable, disable, reschedule, delete runs (implies run and read)")
    """Change a task's operator settings and delete runs, and everything run allows."""


#: Every scope a scope grants, itself included.
SCOPE_GRANTS: dict[str, frozenset[str]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.RUN: frozenset({Scope.READ, Scope.RUN}),
    Scope.MANAGE: frozenset({Scope.READ, Scope.RUN, Scope.MANAGE}),
}


class ApiKeyQuerySet(models.QuerySet):
    def usable(self, now: Any) -> ApiKeyQuerySet:
        """Not revoked and not expired."""
        return self.filter(revoked_at__isnull=True).filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))


class ApiKey(models.Model):
    """An API key: only its SHA-256 is stored; the key itself is shown once, when created.

    Keys are 256 random bits, so a fast hash is enough (no guessing is feasible) and lets a
    request find its key by one indexed lookup.
    """

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12, help_text=_("The key's first characters, to recognise it"))
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    owner = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="api_keys")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def granted_scopes(self) -> frozenset[str]:
        return frozenset().union(*(SCOPE_GRANTS.get(scope, frozenset()) for scope in self.scopes))


class HeartbeatRole(models.TextChoices):
    """Which kind of Taskdeck process a heartbeat comes from."""

    WORKER = "worker", _("Worker")
    """A worker process of a cluster: it executes runs (busy or idle, it beats every 10 s)."""
    SCHEDULER = "scheduler", _("Scheduler")
    """The scheduler loop: ticks, reaping, held runs, retention."""
    WEB = "web", _("Web")
    """A web process; its beat is the health check's proof that the database takes writes."""
    SERVE = "serve", _("Serve")
    """``manage.py serve``, supervising its children; ``details`` counts their restarts."""


class Heartbeat(models.Model):
    """A process saying it is alive, for the health check and the dashboard."""

    role = models.CharField(max_length=20, choices=HeartbeatRole.choices)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    seen_at = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True, help_text=_("What the process reports: serve's restarts"))

    class Meta:
        constraints = [models.UniqueConstraint(fields=["role", "host", "pid"], name="heartbeat_process")]

    def __str__(self) -> str:
        return f"{self.role} {self.host}:{self.pid}"
