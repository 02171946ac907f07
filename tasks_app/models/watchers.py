"""Watcher: a watcher task's live state, as the supervisor that owns it (by lease) last wrote it."""
from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from tasks_app.fields import StorableJSONField


class WatcherState(models.TextChoices):
    """Where a file watcher is (API.md "Watchers": the ``state`` of its ``watcher`` object)."""

    STOPPED = "stopped", _("Stopped")
    """Not watching: disabled or removed, or no supervisor has taken it yet."""
    STARTING = "starting", _("Starting")
    """Its owner is setting up the watches of its paths (a large tree takes a moment)."""
    WATCHING = "watching", _("Watching")
    """Every path is watched, and its target takes its triggers."""
    ERROR = "error", _("Error")
    """Something keeps it from doing its work, and ``error`` says what: a path missing or unreadable
    (the others are watched meanwhile, and it is tried again until it appears), or a target that
    cannot take its triggers (unknown, a service, parameters it refuses)."""


class Watcher(models.Model):
    """One watcher task's state. Its owner (the supervisor holding the lease ``watcher:<task id>``)
    writes it; what it watches and triggers is the task's ``watch`` settings."""

    task = models.OneToOneField("tasks_app.Task", primary_key=True, on_delete=models.CASCADE,
                                related_name="watcher_state")
    state = models.CharField(max_length=10, choices=WatcherState.choices, default=WatcherState.STOPPED)
    paths = StorableJSONField(default=list, blank=True, help_text=_(
        'Each watched path as its owner watches it: [{"path", "mode": inotify|polling|"", "error"}]'))
    error = models.TextField(blank=True, help_text=_("Why the state is error; empty otherwise"))
    last_change_at = models.DateTimeField(null=True, blank=True, help_text=_("The latest change seen"))
    last_triggered_at = models.DateTimeField(null=True, blank=True, help_text=_("When it last triggered its target"))
    last_run_id = models.UUIDField(null=True, blank=True, help_text=_(
        "The run of its target it triggered last: a plain value, so retention deletes runs without a look here"))
    pending_changes = models.PositiveIntegerField(default=0, help_text=_(
        "Changed paths seen since its last trigger: waiting for the quiet delay, or for the target to take them"))
    pending_paths = StorableJSONField(default=list, blank=True, help_text=_(
        "The changed paths (summarised) its target refused so far, kept so that an owner taking over fires them"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["task"]

    def __str__(self) -> str:
        return f"{self.task_id} {self.state}"
