"""Task: a definition (from code, the definitions file or the admin) with its operational state,
and the choices its fields take."""
from __future__ import annotations

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
    SERVICE = "service", _("Service")
    """Kept running by the supervisor."""


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


class LogOnFull(models.TextChoices):
    """What a run's log does once it holds log_max_size bytes (a process task's ``log_on_full``)."""

    DROP_OLD = "drop_old", _("Drop the oldest output")
    """Keep the newest bytes; the dropped head still counts in the log's size and offsets."""
    DROP_NEW = "drop_new", _("Drop the newest output")
    """Keep the oldest bytes and discard what the run writes after."""
    KILL_TASK = "kill_task", _("Stop the run")
    """Stop the run, which ends failed with end reason log_overflow."""


class RestartPolicy(models.TextChoices):
    """When a service's instance that exited is started again (a service task's ``restart``)."""

    NEVER = "never", _("Never")
    """An instance that exits stays stopped until an operator starts it."""
    ON_FAILURE = "on_failure", _("On failure")
    """Started again when it exits with a code not in exit_codes, or by a signal."""
    ALWAYS = "always", _("Always")
    """Started again whatever its exit status."""


class DefinitionSource(models.TextChoices):
    CODE = "code", _("Code (@task)")
    """Declared with the @task decorator in an installed app."""
    FILE = "file", _("Definitions file")
    """Declared in the TOML definitions file (TASKDECK_DEFINITIONS)."""
    ADMIN = "admin", _("Admin")
    """Created in the admin by a superuser."""
    COMPOSE = "compose", _("Compose import")
    """Imported from a docker compose file (``manage.py import_compose``); re-importing updates it."""
    CRONTAB = "crontab", _("Crontab import")
    """Imported from a crontab (``manage.py import_crontab``)."""
    SUPERVISORD = "supervisord", _("Supervisord import")
    """Imported from a supervisord configuration (``manage.py import_supervisord``)."""


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
    source = models.CharField(max_length=20, choices=DefinitionSource.choices, default=DefinitionSource.CODE)

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
    process = StorableJSONField(
        null=True, blank=True,
        help_text=_("A command task's process settings, normalised (definitions/process.py); null for python tasks"))

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
        if self.kind == TaskKind.SERVICE:
            return TaskTrigger.SERVICE
        if self.cron_string or self.interval:
            return TaskTrigger.SCHEDULED
        return TaskTrigger.MANUAL

    @property
    def edited_here(self) -> bool:
        """Whether the task lives in the database only, so the admin edits it (superusers): made
        there, or imported (a re-import of its file writes it again). Tasks declared in code or
        the definitions file are written again at every start: only operator fields are edited."""
        return self.source in (DefinitionSource.ADMIN, DefinitionSource.COMPOSE, DefinitionSource.CRONTAB,
                               DefinitionSource.SUPERVISORD)

    @property
    def is_removed(self) -> bool:
        return self.removed_at is not None
